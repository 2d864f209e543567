"""Measured decisions into a rule-based plan: ``apply_measured(plan, measured, facts)``.

Order of precedence for a disk's scheduler and read_ahead_kb (the disk's queue, or a btrfs
filesystem's bdi): host data (pinned, never measured) > a measured win > the rule. A
measurement that found no winner keeps the rule's value and adds its finding to the reason.
A measurement that no longer fits the host (the disk is gone, the chosen scheduler is not
offered any more, the btrfs filesystem was recreated) is ignored and the reason says so.
"""

from __future__ import annotations

import statistics

from fleetforge.components.base import DATA
from fleetforge.components.sysctl import R_DEFAULT, SWAPPINESS_SOURCE, plan_swap_sysctls
from fleetforge.measure.results import DiskMeasurement, HostMeasurement, Series
from fleetforge.models import DiskPlan, HostFacts, Planned, TuningPlan


def measured_source(measured: HostMeasurement, series: Series) -> str:
    """``measured on vm-blk-1 2026-12-06: none 61,000 IOPS p99 0.90 ms vs mq-deadline ... (n = 5)``."""
    reason = series.decision.reason.removeprefix("measured: ")
    return f"measured on {measured.host} {measured.date} ({series.workload}, fio): {reason}"


def _apply(planned: Planned, measured: HostMeasurement, series: Series | None, offered: list[str]) -> Planned:
    if series is None or planned.source == DATA:
        return planned
    decision = series.decision
    if str(planned.value) != series.baseline:
        note = f"measurement of {measured.date} ignored: it compared against {series.baseline}"
        note += f", the rule now plans {planned.value}"
        return planned.model_copy(update={"reason": f"{planned.reason}; {note}"})
    if decision.changed and decision.chosen in offered:
        value = type(planned.value)(decision.chosen)
        return Planned(
            value=value,
            reason=f"measured winner on this host ({series.workload})",
            source=measured_source(measured, series),
        )
    if decision.changed:
        note = f"measured winner {decision.chosen} is not offered any more; measurement ignored"
        return planned.model_copy(update={"reason": f"{planned.reason}; {note}"})
    return planned.model_copy(update={"reason": f"{planned.reason}; {decision.reason} ({measured.date})"})


def _disk(plan: DiskPlan, m: DiskMeasurement | None, measured: HostMeasurement, facts: HostFacts) -> DiskPlan:
    if m is None:
        return plan
    disk = next(d for d in facts.disks if d.name == plan.name)
    update = {"scheduler": _apply(plan.scheduler, measured, m.deciding("scheduler"), list(disk.schedulers_available))}
    if m.read_ahead_path.startswith("/sys/block/"):
        ra = m.deciding("read_ahead_kb")
        offered = ra.candidates if ra else []
        update["read_ahead_kb"] = _apply(plan.read_ahead_kb, measured, ra, offered)
    return plan.model_copy(update=update)


def apply_measured(plan: TuningPlan, measured: HostMeasurement | None, facts: HostFacts) -> TuningPlan:
    """``plan`` with the measured decisions of ``measured`` (``None``: unchanged)."""
    if measured is None:
        return plan
    by_disk = {m.disk: m for m in measured.disks}
    disks = [_disk(d, by_disk.get(d.name), measured, facts) for d in plan.disks]
    btrfs = []
    for fs in plan.btrfs_read_ahead:
        path = f"/sys/fs/btrfs/{fs.fsid}/bdi/read_ahead_kb"
        m = next((m for m in measured.disks if m.read_ahead_path == path), None)
        series = m.deciding("read_ahead_kb") if m else None
        offered = series.candidates if series else []
        btrfs.append(fs.model_copy(update={"read_ahead_kb": _apply(fs.read_ahead_kb, measured, series, offered)}))
    return plan.model_copy(
        update={"disks": disks, "btrfs_read_ahead": btrfs, "sysctls": _sysctls(plan, measured, facts)}
    )


def _sysctls(plan: TuningPlan, measured: HostMeasurement, facts: HostFacts) -> list:
    """vm.swappiness from the measured r, where the plan has it from fleetforge's default r
    (not from host data: ``swappiness`` or ``swap_io_cost_ratio`` pin it)."""
    swap = measured.swap
    if swap is None or swap.r <= 0:
        return plan.sysctls
    rows = []
    for row in plan.sysctls:
        if row.key == "vm.swappiness" and row.value.source.startswith(R_DEFAULT):
            value = plan_swap_sysctls(facts, True, swap.r)["vm.swappiness"][0]
            zram, disk = statistics.median(swap.zram_read_us), statistics.median(swap.file_read_us)
            reason = f"swap is zram only: swappiness = 200*r/(1+r) with measured r = {swap.r:g} = {value}"
            source = (
                f"measured on {measured.host} {measured.date} (fio, 4 KiB reads one at a time): {swap.algorithm} "
                f"zram {zram:.0f} us vs {swap.file_disk} file {disk:.0f} us, r = {swap.r:g} "
                f"(n = {len(swap.file_read_us)}); {SWAPPINESS_SOURCE}"
            )
            row = row.model_copy(update={"value": Planned(value=value, reason=reason, source=source)})
        rows.append(row)
    return rows
