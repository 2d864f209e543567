"""The host side of measured tuning: commands (quoted, never built from raw host text), and
parsers of what the host answers (untrusted: a compromised host or hypervisor can print
anything, so every field is checked against a pattern or a number range before use).

- ``findmnt`` JSON -> ``Mount``; the disk under each mount from ``/sys/class/block``.
- fio JSON -> ``FioResult`` (IOPS, MiB/s, p99 completion latency in ms).
- the restore state kept on the host (``STATE_FILE``), so a killed run is undone by the next.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fleetforge.facts.sections import WORD, is_kernel_name
from fleetforge.textcheck import has_control

STATE_DIR = "/var/lib/fleetforge"
STATE_FILE = f"{STATE_DIR}/measure-restore.json"
TEST_FILE_PREFIX = ".fleetforge-fio."
#: filesystems a test file is written in (others: tmpfs, overlay, network filesystems... are not disks)
FILESYSTEMS = ("ext4", "ext3", "ext2", "xfs", "btrfs", "f2fs")
QUEUE_KNOB = re.compile(r"/sys/block/[a-z][a-z0-9]*(?:-[0-9]+)?/queue/(?:scheduler|read_ahead_kb)")
BDI_KNOB = re.compile(r"/sys/fs/btrfs/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/bdi/read_ahead_kb")
TEST_FILE = re.compile(r"(?:/[A-Za-z0-9._@+-]+)*/\.fleetforge-fio\.[A-Za-z0-9]{10}")
FIO_PACKAGES = ("fio",)
#: size of the test zram device (``fleetforge.measure.swap``); a zram device of another size is
#: never reset by a restore
ZRAM_TEST_MIB = 48
#: the largest number taken from fio's JSON (IOPS, bytes/s, ns): 1e15 is beyond any device (1 PB/s,
#: 11 days of latency) and keeps sums and ratios of samples finite
MAX_FIO_NUMBER = 1e15
#: the largest byte count taken from findmnt (2^63: what the kernel's statfs can report)
MAX_BYTES = 2**63
#: a restore state fleetforge writes is a few KiB (two values and a file per disk, one zram device)
MAX_STATE_CHARS = 1 << 20


class HostOutputError(ValueError):
    """Host output that fleetforge refuses (names the field and the value)."""


# --- mounts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    """A mounted filesystem: ``target`` (absolute path), ``device`` (kernel name of the block
    device under it, e.g. ``vda1``), ``fstype``, sizes in bytes, ``read_only``."""

    target: str
    device: str
    fstype: str
    size_bytes: int
    avail_bytes: int
    read_only: bool


FINDMNT = shlex.join(["findmnt", "-J", "-b", "-l", "-o", "TARGET,SOURCE,FSTYPE,SIZE,AVAIL,OPTIONS"])
_SOURCE = re.compile(r"/dev/(?P<dev>[a-z][a-z0-9]*(?:-[0-9]+)?)(?:\[/[^\]\n]*\])?")
_TARGET = re.compile(r"/(?:[A-Za-z0-9._@+-]+(?:/[A-Za-z0-9._@+-]+)*)?")


def parse_mounts(text: str) -> list[Mount]:
    """The disk-backed filesystems of ``findmnt -J -b -l`` output (``FILESYSTEMS`` only).

    A mount whose target has characters outside ``[A-Za-z0-9._@+-/]`` is left out rather than
    quoted into a command. Raises ``HostOutputError`` for output that is not findmnt's JSON.
    """
    try:
        rows = json.loads(text)["filesystems"]
    except (ValueError, KeyError, TypeError, RecursionError) as e:
        raise HostOutputError(f"findmnt: expected JSON with 'filesystems', got {text[:80]!r}") from e
    mounts = []
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict) or row.get("fstype") not in FILESYSTEMS:
            continue
        source, target = row.get("source"), row.get("target")
        m = _SOURCE.fullmatch(source) if isinstance(source, str) else None
        if m is None or not isinstance(target, str) or not _TARGET.fullmatch(target) or ".." in target.split("/"):
            continue
        size, avail = _count(row.get("size"), "size"), _count(row.get("avail"), "avail")
        options = str(row.get("options") or "").split(",")
        mounts.append(Mount(target, m["dev"], row["fstype"], size, avail, "ro" in options))
    return mounts


def _count(value: Any, name: str) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_BYTES:
        return value
    raise HostOutputError(f"findmnt: {name}: expected a byte count, got {value!r}")


def parent_disks_command(devices: list[str]) -> str:
    """Prints ``DEVICE /sys/devices/.../block/DISK[/DEVICE]`` for each device (kernel names only)."""
    names = [d for d in devices if is_kernel_name(d)]
    loop = 'for d in "$@"; do printf "%s %s\\n" "$d" "$(readlink -f /sys/class/block/$d)"; done'
    return shlex.join(["sh", "-c", loop, "fleetforge-disks", *names])


def parse_parent_disks(text: str) -> dict[str, str]:
    """``{device: disk}``: the path component after ``/block/`` is the whole disk."""
    found = {}
    for line in text.splitlines():
        device, _, path = line.partition(" ")
        parts = path.split("/")
        if not is_kernel_name(device) or "block" not in parts:
            continue
        disk = parts[parts.index("block") + 1] if parts.index("block") + 1 < len(parts) else ""
        if is_kernel_name(disk):
            found[device] = disk
    return found


# --- fio ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One fio job: ``workload`` (randread, randwrite, seqread direct; seqread-buffered through
    the page cache and read-ahead), on ``path``, for ``runtime_s`` seconds (at most, for
    seqread-buffered), on ``size_mib`` MiB from ``offset_mib``."""

    workload: str
    path: str
    size_mib: int
    runtime_s: float
    offset_mib: int = 0

    def argv(self) -> list[str]:
        rw = {"randread": "randread", "randwrite": "randwrite", "randread-qd1": "randread"}.get(self.workload, "read")
        args = [
            "fio", "--output-format=json", "--name=fleetforge", f"--filename={self.path}",
            f"--size={self.size_mib}M", f"--rw={rw}", f"--runtime={int(self.runtime_s * 1000)}ms",
        ]  # fmt: skip
        if self.offset_mib:
            args.append(f"--offset={self.offset_mib}M")
        if self.workload in ("randread", "randwrite"):
            args += ["--bs=4k", "--ioengine=libaio", "--iodepth=16", "--direct=1", "--time_based=1"]
            args += ["--norandommap=1", "--randrepeat=0"]
        elif self.workload == "randread-qd1":  # one request at a time: the latency of a single 4 KiB read
            args += ["--bs=4k", "--ioengine=psync", "--iodepth=1", "--direct=1", "--time_based=1", "--randrepeat=0"]
        elif self.workload == "seqread":
            args += ["--bs=1M", "--ioengine=libaio", "--iodepth=4", "--direct=1", "--time_based=1"]
        else:
            # one cold pass through the page cache in 128 KiB reads (coreutils' I/O size, ioblksize.h):
            # read-ahead decides the request size; reads of 1 MiB or more bypass the read-ahead
            # window (mm/readahead.c sizes a large read's request by the read), so they would not show it
            args += ["--bs=128k", "--ioengine=psync", "--direct=0", "--invalidate=1", "--time_based=0"]
        return args


def layout_argv(path: str, size_mib: int) -> list[str]:
    """fio writing the test file once (1 MiB direct writes, fsync at the end)."""
    return [
        "fio", "--output-format=json", "--name=fleetforge-layout", f"--filename={path}", f"--size={size_mib}M",
        "--rw=write", "--bs=1M", "--direct=1", "--end_fsync=1",
    ]  # fmt: skip


@dataclass(frozen=True)
class FioResult:
    """``iops`` (operations/s), ``mib_s`` (MiB/s), ``p99_ms`` (99th percentile completion
    latency, ms; ``None`` when fio reported none), ``io_mib`` (MiB the job read or wrote)."""

    iops: float
    mib_s: float
    p99_ms: float | None
    mean_us: float | None = None
    io_mib: float = 0.0


def parse_fio(text: str, workload: str) -> FioResult:
    """The first job of fio's JSON output (warnings before the JSON are skipped).

    Raises ``HostOutputError`` when it is not fio JSON or a number is missing, negative, not
    finite or above ``MAX_FIO_NUMBER``.
    """
    start = text.find("{")
    try:
        job = json.loads(text[start:])["jobs"][0] if start >= 0 else None
        side = job["write" if workload == "randwrite" else "read"]
        clat = side.get("clat_ns") or {}
        pct = clat.get("percentile") or {}
        p99, mean = pct.get("99.000000"), clat.get("mean")
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError) as e:
        raise HostOutputError(f"fio: expected JSON with jobs[0].read/write, got {text[:80]!r}") from e
    iops, bw = _number(side.get("iops"), "iops"), _number(side.get("bw_bytes"), "bw_bytes")
    return FioResult(
        iops,
        bw / 2**20,
        None if p99 is None else _number(p99, "clat p99") / 1e6,
        None if mean is None else _number(mean, "clat mean") / 1e3,
        _number(side.get("io_bytes", 0), "io_bytes") / 2**20,
    )


def _number(value: Any, name: str) -> float:
    # compared before any float(): an int of 400 digits is refused, not an OverflowError (NaN fails both)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_FIO_NUMBER:
        raise HostOutputError(f"fio: {name}: expected a finite number from 0 to {MAX_FIO_NUMBER:g}, got {value!r}")
    return float(value)


def fio_version(text: str) -> str:
    """``fio-3.33`` from ``fio --version``; raises ``HostOutputError`` for anything else."""
    version = text.strip()
    if not re.fullmatch(r"fio-[0-9][0-9A-Za-z.+~-]{0,30}", version):
        raise HostOutputError(f"fio --version: expected fio-N.N, got {version[:40]!r}")
    return version


# --- the restore state on the host ---------------------------------------------------------


class RestoreState(BaseModel):
    """What the host must get back, written before anything changes: ``values`` (sysfs path ->
    original value), ``files`` (test files), ``packages`` (installed by fleetforge), ``manager``."""

    model_config = ConfigDict(extra="forbid")

    values: Annotated[dict[str, str], Field(max_length=512)] = {}
    files: Annotated[list[str], Field(max_length=256)] = []
    packages: list[str] = []
    manager: str | None = None
    zram_devices: Annotated[list[Annotated[int, Field(ge=0, le=4095)]], Field(max_length=4)] = []

    @field_validator("values")
    @classmethod
    def _values(cls, values: dict[str, str]) -> dict[str, str]:
        for path, value in values.items():
            if not (QUEUE_KNOB.fullmatch(path) or BDI_KNOB.fullmatch(path)):
                raise ValueError(f"expected a scheduler or read_ahead_kb path, got {path!r}")
            scheduler = path.endswith("scheduler") and len(value) <= 32 and WORD.fullmatch(value)
            if not (scheduler or value.isascii() and value.isdigit() and len(value) <= 10):
                raise ValueError(f"{path}: expected a scheduler name or KiB, got {value!r}")
        return values

    @field_validator("files")
    @classmethod
    def _files(cls, files: list[str]) -> list[str]:
        for path in files:
            if not TEST_FILE.fullmatch(path) or ".." in path.split("/") or has_control(path):
                raise ValueError(f"expected a fleetforge test file, got {path!r}")
        return files

    @field_validator("packages")
    @classmethod
    def _packages(cls, packages: list[str]) -> list[str]:
        if any(p not in FIO_PACKAGES for p in packages) or len(set(packages)) != len(packages):
            raise ValueError(f"expected only {FIO_PACKAGES}, got {packages!r}")
        return packages

    @field_validator("manager")
    @classmethod
    def _manager(cls, manager: str | None) -> str | None:
        if manager not in (None, "apt", "dnf"):
            raise ValueError(f"expected apt or dnf, got {manager!r}")
        return manager

    @model_validator(mode="after")
    def _packages_with_manager(self) -> RestoreState:
        if bool(self.packages) != (self.manager is not None):  # fleetforge records both or neither
            raise ValueError(f"expected packages and their manager together, got {self.packages!r}, {self.manager!r}")
        return self


def parse_state(text: str) -> RestoreState | None:
    """The state left by an interrupted run (``None`` for none); raises ``HostOutputError`` for
    a file fleetforge would not have written (it is then left alone, never acted on)."""
    if not text.strip():
        return None
    if len(text) > MAX_STATE_CHARS:
        raise HostOutputError(f"{STATE_FILE}: {len(text)} characters, more than fleetforge writes")
    try:
        return RestoreState.model_validate_json(text)
    except ValidationError as e:
        raise HostOutputError(f"{STATE_FILE}: {e.errors()[0]['msg']}") from e


def write_state_command(state: RestoreState) -> str:
    """Write ``state`` atomically (mktemp in the root-only ``STATE_DIR``, sync, rename)."""
    script = (
        'umask 077 && mkdir -p "$1" && chmod 700 "$1" && t=$(mktemp -p "$1" .measure.XXXXXXXX) && '
        'printf "%s\\n" "$3" > "$t" && sync "$t" && mv -f "$t" "$2"'
    )
    return shlex.join(["sh", "-c", script, "fleetforge-state", STATE_DIR, STATE_FILE, state.model_dump_json()])


def restore_commands(state: RestoreState) -> list[str]:
    """Put every value back, delete the test files, remove what fleetforge installed, then the
    state file. Each command is independent (one failing does not stop the others)."""
    commands = [write_value(path, value) for path, value in state.values.items()]
    commands += [shlex.join(["rm", "-f", "--", path]) for path in state.files]
    commands += [zram_remove_command(n) for n in state.zram_devices]
    if state.packages and state.manager == "apt":
        commands.append(
            "DEBIAN_FRONTEND=noninteractive " + shlex.join(["apt-get", "remove", "-y", "-q", *state.packages])
        )
    elif state.packages and state.manager == "dnf":
        commands.append(shlex.join(["dnf", "remove", "-y", "-q", *state.packages]))
    return commands


def write_value(path: str, value: str) -> str:
    """``echo VALUE > PATH`` for a sysfs knob, both words quoted for the shell."""
    return f"echo {shlex.quote(value)} > {shlex.quote(path)}"


def zram_remove_command(number: int) -> str:
    """Reset and remove the test zram device ``number``, never one in use as swap or mounted
    (the kernel refuses a busy device too), nor one of another size than the test device's
    (0 before it was set up, ``ZRAM_TEST_MIB`` after): a zram device holding someone's data
    is left alone even when a restore state names it."""
    script = (
        'grep -q "^/dev/zram$1 " /proc/swaps && exit 1; grep -q "^/dev/zram$1 " /proc/mounts && exit 1; '
        "test -e /sys/block/zram$1 || exit 0; "
        f'size=$(cat /sys/block/zram$1/disksize) && {{ test "$size" = 0 || test "$size" = {ZRAM_TEST_MIB * 2**20}; }} '
        "|| exit 1; echo 1 > /sys/block/zram$1/reset && echo $1 > /sys/class/zram-control/hot_remove"
    )
    return shlex.join(["sh", "-c", script, "fleetforge-zram", str(int(number))])


def mktemp_command(directory: str, template: str) -> str:
    """``mktemp -p DIRECTORY TEMPLATE``, only where no one but root can replace the new file
    before fio writes it as root: ``directory`` owned by root and not writable by group or
    others, or sticky (``/var/tmp``). Elsewhere (a mount point owned by a user) a user could swap
    the file for a link to ``/etc/shadow``, and fio would follow it; exit 3 with the reason."""
    script = (
        'test -n "$(find "$1" -maxdepth 0 -user 0 \\( -perm -1000 -o ! -perm /022 \\))" || '
        '{ echo "$1: not root-only (another owner, or group/other-writable): no test file there" >&2; exit 3; }; '
        'exec mktemp -p "$1" "$2"'
    )
    return shlex.join(["sh", "-c", script, "fleetforge-mktemp", directory, template])


@dataclass
class Plan:
    """The measurement of one disk: the knobs' sysfs paths and candidates (validated)."""

    disk: str
    mount: Mount
    scheduler_path: str | None
    schedulers: list[str]
    scheduler_baseline: str | None
    read_ahead_path: str | None
    read_aheads: list[int]
    read_ahead_baseline: int | None
    notes: list[str] = field(default_factory=list)
