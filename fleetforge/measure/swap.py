"""Measured swap cost: r of vm.rst's swappiness formula on the host itself.

A test zram device (``/sys/class/zram-control/hot_add``, recorded in the restore state and
removed after) with the planned compression algorithm is filled with 50 % compressible data;
then, in interleaved rounds, single 4 KiB direct random reads from it and from the test file on
the root disk. r = median file read latency / median zram read latency; swappiness =
200*r/(1+r) (Documentation/admin-guide/sysctl/vm.rst, swappiness). The compression ratio of the
host's own zram swap is read from ``mm_stat`` (Documentation/admin-guide/blockdev/zram.rst).
"""

from __future__ import annotations

import math
import shlex
import statistics
from collections.abc import Callable, Collection

from fleetforge.components.sysctl import swappiness_for_ratio
from fleetforge.measure import host as remote
from fleetforge.measure.results import SwapMeasurement

ZRAM_TEST_MIB = remote.ZRAM_TEST_MIB
#: mm_stat fields are u64 byte counts
MAX_MM_STAT = 2**64 - 1
HOT_ADD = "/sys/class/zram-control/hot_add"
LIVE_ZRAM = (
    "for d in $(awk '$1 ~ \"^/dev/zram[0-9]+$\" {print substr($1, 10)}' /proc/swaps); do "
    "cat /sys/block/zram$d/mm_stat; done"
)


def _u64(field: str) -> bool:
    return field.isascii() and field.isdigit() and len(field) <= 20 and int(field) <= MAX_MM_STAT


def compression(text: str) -> tuple[float | None, str]:
    """``(ratio, note)`` from the ``mm_stat`` lines of the host's zram swap devices (summed):
    orig_data_size / compr_data_size, the first two fields, bytes."""
    orig = compr = 0
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2 or not all(_u64(f) for f in fields[:2]):
            raise remote.HostOutputError(f"mm_stat: expected byte counts, got {line[:60]!r}")
        orig, compr = orig + int(fields[0]), compr + int(fields[1])
    if not text.strip():
        return None, "no zram swap active"
    if orig == 0 or compr == 0:
        return None, "zram swap holds no pages yet"
    return orig / compr, f"{_size(orig)} stored in {_size(compr)}"


def _size(count: int) -> str:
    """``200 MiB``; ``12 KiB`` or ``300 bytes`` below that (a nearly empty zram swap)."""
    if count >= 2**20:
        return f"{count // 2**20} MiB"
    return f"{count // 1024} KiB" if count >= 1024 else f"{count} bytes"


def measure_swap(
    run: Callable[[str, str], str],
    state: remote.RestoreState,
    save_state: Callable[[], None],
    algorithm: str,
    file_disk: str,
    file_path: str,
    repeats: int,
    runtime_s: float,
    existing: Collection[int] = (),
) -> SwapMeasurement:
    """Measure r (see the module docstring). ``run(step, command) -> stdout`` raises on failure;
    ``save_state`` writes ``state`` to the host; ``existing``: the numbers of the zram devices
    the host had before (``hot_add`` makes a new one, so it never answers one of those).
    Raises ``HostOutputError`` for hostile output."""
    number = run("add a test zram device", shlex.join(["cat", HOT_ADD])).strip()
    # as the kernel prints it ("%d"): "007" would address zram007 but record (and later reset) zram7
    canonical = number.isascii() and number.isdigit() and len(number) <= 4 and str(int(number)) == number
    if not (canonical and int(number) <= 4095):
        raise remote.HostOutputError(f"zram hot_add: expected a device number, got {number[:20]!r}")
    if int(number) in existing:
        raise remote.HostOutputError(f"zram hot_add: expected a new device, got zram{number}, which was there before")
    state.zram_devices.append(int(number))
    save_state()
    device = f"/sys/block/zram{number}"
    setup = f"echo {shlex.quote(algorithm)} > {device}/comp_algorithm && echo {ZRAM_TEST_MIB}M > {device}/disksize"
    run("set up the test zram device", setup)
    fill = ["fio", "--name=fleetforge-zram", f"--filename=/dev/zram{number}", f"--size={ZRAM_TEST_MIB}M"]
    fill += ["--rw=write", "--bs=1M", "--direct=1", "--buffer_compress_percentage=50", "--refill_buffers=1"]
    run("fill the test zram device", shlex.join(fill))
    jobs = {
        "zram": remote.Job("randread-qd1", f"/dev/zram{number}", ZRAM_TEST_MIB, runtime_s),
        "file": remote.Job("randread-qd1", file_path, 16, runtime_s),
    }
    found: dict[str, list[float]] = {"zram": [], "file": []}
    for rnd in range(repeats):
        for kind in ("zram", "file") if rnd % 2 == 0 else ("file", "zram"):
            result = remote.parse_fio(run(f"fio {kind} read", shlex.join(jobs[kind].argv())), "randread")
            if result.mean_us is None or result.mean_us <= 0:
                raise remote.HostOutputError(f"fio {kind} read: no completion latency reported")
            found[kind].append(result.mean_us)
    r = statistics.median(found["file"]) / statistics.median(found["zram"])
    if not math.isfinite(r) or r <= 0:
        raise remote.HostOutputError(f"fio: file / zram read latency: expected a finite ratio, got {r!r}")
    ratio, note = compression(run("read zram mm_stat", LIVE_ZRAM))
    return SwapMeasurement(
        algorithm=algorithm, file_disk=file_disk, zram_read_us=found["zram"], file_read_us=found["file"],
        r=round(r, 2), swappiness=swappiness_for_ratio(r), compression_ratio=ratio, compression_note=note,
    )  # fmt: skip
