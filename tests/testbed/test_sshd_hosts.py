"""Tests of the light SSH hosts (real sshd in network namespaces) and the delay proxy.

Needs root, iproute2 and openssh-server; takes a few seconds. Prefixes ``fft*`` on 10.98.x.0/24,
so a benchmark fleet (default ``ffl`` on 10.99.0.0/24) can run at the same time.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetforge.testbed import sshd_hosts
from fleetforge.testbed.errors import MissingPrerequisiteError
from fleetforge.testbed.ssh import run_ssh
from fleetforge.testbed.sshd_hosts import LightHost, SshdFleet, SshdFleetError, fleet_leftovers

PREFIX = "fft"
SUBNET = "10.98.7.0/24"


def _ssh(host: LightHost, command: str, connect_timeout: float = 5) -> subprocess.CompletedProcess[str]:
    return run_ssh(host.ssh_target(), command, timeout=30, connect_timeout=connect_timeout)


def _timed_true(host: LightHost, tries: int = 3) -> float:
    """Fastest of ``tries`` ssh connect + ``true``, seconds."""
    best = float("inf")
    for _ in range(tries):
        t = time.monotonic()
        assert _ssh(host, "true").returncode == 0
        best = min(best, time.monotonic() - t)
    return best


def _nothing_left(prefix: str) -> bool:
    return not any(fleet_leftovers(prefix).values())


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdFleet]:
    with SshdFleet(tmp_path_factory.mktemp("fleet"), 3, prefix=PREFIX, subnet=SUBNET) as f:
        yield f


# ---------------------------------------------------------------------------- no root needed


def test_missing_program_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sshd_hosts, "find_program", lambda name: None if name == "sshd" else f"/usr/bin/{name}")
    with pytest.raises(MissingPrerequisiteError, match=r"sshd \(Debian package openssh-server\)"):
        sshd_hosts.check_sshd_requirements()


@pytest.mark.parametrize(
    "kwargs",
    [{"prefix": "Bad-prefix"}, {"prefix": "toolongprefix"}, {"subnet": "fd00::/64"}, {"delay_ms": -1}],
)
def test_bad_arguments_are_refused(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(SshdFleetError):
        SshdFleet(tmp_path, 2, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(SshdFleetError, match="count"):
        SshdFleet(tmp_path, 254, subnet="10.98.7.0/24")


def test_delay_proxy_delays_each_direction_and_keeps_order() -> None:
    srv = socket.create_server(("127.0.0.1", 0))

    def echo() -> None:
        conn, _ = srv.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    threading.Thread(target=echo, daemon=True).start()
    argv = [sys.executable, "-m", "fleetforge.testbed.delay_proxy", "--delay-ms", "50", "--watch-stdin"]
    proxy = subprocess.Popen(
        [*argv, f"127.0.0.1:{srv.getsockname()[1]}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert proxy.stdout
        (port,) = json.loads(proxy.stdout.readline())["ports"]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            start = time.monotonic()
            for i in range(10):  # 10 chunks in 20 ms: delayed, not serialized (not 10 x 100 ms)
                c.sendall(b"<%d>" % i)
                time.sleep(0.002)
            got = b""
            while len(got) < 30:
                got += c.recv(100)
            elapsed = time.monotonic() - start
            c.shutdown(socket.SHUT_WR)
            assert c.recv(10) == b""  # half-close forwarded both ways
        assert got == b"".join(b"<%d>" % i for i in range(10))
        assert 0.1 <= elapsed < 0.4
    finally:
        assert proxy.stdin
        proxy.stdin.close()  # --watch-stdin: EOF ends the proxy
        assert proxy.wait(timeout=5) == 0
        srv.close()


# ---------------------------------------------------------------------------- real hosts


def test_each_host_is_its_own_namespace_with_its_own_key(fleet: SshdFleet) -> None:
    for i, host in enumerate(fleet.hosts):
        assert host.address == f"10.98.7.{i + 2}" and host.name == f"fft-{i}"
        assert host.ssh_data() == {
            "ssh_hostname": host.address,
            "ssh_port": 22,
            "ssh_user": "root",
            "ssh_key": str(fleet.key),
            "ssh_known_hosts_file": str(fleet.known_hosts),
            "ssh_strict_host_key_checking": "yes",
        }
        p = _ssh(host, "ip -4 -o addr show; echo SHLVL=$SHLVL; type pyenv >/dev/null 2>&1 || echo no-bashrc")
        assert p.returncode == 0, p.stderr
        assert f"inet {host.address}/24" in p.stdout
        assert "192.0.2." not in p.stdout and "10.98.7.1/" not in p.stdout  # not the root namespace
        assert "no-bashrc" in p.stdout, "root's ~/.bashrc ran: SetEnv SHLVL=1 not applied"
    keys = [line.split()[2] for line in fleet.known_hosts.read_text().splitlines()]
    assert len(keys) == 3 and len(set(keys)) == 3


def test_pyinfra_connects_with_inventory_entries(fleet: SshdFleet, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.py"
    inventory.write_text(f"hosts = {fleet.inventory_entries()!r}\n")
    pyinfra = Path(sys.executable).with_name("pyinfra")
    argv = [str(pyinfra), str(inventory), "exec", "-y", "--", "ip -4 -o addr show dev eth0"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    out = p.stdout + p.stderr  # pyinfra logs to stderr
    assert p.returncode == 0, out
    for host in fleet.hosts:
        assert f"[{host.name}] 2: eth0    inet {host.address}/24" in out


def test_stalled_host_times_out_then_resumes(fleet: SshdFleet) -> None:
    fleet.stall(1)
    try:
        start = time.monotonic()
        p = _ssh(fleet.hosts[1], "true", connect_timeout=2)
        elapsed = time.monotonic() - start
        assert p.returncode == 255
        assert "timed out" in p.stderr
        assert 1.5 <= elapsed < 6
    finally:
        fleet.resume(1)
    assert _ssh(fleet.hosts[1], "true").returncode == 0


def test_killed_host_refuses_then_restarts(fleet: SshdFleet) -> None:
    fleet.kill(2)
    try:
        p = _ssh(fleet.hosts[2], "true")
        assert p.returncode == 255
        assert "Connection refused" in p.stderr
    finally:
        fleet.restart(2)
    assert _ssh(fleet.hosts[2], "true").returncode == 0


def test_rekeyed_host_fails_strict_host_key_checking(tmp_path: Path) -> None:
    with SshdFleet(tmp_path, 1, prefix="fftk", subnet="10.98.5.0/24") as f:
        assert _ssh(f.hosts[0], "true").returncode == 0
        f.rekey(0)
        p = _ssh(f.hosts[0], "true")
        assert p.returncode == 255
        assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in p.stderr


def test_delay_proxy_adds_latency(fleet: SshdFleet, tmp_path: Path) -> None:
    delay_ms = 25
    direct = _timed_true(fleet.hosts[0])
    with SshdFleet(tmp_path, 2, prefix="fftd", subnet="10.98.6.0/24", delay_ms=delay_ms) as f:
        host = f.hosts[1]
        assert host.connect_host == "127.0.0.1" and host.connect_port != 22
        assert host.ssh_data()["ssh_port"] == host.connect_port
        assert f"[127.0.0.1]:{host.connect_port} ssh-ed25519 " in f.known_hosts.read_text()
        delayed = _timed_true(host)
    # An SSH login + command takes about 6 round trips: expect about 12 x delay, require 4 x.
    assert delayed - direct >= 4 * delay_ms / 1000, (direct, delayed)
    assert _nothing_left("fftd")


def test_stop_cleans_up_after_a_crashed_run_and_a_failed_start(tmp_path: Path) -> None:
    crashed = SshdFleet(tmp_path / "a", 2, prefix="fftc", subnet="10.98.4.0/24", delay_ms=1).start()
    old_pids = [crashed.sshd_pid(0), crashed.sshd_pid(1)]
    assert crashed._proxy is not None
    old_pids.append(crashed._proxy.pid)
    # A new run with the same prefix, without stop() of the first: it takes over.
    fleet = SshdFleet(tmp_path / "b", 2, prefix="fftc", subnet="10.98.4.0/24")
    with fleet:
        assert all(not sshd_hosts._alive(pid) for pid in old_pids)
        assert _ssh(fleet.hosts[1], "true").returncode == 0
        new_pid = fleet.sshd_pid(0)
    assert _nothing_left("fftc") and not sshd_hosts._alive(new_pid)
    crashed.stop()  # reaps its dead children; nothing else to do

    failing = SshdFleet(tmp_path / "c", 2, prefix="fftc", subnet="10.98.4.0/24", delay_ms=5)

    def broken_proxy() -> None:
        raise RuntimeError("proxy failed")

    failing._start_proxy = broken_proxy  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="proxy failed"):
        failing.start()
    assert _nothing_left("fftc")


def test_overlapping_subnet_is_refused(fleet: SshdFleet, tmp_path: Path) -> None:
    with pytest.raises(SshdFleetError, match="overlaps"):
        SshdFleet(tmp_path, 1, prefix="ffto", subnet="10.98.7.128/25").start()
    assert _nothing_left("ffto")
