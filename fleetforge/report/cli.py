"""``fleetforge report INVENTORY -o fleet.html [--run-store PATH] [--limit HOST ...]``.

Reads the inventory without connecting to any host (``fleetforge.gather.load_inventory``), every
run in the run store (``--run-store``, else the environment variable ``FLEETFORGE_RUN_STORE``,
else ``fleetforge.runs.store.default_path(INVENTORY)``: ``fleetforge-runs.sqlite`` beside the
inventory) and each host's stored measurements (host data ``measurements_dir``), and writes the
page atomically (``fleetforge.report.html``). A store file that does not exist is an empty store:
the page lists the inventory's hosts and says "no runs recorded yet"; nothing is created.

``--limit``: host or group names (repeatable); hosts known only from the records are kept when
named exactly, and only runs that touch a kept host are shown.

Exit codes: 0 written; 1 the store could not be read (not a run store, a newer schema, no
permission) or the page not written; 3 bad input (invalid host data: ``SettingsError``, reported
by ``fleetforge.cli``).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fleetforge.errors import FleetforgeError
from fleetforge.measure.results import HostMeasurement, MeasurementError, load
from fleetforge.measure.settings import MeasureSettings
from fleetforge.report.fleet import Entry, HostView, fleet_view, touching
from fleetforge.report.html import render_fleet, write_fleet
from fleetforge.runs.models import RunRecord

ENV_STORE = "FLEETFORGE_RUN_STORE"  # fleetforge.runs.store.ENV


def add_parser(sub: Any) -> None:
    """Register ``report`` on ``sub`` (an ``argparse`` subparsers object)."""
    p = sub.add_parser(
        "report",
        help="write one static HTML page of the fleet and its recorded runs; connects to nothing",
        description="write one static HTML page of the fleet and its recorded runs; connects to nothing",
    )
    p.add_argument("inventory", help="pyinfra inventory file, e.g. inventory.py")
    p.add_argument("-o", "--output", required=True, help="the HTML file to write, e.g. fleet.html")
    p.add_argument(
        "--run-store",
        help=f"the run store (default: ${ENV_STORE}, else fleetforge-runs.sqlite beside the inventory)",
    )
    p.add_argument("--limit", action="append", help="host or group name (repeatable)")
    p.set_defaults(func=cmd_report)


def store_path(inventory: str, given: str | None = None) -> Path:
    """The run store to read: ``given``, else ``$FLEETFORGE_RUN_STORE``, else the store's default
    (``off`` turns recording off, not reading: it counts as unset here;
    ``fleetforge.runs.store.store_path``)."""
    from fleetforge.runs.store import store_path as stored_at

    return stored_at(inventory, given)


def read_runs(path: Path) -> list[RunRecord]:
    """Every run in the store at ``path``, oldest first; ``[]`` when the file does not exist.
    Raises ``OSError``, ``sqlite3.Error`` or ``RunStoreError`` when it cannot be read (rows that
    do not validate are skipped by the store with a ``RunStoreWarning``)."""
    if not path.exists():
        return []
    from fleetforge.runs.store import RunStore

    return RunStore(path, read_only=True).runs()  # reads only; a connection per call, closed by the store


def measurements(views: Sequence[HostView], dirs: Mapping[str, str]) -> dict[str, HostMeasurement | str]:
    """``{host: its stored measurement, or why it cannot be read}`` for hosts that have a file;
    ``dirs``: inventory hosts' ``measurements_dir`` (others use the default)."""
    default = MeasureSettings().measurements_dir
    out: dict[str, HostMeasurement | str] = {}
    for view in views:
        try:
            found = load(dirs.get(view.name, default), view.name)
        except MeasurementError as e:
            out[view.name] = str(e)
            continue
        if found is not None:
            out[view.name] = found
    return out


def cmd_report(args: argparse.Namespace) -> int:
    """Write the report (see the module docstring); returns the exit code."""
    from fleetforge.gather import load_inventory

    _, hosts = load_inventory(args.inventory, args.limit)
    path = store_path(args.inventory, args.run_store)
    try:
        runs = read_runs(path)
    except (OSError, sqlite3.Error, FleetforgeError) as e:  # RunStoreError: not a run store, newer schema
        print(f"fleetforge report: cannot read the run store {path}: {e}", file=sys.stderr)
        return 1
    only = set(args.limit) if args.limit else None
    views = fleet_view([Entry(h.name, tuple(h.groups)) for h in hosts], runs, only=only)
    shown = {v.name for v in views}
    if only is not None:
        runs = touching(runs, shown)
    found = measurements(views, {h.name: h.settings.measurements_dir for h in hosts})
    page = render_fleet(
        views,
        runs,
        inventory=os.path.abspath(args.inventory),
        measurements=found,
        hosts=shown if only is not None else None,
    )
    try:
        written = write_fleet(page, args.output)
    except OSError as e:
        print(f"fleetforge report: cannot write {args.output}: {e}", file=sys.stderr)
        return 1
    print(f"report: {written} ({len(views)} hosts, {len(runs)} runs)")
    return 0
