"""Read-ahead of btrfs filesystems: the knob that acts on btrfs.

btrfs reads files through a backing device of its own (``/sys/class/bdi/btrfs-N``, reached as
``/sys/fs/btrfs/<fsid>/bdi``) and sets its read-ahead at mount to at least 4 MiB
(``fs/btrfs/disk-io.c``, ``open_ctree``). So on btrfs the disk's ``queue/read_ahead_kb`` (the
io-scheduler component) does not govern file reads; this component plans the value of the bdi,
measured on a test VM (``docs/components.md``, "btrfs-read-ahead"). ext4 and xfs read files
through the disk's own bdi, where the device value applies.

Host data: the io-scheduler keys ``read_ahead_kb`` and ``disks.<disk>.read_ahead_kb`` (a value
set there applies to the btrfs on that disk too). Linux:
``/etc/tmpfiles.d/60-fleetforge-btrfs-read-ahead.conf`` (``w`` lines, tmpfiles.d(5): written at
boot once the filesystems are mounted, skipped for one that is not), applied with
``systemd-tmpfiles --create``; NixOS: ``systemd.tmpfiles.rules``. Live:
``/sys/fs/btrfs/<fsid>/bdi/read_ahead_kb``; restored by writing the recorded value back.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pyinfra.api import QuoteString, StringCommand

from fleetforge.checks import Check
from fleetforge.components.base import DATA, Component, Row
from fleetforge.facts.models import BtrfsFilesystem
from fleetforge.facts.storage import FSID
from fleetforge.models import BtrfsReadAheadPlan, HostFacts, Planned, TuningPlan
from fleetforge.paths import BTRFS_TMPFILES
from fleetforge.render import render

if TYPE_CHECKING:
    from fleetforge.settings import HostSettings

BTRFS_MIN_READ_AHEAD_KB = 4096  # fs/btrfs/disk-io.c open_ctree: max(..., SZ_4M / PAGE_SIZE)
SOURCE = "fs/btrfs/disk-io.c (open_ctree: bdi read-ahead of at least 4 MiB); Documentation/ABI/testing/sysfs-class-bdi"
APPLY = (StringCommand("systemd-tmpfiles", "--create", QuoteString(BTRFS_TMPFILES)),)


def bdi_path(fsid: str) -> str:
    """``/sys/fs/btrfs/<fsid>/bdi/read_ahead_kb`` (``fsid`` must be a UUID: ``ValueError`` otherwise)."""
    if not FSID.fullmatch(fsid):
        raise ValueError(f"btrfs fsid: expected a filesystem UUID, got {fsid!r}")
    return f"/sys/fs/btrfs/{fsid}/bdi/read_ahead_kb"


def tmpfiles_line(plan: BtrfsReadAheadPlan) -> str:
    """One tmpfiles.d(5) ``w`` line writing the planned value to the filesystem's bdi."""
    return f"w {bdi_path(plan.fsid)} - - - - {int(plan.read_ahead_kb.value)}"


def _disks_of(fs: BtrfsFilesystem, facts: HostFacts) -> list[str]:
    """The whole disks holding ``fs``'s devices (a partition's disk, or the disk itself)."""
    names = []
    for disk in facts.disks:
        if disk.name in fs.devices or any(p.name in fs.devices for p in disk.partitions):
            names.append(disk.name)
    return names


def _planned(fs: BtrfsFilesystem, disks: list[str], settings: HostSettings) -> Planned[int]:
    ours = [settings.disks[d].read_ahead_kb for d in disks if d in settings.disks]
    explicit = [v for v in ours if v is not None] or (
        [settings.read_ahead_kb] if settings.read_ahead_kb is not None else []
    )
    where = f"file reads on this btrfs use its own bdi {fs.bdi}, not queue/read_ahead_kb of {', '.join(disks)}"
    if explicit:
        return Planned(value=max(explicit), reason=f"set in host data (read_ahead_kb); {where}", source=DATA)
    own = max(BTRFS_MIN_READ_AHEAD_KB, 128 * len(fs.devices))
    return Planned(
        value=own,
        reason=f"{where}; btrfs's own value (max(4 MiB, 128 KiB per device)) already gives the large "
        "sequential reads the virtual-disk rule wants; written so a remount or another tool cannot lower it",
        source=SOURCE,
    )


def plan_btrfs_read_ahead(facts: HostFacts, settings: HostSettings) -> list[BtrfsReadAheadPlan]:
    """One plan per mounted btrfs filesystem on the host's disks (``facts.btrfs``)."""
    plans = []
    for fs in facts.btrfs:
        disks = _disks_of(fs, facts)
        if disks:
            plans.append(
                BtrfsReadAheadPlan(fsid=fs.fsid, bdi=fs.bdi, disks=disks, read_ahead_kb=_planned(fs, disks, settings))
            )
    return plans


class BtrfsReadAhead(Component):
    name = "btrfs-read-ahead"
    path = BTRFS_TMPFILES
    file_title = "btrfs read-ahead tmpfiles.d"
    apply_title = "Apply btrfs read-ahead"
    nixos_module = "btrfs-read-ahead.nix"

    def plan(self, host: str, facts: HostFacts, settings: HostSettings) -> dict[str, Any]:
        return {"btrfs_read_ahead": plan_btrfs_read_ahead(facts, settings)}

    def file(self, plan: TuningPlan, facts: HostFacts) -> str | None:
        if not plan.btrfs_read_ahead:
            return None
        lines = [(fs, tmpfiles_line(fs)) for fs in plan.btrfs_read_ahead]  # each line checked by tmpfiles_line
        return render("tmpfiles-btrfs-read-ahead.conf.j2", filesystems=lines)

    def nixos_options(self, plan: TuningPlan, facts: HostFacts) -> dict[str, Any] | None:
        if not plan.btrfs_read_ahead:
            return None
        return {"systemd": {"tmpfiles": {"rules": [tmpfiles_line(fs) for fs in plan.btrfs_read_ahead]}}}

    def checks(self, plan: TuningPlan, nixos: bool) -> Iterator[Check]:
        for fs in plan.btrfs_read_ahead:
            yield Check(f"btrfs {fs.fsid} read_ahead_kb", str(fs.read_ahead_kb.value), bdi_path(fs.fsid))

    def live(self, facts: HostFacts) -> dict[str, str | None]:
        return {f"btrfs {fs.fsid} read_ahead_kb": str(fs.read_ahead_kb) for fs in facts.btrfs}

    def apply(self, plan: TuningPlan, facts: HostFacts) -> Sequence[StringCommand]:
        return APPLY

    def restore(self, pre, post, changed: list[str]) -> tuple[list[str], list[str]]:
        """Each recorded bdi read-ahead written back (a removed tmpfiles line does not lower it)."""
        cmds, problems = [], []
        for item, value in pre.checks.items():
            fsid = item.removeprefix("btrfs ").removesuffix(" read_ahead_kb")
            if not (item.startswith("btrfs ") and item.endswith(" read_ahead_kb")) or value == post.checks.get(item):
                continue
            if FSID.fullmatch(fsid) and value is not None and re.fullmatch(r"[0-9]{1,9}", value):
                cmds.append(f"{shlex.join(['echo', value])} > {shlex.quote(bdi_path(fsid))}")
            else:
                problems.append(f"{item!r} = {value!r} is not restored: not a btrfs fsid and a number")
        return cmds, problems

    def rows(self, plan: TuningPlan, secret: Callable[[str], bool]) -> Iterator[Row]:
        for fs in plan.btrfs_read_ahead:
            ra = fs.read_ahead_kb
            yield f"btrfs {fs.fsid[:8]} ({','.join(fs.disks)}) bdi read_ahead_kb", str(ra.value), ra.reason, ra.source
