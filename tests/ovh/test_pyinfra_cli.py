"""The real ``pyinfra`` CLI loading an ``inventory.py`` that uses ``ovh.inventory()`` against the
stand-in: the groups pyinfra sees, and a refused key as one line without a traceback."""

import json
import os
import subprocess
import sys
from pathlib import Path

from fleetforge.testbed import ovh_api
from tests.ovh.helpers import SERVER, STOPPED, VPS_1, VPS_2, VPS_3

PYINFRA = str(Path(sys.executable).parent / "pyinfra")
INVENTORY = """\
from fleetforge import ovh

fleet = ovh.inventory(
    group_data={
        "ssh_user": "debian",
        "_sudo": True,
        "fleetforge_connector": "asyncssh",
    }
)
ovh_all = fleet.all
globals().update(fleet.groups())
"""


def debug_inventory(api, tmp_path: Path, secret: str) -> subprocess.CompletedProcess:
    (tmp_path / "inventory.py").write_text(INVENTORY)
    env = dict(
        os.environ,
        OVH_ENDPOINT=api.endpoint,
        OVH_APPLICATION_KEY=ovh_api.APPLICATION_KEY,
        OVH_APPLICATION_SECRET=secret,
        OVH_CONSUMER_KEY=ovh_api.CONSUMER_KEY,
    )
    return subprocess.run(
        [PYINFRA, "inventory.py", "debug-inventory", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_pyinfra_sees_the_groups_and_host_data(standin, tmp_path):
    run = debug_inventory(standin, tmp_path, ovh_api.APPLICATION_SECRET)
    assert run.returncode == 0, run.stderr
    hosts = {host["name"]: host for host in json.loads(run.stdout)}
    assert {name: sorted(set(host["groups"]) - {"inventory"}) for name, host in hosts.items()} == {
        VPS_1: ["ovh_all", "ovh_dc_gra11", "ovh_model_vps_2025_model1"],
        VPS_2: ["ovh_all", "ovh_dc_gra11", "ovh_model_vps_2025_model2"],
        VPS_3: ["ovh_all", "ovh_dc_sbg5", "ovh_model_vps_2025_model1"],
        SERVER: ["ovh_all", "ovh_dc_rbx8", "ovh_model_rise_1"],
    }
    data = hosts[VPS_1]["data"]
    assert data["ssh_hostname"] == "203.0.113.11" and data["ssh_user"] == "debian"
    assert data["ovh_model"] == {"name": "vps-2025-model1", "vcores": 2, "memory_mib": 4096, "disk_gb": 80}
    assert f"fleetforge ovh: skipped {STOPPED}: state stopped" in run.stderr
    calls = standin.api_calls()  # one round for the whole run: each call once, none per host or group
    assert len(calls) == len(set(calls)) == 12


def test_pyinfra_prints_a_refused_key_as_one_line(standin, tmp_path):
    secret = "wrongSecret000000000000000000000"
    run = debug_inventory(standin, tmp_path, secret)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    (line,) = [line for line in run.stderr.splitlines() if "pyinfra error" in line]
    assert line.endswith(
        "GET /vps: the request signature was refused (400 INVALID_SIGNATURE: Invalid signature);"
        " the application secret does not belong to this application key: check OVH_APPLICATION_SECRET"
    )
    assert secret not in run.stderr + run.stdout
