"""Benchmark (not a test): what a rollout costs over a plain deploy and verify of the same hosts,
on the local test VMs, first run (each run starts from the VMs' clean snapshot).

- ``deploy + verify``: ``pyinfra -y inventory.py deploys/vps.py`` then ``fleetforge verify
  inventory.py``, as a user types them;
- ``rollout, one wave``: ``fleetforge rollout inventory.py deploys/vps.py --serial 100%``: the
  pre-deploy snapshot, the same deploy (one pyinfra process for the wave), verification of the
  plan against the live hosts, health checks, the gate.

    python bench/rollout_bench.py [--repeat 3]

The two alternate which goes first per repeat. Prints medians, the ratio, and the rollout's own
phase timings (from its record) so the overhead is attributed.
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

from fleetforge.testbed import Testbed  # noqa: E402


def timed(*argv: str) -> float:
    """Run ``argv`` from the repo root; returns wall seconds. Exits on failure."""
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    start = time.perf_counter()
    out = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    testbed = Testbed()
    names = [vm.name for vm in testbed.up()]
    rows: dict[str, list[float]] = {"deploy": [], "verify": [], "deploy + verify": [], "rollout": []}
    phases: dict[str, list[float]] = {}

    def reset() -> None:
        for name in names:
            testbed.reset(name)

    def plain() -> None:
        reset()
        deploy = timed(str(BIN / "pyinfra"), "-y", "inventory.py", "deploys/vps.py")
        verify = timed(str(BIN / "fleetforge"), "verify", "inventory.py")
        rows["deploy"].append(deploy)
        rows["verify"].append(verify)
        rows["deploy + verify"].append(deploy + verify)

    def rollout() -> None:
        reset()
        with tempfile.TemporaryDirectory() as tmp:
            record = Path(tmp) / "record.json"
            argv = ["rollout", "inventory.py", "deploys/vps.py", "--serial", "100%", "--record", str(record)]
            rows["rollout"].append(timed(str(BIN / "fleetforge"), *argv))
            (wave,) = json.loads(record.read_text())["waves"]
        for phase, seconds in wave["timings_s"].items():
            phases.setdefault(phase, []).append(seconds)

    for r in range(args.repeat):
        for step in (plain, rollout) if r % 2 == 0 else (rollout, plain):
            step()
        print(f"  repeat {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in rows.items()), file=sys.stderr)

    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"rollout benchmark: {len(names)} hosts ({', '.join(names)}), one wave, {args.repeat} repeats, medians")
    for key, value in med.items():
        print(f"  {key:<18}{value:>8.2f} s")
    print(f"  rollout / (deploy + verify) = {med['rollout'] / med['deploy + verify']:.2f}")
    print("  rollout phases (its record): " + ", ".join(f"{k} {statistics.median(v):.2f} s" for k, v in phases.items()))
    print("raw:", json.dumps({k: [round(x, 2) for x in v] for k, v in {**rows, **phases}.items()}))


if __name__ == "__main__":
    main()
