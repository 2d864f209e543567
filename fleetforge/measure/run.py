"""One host's measurement: recover from an interrupted run, find the disks, write the restore
state, install fio if needed, run the interleaved fio jobs, decide, and restore everything.

``measure_host(conn, name, facts, plan, settings, options)`` drives a ``Conn`` (anything with
``run(command) -> result`` having ``rc``, ``stdout``, ``stderr``: a testinfra host). Every
command is quoted (``shlex``); every answer is parsed by ``fleetforge.measure.host``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import shlex
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fleetforge.errors import FleetforgeError
from fleetforge.measure import host as remote
from fleetforge.measure import targets
from fleetforge.measure.decide import Samples, decide
from fleetforge.measure.results import (
    ComparisonRecord,
    DecisionRecord,
    DiskMeasurement,
    HostMeasurement,
    Sample,
    Series,
    SwapMeasurement,
)
from fleetforge.measure.swap import HOT_ADD, measure_swap
from fleetforge.models import HostFacts, TuningPlan
from fleetforge.settings import HostSettings

#: share of the time budget given to fio's measuring itself (the rest: fio's start, switching
#: the knob, SSH round trips; about 0.4 s a job on the TCG test VMs)
BUDGET_SHARE = 0.6
MIN_RUNTIME_S, MAX_RUNTIME_S = 0.3, 10.0
#: a read-ahead job reads at least this many of the largest window (the ramp-up of the window
#: from its first size, mm/readahead.c get_init_ra_size, is then a small part of the read)
READ_AHEAD_MIN_WINDOWS = 4
SCHEDULER_WORKLOADS = ("randread", "randwrite", "seqread")
UNITS = {"randread": "IOPS", "randwrite": "IOPS", "seqread": "MiB/s", "seqread-buffered": "MiB/s"}
#: control characters (C0, DEL, C1) and the bidi/zero-width formatting characters: a host's text
#: printed with them could move the cursor, rewrite the terminal's title or reorder what is shown
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


class Conn(Protocol):
    def run(self, command: str, *args: Any) -> Any: ...


class MeasureError(FleetforgeError):
    """A measurement that could not run on a host (names the host and the step)."""


@dataclass(frozen=True)
class Options:
    """``repeats`` per candidate (at least 4: the permutation test cannot reach p < 0.05 with
    3), ``budget_s`` for the fio jobs of the host, ``file_mib`` test file size, ``knobs``,
    ``disks`` (kernel names; empty: every disk)."""

    repeats: int = 5
    budget_s: float = 120.0
    file_mib: int = 256
    knobs: tuple[str, ...] = targets.KNOBS
    disks: tuple[str, ...] = ()
    command_timeout_s: float = 600.0


class TimedConn:
    """A testinfra host whose commands each get ``timeout_s`` seconds: a host that stops
    answering (a hung disk) fails its measurement with exit 124 and "no answer in N s" instead
    of holding the controller forever."""

    def __init__(self, host: Any, timeout_s: float):
        self.host, self.timeout_s = host, timeout_s

    def run(self, command: str) -> Any:
        import subprocess

        try:
            return self.host.backend.run(command, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            return self.host.backend.result(124, command.encode(), b"", f"no answer in {self.timeout_s:g} s".encode())


def printable(text: str) -> str:
    """``text`` with every control or bidi formatting character shown as an escape (``\\x1b``)."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


def _run(conn: Conn, name: str, step: str, command: str) -> str:
    result = conn.run(command)
    if result.rc != 0:
        raise MeasureError(f"host {name}: {step}: exit {result.rc}: {printable(result.stderr.strip()[-300:])}")
    return result.stdout


def recover(conn: Conn, name: str) -> list[str]:
    """Undo what an interrupted run left (restore state on the host); the lines say what."""
    read = shlex.join(["cat", "--", remote.STATE_FILE]) + " 2>/dev/null; true"
    text = _run(conn, name, "read the restore state", read)
    try:
        state = remote.parse_state(text)
    except remote.HostOutputError as e:
        raise MeasureError(f"host {name}: {e}; fleetforge did not write this, so it acts on none of it") from e
    if state is None:
        return []
    restore(conn, name, state)
    done = [f"{path} = {value}" for path, value in state.values.items()]
    done += [f"deleted {path}" for path in state.files]
    done += [f"removed test zram device zram{n}" for n in state.zram_devices]
    done += [f"removed package {p}" for p in state.packages]
    return [f"{line} (left by an interrupted run)" for line in done]


def restore(conn: Conn, name: str, state: remote.RestoreState) -> None:
    """Run every restore command, then delete the state file only if all of them worked; else
    write ``state`` again (it may name more than the host's copy: a test file or zram device
    whose own state write failed) and keep it for the next run."""
    failed = [c for c in remote.restore_commands(state) if conn.run(c).rc != 0]
    if failed:
        conn.run(remote.write_state_command(state))
        raise MeasureError(f"host {name}: restore failed for {failed}; {remote.STATE_FILE} is kept for the next run")
    _run(conn, name, "delete the restore state", shlex.join(["rm", "-f", "--", remote.STATE_FILE]))


def _ensure_fio(conn: Conn, name: str, facts: HostFacts, state: remote.RestoreState) -> bool:
    """Install fio from the distribution when missing (recorded in ``state`` first, so an
    interrupted run removes it too). Returns whether fleetforge installed it."""
    if conn.run("command -v fio >/dev/null").rc == 0:
        return False
    family = {facts.os.id, *facts.os.id_like}
    if family & {"debian", "ubuntu"}:
        state.manager = "apt"
        install = "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends fio"
    elif family & {"fedora", "rhel", "centos"}:
        state.manager, install = "dnf", "dnf install -y -q fio"
    else:
        raise MeasureError(
            f"host {name}: fio is not installed and fleetforge installs it only with apt or dnf "
            f"(os {facts.os.id}); install fio (NixOS: pkgs.fio in environment.systemPackages)"
        )
    state.packages = ["fio"]
    _run(conn, name, "write the restore state", remote.write_state_command(state))
    _run(conn, name, "install fio", install)
    return True


def _runtime_s(plans: list[remote.Plan], options: Options) -> float:
    jobs = sum(options.repeats * (len(p.schedulers) * len(SCHEDULER_WORKLOADS) + len(p.read_aheads)) for p in plans)
    jobs += 2 * options.repeats if "swappiness" in options.knobs else 0  # zram and file reads
    runtime = options.budget_s * BUDGET_SHARE / max(jobs, 1)
    return round(min(MAX_RUNTIME_S, max(MIN_RUNTIME_S, runtime)), 2)


_set = remote.write_value


def _series(
    conn: Conn, name: str, path: str, candidates: list[str], baseline: str, jobs: list[remote.Job], options: Options
) -> dict[str, list[Sample]]:
    """Every candidate of one knob under each job, ``repeats`` rounds, candidate order rotated
    each round so that drift on a shared host hits every candidate alike."""
    samples: dict[str, list[Sample]] = {job.workload: [] for job in jobs}
    for rnd in range(options.repeats):
        order = candidates[rnd % len(candidates) :] + candidates[: rnd % len(candidates)]
        for candidate in order:
            for job in jobs:
                out = _run(conn, name, f"fio {job.workload}", f"{_set(path, candidate)} && {shlex.join(job.argv())}")
                result = remote.parse_fio(out, job.workload)
                value = result.iops if UNITS[job.workload] == "IOPS" else result.mib_s
                if value <= 0:  # no I/O completed: nothing measured (and a gain over 0 is infinite)
                    raise remote.HostOutputError(f"fio {job.workload}: no I/O completed ({candidate} {value:g})")
                if job.offset_mib and result.io_mib < job.size_mib:  # stopped by time: read-ahead left unread
                    raise MeasureError(
                        f"host {name}: fio {job.workload} at {candidate}: read {result.io_mib:.1f} of "
                        f"{job.size_mib} MiB in {job.runtime_s:g} s; the disk is too slow for this budget"
                    )
                p99 = result.p99_ms if job.workload != "seqread-buffered" else None
                samples[job.workload].append(Sample(candidate=candidate, round=rnd, value=value, p99_ms=p99))
    return samples


def _decided(
    knob: str, workload: str, decides: bool, baseline: str, candidates: list[str], samples: list[Sample]
) -> Series:
    def of(c: str) -> Samples:
        mine = [s for s in samples if s.candidate == c]
        return Samples(c, [s.value for s in mine], [s.p99_ms for s in mine if s.p99_ms is not None])

    decision = decide(of(baseline), [of(c) for c in candidates if c != baseline], unit=UNITS[workload])
    for c in decision.comparisons:  # a stored result must read back: JSON has no inf or NaN
        if not all(math.isfinite(x) for x in (c.gain, c.p_value, 0.0 if c.p99_change is None else c.p99_change)):
            raise remote.HostOutputError(f"fio {workload}: {c.candidate} against {baseline}: no finite comparison")
    record = DecisionRecord(
        chosen=decision.chosen,
        changed=decision.changed,
        reason=decision.reason,
        comparisons=[ComparisonRecord(**c.__dict__) for c in decision.comparisons],
    )
    return Series(
        knob=knob, workload=workload, unit=UNITS[workload], decides=decides, baseline=baseline,  # type: ignore[arg-type]
        candidates=candidates, samples=samples, decision=record,
    )  # fmt: skip


def _read_ahead_job(
    conn: Conn, name: str, item: remote.Plan, path: str, runtime_s: float, options: Options
) -> remote.Job:
    """The read-ahead job: one cold buffered read of the test file's last S MiB, to its end.

    Read-ahead runs ahead of the reader, so a job stopped by time leaves up to two windows read
    and never consumed: a time-bound job undercounts a 4 MiB window by 2 x 4 MiB / the MiB read
    (measured on an 8 MiB/s QEMU-throttled disk in 0.45 s jobs: 4 MiB/s at 4096 against 9 MiB/s
    at 128, where every window reaches the same cap). mm/readahead.c never reads past the end of
    the file, so a read that ends there wastes nothing. S is what the planned value reads in
    ``runtime_s`` (one calibration read, discarded), at least ``READ_AHEAD_MIN_WINDOWS`` of the
    largest window, at most the file.
    """
    assert item.read_ahead_path is not None and item.read_ahead_baseline is not None
    probe = remote.Job("seqread-buffered", path, options.file_mib, runtime_s)
    command = f"{_set(item.read_ahead_path, str(item.read_ahead_baseline))} && {shlex.join(probe.argv())}"
    rate = remote.parse_fio(_run(conn, name, "fio read-ahead calibration", command), probe.workload)
    floor_mib = math.ceil(READ_AHEAD_MIN_WINDOWS * max(item.read_aheads) / 1024)
    size = min(options.file_mib, max(floor_mib, math.ceil(rate.mib_s * runtime_s), 1))
    cap_s = max(runtime_s, options.command_timeout_s * 0.8)
    return remote.Job("seqread-buffered", path, size, cap_s, offset_mib=options.file_mib - size)


def _measure_disk(
    conn: Conn, name: str, item: remote.Plan, path: str, workload: str, runtime_s: float, options: Options
) -> DiskMeasurement:
    series: list[Series] = []
    if item.scheduler_path and item.scheduler_baseline:
        jobs = [remote.Job(w, path, options.file_mib, runtime_s) for w in SCHEDULER_WORKLOADS]
        found = _series(conn, name, item.scheduler_path, item.schedulers, item.scheduler_baseline, jobs, options)
        for w in SCHEDULER_WORKLOADS:
            series.append(_decided("scheduler", w, w == workload, item.scheduler_baseline, item.schedulers, found[w]))
    if item.read_ahead_path and item.read_ahead_baseline is not None:
        if item.scheduler_path and item.scheduler_baseline:  # read-ahead is measured under the planned scheduler
            _run(conn, name, "set the scheduler", _set(item.scheduler_path, item.scheduler_baseline))
        values, baseline = [str(v) for v in item.read_aheads], str(item.read_ahead_baseline)
        jobs = [_read_ahead_job(conn, name, item, path, runtime_s, options)]
        found = _series(conn, name, item.read_ahead_path, values, baseline, jobs, options)
        series.append(_decided("read_ahead_kb", "seqread-buffered", True, baseline, values, found["seqread-buffered"]))
    read_ahead_path = item.read_ahead_path or f"/sys/block/{item.disk}/queue/read_ahead_kb"
    return DiskMeasurement(
        disk=item.disk,
        mount=item.mount.target,
        fstype=item.mount.fstype,
        read_ahead_path=read_ahead_path,
        series=series,
    )


def measure_host(
    conn: Conn,
    name: str,
    probe: Callable[[], HostFacts],
    plan_of: Callable[[HostFacts], TuningPlan],
    settings: HostSettings,
    options: Options,
    log: Callable[[str], None] = lambda line: None,
) -> HostMeasurement:
    """Measure one host (see the module docstring). ``probe`` reads its facts (after any
    recovery, so the recorded originals are real); ``plan_of`` is the rule-based plan.

    Raises ``MeasureError`` naming the host and step; whatever happens after the restore state
    was written, the host gets its values back (or keeps the state for the next run).
    """
    restored = recover(conn, name)
    for line in restored:
        log(f"{name}: restored {line}")
    facts = probe()
    plan = plan_of(facts)
    mounts = remote.parse_mounts(_run(conn, name, "findmnt", remote.FINDMNT))
    parents = remote.parse_parent_disks(
        _run(conn, name, "disks", remote.parent_disks_command(sorted({m.device for m in mounts})))
    )
    plans, skipped = targets.choose(facts, plan, mounts, parents, options.file_mib, options.knobs)
    if options.disks:
        plans = [p for p in plans if p.disk in options.disks]
        skipped = [s for s in skipped if s.disk in options.disks]
    for s in skipped:
        log(f"{name}: {s.disk}: {s.reason}")
    base = {
        "host": name, "measured_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "kernel": facts.kernel_release, "repeats": options.repeats, "file_mib": options.file_mib,
        "skipped": skipped, "restored": restored,
    }  # fmt: skip
    if not plans:
        return HostMeasurement(**base, fio_version="", fio_installed_by_fleetforge=False, runtime_s=0)
    state = remote.RestoreState(values=_originals(name, facts, plans))
    _run(conn, name, "write the restore state", remote.write_state_command(state))
    try:
        installed = _ensure_fio(conn, name, facts, state)
        version = remote.fio_version(_run(conn, name, "fio --version", "fio --version"))
        runtime_s = _runtime_s(plans, options)
        disks, paths = [], {}
        for item in plans:
            start = time.monotonic()
            paths[item.disk] = _test_file(conn, name, item, state, options)
            disks.append(
                _measure_disk(conn, name, item, paths[item.disk], settings.measure_workload, runtime_s, options)
            )
            log(f"{name}: {item.disk} measured through {item.mount.target} in {time.monotonic() - start:.0f} s")
        swap = _swap(conn, name, facts, plan, plans, paths, state, runtime_s, options, log)
    finally:
        restore(conn, name, state)
    return HostMeasurement(
        **base, fio_version=version, fio_installed_by_fleetforge=installed, runtime_s=runtime_s, disks=disks, swap=swap
    )


def _swap(
    conn: Conn,
    name: str,
    facts: HostFacts,
    plan: TuningPlan,
    plans: list[remote.Plan],
    paths: dict[str, str],
    state: remote.RestoreState,
    runtime_s: float,
    options: Options,
    log: Callable[[str], None],
) -> SwapMeasurement | None:
    """r for vm.swappiness where the plan has zram swap (``fleetforge.measure.swap``)."""
    if "swappiness" not in options.knobs or not plan.zram.enabled.value:
        return None
    if conn.run(shlex.join(["test", "-w", HOT_ADD])).rc != 0:
        log(f"{name}: swappiness not measured: the zram module is not loaded (deploy the zram plan first)")
        return None
    item = next((p for p in plans if p.mount.target == "/"), plans[0])
    found = measure_swap(
        lambda step, command: _run(conn, name, step, command),
        state,
        lambda: _run(conn, name, "write the restore state", remote.write_state_command(state)),
        plan.zram.algorithm.value,
        item.disk,
        paths[item.disk],
        options.repeats,
        runtime_s,
        existing={int(z.name.removeprefix("zram")) for z in facts.zram if z.name.removeprefix("zram").isdigit()},
    )
    log(
        f"{name}: swap: r = {found.r:g} (zram {statistics.median(found.zram_read_us):.0f} us, file "
        f"{statistics.median(found.file_read_us):.0f} us): swappiness {found.swappiness}"
    )
    return found


def _originals(name: str, facts: HostFacts, plans: list[remote.Plan]) -> dict[str, str]:
    """The value to restore of every knob the plans change; raises ``MeasureError`` (before
    anything changed) for a knob without one: it would be changed and never put back."""
    disks = {d.name: d for d in facts.disks}
    values: dict[str, str | None] = {}
    for p in plans:
        disk = disks[p.disk]
        if p.scheduler_path:
            values[p.scheduler_path] = disk.scheduler
        if p.read_ahead_path and p.read_ahead_path.startswith("/sys/block/"):
            values[p.read_ahead_path] = str(disk.read_ahead_kb)
        elif p.read_ahead_path:
            fsid = p.read_ahead_path.split("/")[4]
            values[p.read_ahead_path] = next((str(b.read_ahead_kb) for b in facts.btrfs if b.fsid == fsid), None)
    if missing := sorted(path for path, value in values.items() if value is None):
        raise MeasureError(f"host {name}: no value to restore {', '.join(missing)} to; nothing was changed")
    return {path: value for path, value in values.items() if value is not None}


def _test_file(conn: Conn, name: str, item: remote.Plan, state: remote.RestoreState, options: Options) -> str:
    """Create the test file with ``mktemp`` (never a predictable name) in a directory only root
    can write (``remote.mktemp_command``), record it, fill it."""
    template = f"{remote.TEST_FILE_PREFIX}XXXXXXXXXX"
    out = _run(conn, name, "create the test file", remote.mktemp_command(item.mount.target, template))
    path = out.strip()
    parent = item.mount.target.rstrip("/")
    if not remote.TEST_FILE.fullmatch(path) or path.rsplit("/", 1)[0] != parent:
        raise MeasureError(f"host {name}: mktemp: expected a new file in {item.mount.target}, got {path[:80]!r}")
    state.files.append(path)
    _run(conn, name, "write the restore state", remote.write_state_command(state))
    _run(conn, name, "lay out the test file", shlex.join(remote.layout_argv(path, options.file_mib)))
    return path
