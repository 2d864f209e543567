"""``@asyncssh`` against real OpenSSH ``sshd`` hosts, each in its own network namespace
(``fleetforge.testbed.sshd_hosts``): a whole ``pyinfra`` run where bad hosts (changed host key,
wrong client key, refused, silent) each fail with their reason while the good hosts finish and
the process exits; a pty; a host whose network goes away mid-command is dropped by keepalives.

The hosts share this machine's filesystem, so the deploys here only append to a test file.
"""

import subprocess
import sys
import textwrap

import gevent
import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all, disconnect_all

from fleetforge.testbed.sshd_hosts import SshdFleet

GOOD, REKEYED, STALLED, KILLED, WRONG_KEY = range(5)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    with SshdFleet(tmp_path_factory.mktemp("fleet"), 5, prefix="ffc", subnet="10.98.3.0/24") as f:
        yield f


def test_a_pyinfra_run_reports_each_bad_host_and_finishes_the_good_one(fleet, tmp_path):
    other_key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    fleet.rekey(REKEYED)
    fleet.stall(STALLED)
    fleet.kill(KILLED)
    try:
        hosts = []
        for i, h in enumerate(fleet.hosts):
            data = {**h.ssh_data(), "ssh_connect_timeout": 3}
            if i == WRONG_KEY:
                data["ssh_key"] = str(other_key)
            hosts.append((h.name, data))
        inventory = tmp_path / "inventory.py"
        inventory.write_text(
            "from fleetforge.inventory import group\n"
            f"hosts = group({hosts!r}, {{'fleetforge_connector': 'asyncssh'}})\n"
        )
        seen = tmp_path / "seen"
        deploy = tmp_path / "deploy.py"
        deploy.write_text(
            textwrap.dedent(f"""
            from pyinfra.operations import server
            server.shell(name="record", commands=["ip -4 -o addr show dev eth0 | awk '{{print $4}}' >> {seen}"])
            """)
        )
        run = subprocess.run(
            [sys.executable, "-m", "pyinfra", "-y", "--fail-percent", "100", str(inventory), str(deploy)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        fleet.resume(STALLED)
        fleet.restart(KILLED)
    log = run.stdout + run.stderr
    assert run.returncode == 1, log  # pyinfra's exit code when some host failed
    assert seen.read_text().split() == [f"{fleet.address(GOOD)}/24"]
    lines = {h.name: next((line for line in log.splitlines() if f"[{h.name}]" in line), "") for h in fleet.hosts}
    assert "Connected" in lines[fleet.hosts[GOOD].name]
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in lines[fleet.hosts[REKEYED].name]
    assert "Connect timed out after 3 s" in lines[fleet.hosts[STALLED].name]
    assert "Connection refused" in lines[fleet.hosts[KILLED].name]
    assert "Authentication failed" in lines[fleet.hosts[WRONG_KEY].name]


def _connect(fleet, index, **extra):
    host = fleet.hosts[index]
    inventory = Inventory(([(f"@asyncssh/{host.name}", {**host.ssh_data(), **extra})], {}))
    state = State(inventory, Config(CONNECT_TIMEOUT=5))
    connect_all(state)
    return state, inventory.get_host(host.name)


def test_a_pty_is_allocated_when_asked_for(fleet):
    state, host = _connect(fleet, GOOD)
    ok, out = host.run_shell_command("tty", _get_pty=True)
    assert ok and out.stdout_lines[0].startswith("/dev/pts/")
    ok, out = host.run_shell_command("tty")
    assert not ok and out.stdout_lines == ["not a tty"]
    disconnect_all(state)


def test_a_host_that_vanishes_mid_command_is_dropped_by_keepalives(fleet):
    """The host's network goes down during ``sleep 120`` (no ``_timeout``): keepalives every
    second, two unanswered, drop the connection, and the command fails with ConnectionError
    instead of waiting for the sleep."""
    state, host = _connect(fleet, GOOD, ssh_keepalive_interval=1, ssh_keepalive_count_max=2)
    waiter = gevent.spawn(host.run_shell_command, "sleep 120")
    gevent.sleep(0.5)
    subprocess.run(["ip", "-n", fleet.netns(GOOD), "link", "set", "eth0", "down"], check=True)
    try:
        waiter.join(timeout=60)
    finally:
        subprocess.run(["ip", "-n", fleet.netns(GOOD), "link", "set", "eth0", "up"], check=True)
    assert waiter.ready(), "the command still waits on a host that is gone"
    assert isinstance(waiter.exception, ConnectionError)
    disconnect_all(state)
