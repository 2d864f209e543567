"""``fleetforge rollout --dry``: waves, hosts and each host's plan, nothing deployed. Driven through
pyinfra's ``@fake`` connector, which replays a probe output captured on a test VM and records
nothing else: the dry run must not get past probing."""

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import load_fixture

REPO = Path(__file__).resolve().parent.parent


def test_dry_run_prints_waves_in_order_and_plans_without_deploying(tmp_path):
    probe = json.dumps(load_fixture("qemu-virtio-blk-vda-bios")["output"])
    data = f"{{'fake_delay': 0, 'fake_responses': {{'fleetforge-probe': {probe}}}}}"
    inventory = tmp_path / "inventory.py"
    inventory.write_text(
        f"wave1 = [('@fake/vps-10', {data}), ('@fake/vps-2', {data})]\ncanary = [('@fake/vps-1', {data})]\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "fleetforge.cli", "rollout", str(inventory), "deploys/vps.py", "--dry", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["dry"] is True
    assert [(w["name"], w["hosts"]) for w in record["waves"]] == [
        ("canary", ["@fake/vps-1"]),
        ("wave1", ["@fake/vps-2", "@fake/vps-10"]),  # numbers compare as numbers
    ]
    assert record["plans"]["@fake/vps-10"]["disks"][0]["scheduler"]["value"] == "mq-deadline"
    assert "deploying" not in out.stdout + out.stderr


def test_dry_run_prints_hostile_host_names_as_text(tmp_path):
    """Host names with rich markup and emoji codes print as they are (no MarkupError, no
    style swallowed, no emoji), in the wave lines and in the plan tables' titles."""
    probe = json.dumps(load_fixture("qemu-virtio-blk-vda-bios")["output"])
    data = f"{{'fake_delay': 0, 'fake_responses': {{'fleetforge-probe': {probe}}}}}"
    names = ["@fake/web[/x]1", "@fake/db[bold]:fire:"]
    inventory = tmp_path / "inventory.py"
    inventory.write_text(f"canary = [({names[0]!r}, {data})]\nwave1 = [({names[1]!r}, {data})]\n")
    out = subprocess.run(
        [sys.executable, "-m", "fleetforge.cli", "rollout", str(inventory), "deploys/vps.py", "--dry"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"wave 1 canary: {names[0]} (may fail: 0 of 1)" in out.stdout
    assert f"wave 2 wave1: {names[1]} (may fail: 0 of 1)" in out.stdout
    assert f"{names[1]}: plan" in out.stdout and "\N{FIRE}" not in out.stdout
