"""Host data of measured tuning (``HostSettings`` inherits it)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from fleetforge.textcheck import matching

GroupName = matching(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", "a group name of letters, digits, '.', '_', '-'")


class MeasureSettings(BaseModel):
    """``measurements_dir``: where ``fleetforge tune --measure`` keeps each host's results and
    where plans read them (relative to the current directory; default ``fleetforge-measurements``).
    ``measure_workload``: the fio workload whose metric decides the I/O scheduler (``randread``
    4 KiB IOPS, ``randwrite`` 4 KiB IOPS, ``seqread`` 1 MiB MiB/s). ``hardware_group``: hosts
    with the same value share physical hardware and are measured one at a time."""

    measurements_dir: str = "fleetforge-measurements"
    measure_workload: Literal["randread", "randwrite", "seqread"] = "randread"
    hardware_group: GroupName | None = None
