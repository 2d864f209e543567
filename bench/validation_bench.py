"""Benchmark (not a test): validating a large inventory's host data, before any host is contacted.

For each size N it generates an ``inventory.py`` of N hosts (built with
``fleetforge.inventory.group``, a few fleetforge keys each), once valid and once with one bad
key on the middle host, and runs, as users type them:

- ``pyinfra -y INV deploys/vps.py``: with the bad key the run must stop with one error line
  naming host and key and contact nothing; the valid one is run with ``--limit`` matching no host,
  so it validates everything, connects to nothing and ends;
- ``fleetforge plan INV --limit nomatch``: the same on fleetforge's own CLI (exit 3 when bad);
- peer: stock pyinfra loading the same hosts from a plain inventory (no fleetforge import, so
  without fleetforge's validation and without its fixes to pyinfra's quadratic inventory
  building): ``pyinfra -y PLAIN exec --limit nomatch -- true``.

Every host points at 127.0.0.1 port 9 (discard), so a host that was contacted would show up as a
connection error in the output; the script checks that none was.

    python bench/validation_bench.py [--sizes 1000,5000,10000] [--repeat 3] [--no-peer]

Prints the median wall time and the peak RSS (the child process's ``ru_maxrss``) per size and
path, per-host figures, and the ratio to the peer.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

HOST = "(f'vps-{i}', {'ssh_hostname': '127.0.0.1', 'ssh_port': 9, 'zram_size': '2G', 'io_scheduler': 'none'})"


def write_inventories(root: Path, n: int) -> dict[str, Path]:
    """``{"valid": path, "bad": path, "plain": path}`` for N hosts."""
    head = f"hosts = [{HOST} for i in range({n})]\n"
    grouped = "from fleetforge.inventory import group\n" + head
    paths = {
        "valid": grouped + "fleet = group(hosts, {'ssh_user': 'debian'})\n",
        "bad": grouped + f"hosts[{n // 2}][1]['zram_sise'] = '1G'\nfleet = group(hosts, {{'ssh_user': 'debian'}})\n",
        "plain": head + "fleet = (hosts, {'ssh_user': 'debian'})\n",
    }
    out = {}
    for name, text in paths.items():
        out[name] = root / f"{name}_{n}.py"
        out[name].write_text(text)
    return out


def measure(argv: list[str], cwd: Path) -> tuple[float, float, int, str]:
    """Run ``argv``; returns (seconds, peak RSS in MiB, exit code, output)."""
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        return seconds, usage.ru_maxrss / 1024, proc.returncode, out.read()


def check(path: str, variant: str, code: int, output: str, n: int) -> None:
    """Fail loudly if a run did not do what the figures claim."""
    contacted = "Connection refused" in output or "Could not connect" in output or "Connected" in output
    if contacted:
        raise SystemExit(f"{path} {variant} N={n}: a host was contacted:\n{output[-2000:]}")
    if variant == "bad":
        bad_line = f"host vps-{n // 2}: zram_sise: unknown key"
        if bad_line not in output or output.count("host vps-") != 1:
            raise SystemExit(f"{path} {variant} N={n}: expected exactly one error line:\n{output[-2000:]}")
        if code == 0:
            raise SystemExit(f"{path} {variant} N={n}: exit 0 with a bad key")
    elif code not in (0,) and path != "peer":
        raise SystemExit(f"{path} {variant} N={n}: exit {code}:\n{output[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-peer", action="store_true", help="skip stock pyinfra (quadratic: slow at 10,000)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    deploy = str(REPO / "deploys" / "vps.py")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in sizes:
            inv = write_inventories(root, n)
            runs = {
                ("pyinfra", "bad"): ["pyinfra", "-y", str(inv["bad"]), deploy],
                ("pyinfra", "valid"): ["pyinfra", "-y", str(inv["valid"]), deploy, "--limit", "nomatch"],
                ("fleetforge", "bad"): ["fleetforge", "plan", str(inv["bad"]), "--limit", "nomatch"],
                ("fleetforge", "valid"): ["fleetforge", "plan", str(inv["valid"]), "--limit", "nomatch"],
            }
            if not args.no_peer:
                plain = str(inv["plain"])
                runs[("peer", "valid")] = ["pyinfra", "-y", plain, "exec", "--limit", "nomatch", "--", "true"]
            samples: dict[tuple[str, str], list[tuple[float, float]]] = {key: [] for key in runs}
            for _ in range(args.repeat):  # interleaved, so drift hits every path alike
                for key, argv in runs.items():
                    seconds, rss, code, output = measure(argv, root)
                    check(key[0], key[1], code, output, n)
                    samples[key].append((seconds, rss))
            for key, values in samples.items():
                rows.append((n, *key, statistics.median(s for s, _ in values), max(r for _, r in values)))
            print(f"N={n} done", file=sys.stderr)
    peer = {n: s for n, path, variant, s, _ in rows if path == "peer"}
    print(f"{'N':>6} {'path':<10} {'data':<6} {'median s':>9} {'ms/host':>8} {'peak MiB':>9} {'vs peer':>8}")
    for n, path, variant, seconds, rss in rows:
        ratio = f"{seconds / peer[n]:.2f}x" if n in peer and path != "peer" else "-"
        print(f"{n:>6} {path:<10} {variant:<6} {seconds:>9.2f} {seconds / n * 1000:>8.3f} {rss:>9.0f} {ratio:>8}")


if __name__ == "__main__":
    main()
