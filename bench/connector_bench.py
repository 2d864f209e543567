"""Benchmark (not a test): what a deploy needs from N hosts, gathered five ways, each run as a user
types it (the project's defaults: no ``--parallel``), against the floor; with the controller's
wall time, peak memory and CPU, and how they grow with N.

Hosts: N light sshd hosts, each in its own network namespace (``fleetforge.testbed.sshd_hosts``,
subnet 10.99.0.0/22 by default: up to 1021 hosts), behind one user-space proxy that delays every
chunk by 25 ms per direction. They share this machine's files, kernel and CPUs, so only
read-only work runs on them, and at large N their own CPU (sshd handshakes and the probe script,
about 0.1 s per host) shares the machine's cores with the controller: the ``machine CPU s``
column (every process, from ``/proc/stat``) and ``busy %`` (of all cores over the run) show when
that, not the controller, sets the wall time; the background load (cores busy while no run is
going, measured before and after each N's runs) shows what else the machine was doing. Per N,
the variants run in a different order in each repeat:

- ``floor``: ``python bench/probe_floor.py HOSTS.json``: one asyncssh connection per host, all
  at once, running the same batched ``HostProbe`` script; the facts as JSON. No pyinfra run.
- ``fleetforge probe``: ``fleetforge probe INVENTORY`` (the ``@asyncssh`` inventory).
- ``vps.py --dry``: ``pyinfra -y --dry INVENTORY deploys/vps.py`` over ``@asyncssh``: connect,
  facts, plan, render, queue operations (everything a no-op re-run decides), nothing executed.
- ``stock facts @ssh``: ``pyinfra -y --dry INVENTORY_SSH bench/stock_facts.py``: comparable
  data with pyinfra's own facts over its ``@ssh`` connector, one command per fact.
- ``rollout --dry``: ``fleetforge rollout --dry INVENTORY deploys/vps.py`` (the inventory's
  ``canary`` and ``wave1`` groups are its waves): waves, probe, plans printed per host.

Per run, from ``wait4`` of the command's process: wall seconds, peak RSS (``ru_maxrss``) and CPU
seconds (``ru_utime + ru_stime``, the controller's own: the hosts' processes are not its
children). A run that fails (any host failed, non-zero exit) is reported, not measured.

    python bench/connector_bench.py [--sizes 10,50,200,500] [--repeat 3] [--delay-ms 25]
        [--subnet 10.99.0.0/22] [--variants floor,vps.py --dry,...] [--timeout 900]

Prints, per N and variant: the median wall, its ratio to the median floor, the median peak RSS,
CPU seconds and CPU ms per host, the machine's CPU over the run; then growth between successive
N: peak RSS MiB per added host and controller CPU ms per added host (the marginal cost, without
the fixed start-up). Progress goes to stderr, the tables and raw numbers (JSON) to stdout.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))

from fleetforge.testbed.sshd_hosts import SshdFleet  # noqa: E402

FLOOR, PROBE, VPS, STOCK, ROLLOUT = "floor", "fleetforge probe", "vps.py --dry", "stock facts @ssh", "rollout --dry"
VARIANTS = (FLOOR, PROBE, VPS, STOCK, ROLLOUT)
CPUS = os.cpu_count() or 1
CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_cpu_s() -> float:
    """CPU seconds every process of the machine has used (``/proc/stat``: all but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


def background_cores(seconds: float = 3.0) -> float:
    """Cores busy while nothing of the benchmark runs (idle hosts, proxy, other users' work)."""
    before = machine_cpu_s()
    time.sleep(seconds)
    return round((machine_cpu_s() - before) / seconds, 2)


def timed(argv: list[str], timeout: float) -> dict:
    """Run ``argv`` from the repo root. Returns wall s, peak RSS MiB, CPU s (from ``wait4``), the
    machine's CPU s over the run, and the exit code with the output's tail when it failed."""
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    machine = machine_cpu_s()
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    timer = threading.Timer(timeout, proc.kill)  # a hung run ends as a failure, not a hung benchmark
    timer.start()
    try:
        tail = b""
        assert proc.stdout is not None
        while chunk := proc.stdout.read(65536):
            tail = (tail + chunk)[-4000:]
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    result = {
        "wall": round(wall, 3),
        "rss": round(usage.ru_maxrss / 1024, 1),
        "cpu": round(usage.ru_utime + usage.ru_stime, 3),
        "machine_cpu": round(machine_cpu_s() - machine, 2),
        "rc": proc.returncode,
    }
    if proc.returncode != 0:
        result["tail"] = tail.decode(errors="replace")[-1500:]
    return result


def check_stock_keys() -> None:
    """``bench/stock_facts.py`` lists the default plan's sysctl keys literally; they must still match."""
    from fleetforge.planner import sysctl_keys
    from fleetforge.settings import HostSettings

    tree = ast.parse((REPO / "bench" / "stock_facts.py").read_text())
    listed = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "SYSCTL_KEYS" for t in node.targets)
    )
    wanted = tuple(sysctl_keys(HostSettings()))
    if tuple(listed) != wanted:
        raise SystemExit(f"bench/stock_facts.py SYSCTL_KEYS is out of date; the plan reads: {wanted}")


def write_inputs(fleet: SshdFleet, workdir: Path) -> dict[str, list[str]]:
    """Inventories (@asyncssh with canary/wave1 groups, and @ssh) and the floor's host list;
    returns each variant's argv."""
    entries = fleet.inventory_entries()
    inv_ssh, inv = workdir / "inventory_ssh.py", workdir / "inventory.py"
    inv_ssh.write_text(f"hosts = {entries!r}\n")
    inv.write_text(
        "from fleetforge.inventory import group\n\n"
        f"_hosts = {entries!r}\n"
        "_data = {'fleetforge_connector': 'asyncssh'}\n"
        "canary = group(_hosts[:1], _data)\n"
        "wave1 = group(_hosts[1:], _data)\n"
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
    pyinfra, fleetforge = str(BIN / "pyinfra"), str(BIN / "fleetforge")
    return {
        FLOOR: [sys.executable, "bench/probe_floor.py", str(workdir / "targets.json")],
        PROBE: [fleetforge, "probe", str(inv)],
        VPS: [pyinfra, "-y", "--dry", str(inv), "deploys/vps.py"],
        STOCK: [pyinfra, "-y", "--dry", str(inv_ssh), "bench/stock_facts.py"],
        ROLLOUT: [fleetforge, "rollout", "--dry", str(inv), "deploys/vps.py"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,50,200,500", help="host counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--delay-ms", type=float, default=25.0, help="added latency per direction")
    parser.add_argument("--subnet", default="10.99.0.0/22", help="the hosts' IPv4 subnet (N + 3 addresses)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="which to run, comma-separated")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds before one run is killed")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or FLOOR not in variants:
        raise SystemExit(f"--variants: unknown {unknown} or no {FLOOR!r}; known: {', '.join(VARIANTS)}")
    if STOCK in variants:
        check_stock_keys()
    results: dict[int, dict[str, list[dict]]] = {}
    background: dict[int, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="ff-bench-") as tmp:
        for n in sizes:
            workdir = Path(tmp) / f"n{n}"
            workdir.mkdir()
            started = time.perf_counter()
            with SshdFleet(workdir / "fleet", n, prefix="ffb", subnet=args.subnet, delay_ms=args.delay_ms) as fleet:
                print(f"N={n}: {n} hosts up in {time.perf_counter() - started:.0f} s", file=sys.stderr)
                commands = write_inputs(fleet, workdir)
                per = results[n] = {v: [] for v in variants}
                timed(commands[FLOOR], args.timeout)  # warm caches (imports, page cache) before measuring
                background[n] = [background_cores()]
                for r in range(args.repeat):
                    order = variants[r % len(variants) :] + variants[: r % len(variants)]
                    for variant in order:
                        run = timed(commands[variant], args.timeout)
                        per[variant].append(run)
                        state = "ok" if run["rc"] == 0 else f"FAILED rc={run['rc']}"
                        print(
                            f"  N={n} #{r + 1} {variant}: {run['wall']:.2f} s, {run['rss']:.0f} MiB, "
                            f"cpu {run['cpu']:.2f} s, machine {run['machine_cpu']:.1f} s, {state}",
                            file=sys.stderr,
                        )
                        if run["rc"] != 0:
                            print(run["tail"], file=sys.stderr)
                background[n].append(background_cores())
                print(f"N={n}: background load {background[n]} cores (before, after)", file=sys.stderr)
    report(results, sizes, variants, args, background)
    return 0 if all(run["rc"] == 0 for per in results.values() for runs in per.values() for run in runs) else 1


def _median(runs: list[dict], key: str) -> float | None:
    ok = [run[key] for run in runs if run["rc"] == 0]
    return statistics.median(ok) if ok else None


def report(results: dict, sizes: list[int], variants: list[str], args, background: dict) -> None:
    print(
        f"connector benchmark: light sshd hosts, {args.delay_ms:g} ms per direction, {args.repeat} repeats, "
        f"medians; {CPUS} CPUs; every command as typed (no --parallel)"
    )
    head = (
        f"{'N':>4}  {'run':<18} {'wall s':>7} {'x floor':>8} {'RSS MiB':>8} {'CPU s':>7} "
        f"{'CPU ms/host':>12} {'machine CPU s':>14} {'busy %':>7} {'failed':>7}"
    )
    print(head)
    for n in sizes:
        floor = _median(results[n][FLOOR], "wall")
        print(f"N={n}: background load before/after the runs: {' / '.join(f'{c:.2f}' for c in background[n])} cores")
        for variant in variants:
            runs = results[n][variant]
            failed = sum(1 for run in runs if run["rc"] != 0)
            wall = _median(runs, "wall")
            if wall is None:
                print(f"{n:>4}  {variant:<18} {'all runs failed':>40} {failed:>7}")
                continue
            rss, cpu, machine = (_median(runs, k) for k in ("rss", "cpu", "machine_cpu"))
            ratio = f"{wall / floor:.2f}" if floor else "-"
            busy = 100 * machine / (wall * CPUS)
            print(
                f"{n:>4}  {variant:<18} {wall:>7.2f} {ratio:>8} {rss:>8.0f} {cpu:>7.2f} {1000 * cpu / n:>12.1f} "
                f"{machine:>14.1f} {busy:>7.0f} {failed:>7}"
            )
        print()
    print("growth between successive N (marginal cost per added host):")
    print(f"{'N':>11}  {'run':<18} {'RSS MiB/host':>13} {'CPU ms/host':>12} {'wall ms/host':>13}")
    for prev, n in zip(sizes, sizes[1:], strict=False):
        for variant in variants:
            a, b = results[prev][variant], results[n][variant]
            cells = []
            for key, scale in (("rss", 1), ("cpu", 1000), ("wall", 1000)):
                lo, hi = _median(a, key), _median(b, key)
                cells.append("-" if lo is None or hi is None else f"{scale * (hi - lo) / (n - prev):.2f}")
            print(f"{prev:>5}->{n:<4}  {variant:<18} {cells[0]:>13} {cells[1]:>12} {cells[2]:>13}")
    keys = ("wall", "rss", "cpu", "machine_cpu", "rc")
    raw = {n: {v: [{k: run[k] for k in keys} for run in runs] for v, runs in per.items()} for n, per in results.items()}
    print("raw:", json.dumps({"runs": raw, "background_cores": background}))


if __name__ == "__main__":
    sys.exit(main())
