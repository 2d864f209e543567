"""Benchmark (not a test): gathering what a deploy needs across N hosts, over pyinfra's @ssh and
fleetforge's @asyncssh, against the floor, with the controller's peak memory.

Hosts: N light sshd hosts, each in its own network namespace, behind a user-space proxy that
delays every chunk by 25 ms per direction (``fleetforge.testbed.sshd_hosts``). They share this
machine's files and kernel, so only read-only work runs on them. Per N, interleaved per repeat:

- ``vps --dry over @ssh`` / ``over @asyncssh``: ``pyinfra -y INVENTORY deploys/vps.py --dry``
  (connect, facts, plan, diff: everything a no-op re-run does);
- ``fleetforge probe``: ``fleetforge probe INVENTORY`` (the @asyncssh inventory);
- ``floor``: ``bench/probe_floor.py``, one asyncssh connection per host running the same probe
  command, results as JSON, no pyinfra.

    python bench/connector_bench.py [--sizes 1,10,50] [--repeat 3] [--delay-ms 25]

Prints medians, ratios to the floor, each run's peak RSS (the controller process, from
``wait4``) and the memory per host: (peak at N - peak at the smallest N) / (N - smallest N).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))

from fleetforge.testbed.sshd_hosts import SshdFleet  # noqa: E402

VARIANTS = ("vps --dry over @ssh", "vps --dry over @asyncssh", "fleetforge probe", "floor")


def timed(argv: list[str]) -> tuple[float, float]:
    """Run ``argv`` from the repo root; returns (wall seconds, peak RSS MiB). Raises on failure."""
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{out.decode()[-3000:]}")
    return wall, usage.ru_maxrss / 1024


def write_inputs(fleet: SshdFleet, workdir: Path) -> dict[str, list[str]]:
    """Inventories (@ssh and @asyncssh) and the floor's host list; returns argv per variant."""
    entries = fleet.inventory_entries()
    (workdir / "inv_ssh.py").write_text(f"hosts = {entries!r}\n")
    (workdir / "inv_asyncssh.py").write_text(
        f"from fleetforge.inventory import group\nhosts = group({entries!r}, {{'fleetforge_connector': 'asyncssh'}})\n"
    )
    targets = [
        {
            "host": d["ssh_hostname"],
            "port": d["ssh_port"],
            "user": d["ssh_user"],
            "key": d["ssh_key"],
            "known_hosts": d["ssh_known_hosts_file"],
        }
        for _, d in entries
    ]
    (workdir / "targets.json").write_text(json.dumps(targets))
    vps = [str(BIN / "pyinfra"), "-y", "--parallel", str(len(entries))]
    return {
        VARIANTS[0]: [*vps, str(workdir / "inv_ssh.py"), "deploys/vps.py", "--dry"],
        VARIANTS[1]: [*vps, str(workdir / "inv_asyncssh.py"), "deploys/vps.py", "--dry"],
        VARIANTS[2]: [str(BIN / "fleetforge"), "probe", str(workdir / "inv_asyncssh.py")],
        VARIANTS[3]: [sys.executable, "bench/probe_floor.py", str(workdir / "targets.json")],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,10,50", help="host counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--delay-ms", type=float, default=25.0, help="added latency per direction")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    results: dict[int, dict[str, dict[str, list[float]]]] = {}
    with tempfile.TemporaryDirectory(prefix="ff-bench-") as tmp:
        for n in sizes:
            workdir = Path(tmp) / f"n{n}"
            workdir.mkdir()
            with SshdFleet(workdir / "fleet", n, prefix="ffb", subnet="10.99.0.0/24", delay_ms=args.delay_ms) as fleet:
                commands = write_inputs(fleet, workdir)
                per = results[n] = {v: {"wall": [], "rss": []} for v in VARIANTS}
                timed(commands["floor"])  # warm caches (imports, page cache) before measuring
                for r in range(args.repeat):
                    order = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
                    for variant in order:
                        wall, rss = timed(commands[variant])
                        per[variant]["wall"].append(round(wall, 3))
                        per[variant]["rss"].append(round(rss, 1))
                        print(f"  N={n} {variant}: {wall:.2f} s, {rss:.0f} MiB", file=sys.stderr)
    report(results, sizes, args)
    return 0


def report(results, sizes: list[int], args) -> None:
    print(f"connector benchmark: light sshd hosts, {args.delay_ms:g} ms per direction, {args.repeat} repeats, medians")
    print(f"{'N':>3}  {'run':<26} {'wall s':>7} {'x floor':>8} {'peak RSS MiB':>13} {'MiB/host':>9}")
    base = sizes[0]
    for n in sizes:
        floor = statistics.median(results[n]["floor"]["wall"])
        for variant in VARIANTS:
            wall = statistics.median(results[n][variant]["wall"])
            rss = max(results[n][variant]["rss"])
            per_host = ""
            if n != base:
                per_host = f"{(rss - max(results[base][variant]['rss'])) / (n - base):.2f}"
            print(f"{n:>3}  {variant:<26} {wall:>7.2f} {wall / floor:>8.2f} {rss:>13.0f} {per_host:>9}")
    for n in sizes:
        ssh = statistics.median(results[n][VARIANTS[0]]["wall"])
        asy = statistics.median(results[n][VARIANTS[1]]["wall"])
        print(f"N={n}: vps --dry @asyncssh / @ssh = {asy / ssh:.2f}")
    print("raw:", json.dumps({n: {v: results[n][v]["wall"] for v in VARIANTS} for n in sizes}))


if __name__ == "__main__":
    sys.exit(main())
