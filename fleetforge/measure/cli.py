"""``fleetforge tune INVENTORY --measure [--limit NAME] [--budget-s N] [--repeats N] [--file-mib N]
[--knob scheduler|read_ahead_kb] [--disk NAME] [--report out.html]``.

Opt-in: nothing is measured without ``--measure``. Hosts of one ``hardware_group`` (host data)
are measured one after another, other hosts at the same time. Each host's results go to
``<measurements_dir>/<host>.json`` (``fleetforge.measure.results``), which ``fleetforge plan``
and the deploys then read. ``--report`` writes one HTML page of the stored results of the
inventory's hosts (with or without ``--measure``).

Exit codes: 0 every host measured (disks refused for a reason are not failures); 1 a host could
not be measured (its restore state, if any, is kept on it for the next run); 3 bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fleetforge.measure import results
from fleetforge.measure.run import Options, TimedConn, measure_host, printable
from fleetforge.measure.targets import KNOBS
from fleetforge.runs.models import HostRecord
from fleetforge.runs.record import RunRecorder, add_record_arguments, one_line


def add_parser(sub: Any) -> None:
    p = sub.add_parser("tune", help="measure candidate I/O settings on each host and keep what wins (opt-in)")
    p.add_argument("inventory", help="pyinfra inventory file, e.g. inventory.py")
    p.add_argument(
        "--measure", action="store_true", help="run the fio measurement on the hosts (changes knobs briefly)"
    )
    p.add_argument("--limit", action="append", help="host or group name (repeatable)")
    p.add_argument("--budget-s", type=float, default=120.0, help="seconds of fio jobs per host (default 120)")
    p.add_argument("--repeats", type=int, default=5, help="samples per candidate, at least 4 (default 5)")
    p.add_argument("--file-mib", type=int, default=256, help="test file size in MiB (default 256)")
    p.add_argument("--knob", action="append", choices=KNOBS, help="measure only this knob (repeatable)")
    p.add_argument("--command-timeout-s", type=float, default=600.0, help="seconds for each command on a host (600)")
    p.add_argument("--disk", action="append", help="measure only this disk, e.g. vdb (repeatable)")
    p.add_argument("--report", help="write an HTML report of the stored results to this file")
    add_record_arguments(p)  # the run store: fleetforge.runs
    p.set_defaults(func=cmd_tune)


def _log(line: str) -> None:
    print(printable(line), file=sys.stderr, flush=True)


def _measure_one(h: Any, options: Options) -> str | None:
    """Measure one host and store its results; the error line, or ``None``."""
    from fleetforge.planner import plan_host
    from fleetforge.verify import probe_with, testinfra_host

    try:
        conn = testinfra_host(h.name, h.data)
        timed = TimedConn(conn, options.command_timeout_s)
        found = measure_host(
            timed,
            h.name,
            probe=lambda: probe_with(conn, h.settings),
            plan_of=lambda facts: plan_host(h.name, facts, h.settings, measured=False),
            settings=h.settings,
            options=options,
            log=_log,
        )
    except Exception as e:  # noqa: BLE001 - one host's failure is reported, the others go on
        return printable(f"{h.name}: not measured: {e}")  # the host's own text in it (a probe's stderr)
    path = results.save(h.settings.measurements_dir, found)
    for disk in found.disks:
        for series in disk.series:
            if series.decides:
                _log(f"{h.name}: {disk.disk} {series.knob}: {series.decision.reason}")
    _log(f"{h.name}: results in {path}")
    return None


def _measure_recorded(rec: RunRecorder, h: Any, options: Options) -> str | None:
    """``_measure_one``, timed as the host's ``measure`` phase and recorded as its status."""
    error = rec.call("measure", h.name, _measure_one, h, options, failed=lambda line: line is not None)
    status = "ok" if error is None else "failed"
    rec.set_host(HostRecord(host=h.name, status=status, error=None if error is None else one_line(error)))
    return error


def cmd_tune(args: argparse.Namespace) -> int:
    """Measure (``--measure``) and/or write the report (``--report``); one run record (``tune``)
    with each measured host's status and ``measure`` phase."""
    from fleetforge.gather import load_inventory

    target = " ".join(flag for flag, on in (("--measure", args.measure), ("--report", args.report)) if on)
    with RunRecorder.for_args("tune", args, target=target) as rec:
        if not args.measure and not args.report:
            print("fleetforge tune: nothing to do: give --measure (and/or --report FILE)", file=sys.stderr)
            return rec.finish(3)
        if args.repeats < 4 or args.file_mib < 16 or args.budget_s <= 0:
            print("fleetforge tune: expected --repeats >= 4, --file-mib >= 16, --budget-s > 0", file=sys.stderr)
            return rec.finish(3)
        _, hosts = load_inventory(args.inventory, args.limit)
        code = 0
        if args.measure:
            options = Options(
                args.repeats,
                args.budget_s,
                args.file_mib,
                tuple(args.knob or KNOBS),
                tuple(args.disk or ()),
                getattr(args, "command_timeout_s", 600.0),
            )
            groups: dict[str, list[Any]] = defaultdict(list)
            for h in hosts:  # hosts sharing hardware one at a time; a host alone is its own group
                groups[h.settings.hardware_group or f"host:{h.name}"].append(h)

            def run_group(members: list[Any]) -> list[str]:
                return [e for h in members if (e := _measure_recorded(rec, h, options))]

            with ThreadPoolExecutor(max_workers=max(1, min(32, len(groups)))) as pool:
                errors = [e for found in pool.map(run_group, groups.values()) for e in found]
            for line in errors:
                print(f"fleetforge tune: {line}", file=sys.stderr)
            code = 1 if errors else 0
        if args.report:
            from fleetforge.measure.report import write_report

            stored = [m for h in hosts if (m := results.load(h.settings.measurements_dir, h.name))]
            print(f"report: {write_report(stored, args.report)} ({len(stored)} hosts)")
        return rec.finish(code)
