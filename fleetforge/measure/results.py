"""What ``fleetforge tune --measure`` keeps per host: one JSON file per host in the host's
``measurements_dir`` (host data, default ``fleetforge-measurements`` in the current directory).

Shape (``HostMeasurement``)::

    {"host": "vm-blk-1", "measured_at": "2026-12-06T19:30:00Z", "kernel": "6.1.0-28-amd64",
     "fio_version": "fio-3.33", "fio_installed_by_fleetforge": false,
     "repeats": 5, "runtime_s": 1.0, "file_mib": 256,
     "disks": [{"disk": "vda", "mount": "/", "fstype": "ext4",
                "read_ahead_path": "/sys/block/vda/queue/read_ahead_kb",
                "series": [{"knob": "scheduler", "workload": "randread", "unit": "IOPS",
                            "baseline": "mq-deadline", "candidates": ["mq-deadline", "none"],
                            "samples": [{"candidate": "none", "round": 0, "value": 61000.0,
                                         "p99_ms": 0.9}, ...],
                            "decision": {"chosen": "none", "changed": true, "reason": "...",
                                         "comparisons": [...]}}, ...]}],
     "skipped": [{"disk": "vdc", "reason": "no mounted filesystem"}],
     "restored": ["vda scheduler mq-deadline (left by an interrupted run)"]}

``series`` with ``decides: true`` feed the plan (``fleetforge.measure.apply``): the scheduler
series of the workload chosen in host data (``measure_workload``, default ``randread``) and the
read-ahead series (buffered 1 MiB sequential reads). The others are kept for the report.
Every number comes from fio's JSON on the host and is checked finite and non-negative.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleetforge.errors import FleetforgeError

NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
#: JSON has no inf or NaN (pydantic writes them as null): a record that holds one could be saved
#: but never read back, and the host's plan would fail on it
Finite = Annotated[float, Field(allow_inf_nan=False)]
Knob = Literal["scheduler", "read_ahead_kb"]
Workload = Literal["randread", "randwrite", "seqread", "seqread-buffered"]
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Sample(_Model):
    """One fio job: ``value`` in the series' unit (IOPS or MiB/s), ``p99_ms`` the 99th
    percentile completion latency in milliseconds (``None`` where not meaningful)."""

    candidate: str
    round: Annotated[int, Field(ge=0)]
    value: NonNegative
    p99_ms: NonNegative | None = None


class ComparisonRecord(_Model):
    candidate: str
    gain: Finite
    p_value: NonNegative
    p99_change: Finite | None
    passed: bool
    why: str


class DecisionRecord(_Model):
    """``fleetforge.measure.decide.Decision`` as stored."""

    chosen: str
    changed: bool
    reason: str
    comparisons: list[ComparisonRecord]


class Series(_Model):
    """One knob on one disk under one workload: every candidate's samples and the decision."""

    knob: Knob
    workload: Workload
    unit: Literal["IOPS", "MiB/s"]
    decides: bool
    baseline: str
    candidates: list[str]
    samples: list[Sample]
    decision: DecisionRecord

    def values(self, candidate: str) -> list[float]:
        return [s.value for s in self.samples if s.candidate == candidate]

    def p99s(self, candidate: str) -> list[float]:
        return [s.p99_ms for s in self.samples if s.candidate == candidate and s.p99_ms is not None]


class DiskMeasurement(_Model):
    """A disk measured through a test file in ``mount`` (``fstype``); ``read_ahead_path`` is
    the sysfs file whose read-ahead governs reads of that file (the disk's queue, or the
    btrfs filesystem's own bdi)."""

    disk: str
    mount: str
    fstype: str
    read_ahead_path: str
    series: list[Series]

    def deciding(self, knob: Knob) -> Series | None:
        return next((s for s in self.series if s.knob == knob and s.decides), None)


class Skipped(_Model):
    disk: str
    reason: str


class SwapMeasurement(_Model):
    """Swap-in cost on zram against a file read (vm.rst's r for ``vm.swappiness``): 4 KiB random
    reads one at a time, direct, from a test zram device (``algorithm``, filled with 50 %
    compressible data) and from the test file on ``file_disk``; latencies in microseconds.
    ``r`` = median file read / median zram read; ``swappiness`` = 200*r/(1+r).
    ``compression_ratio``: original / compressed bytes of the host's own zram swap now
    (``mm_stat``), ``None`` when nothing is swapped out (``compression_note`` says so)."""

    algorithm: str
    file_disk: str
    zram_read_us: list[NonNegative]
    file_read_us: list[NonNegative]
    r: NonNegative
    swappiness: Annotated[int, Field(ge=0, le=200)]
    compression_ratio: NonNegative | None = None
    compression_note: str = ""


class HostMeasurement(_Model):
    host: str
    measured_at: str  # ISO 8601, UTC
    kernel: str
    fio_version: str
    fio_installed_by_fleetforge: bool
    repeats: Annotated[int, Field(ge=1)]
    runtime_s: NonNegative
    file_mib: Annotated[int, Field(ge=1)]
    disks: list[DiskMeasurement] = []
    skipped: list[Skipped] = []
    restored: list[str] = []
    swap: SwapMeasurement | None = None

    @property
    def date(self) -> str:
        return self.measured_at[:10]


class MeasurementError(FleetforgeError):
    """A results file that cannot be read as a ``HostMeasurement`` of its host."""


def results_file(directory: str | Path, host: str) -> Path:
    """``<directory>/<host>.json``; a host name that is not a plain file name (``/``, ``..``,
    non-ASCII) is stored as ``host-<sha256 prefix>.json`` instead (the name is inside)."""
    name = host if _SAFE_NAME.fullmatch(host) and host not in (".", "..") else None
    if name is None:
        name = "host-" + hashlib.sha256(host.encode()).hexdigest()[:20]
    return Path(directory) / f"{name}.json"


def load(directory: str | Path, host: str) -> HostMeasurement | None:
    """The host's stored measurement, or ``None`` when there is none.

    Raises:
        MeasurementError: the file exists but is not valid, or is another host's.
    """
    path = results_file(directory, host)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise MeasurementError(f"host {host}: measurements {path}: {e.strerror}") from e
    try:
        found = HostMeasurement.model_validate_json(text)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise MeasurementError(f"host {host}: measurements {path}: {where}: {first['msg']}") from e
    if found.host != host:
        raise MeasurementError(f"host {host}: measurements {path}: expected host {host!r}, got {found.host!r}")
    return found


def save(directory: str | Path, found: HostMeasurement) -> Path:
    """Write ``found`` to its ``results_file`` with ``write_atomic`` and return the path."""
    return write_atomic(results_file(directory, found.host), found.model_dump_json(indent=2) + "\n")


def write_atomic(path: str | Path, text: str, mode: int = 0o644) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically: a temporary file in the same directory,
    fsynced, renamed over the old one, then the directory fsynced; never a half-written file.
    Raises ``OSError`` (the temporary file is removed)."""
    import os
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path
