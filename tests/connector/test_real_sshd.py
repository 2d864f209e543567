"""``@asyncssh`` against real OpenSSH ``sshd`` hosts, each in its own network namespace
(``fleetforge.testbed.sshd_hosts``): a whole ``pyinfra`` run where bad hosts (changed host key,
wrong client key, refused, silent) each fail with their reason while the good hosts finish and
the process exits; a pty; a host whose network goes away mid-command is dropped by keepalives.

The hosts share this machine's filesystem, so the deploys here only append to a test file.
"""

import errno
import io
import os
import signal
import subprocess
import sys
import textwrap
import time

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


@pytest.fixture
def small_mounts(fleet, tmp_path):
    """``full``: a 64 KiB tmpfs; ``ro``: a tmpfs mounted read-only; both mounted in the mount
    namespace of the GOOD host's sshd (``ip netns exec`` gave it its own), unmounted afterwards."""
    enter = ["nsenter", "--target", str(fleet.sshd_pid(GOOD)), "--mount"]
    mounts = {"full": (tmp_path / "full", "size=64k"), "ro": (tmp_path / "ro", "size=64k,ro")}
    for path, options in mounts.values():
        path.mkdir()
        subprocess.run([*enter, "mount", "-t", "tmpfs", "-o", options, "fleetforge-test", str(path)], check=True)
    yield {name: path for name, (path, _) in mounts.items()}
    for path, _ in mounts.values():
        subprocess.run([*enter, "umount", str(path)], check=True)


def test_a_failed_sftp_write_names_the_path_and_the_cause(fleet, small_mounts):
    """OpenSSH's sftp-server answers a full or read-only file system with a bare "Failure"
    (SFTP version 3): the error names the file and the errno-level cause, and a partly written
    file is removed."""
    full, ro = small_mounts["full"], small_mounts["ro"]
    state, host = _connect(fleet, GOOD)
    try:
        target = full / "60-fleetforge.conf.fleetforge-new"
        with pytest.raises(OSError) as too_big:
            host.put_file(io.BytesIO(os.urandom(200_000)), str(target))
        assert too_big.value.errno == errno.ENOSPC
        assert str(too_big.value) == (
            f"[Errno 28] SFTP write of {target} failed: No space left on device (0 bytes free on the file system of {full})"
        )
        assert host.run_shell_command(f"ls -A {full}")[1].stdout_lines == []  # the partial file is gone
        ok, out = host.run_shell_command(f"head -c 100000 /dev/urandom > {full}/filler")
        assert not ok and "No space left on device" in out.stderr  # full now: not one more byte fits
        with pytest.raises(OSError) as one_byte:
            host.put_file(io.BytesIO(b"x"), str(full / "tiny"))
        assert one_byte.value.errno == errno.ENOSPC and f"SFTP write of {full / 'tiny'} failed" in str(one_byte.value)
        with pytest.raises(OSError) as read_only:
            host.put_file(io.BytesIO(b"x"), str(ro / "sysctl.conf"))
        assert read_only.value.errno == errno.EROFS
        assert f"SFTP open of {ro / 'sysctl.conf'} failed: Read-only file system" in str(read_only.value)
        with pytest.raises(FileNotFoundError, match=f"SFTP open of {full}/no-dir/f failed: No such file"):
            host.put_file(io.BytesIO(b"x"), str(full / "no-dir" / "f"))
        with pytest.raises(FileNotFoundError, match=f"SFTP read of {full}/absent failed: No such file"):
            host.get_file(str(full / "absent"), io.BytesIO())
    finally:
        disconnect_all(state)


def _netns_pids(netns: str) -> list[int]:
    """Every process in network namespace ``netns`` (its sshd and the sessions' processes)."""
    want = os.stat(f"/run/netns/{netns}")
    pids = []
    for entry in os.listdir("/proc"):
        try:
            st = os.stat(f"/proc/{entry}/ns/net") if entry.isdigit() else None
        except OSError:
            continue
        if st is not None and (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
            pids.append(int(entry))
    return pids


def test_a_frozen_host_is_dropped_count_plus_one_intervals_after_its_last_data(fleet):
    """asyncssh sends a keepalive after each ``ssh_keepalive_interval`` without data from the
    host and drops the connection at the first interval after ``ssh_keepalive_count_max`` of
    them went unanswered: (count + 1) x interval after the last data (README, connector
    docstring). Measured on a host whose processes are all stopped (SIGSTOP) while its command
    is sending output every 0.05 s: 1 s x (2 + 1) = 3 s, not interval x count = 2 s."""
    interval, count = 1, 2
    state, host = _connect(fleet, GOOD, ssh_keepalive_interval=interval, ssh_keepalive_count_max=count)
    waiter = gevent.spawn(host.run_shell_command, "while :; do echo tick; sleep 0.05; done")
    gevent.sleep(1)
    pids = _netns_pids(fleet.netns(GOOD))
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    frozen = time.monotonic()
    try:
        waiter.join(timeout=30)
        dropped = time.monotonic() - frozen
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    assert waiter.ready(), "the command still waits on a frozen host"
    assert isinstance(waiter.exception, ConnectionError) and "not responding to keepalive" in str(waiter.exception)
    assert (count + 1) * interval - 0.2 <= dropped <= (count + 1) * interval + 1.0, dropped
    disconnect_all(state)
