"""The connection settings pyinfra honours, honoured by health checks and verify's testinfra
connection against real servers (``fleetforge.sshopts``):

- ``ssh_config_file`` and ``ssh_key_password``: OpenSSH ``sshd`` in a network namespace
  (``fleetforge.testbed.sshd_hosts``, needs root; run under ``flock /tmp/fleetforge-vm.lock``);
- ``ssh_password``: an asyncssh server in this process that accepts only that password (the
  light hosts allow keys only).

Each setting is shown to be what makes the login work (without it, the same host is refused),
and hostile SSH data against the real host never creates a marker file here.
"""

import asyncio
import subprocess
import uuid
from pathlib import Path

import asyncssh
import pytest

from fleetforge import sshopts, verify
from fleetforge.connector.bridge import LoopThread
from fleetforge.health import run_health_check
from fleetforge.settings import HealthCheck
from fleetforge.testbed.sshd_hosts import SshdFleet
from tests.connector.sshserver import run_shell

PASSPHRASE = "correct horse 'battery' $(staple)"
PASSWORD = 'pass word "$(x)" ;'


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    with SshdFleet(tmp_path_factory.mktemp("fleet"), 1, prefix="ffsshc", subnet="10.98.47.0/24") as f:
        yield f


def check(name, data, command="echo ok"):
    return run_health_check(name, data, HealthCheck(command=command, retries=0, timeout_s=10))


def test_ssh_config_file_is_honoured(fleet, tmp_path):
    """The host is known only by an alias that the config file maps to its address, user, key
    and known_hosts; health checks and verify reach it through the file, and nothing without."""
    h = fleet.hosts[0]
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host ffalias\n  HostName {h.connect_host}\n  User root\n  IdentityFile {h.key}\n"
        f"  UserKnownHostsFile {h.known_hosts}\n  StrictHostKeyChecking yes\n"
    )
    data = {"ssh_config_file": str(config)}
    assert check("ffalias", data).ok
    out = verify.testinfra_host("ffalias", data).run("ip -4 -o addr show dev eth0")
    assert out.rc == 0 and f" {h.address}/" in out.stdout
    refused = check("ffalias", {})
    assert not refused.ok and "ssh failed" in refused.reason
    with pytest.raises(RuntimeError):
        verify.testinfra_host("ffalias", {}).run("true")


def test_ssh_key_password_is_honoured(fleet, tmp_path):
    h = fleet.hosts[0]
    key = tmp_path / "encrypted_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", PASSPHRASE, "-f", str(key)], check=True)
    authorized = fleet.authorized_keys.read_text()
    fleet.authorized_keys.write_text(authorized + Path(f"{key}.pub").read_text())
    try:
        data = {**h.ssh_data(), "ssh_key": str(key), "ssh_key_password": PASSPHRASE}
        assert check(h.name, data).ok
        assert verify.testinfra_host(h.name, data).run("echo via-verify").stdout == "via-verify\n"
        for bad in ({**data, "ssh_key_password": "wrong"}, {k: v for k, v in data.items() if k != "ssh_key_password"}):
            result = check(h.name, bad)
            assert not result.ok and "Permission denied" in result.reason, result
    finally:
        fleet.authorized_keys.write_text(authorized)


def test_hostile_ssh_data_never_runs_anything_here(fleet):
    h = fleet.hosts[0]
    marker = Path(f"/tmp/fleetforge-PWNED-{uuid.uuid4().hex}")
    for key in ("ssh_user", "ssh_hostname"):
        data = {**h.ssh_data(), key: f"-oProxyCommand=touch {marker}"}
        result = check(h.name, data)
        assert not result.ok and f"host {h.name}: {key}: " in result.reason
        with pytest.raises(ValueError, match=f"host {h.name}: {key}: "):
            verify.testinfra_host(h.name, data)
    assert not marker.exists()


class _PasswordOnly(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return False

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == "root" and password == PASSWORD


@pytest.fixture(scope="module")
def password_server(tmp_path_factory):
    """An asyncssh server on 127.0.0.1 accepting only root with ``PASSWORD``; commands run for
    real (``tests.connector.sshserver.run_shell``). Yields its host data without a password."""
    root = tmp_path_factory.mktemp("password_server")
    loop = LoopThread()
    host_key = asyncssh.generate_private_key("ssh-ed25519")

    async def handle(process: asyncssh.SSHServerProcess) -> None:
        code, out, err = await asyncio.get_running_loop().run_in_executor(None, run_shell, process.command or "", b"")
        process.stdout.write(out)
        process.stderr.write(err)
        process.exit(code)

    async def serve() -> asyncssh.SSHAcceptor:
        return await asyncssh.create_server(
            _PasswordOnly, "127.0.0.1", 0, server_host_keys=[host_key], process_factory=handle, encoding=None
        )

    server = loop.run(serve)
    port = server.sockets[0].getsockname()[1]
    known_hosts = root / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key.export_public_key().decode().strip()}\n")
    yield {
        "ssh_hostname": "127.0.0.1",
        "ssh_port": port,
        "ssh_user": "root",
        "ssh_known_hosts_file": str(known_hosts),
        "ssh_strict_host_key_checking": "yes",
    }

    async def close() -> None:
        server.close()
        await server.wait_closed()

    loop.run(close, timeout=5)
    loop.stop()


def test_ssh_password_is_honoured(password_server):
    data = {**password_server, "ssh_password": PASSWORD}
    assert check("pw-host", data).ok
    assert verify.testinfra_host("pw-host", data).run("echo via-verify").stdout == "via-verify\n"
    for bad in ({**data, "ssh_password": "wrong"}, password_server):
        result = check("pw-host", bad)
        assert not result.ok and "Permission denied" in result.reason, result
    assert PASSWORD not in " ".join(sshopts.connection("pw-host", data).argv("true"))


def test_one_master_per_host_for_the_whole_process_closed_at_exit(fleet):
    """Commands share one master connection per host for as long as the process runs (a
    rollout's snapshot and its verification after a long deploy), and the master exits with the
    process: no ``[mux]`` ssh is left behind."""
    h = fleet.hosts[0]
    data = {"ssh_hostname": h.connect_host, "ssh_user": "root", "ssh_key": str(h.key),
            "ssh_known_hosts_file": str(h.known_hosts), "ssh_strict_host_key_checking": "yes"}  # fmt: skip
    script = (
        "import sys, json, os\n"
        "from fleetforge import sshopts\n"
        "c = sshopts.connection('h', json.loads(sys.argv[1]))\n"
        "a = c.run('echo $PPID', share=True).stdout\n"
        "b = c.run('echo $PPID', share=True).stdout\n"
        "print(sshopts.private_dir(), a == b and a.strip() != b'', flush=True)\n"
    )
    import json
    import sys

    out = subprocess.run([sys.executable, "-c", script, json.dumps(data)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    private, same_session_parent = out.stdout.split()
    assert same_session_parent == "True"  # both commands came through the same sshd connection
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert not [line for line in ps.splitlines() if private in line], ps
