"""Benchmark (not a test): ``podman build`` on Podman's btrfs driver against overlay, on one VM.

The OVH tuning guide the project started from claims "30-50 % faster container builds" when
Podman's storage moves from overlay to the native btrfs driver on a btrfs filesystem. This
script measures it on a testbed VM (``vm-blk-1`` by default): the data disk becomes one btrfs
filesystem (``mkfs.btrfs``), and the same small build runs against three stores, each its own
``--root`` so nothing is shared:

- ``overlay on ext4``: the root filesystem, Debian's default setup (reference);
- ``overlay on btrfs``: what a host gets when only the filesystem changes;
- ``btrfs on btrfs``: what fleetforge's podman component plans there.

The build (``Containerfile`` below) starts from a one-binary image made locally (``podman
import`` of busybox; there is no registry here) and has three ``RUN`` layers that write, copy
and delete files, built with ``--no-cache`` each time and removed afterwards. Each variant is
built ``--repeat`` times after one warm-up; the script prints every time, the medians and the
ratios against overlay on btrfs. The VM is reset to its clean snapshot at the end.

    python bench/podman_build_bench.py [--vm vm-blk-1] [--repeat 5]

Needs the testbed VMs up (``python -m fleetforge.testbed up``); do not run it while VM tests
run (they share the VMs).
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import time

from fleetforge.testbed import Testbed

CONTAINERFILE = """FROM localhost/ff-base:1
SHELL ["/bin/busybox", "sh", "-c"]
RUN /bin/busybox --install -s /bin && for i in $(seq 300); do dd if=/dev/urandom of=/f$i bs=16k count=1; done
RUN mkdir /copy && cp /f* /copy/
RUN rm /f1* && echo done > /done
"""
SETUP = """set -e
mkfs.btrfs -qf /dev/vdb
mkdir -p /mnt/ffbench && mount /dev/vdb /mnt/ffbench
ctx=$(mktemp -d) && echo "$ctx" > /root/ffbench-ctx
cat > "$ctx/Containerfile"
d=$(mktemp -d) && mkdir "$d/bin" && cp /bin/busybox "$d/bin/" && tar -C "$d" -cf /root/ffbench-base.tar . && rm -rf "$d"
"""
VARIANTS = {
    "overlay on ext4": ("overlay", "/var/lib/ffbench-ext4"),
    "overlay on btrfs": ("overlay", "/mnt/ffbench/overlay"),
    "btrfs on btrfs": ("btrfs", "/mnt/ffbench/btrfs"),
}


def podman(driver: str, root: str, *args: str) -> str:
    return shlex.join(["podman", "--storage-driver", driver, "--root", root, *args])


def build_seconds(tb: Testbed, vm: str, driver: str, root: str) -> float:
    """One ``--no-cache`` build, timed on the VM (``date +%s.%N`` around it), image removed after;
    ``CalledProcessError`` if the build fails."""
    build = podman(
        driver, root, "build", "-q", "--format", "docker", "--no-cache", "--network", "none", "-t", "ffbench:1"
    )
    remove = podman(driver, root, "rmi", "-f", "ffbench:1")
    script = (
        "set -e; ctx=$(cat /root/ffbench-ctx); a=$(date +%s.%N); "
        f'{build} "$ctx" >/dev/null 2>&1; b=$(date +%s.%N); {remove} >/dev/null; echo "$a $b"'
    )
    a, b = tb.ssh(vm, script, check=True).stdout.split()
    return float(b) - float(a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vm", default="vm-blk-1")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    tb = Testbed()
    tb.reset(args.vm)
    try:
        tb.ssh(args.vm, SETUP, input=CONTAINERFILE, check=True)
        facts = tb.ssh(args.vm, "uname -r; podman --version; nproc; findmnt -n -o FSTYPE -T /var/lib", check=True)
        print("VM:", " | ".join(facts.stdout.split("\n")[:4]))
        results: dict[str, list[float]] = {}
        for name, (driver, root) in VARIANTS.items():
            tb.ssh(
                args.vm,
                f"mkdir -p {root} && {podman(driver, root, 'import', '-q', '/root/ffbench-base.tar', 'ff-base:1')}",
                check=True,
            )
            build_seconds(tb, args.vm, driver, root)  # warm-up: page cache, first layer
            started = time.monotonic()
            results[name] = [build_seconds(tb, args.vm, driver, root) for _ in range(args.repeat)]
            times = " ".join(f"{t:.2f}" for t in results[name])
            print(f"{name:17} builds (s): {times}  [{time.monotonic() - started:.0f} s]")
        medians = {name: statistics.median(times) for name, times in results.items()}
        base = medians["overlay on btrfs"]
        print(f"\n{'variant':17} {'median s':>9} {'vs overlay on btrfs':>20}")
        for name, median in medians.items():
            print(f"{name:17} {median:9.2f} {median / base:19.2f}x")
        gain = (base - medians["btrfs on btrfs"]) / base * 100
        print(f"\nbtrfs driver vs overlay on the same btrfs: {gain:+.0f} % build time saved (guide claims 30-50 %)")
    finally:
        tb.reset(args.vm)


if __name__ == "__main__":
    main()
