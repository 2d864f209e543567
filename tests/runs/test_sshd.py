"""Records of real runs against real OpenSSH ``sshd`` hosts, each in its own network namespace
(``fleetforge.testbed.sshd_hosts``; they share this machine's kernel and files, so a deploy here
is ``--dry`` or only touches a test file): ``fleetforge verify --record`` as the drift timer runs
it, ``fleetforge probe``, ``pyinfra`` with ``deploys/vps.py --dry`` and with a deploy that runs,
and a rollout wave's pyinfra process, which records nothing of its own. One host is down."""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fleetforge import rollout as ro
from fleetforge.testbed.sshd_hosts import SshdFleet
from tests.runs.conftest import runs_in

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
UP, DOWN = 0, 1


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    with SshdFleet(tmp_path_factory.mktemp("fleet"), 2, prefix="ffrun", subnet="10.98.83.0/24") as f:
        f.kill(DOWN)
        yield f
        f.restart(DOWN)


def inventory(fleet: SshdFleet, directory: Path) -> str:
    directory.mkdir(exist_ok=True)
    path = directory / "inventory.py"
    path.write_text(
        "from fleetforge.inventory import group\n"
        f"hosts = group({fleet.inventory_entries()!r}, {{'fleetforge_connector': 'asyncssh'}})\n"
    )
    return str(path)


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_verify_record_as_the_drift_timer_runs_it(fleet, tmp_path):
    inv = inventory(fleet, tmp_path)
    out = run(str(BIN / "fleetforge"), "verify", inv, "--record")
    assert out.returncode in (1, 2), out.stderr  # the down host fails the run
    (record,) = runs_in(tmp_path)
    assert record.command == "verify" and record.exit_code == out.returncode
    up, down = (h.name for h in fleet.hosts)
    hosts = {h.host: h for h in record.hosts}
    passed, total = map(int, re.search(rf"^{up}: (\d+)/(\d+) checks passed$", out.stdout, re.M).groups())
    assert len(hosts[up].checks) == total and sum(c.severity == "ok" for c in hosts[up].checks) == passed
    assert hosts[up].hardware.logical_cpus == os.cpu_count() and hosts[up].hardware.kernel == os.uname().release
    assert hosts[up].plan["host"] == up and hosts[up].status in ("ok", "warn", "failed")
    assert hosts[down].status == "unreachable"
    assert hosts[down].error == f"ssh failed: ssh: connect to host {fleet.address(DOWN)} port 22: Connection refused"
    assert {(p.name, p.host) for p in record.phases} == {("verify", up), ("verify", down)}


def test_probe_records_each_hosts_connect(fleet, tmp_path):
    inv = inventory(fleet, tmp_path)
    out = run(str(BIN / "fleetforge"), "probe", inv)
    assert out.returncode == 1, out.stderr
    (record,) = runs_in(tmp_path)
    up, down = (h.name for h in fleet.hosts)
    hosts = {h.host: h for h in record.hosts}
    assert (hosts[up].status, hosts[down].status) == ("ok", "unreachable")
    assert hosts[down].error == f"could not connect: Connection refused ({fleet.address(DOWN)}:22)"
    connect = {p.host: p for p in record.phases if p.name == "connect"}
    assert (connect[up].status, connect[down].status) == ("ok", "failed")
    assert record.started_at <= connect[up].started_at <= connect[up].ended_at <= record.ended_at


def test_a_dry_tuning_deploy_records_hardware_and_plan(fleet, tmp_path):
    inv = inventory(fleet, tmp_path)
    out = run(str(BIN / "pyinfra"), "-y", "--dry", inv, "deploys/vps.py")
    assert out.returncode == 1, out.stderr[-3000:]  # the down host
    (record,) = runs_in(tmp_path)
    up, down = (h.name for h in fleet.hosts)
    hosts = {h.host: h for h in record.hosts}
    assert record.dry and record.exit_code == 1 and record.target == "deploys/vps.py"
    assert hosts[up].status == "ok" and hosts[up].hardware.logical_cpus == os.cpu_count()
    assert hosts[up].plan["host"] == up and len(hosts[up].facts_digest) == 64
    assert hosts[down].status == "unreachable"


DEPLOY = """
from fleetforge.runs.pyinfra_hook import recorded
from pyinfra.operations import server

with recorded():
    server.shell(name="mark the host", commands=["sleep 0.2; echo x >> {marker}"])
"""


def test_an_executed_deploy_and_a_rollout_waves_deploy(fleet, tmp_path):
    """The same deploy file: run by ``pyinfra``, a deploy record; run as a rollout wave
    (``fleetforge.rollout_wave``), no record of its own (the rollout records it)."""
    deploy = tmp_path / "deploy.py"
    marker = tmp_path / "marker"
    deploy.write_text(textwrap.dedent(DEPLOY.format(marker=marker)))
    up, down = (h.name for h in fleet.hosts)

    plain = inventory(fleet, tmp_path / "plain")
    out = run(str(BIN / "pyinfra"), "-y", "--fail-percent", "100", plain, str(deploy))
    assert out.returncode == 1, out.stderr[-3000:]
    (record,) = runs_in(tmp_path / "plain")
    hosts = {h.host: h for h in record.hosts}
    assert (record.exit_code, hosts[up].status, hosts[up].changed) == (1, "changed", ["mark the host"])
    assert hosts[down].status == "unreachable"
    (deployed,) = [p for p in record.phases if p.name == "deploy"]
    assert deployed.host == up and deployed.status == "ok" and deployed.seconds >= 0.2

    wave = inventory(fleet, tmp_path / "wave")
    result = ro.run_deploy(wave, str(deploy), [up], timeout=120)
    assert result.returncode == 0 and result.changed_ops == {up: ["mark the host"]}, result.log_tail
    assert marker.read_text() == "x\nx\n"  # both runs ran the deploy
    assert not list((tmp_path / "wave").glob("fleetforge-runs*"))
