"""Host data of the I/O scheduler component (``HostSettings`` inherits it)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from fleetforge.textcheck import matching

Scheduler = Literal["none", "mq-deadline", "bfq", "kyber"]
ReadAheadKB = Annotated[int, Field(ge=0, le=65536)]
# Kernel names of disks as /sys/block lists them: vda, sda, nvme0n1, mmcblk0, dm-0, md127.
DiskName = matching(r"[a-z][a-z0-9]*(?:-[0-9]+)?", "a kernel disk name like vda, sda or nvme0n1")


class DiskSettings(BaseModel):
    """Per-disk override, keyed by kernel name (``vda``, ``sda``, ``nvme0n1``)."""

    model_config = ConfigDict(extra="forbid")

    scheduler: Scheduler | None = None
    read_ahead_kb: ReadAheadKB | None = None


class IoSchedulerSettings(BaseModel):
    """``io_scheduler`` and ``read_ahead_kb`` (KiB) for every disk; ``disks`` per disk."""

    io_scheduler: Scheduler | None = None
    read_ahead_kb: ReadAheadKB | None = None
    disks: dict[DiskName, DiskSettings] = {}
