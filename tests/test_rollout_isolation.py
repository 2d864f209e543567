"""Rollout waves run on exactly their hosts, and the record tells what a dead host's deploy did.

The hosts are real SSH logins to the in-process asyncssh server (``tests/connector/sshserver.py``,
commands run for real on this machine), deployed by the real ``pyinfra`` CLI through
``fleetforge.rollout_wave``. Their names are hostile to ``pyinfra --limit``: hosts named like
groups (``wave1``, ``canary``) and ``db[1]``, a glob that matches ``db1``, not itself.
"""

import json
import tempfile
import textwrap
from pathlib import Path

import pytest

from fleetforge import rollout as ro
from fleetforge.gather import load_inventory
from fleetforge.hoststate import HostSnapshot
from fleetforge.paths import MANAGED_FILES
from fleetforge.settings import settings_from_data
from tests.connector.sshserver import DROP_MARKER, InProcessSSHServer

GROUPS = {
    "canary": ["wave1"],  # a host named like the next wave's group
    "wave1": ["web-1", "web-2"],
    "wave2": ["db[1]"],  # as a --limit pattern: matches db1, never db[1]
    "other": ["canary", "db1"],  # a host named like the canary group; no wave group: last wave "rest"
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = InProcessSSHServer(tmp_path_factory.mktemp("sshserver")).start()
    yield srv
    srv.stop()


def write_inventory(path, server, groups: dict[str, list[str]]) -> str:
    lines = ["from fleetforge.inventory import group"]
    for name, hosts in groups.items():
        entries = [(h, server.host_data()) for h in hosts]
        lines.append(f"{name} = group({entries!r}, {{'fleetforge_connector': 'asyncssh'}})")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_each_wave_deploys_exactly_its_hosts(server, tmp_path):
    inventory = write_inventory(tmp_path / "inventory.py", server, GROUPS)
    marker = tmp_path / "deployed"
    deploy = tmp_path / "deploy.py"
    deploy.write_text(
        textwrap.dedent(f"""
        from pyinfra import host
        from pyinfra.api import QuoteString, StringCommand
        from pyinfra.operations import server
        server.shell(name="mark", commands=[StringCommand("printf '%s\\\\n'", QuoteString(host.name), ">>", {str(marker)!r})])
        """)
    )
    _, hosts = load_inventory(inventory)
    waves = ro.group_waves({h.name: h.groups for h in hosts})
    assert [(w.name, w.hosts) for w in waves] == [
        ("canary", ("wave1",)),
        ("wave1", ("web-1", "web-2")),
        ("wave2", ("db[1]",)),
        ("rest", ("canary", "db1")),
    ]
    before = set(Path(tempfile.gettempdir()).glob("fleetforge-wave-*"))
    for wave in waves:
        marker.unlink(missing_ok=True)
        result = ro.run_deploy(inventory, str(deploy), wave.hosts, timeout=120)
        assert result.returncode == 0 and result.failed == {}, result.log_tail
        assert result.changed_ops == {h: ["mark"] for h in wave.hosts}  # pyinfra's JSON: these hosts ran
        assert sorted(marker.read_text().split("\n")[:-1]) == sorted(wave.hosts)  # and only these did
    assert set(Path(tempfile.gettempdir()).glob("fleetforge-wave-*")) == before  # each wave's private dir removed


def test_a_wave_host_missing_from_the_inventory_stops_before_any_connection(server, tmp_path):
    inventory = write_inventory(tmp_path / "inventory.py", server, {"canary": ["web-1"]})
    marker = tmp_path / "ran"
    deploy = tmp_path / "deploy.py"
    deploy.write_text(f"from pyinfra.operations import server\nserver.shell(commands=['touch {marker}'])\n")
    result = ro.run_deploy(inventory, str(deploy), ["web-*"], timeout=120)
    assert set(result.failed) == {"web-*"} and "not in the inventory" in result.failed["web-*"]
    assert "Connected" not in "\n".join(result.log_tail) and not marker.exists()


def snap() -> HostSnapshot:
    return HostSnapshot(
        host="solo", files=dict.fromkeys(MANAGED_FILES), backups=[], dirs=[], checks={}, sysctl={},
        disks={}, zram_device=False, generation=None, is_nixos=False,
    )  # fmt: skip


def test_a_host_dying_in_a_one_host_wave_is_recorded_truthfully(server, tmp_path, monkeypatch):
    """pyinfra stops with "No hosts remaining!" and no JSON: the record keeps the operations
    that changed the host before it died (from the event log), names the unfinished one, and
    the summary and exit code say that its rollback never ran.

    The snapshots are stand-ins (this server is the test machine itself, which must not be
    rolled back): before the deploy it is reachable, after it not."""
    inventory = write_inventory(tmp_path / "inventory.py", server, {"canary": ["solo"]})
    deploy = tmp_path / "deploy.py"
    deploy.write_text(
        textwrap.dedent(f"""
        from pyinfra.operations import files, server
        server.shell(name="first change", commands=["echo 1 > {tmp_path}/one"])
        files.put(name="second change", src={inventory!r}, dest="{tmp_path}/two")
        server.shell(name="host dies", commands=["echo {DROP_MARKER}; sleep 5"])
        server.shell(name="never runs", commands=["touch {tmp_path}/never"])
        """)
    )
    monkeypatch.setattr(ro.Rollout, "_pre", lambda self, n: (n, snap(), 0.1))
    monkeypatch.setattr(ro.Rollout, "_post", lambda self, n: (n, "HostUnreachable: connection refused", [], 0.1))
    targets = {"solo": ro.Target("solo", {}, settings_from_data("solo", {}))}
    record = ro.Rollout(inventory, str(deploy), [ro.Wave("canary", ("solo",))], targets).run()
    host = record["waves"][0]["host_results"]["solo"]
    assert record["waves"][0]["deploy"]["results_from"] == "event log"
    assert "No hosts remaining!" in record["waves"][0]["deploy"]["log_tail"][-1]
    assert host["operations_changed"] == ["first change", "second change"]
    assert host["operations_unfinished"] == ["host dies"]
    assert host["status"] == "not-rolled-back" and host["rollback"]["rolled_back"] is False
    assert "SSH connection lost" in host["reasons"][0]
    assert record["exit_code"] == 1 and record["outcome"] == "stopped"
    lines = ro.summary_lines(record)
    assert lines[-1] == (
        "NOT ROLLED BACK, state unknown, check by hand: solo (rollback not run: host unreachable after the deploy)"
    )
    assert "unfinished (may have changed it): host dies" in "\n".join(lines)
    assert not (tmp_path / "never").exists()
    json.dumps(record)


def test_the_wave_deploy_takes_the_snapshots_facts_instead_of_probing(server, tmp_path):
    """``run_deploy(facts=...)``: the wave process gets each host's pre-deploy facts (a file in
    its private directory, mode 0600, removed with it) and ``fleetforge.vps.gather`` returns them
    without a probe; a host without them is probed as usual."""
    from fleetforge.facts.models import HostFacts

    fixture = json.loads((Path(__file__).parent / "facts/probe.HostProbe/qemu-virtio-blk-vda-bios.json").read_text())
    facts = HostFacts.model_validate(fixture["fact"])
    inventory = write_inventory(tmp_path / "inventory.py", server, {"canary": ["web-1", "web-2"]})
    out = tmp_path / "seen"
    deploy = tmp_path / "deploy.py"
    deploy.write_text(
        textwrap.dedent(f"""
        from pyinfra import host
        from fleetforge import vps
        facts = vps.gather(vps.inventory_settings()[host.name])
        with open({str(out)!r}, "a") as f:
            f.write(f"{{host.name}} {{facts.os.hostname if facts else None}} {{facts.kernel_release if facts else None}}\\n")
        """)
    )
    result = ro.run_deploy(inventory, str(deploy), ["web-1", "web-2"], timeout=120, facts={"web-1": facts})
    assert result.returncode == 0, result.log_tail
    seen = dict(line.split(" ", 1) for line in out.read_text().splitlines())
    # handed over: the fixture's host, not this machine
    assert seen["web-1"] == f"{facts.os.hostname} {facts.kernel_release}"
    local = Path("/proc/sys/kernel/osrelease").read_text().strip()
    assert seen["web-2"].endswith(local) and seen["web-2"] != seen["web-1"]  # probed for real
