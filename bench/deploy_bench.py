"""Benchmark (not a test): wall time and SSH round trips of ``deploys/vps.py`` on the local
test hosts, first run and no-op re-run, against two peers measured in the same run:

- floor: what a no-op re-run cannot go below: per host, one new OpenSSH connection running
  the probe (connect + one round trip), all hosts in parallel;
- first-run floor: what a first run cannot go below: the floor, then on the same connection one
  command doing the host's own work of the plan, with none of fleetforge's safety: each file
  written by ``cat >`` (no temporary name, backup, checksum or fsync), then the same follow-ups
  (udev trigger and settle, ``sysctl -p``, ``systemctl daemon-reload`` and the zram units);
- stock pyinfra: the same files and sysctls pushed with pyinfra's own ``files.put`` and
  ``server.sysctl`` operations (``bench/stock_vps.py``), which ask the host for facts per file
  and per key.

    python bench/deploy_bench.py [--repeat 3]

Each repeat resets the VMs to their clean snapshot first (and again before each first run).
Prints medians, ratios to the floor, and the first run's ratio to the first-run floor.
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fleetforge.facts.probe import SCRIPT  # noqa: E402
from fleetforge.planner import sysctl_keys  # noqa: E402
from fleetforge.settings import HostSettings  # noqa: E402
from fleetforge.testbed import Testbed  # noqa: E402


def pyinfra_run(deploy: str) -> tuple[float, dict[str, dict[str, int]]]:
    """Run ``pyinfra -y inventory.py DEPLOY`` instrumented; returns (seconds, counts per host)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as counts:
        env = {**os.environ, "FLEETFORGE_COUNTS": counts.name}
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "bench/pyinfra_counted.py", "-y", "inventory.py", deploy],
            cwd=REPO, env=env, capture_output=True, text=True,
        )  # fmt: skip
        elapsed = time.perf_counter() - start
        if out.returncode != 0:
            raise SystemExit(f"{deploy} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        return elapsed, json.loads(Path(counts.name).read_text())


def floor(vms) -> float:
    """All hosts in parallel: one OpenSSH connection each, running the probe once."""
    probe = shlex.join(["sh", "-c", SCRIPT, "fleetforge-probe", *sysctl_keys(HostSettings())])

    def one(vm) -> None:
        subprocess.run(
            ["ssh", "-i", str(vm.ssh_key), "-p", str(vm.ssh_port), "-o", "BatchMode=yes",
             "-o", f"UserKnownHostsFile={vm.known_hosts}", "-o", "StrictHostKeyChecking=yes",
             f"{vm.ssh_user}@{vm.ssh_host}", probe],
            check=True, capture_output=True,
        )  # fmt: skip

    start = time.perf_counter()
    with ThreadPoolExecutor(len(vms)) as pool:
        list(pool.map(one, vms))
    return time.perf_counter() - start


def first_run_floor(vms) -> float:
    """All hosts in parallel, on clean VMs: one OpenSSH master per host, the probe, then one
    command writing the plan's files plainly and running the same follow-ups."""
    from fleetforge.components import COMPONENTS
    from fleetforge.components.base import raw
    from fleetforge.planner import plan_host
    from fleetforge.settings import settings_from_data
    from fleetforge.testbed import inventory_hosts
    from fleetforge.verify import probe_with, testinfra_host

    data = dict(inventory_hosts(running_only=True))

    def one(vm) -> None:
        settings = settings_from_data(vm.name, data[vm.name])
        host = testinfra_host(vm.name, data[vm.name])
        facts = probe_with(host, settings)  # connect + probe
        plan = plan_host(vm.name, facts, settings)
        script = ["set -e"]
        for component in COMPONENTS:
            content = component.file(plan, facts)
            if content is None or component.path is None:
                continue
            script.append(shlex.join(["mkdir", "-p", posixpath.dirname(component.path)]))
            script.append(f"printf %s {shlex.quote(content)} > {shlex.quote(component.path)}")
            script += raw(component.apply(plan, facts))
        out = host.run(shlex.join(["sh", "-c", "\n".join(script)]))
        if out.rc != 0:
            raise SystemExit(f"first-run floor on {vm.name} failed: {out.stderr[-2000:]}")

    start = time.perf_counter()
    with ThreadPoolExecutor(len(vms)) as pool:
        list(pool.map(one, vms))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    testbed = Testbed()
    vms = testbed.up()
    names = [vm.name for vm in vms]
    rows: dict[str, list[float]] = {
        "floor": [], "first-floor": [], "first": [], "noop": [], "stock-first": [], "stock-noop": []
    }  # fmt: skip
    counts: dict[str, dict] = {}
    for _ in range(args.repeat):
        for name in names:
            testbed.reset(name)
        rows["floor"].append(floor(vms))
        rows["first-floor"].append(first_run_floor(vms))
        for name in names:
            testbed.reset(name)
        rows["first"].append((r := pyinfra_run("deploys/vps.py"))[0])
        counts["first"] = r[1]
        rows["noop"].append((r := pyinfra_run("deploys/vps.py"))[0])
        counts["noop"] = r[1]
        for name in names:
            testbed.reset(name)
        rows["stock-first"].append((r := pyinfra_run("bench/stock_vps.py"))[0])
        counts["stock-first"] = r[1]
        rows["stock-noop"].append((r := pyinfra_run("bench/stock_vps.py"))[0])
        counts["stock-noop"] = r[1]

    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"deploy benchmark: {len(vms)} hosts ({', '.join(names)}), {args.repeat} repeats, medians")
    print(f"{'run':<22}{'wall s':>8}{'x floor':>9}   per host: commands / uploads / connections")
    for key, label in (("floor", "floor (ssh + probe)"), ("first-floor", "first-run floor"),
                       ("first", "fleetforge first run"),
                       ("noop", "fleetforge no-op"), ("stock-first", "stock pyinfra first"),
                       ("stock-noop", "stock pyinfra no-op")):  # fmt: skip
        per_host = ""
        if key in counts:
            per_host = "; ".join(
                f"{h}: {c.get('commands', 0)} / {c.get('uploads', 0)} / {c.get('connections', 0)}"
                for h, c in sorted(counts[key].items())
            )
        print(f"{label:<22}{med[key]:>8.2f}{med[key] / med['floor']:>9.2f}   {per_host}")
    print(f"first run: fleetforge {med['first']:.2f} s vs the first-run floor {med['first-floor']:.2f} s "
          f"(ratio {med['first'] / med['first-floor']:.2f})")  # fmt: skip
    print(f"no-op re-run: fleetforge {med['noop']:.2f} s vs stock pyinfra {med['stock-noop']:.2f} s "
          f"(ratio {med['noop'] / med['stock-noop']:.2f})")  # fmt: skip
    print("raw:", json.dumps({k: [round(x, 2) for x in v] for k, v in rows.items()}))


if __name__ == "__main__":
    main()
