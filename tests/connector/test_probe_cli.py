"""``fleetforge probe`` on real sshd hosts (network namespaces sharing this machine's kernel):
every host answers with this machine's facts, in JSON and as a table, and a host that is down
is reported by name with its reason while the others are probed."""

import json
import os

import pytest

from fleetforge.testbed.sshd_hosts import SshdFleet
from tests.e2e import helpers

DOWN = 3


@pytest.fixture(scope="module")
def fleet_inventory(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    with SshdFleet(root / "fleet", 4, prefix="ffp", subnet="10.98.2.0/24") as fleet:
        inventory = root / "inventory.py"
        inventory.write_text(
            "from fleetforge.inventory import group\n"
            f"hosts = group({fleet.inventory_entries()!r}, {{'fleetforge_connector': 'asyncssh'}})\n"
        )
        fleet.kill(DOWN)
        yield fleet, inventory
        fleet.restart(DOWN)


def test_probe_json_has_every_hosts_facts_and_the_down_hosts_reason(fleet_inventory):
    fleet, inventory = fleet_inventory
    run = helpers.run("fleetforge", "probe", str(inventory), "--parallel", "2", "--json", timeout=120)
    assert run.returncode == 1, run.stderr  # one host is down
    out = json.loads(run.stdout)
    names = [h.name for h in fleet.hosts]
    assert list(out) == names
    for name in names[:DOWN]:
        assert out[name]["kernel_release"] == os.uname().release  # the namespaces share this kernel
        assert out[name]["cpu"]["logical_cpus"] == os.cpu_count()
    assert out[names[DOWN]] == {"error": f"could not connect: Connection refused ({fleet.address(DOWN)}:22)"}


def test_probe_table_names_each_host(fleet_inventory):
    fleet, inventory = fleet_inventory
    run = helpers.run("fleetforge", "probe", str(inventory), timeout=120)
    assert run.returncode == 1
    assert f"probe: {DOWN}/{DOWN + 1} hosts answered" in run.stdout
    for h in fleet.hosts:
        assert h.name in run.stdout
    assert "Connection refused" in run.stdout
