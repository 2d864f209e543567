"""A host whose probe output cannot be parsed fails alone: pyinfra's real fact machinery,
driven through ``fleetforge.gather`` and the pyinfra CLI, with the ``@fake`` connector
replaying a captured real output for one host and a corrupted one for the other."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import load_fixture

REPO = Path(__file__).resolve().parent.parent


def write_inventory(tmp_path: Path, extra: str = "") -> Path:
    good = load_fixture("controller-docker-vda")["output"]
    bad = [line.replace("{", "[", 1) for line in good]  # lsblk JSON broken
    inventory = tmp_path / "inventory.py"
    inventory.write_text(
        textwrap.dedent(
            f"""
            fleet = [
                ("@fake/good", {{"fake_delay": 0, "fake_responses": {{"fleetforge-probe": {json.dumps(good)}}}{extra}}}),
                ("@fake/bad", {{"fake_delay": 0, "fake_responses": {{"fleetforge-probe": {json.dumps(bad)}}}}}),
            ]
            """
        )
    )
    return inventory


def test_gather_reports_bad_host_and_keeps_good_one(tmp_path):
    code = f"""
from fleetforge.cli import main  # applies gevent's monkey patching first
from fleetforge.gather import load_inventory, probe
state, hosts = load_inventory({str(write_inventory(tmp_path))!r})
results = probe(state, hosts)
print({{k: type(v).__name__ if not isinstance(v, str) else v for k, v in results.items()}})
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "'@fake/good': 'HostFacts'" in out.stdout
    assert "'@fake/bad': 'HostProbe failed" in out.stdout


def test_pyinfra_deploy_plans_good_host_despite_bad_one(tmp_path):
    out = subprocess.run(
        ["pyinfra", "-y", "--dry", "--fail-percent", "100", str(write_inventory(tmp_path)), "deploys/vps.py"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    text = out.stdout + out.stderr
    assert out.returncode == 1, text  # pyinfra reports the failed host in its exit code...
    assert "[@fake/good] plan: vda mq-deadline/ra 4096" in text  # ...but the good host was still planned
    assert "[@fake/good] Ready: deploys/vps.py" in text
    assert "could not process fact" in text and "@fake/bad" in text


def test_bad_host_data_stops_before_any_host_is_contacted(tmp_path):
    inventory = write_inventory(tmp_path, extra=', "zram_size": "lots"')
    out = subprocess.run(
        ["pyinfra", "-y", str(inventory), "deploys/vps.py"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "host @fake/good: zram_size: expected a size like" in text
    assert "Traceback" not in text
    assert "Beginning operation run" not in text
