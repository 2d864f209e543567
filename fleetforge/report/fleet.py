"""What the fleet report knows about each host, derived from run records (``fleetforge.runs.models``).

``fleet_view(entries, runs)`` gives one ``HostView`` per host: every inventory host (``entries``,
in inventory order) and then every host that only appears in the records (natural name order).
For each: the newest record holding hardware, the newest holding a plan, the newest deploy
(``deploy`` or ``rollout`` run, dry or not, and the newest real one when that was dry), the newest
verify, the warnings of its newest record that ran, and every verify as a ``DriftMark``.

A record counts as a verify when its run is a ``verify`` run or it holds checks (a rollout's or a
deploy's verify step); ``skipped`` records never count. Its severity: ``unreachable`` when the host
did not answer, ``fail`` when it failed or a check failed, ``warn`` when it warned or a check
warned, else ``ok``. Its time is the host's ``verify`` phase start, else the run's start.

Times are timezone-aware UTC datetimes (a naive one is taken as UTC). Nothing here renders HTML.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from fleetforge.runs.models import HostRecord, RunRecord

Mark = Literal["ok", "warn", "fail", "unreachable"]
DEPLOYS = ("deploy", "rollout")


def utc(t: dt.datetime) -> dt.datetime:
    """``t`` in UTC; a naive datetime is taken to be UTC already."""
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def natural(name: str) -> list[tuple[int, int | str]]:
    """Sort key: digit runs compare as numbers (``vps-2`` before ``vps-10``)."""
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", name) if p]


@dataclass(frozen=True)
class Entry:
    """One inventory host: its name and groups."""

    name: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Seen:
    """One host's record in one run, and when the host's part of it happened (UTC)."""

    run: RunRecord
    record: HostRecord
    at: dt.datetime


@dataclass(frozen=True)
class DriftMark:
    """One verify of a host: when, its severity, and a one-line summary (untrusted text)."""

    at: dt.datetime
    mark: Mark
    run_id: int | None
    command: str
    summary: str


@dataclass
class HostView:
    """Everything the page shows about one host; ``None`` where no record has it."""

    name: str
    in_inventory: bool
    groups: tuple[str, ...] = ()
    hardware: Seen | None = None
    plan: Seen | None = None
    deploy: Seen | None = None
    real_deploy: Seen | None = None  # the newest deploy that was not dry, when ``deploy`` was dry
    verify: Seen | None = None
    latest: Seen | None = None  # the newest record that ran (not skipped): its warnings
    drift: list[DriftMark] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # warnings the report derives itself

    @property
    def state(self) -> Mark | Literal["unverified"]:
        """The newest verify's mark, or ``unverified``."""
        return self.drift[-1].mark if self.drift else "unverified"


def phase_start(run: RunRecord, host: str, names: Collection[str]) -> dt.datetime:
    """When ``host``'s first phase named one of ``names`` started in ``run``, else the run's start."""
    starts = [p.started_at for p in run.phases if p.host == host and p.name in names]
    return utc(min(starts, key=utc) if starts else run.started_at)


def is_verify(run: RunRecord, record: HostRecord) -> bool:
    return record.status != "skipped" and (run.command == "verify" or bool(record.checks))


def mark_of(record: HostRecord) -> Mark:
    """A verify's severity (see the module docstring)."""
    if record.status == "unreachable":
        return "unreachable"
    if record.status == "failed" or any(c.severity == "fail" for c in record.checks):
        return "fail"
    if record.status == "warn" or any(c.severity == "warn" for c in record.checks):
        return "warn"
    return "ok"


def summary_of(record: HostRecord, mark: Mark) -> str:
    """One line: ``fail: 2 of 14 checks failing (vm.swappiness, zram size)`` and the like."""
    bad = [c.item for c in record.checks if c.severity == mark] if mark in ("fail", "warn") else []
    word = {"fail": "failing", "warn": "warning"}.get(mark, "")
    text = f"{mark}: "
    if bad:
        shown = ", ".join(bad[:3]) + (", …" if len(bad) > 3 else "")
        text += f"{len(bad)} of {len(record.checks)} checks {word} ({shown})"
    elif record.checks:
        text += f"{len(record.checks)} checks pass" if mark == "ok" else f"{len(record.checks)} checks"
    else:
        text += "no checks recorded"
    return text + (f"; {record.error}" if record.error else "")


def records(runs: Iterable[RunRecord], host: str) -> list[tuple[RunRecord, HostRecord]]:
    """``host``'s records, oldest run first (by start time; the store's order for equal times)."""
    found = [(run, r) for run in runs for r in run.hosts if r.host == host]
    return sorted(found, key=lambda pair: utc(pair[0].started_at))


def _newest(pairs: list[tuple[RunRecord, HostRecord]], keep, names: Collection[str] = ()) -> Seen | None:
    for run, record in reversed(pairs):
        if keep(run, record):
            return Seen(run, record, phase_start(run, record.host, names))
    return None


def _facts_note(pairs: list[tuple[RunRecord, HostRecord]]) -> str | None:
    """A note when the newest facts digest differs from the one before it (hardware or OS changed)."""
    seen = [(run, r) for run, r in pairs if r.facts_digest]
    if len(seen) < 2 or seen[-1][1].facts_digest == seen[-2][1].facts_digest:
        return None
    (before, _), (after, _) = seen[-2], seen[-1]
    return (
        f"facts changed (hardware or OS) between run #{before.id} ({when(before.started_at)}) "
        f"and run #{after.id} ({when(after.started_at)})"
    )


def when(t: dt.datetime) -> str:
    """``2026-05-04 13:07 UTC``."""
    return utc(t).strftime("%Y-%m-%d %H:%M UTC")


def host_view(
    name: str, runs: Sequence[RunRecord], *, groups: tuple[str, ...] = (), in_inventory: bool = True
) -> HostView:
    """``name``'s ``HostView`` from ``runs`` (any order)."""
    pairs = records(runs, name)
    view = HostView(name=name, in_inventory=in_inventory, groups=groups)
    view.hardware = _newest(pairs, lambda run, r: r.hardware is not None)
    view.plan = _newest(pairs, lambda run, r: r.plan is not None, ("plan",))
    deployed = [(run, r) for run, r in pairs if run.command in DEPLOYS and r.status != "skipped"]
    view.deploy = _newest(deployed, lambda run, r: True, ("deploy",))
    if view.deploy is not None and view.deploy.run.dry:
        view.real_deploy = _newest(deployed, lambda run, r: not run.dry, ("deploy",))
    view.verify = _newest(pairs, is_verify, ("verify",))
    view.latest = _newest(pairs, lambda run, r: r.status != "skipped")
    for run, r in pairs:
        if is_verify(run, r):
            mark = mark_of(r)
            view.drift.append(
                DriftMark(phase_start(run, name, ("verify",)), mark, run.id, run.command, summary_of(r, mark))
            )
    view.drift.sort(key=lambda m: m.at)
    if not in_inventory:
        view.notes.append("not in the inventory: known from run records only")
    if note := _facts_note(pairs):
        view.notes.append(note)
    last = view.real_deploy or view.deploy
    if last is not None and not last.run.dry and (view.verify is None or view.verify.at < last.at):
        view.notes.append(f"not verified since its last deploy ({when(last.at)})")
    return view


def hosts_in(runs: Iterable[RunRecord]) -> set[str]:
    """Every host named by a record or a phase of ``runs``."""
    return {r.host for run in runs for r in run.hosts} | {p.host for run in runs for p in run.phases if p.host}


def fleet_view(
    entries: Sequence[Entry], runs: Sequence[RunRecord], *, only: Collection[str] | None = None
) -> list[HostView]:
    """One ``HostView`` per inventory host (in order), then per host only the records know.

    ``only``: when given, hosts known from records only are kept just when named in it (the
    inventory hosts were limited already).
    """
    listed = {e.name for e in entries}
    extra = sorted((h for h in hosts_in(runs) - listed if only is None or h in only), key=natural)
    views = [host_view(e.name, runs, groups=e.groups) for e in entries]
    return views + [host_view(h, runs, in_inventory=False) for h in extra]


def touching(runs: Sequence[RunRecord], hosts: Collection[str]) -> list[RunRecord]:
    """The runs that name at least one of ``hosts`` (in a record or a phase)."""
    wanted = set(hosts)
    return [run for run in runs if hosts_in([run]) & wanted]


#: the narrowest drift axis
MIN_DRIFT_SPAN = dt.timedelta(minutes=5)


def drift_span(views: Sequence[HostView], runs: Sequence[RunRecord]) -> tuple[dt.datetime, dt.datetime] | None:
    """The common time axis of the drift charts: the first verify to the last recorded time,
    4 % wider on each side so no mark sits on an edge, at least ``MIN_DRIFT_SPAN`` wide (a
    history of minutes is drawn in minutes, an hourly drift monitor's in hours or days), or
    ``None`` when no host was ever verified."""
    marks = [m.at for v in views for m in v.drift]
    if not marks:
        return None
    ends = [utc(t) for run in runs for t in (run.started_at, run.ended_at) if t is not None]
    start, end = min(marks), max([*marks, *ends])
    pad = max((end - start) * 0.04, dt.timedelta(seconds=5))
    start, end = start - pad, end + pad
    if end - start < MIN_DRIFT_SPAN:
        end = start + MIN_DRIFT_SPAN
    return start, end
