"""I/O scheduler and read-ahead of each disk.

Host data: ``io_scheduler``, ``read_ahead_kb`` (every disk), ``disks = {"vda": {"scheduler":
..., "read_ahead_kb": ...}}`` (one disk). Linux: ``/etc/udev/rules.d/60-fleetforge-io.rules``
(``udev-io.rules.j2``, applied with ``udevadm trigger``); NixOS: ``services.udev.extraRules``.
Live: ``/sys/block/<disk>/queue/{scheduler,read_ahead_kb}``; restored by writing the recorded
values back.

The rules (reasons and sources travel with each value into ``fleetforge plan``):

- scheduler: the kernel's own choice by hardware queues (``none`` for multi-queue virtual disks
  and NVMe, ``mq-deadline`` for single-queue virtual disks, SSDs and HDDs; ``_virtual_rule``);
  a scheduler the kernel does not offer falls back to what it has (planned) or is refused (host
  data).
- read_ahead_kb: 4096 KiB on virtual disks (fleetforge default: large sequential reads through
  the virtual disk), the kernel's 128 KiB elsewhere. On btrfs, file reads use the filesystem's own
  bdi instead: ``fleetforge.components.btrfs_read_ahead``.

Why the udev rules match ``KERNEL=="<name>"`` rather than ``ENV{ID_SERIAL}``/``ID_PATH``: see
``fleetforge.render``.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pyinfra.api import StringCommand

from fleetforge.checks import Check
from fleetforge.components.base import DATA, Component, Row, bracketed, raw
from fleetforge.errors import PlanError
from fleetforge.facts.sections import WORD, is_kernel_name
from fleetforge.models import Disk, DiskPlan, HostFacts, Planned, TuningPlan
from fleetforge.paths import UDEV_RULES
from fleetforge.render import render

if TYPE_CHECKING:
    from fleetforge.settings import HostSettings

KERNEL_READ_AHEAD_KB = 128  # VM_READAHEAD_PAGES * 4 KiB (include/linux/mm.h)
VIRTUAL_READ_AHEAD_KB = 4096  # fleetforge default for virtual disks (reason in plan_disk)

UDEV_APPLY = (
    StringCommand("udevadm", "control", "--reload"),
    StringCommand("udevadm", "trigger", "--subsystem-match=block", "--action=change"),
    StringCommand("udevadm", "settle"),
)


def disk_class(disk: Disk, virtualization: str) -> str:
    """``virtual``, ``nvme``, ``ssd`` or ``hdd``.

    Not from ``rotational`` alone: virtio-blk reports rotational=1 inside QEMU guests
    (seen on the test VMs), so any disk of a guest on a virtio transport is ``virtual``.
    """
    if disk.transport == "nvme":
        return "nvme"
    if disk.transport in ("virtio-blk", "virtio-scsi") or virtualization not in ("none", ""):
        return "virtual"
    return "hdd" if disk.rotational else "ssd"


ELEVATOR = "block/elevator.c (elevator_get_default: mq-deadline for 1 hardware queue, none for more)"
RHEL = (
    "RHEL 9 Monitoring and managing system status and performance, Setting the disk scheduler "
    "(virtual guest: mq-deadline; multi-queue HBA driver: none)"
)
_SCHEDULER_RULES = {
    "nvme": (
        "none",
        "NVMe is multi-queue; the kernel's own default for it is none",
        f"{ELEVATOR}; {RHEL}",
    ),
    "ssd": (
        "mq-deadline",
        "single-queue SSD: kernel default, bounded latency",
        ELEVATOR,
    ),
    "hdd": (
        "mq-deadline",
        "rotational disk: deadline ordering limits seeks and starvation",
        f"{ELEVATOR}; Documentation/block/deadline-iosched.rst",
    ),
}


def _virtual_rule(disk: Disk) -> tuple[str, str, str]:
    """A virtual disk by its hardware queues (``/sys/block/<disk>/mq``): the kernel's own choice.

    Multi-queue (virtio-blk/virtio-scsi with ``num-queues`` > 1, QEMU's default of one per
    vCPU): none, as the kernel picks it. Single-queue: mq-deadline, as the kernel picks it; the
    2023 linux-block patch "virtio_blk: set the default scheduler to none" was dropped pending
    data, so fleetforge has no source for overriding the kernel there (measure the host and set
    ``io_scheduler`` in host data to change it).
    """
    queues = disk.nr_hw_queues
    if queues is not None and queues > 1:
        return (
            "none",
            f"virtual disk with {queues} hardware queues: the kernel's own default for a multi-queue "
            "device; the queues spread I/O over the vCPUs and the host orders it",
            f"{ELEVATOR}; {RHEL}",
        )
    count = "1 hardware queue" if queues == 1 else "an unknown number of hardware queues (taken as 1)"
    return (
        "mq-deadline",
        f"virtual disk with {count}: the kernel's own default; the 2023 patch making none the virtio_blk "
        "default was dropped pending data (measure per host to change it)",
        f"{ELEVATOR}; {RHEL}",
    )


def _scheduler(host: str, disk: Disk, cls: str, settings: HostSettings) -> Planned[str]:
    override = settings.disks.get(disk.name)
    scheduler, reason, source = _virtual_rule(disk) if cls == "virtual" else _SCHEDULER_RULES[cls]
    key = "io_scheduler"
    if override and override.scheduler:
        scheduler, reason, source, key = override.scheduler, "set in host data", DATA, f"disks.{disk.name}.scheduler"
    elif settings.io_scheduler:
        scheduler, reason, source = settings.io_scheduler, "set in host data", DATA
    if scheduler not in disk.schedulers_available:
        if source == DATA:
            raise PlanError(
                host,
                key,
                f"expected one of the schedulers {disk.name} offers "
                f"({', '.join(disk.schedulers_available)}), got {scheduler!r}",
            )
        fallback = disk.scheduler or disk.schedulers_available[0]
        reason = f"{scheduler} is not offered by this kernel; keeping {fallback}"
        scheduler, source = fallback, "detected"
    return Planned(value=scheduler, reason=reason, source=source)


def _read_ahead(disk: Disk, cls: str, settings: HostSettings) -> Planned[int]:
    override = settings.disks.get(disk.name)
    if override and override.read_ahead_kb is not None:
        return Planned(value=override.read_ahead_kb, reason="set in host data", source=DATA)
    if settings.read_ahead_kb is not None:
        return Planned(value=settings.read_ahead_kb, reason="set in host data", source=DATA)
    if cls == "virtual":
        return Planned(
            value=VIRTUAL_READ_AHEAD_KB,
            reason="larger sequential reads through the virtual disk (Nix store, images); "
            f"kernel default is {KERNEL_READ_AHEAD_KB}",
            source="fleetforge default: the Nix store and images are read in large sequential runs; "
            "Documentation/ABI/stable/sysfs-block (queue/read_ahead_kb)",
        )
    return Planned(
        value=KERNEL_READ_AHEAD_KB,
        reason="kernel default; no evidence that more helps this disk class",
        source="include/linux/mm.h VM_READAHEAD_PAGES",
    )


def plan_disk(host: str, disk: Disk, virtualization: str, settings: HostSettings) -> DiskPlan:
    """One disk's plan. Raises ``PlanError`` for a scheduler from host data the disk does not offer."""
    cls = disk_class(disk, virtualization)
    return DiskPlan(
        name=disk.name,
        path=disk.path,
        disk_class=cls,  # type: ignore[arg-type]
        scheduler=_scheduler(host, disk, cls, settings),
        read_ahead_kb=_read_ahead(disk, cls, settings),
    )


def _write(value: str, path: str) -> str:
    """``echo VALUE > PATH`` with both words quoted (``shlex``)."""
    return f"{shlex.join(['echo', value])} > {shlex.quote(path)}"


class IoScheduler(Component):
    name = "io-scheduler"
    path = UDEV_RULES
    file_title = "I/O scheduler udev rules"
    apply_title = "Apply udev rules to disks"
    nixos_module = "io-scheduler.nix"

    def plan(self, host: str, facts: HostFacts, settings: HostSettings) -> dict[str, Any]:
        return {"disks": [plan_disk(host, disk, facts.virtualization, settings) for disk in facts.disks]}

    def file(self, plan: TuningPlan, facts: HostFacts) -> str:
        return render("udev-io.rules.j2", disks=plan.disks)

    def nixos_options(self, plan: TuningPlan, facts: HostFacts) -> dict[str, Any]:
        return {"services": {"udev": {"extraRules": self.file(plan, facts)}}}

    def checks(self, plan: TuningPlan, nixos: bool) -> Iterator[Check]:
        for disk in plan.disks:
            queue = f"/sys/block/{disk.name}/queue"
            yield Check(f"{disk.name} scheduler", disk.scheduler.value, f"{queue}/scheduler", bracketed)
            yield Check(f"{disk.name} read_ahead_kb", str(disk.read_ahead_kb.value), f"{queue}/read_ahead_kb")

    def live(self, facts: HostFacts) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for disk in facts.disks:
            out[f"{disk.name} scheduler"] = disk.scheduler
            out[f"{disk.name} read_ahead_kb"] = str(disk.read_ahead_kb)
        return out

    def apply(self, plan: TuningPlan, facts: HostFacts) -> Sequence[StringCommand]:
        return UDEV_APPLY

    def restore(self, pre, post, changed: list[str]) -> tuple[list[str], list[str]]:
        """The rules reloaded if their file changed, then each disk's recorded scheduler and
        read_ahead_kb written back (a removed rule does not return the kernel to its old
        values); a name that is not a kernel name or a scheduler of other characters is reported,
        never written."""
        cmds = raw(UDEV_APPLY) if UDEV_RULES in changed and not pre.is_nixos else []
        problems = []
        for disk, values in pre.disks.items():
            if not is_kernel_name(disk):
                problems.append(f"disk {disk!r} is not restored: not a kernel block device name")
                continue
            queue = f"/sys/block/{disk}/queue"
            scheduler = values.get("scheduler")
            if scheduler and WORD.fullmatch(str(scheduler)):
                cmds.append(_write(str(scheduler), f"{queue}/scheduler"))
            elif scheduler:
                problems.append(f"disk {disk}: scheduler {scheduler!r} is not restored: not a scheduler name")
            if values.get("read_ahead_kb") is not None:
                cmds.append(_write(str(int(values["read_ahead_kb"])), f"{queue}/read_ahead_kb"))
        return cmds, problems

    def rows(self, plan: TuningPlan, secret: Callable[[str], bool]) -> Iterator[Row]:
        for d in plan.disks:
            yield f"{d.name} scheduler ({d.disk_class})", d.scheduler.value, d.scheduler.reason, d.scheduler.source
            ra = d.read_ahead_kb
            yield f"{d.name} read_ahead_kb", str(ra.value), ra.reason, ra.source
