"""Which disks of a host are measured, through which mounted filesystem, with which candidates;
and which are refused, with the reason (no mounted filesystem, read-only, too full, pinned).
Pure: facts, mounts and the rule-based plan in, ``host.Plan`` and ``Skipped`` rows out."""

from __future__ import annotations

from fleetforge.components.base import DATA
from fleetforge.measure.host import Mount, Plan
from fleetforge.measure.results import Skipped
from fleetforge.models import HostFacts, TuningPlan

#: fleetforge refuses a test file that would take the filesystem past this share of its size
MAX_FULL = 0.85
#: read_ahead_kb candidates besides the planned value: the kernel's default (VM_READAHEAD_PAGES,
#: include/linux/mm.h) and a middle value
READ_AHEAD_CANDIDATES_KB = (128, 1024, 4096)
KNOBS = ("scheduler", "read_ahead_kb", "swappiness")  # swappiness: host-wide, fleetforge.measure.swap


def _mount_for(disk: str, mounts: list[Mount], parents: dict[str, str]) -> Mount | None:
    """The writable mount of a filesystem on ``disk``: ``/`` first, else the shortest path;
    a read-only one only when there is no other (it is then refused)."""
    on_disk = [m for m in mounts if parents.get(m.device) == disk]
    on_disk.sort(key=lambda m: (m.read_only, m.target != "/", len(m.target), m.target))
    return on_disk[0] if on_disk else None


def choose(
    facts: HostFacts,
    plan: TuningPlan,
    mounts: list[Mount],
    parents: dict[str, str],
    file_mib: int,
    knobs: tuple[str, ...] = KNOBS,
) -> tuple[list[Plan], list[Skipped]]:
    """The disks to measure and the ones refused.

    ``parents``: ``{device: disk}`` (``vda1 -> vda``). A knob set in host data is pinned: not
    measured (the value wins against any measurement). Returns ``(plans, skipped)``.
    """
    plans: list[Plan] = []
    skipped: list[Skipped] = []
    disk_plans = {d.name: d for d in plan.disks}
    for disk in facts.disks:
        mount = _mount_for(disk.name, mounts, parents)
        if mount is None:
            reason = "no mounted filesystem (fleetforge never measures a raw device)"
            skipped.append(Skipped(disk=disk.name, reason=reason))
            continue
        if mount.read_only:
            skipped.append(Skipped(disk=disk.name, reason=f"{mount.target} is mounted read-only"))
            continue
        used_after = (mount.size_bytes - mount.avail_bytes + file_mib * 2**20) / max(mount.size_bytes, 1)
        if used_after > MAX_FULL:
            skipped.append(
                Skipped(
                    disk=disk.name,
                    reason=f"refused: a {file_mib} MiB test file would take {mount.target} to {used_after:.0%} full "
                    f"(limit {MAX_FULL:.0%}; {mount.avail_bytes // 2**20} MiB free of {mount.size_bytes // 2**20} MiB)",
                )
            )
            continue
        planned = disk_plans[disk.name]
        item = Plan(disk.name, mount, None, [], None, None, [], None)
        if "scheduler" in knobs:
            if planned.scheduler.source == DATA:
                item.notes.append(f"scheduler pinned in host data ({planned.scheduler.value})")
            elif len(disk.schedulers_available) > 1 and disk.scheduler not in disk.schedulers_available:
                # no value known to restore the scheduler to: it is not changed at all
                item.notes.append(f"scheduler: the current one is not known ({' '.join(disk.schedulers_available)})")
            elif len(disk.schedulers_available) > 1 and planned.scheduler.value in disk.schedulers_available:
                item.scheduler_path = f"/sys/block/{disk.name}/queue/scheduler"
                item.schedulers = list(disk.schedulers_available)
                item.scheduler_baseline = planned.scheduler.value
        if "read_ahead_kb" in knobs:
            _read_ahead(item, facts, plan, mount)
        if item.scheduler_path or item.read_ahead_path or ("swappiness" in knobs and mount.target == "/"):
            plans.append(item)  # the root filesystem's test file is also the file read of the swap measurement
        else:
            skipped.append(Skipped(disk=disk.name, reason="; ".join(item.notes) or "nothing to measure"))
    return plans, skipped


def _read_ahead(item: Plan, facts: HostFacts, plan: TuningPlan, mount: Mount) -> None:
    """On btrfs the filesystem's own bdi governs file reads; elsewhere the disk's queue."""
    if mount.fstype == "btrfs":
        fs = next((b for b in facts.btrfs if mount.device in b.devices or item.disk in b.devices), None)
        planned = next((p.read_ahead_kb for p in plan.btrfs_read_ahead if fs and p.fsid == fs.fsid), None)
        if fs is None or planned is None:
            item.notes.append("read_ahead_kb: the btrfs filesystem's bdi was not found")
            return
        path = f"/sys/fs/btrfs/{fs.fsid}/bdi/read_ahead_kb"
    else:
        planned = next(d.read_ahead_kb for d in plan.disks if d.name == item.disk)
        path = f"/sys/block/{item.disk}/queue/read_ahead_kb"
    if planned.source == DATA:
        item.notes.append(f"read_ahead_kb pinned in host data ({planned.value})")
        return
    item.read_ahead_path = path
    item.read_aheads = sorted({*READ_AHEAD_CANDIDATES_KB, planned.value})
    item.read_ahead_baseline = planned.value
