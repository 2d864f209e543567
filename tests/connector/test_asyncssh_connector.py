"""``@asyncssh`` against a real asyncssh server in this process (``sshserver.py``): commands,
pyinfra's global arguments, SFTP, timeouts, dropped connections and every connect failure,
each confined to its host. The process is gevent-patched, as under pyinfra's CLI."""

import io
import os
import socket
import subprocess
import sys
import textwrap

import gevent
import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.state import BaseStateCallback

from fleetforge.connector.asyncssh_connector import AsyncSSHConnector
from tests.connector.sshserver import DROP_MARKER, InProcessSSHServer


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = InProcessSSHServer(tmp_path_factory.mktemp("sshserver")).start()
    yield srv
    srv.stop()


class _Errors(BaseStateCallback):
    def __init__(self):
        self.by_host = {}

    def host_connect_error(self, state, host, error):
        self.by_host[host.name] = error.args[0]


def connect(hosts: dict[str, dict]) -> tuple[State, _Errors]:
    """Connect ``{name: data}`` over @asyncssh as pyinfra's CLI does (in parallel)."""
    inventory = Inventory(([(f"@asyncssh/{name}", data) for name, data in hosts.items()], {}))
    state = State(inventory, Config(CONNECT_TIMEOUT=5, FAIL_PERCENT=100))
    errors = _Errors()
    state.add_callback_handler(errors)
    connect_all(state)
    return state, errors


def the_host(state, name):
    return state.inventory.get_host(name)


@pytest.fixture(scope="module")
def one(server):
    state, errors = connect({"one": server.host_data()})
    assert errors.by_host == {}
    yield the_host(state, "one")
    disconnect_all(state)


def test_hosts_use_the_connector_and_keep_their_names(one):
    assert isinstance(one.connector, AsyncSSHConnector)
    assert one.name == "one" and one.connected


def test_output_exit_codes_and_stdin(one):
    ok, out = one.run_shell_command("echo out; echo err >&2; cat; exit 3", _stdin=["line a", "line b"])
    assert not ok
    assert out.stdout_lines == ["out", "line a", "line b"]
    assert out.stderr_lines == ["err"]
    ok, _ = one.run_shell_command("exit 3", _success_exit_codes=[0, 3])
    assert ok
    ok, out = one.run_shell_command("printf 'no newline'")
    assert ok and out.stdout_lines == ["no newline"]


def test_global_arguments_env_chdir_shell_and_pty(one, tmp_path):
    ok, out = one.run_shell_command('echo "$GREETING"; pwd', _env={"GREETING": "hello world"}, _chdir=str(tmp_path))
    assert ok and out.stdout_lines == ["hello world", str(tmp_path)]
    ok, out = one.run_shell_command("echo $0", _shell_executable="bash")
    assert ok and out.stdout_lines == ["bash"]


def test_a_command_past_its_timeout_fails_and_the_connection_stays_usable(one):
    with pytest.raises(TimeoutError):
        one.run_shell_command("sleep 30", _timeout=1)
    ok, out = one.run_shell_command("echo still here")
    assert ok and out.stdout_lines == ["still here"]


def test_commands_of_many_hosts_run_at_the_same_time(server, tmp_path):
    """Ten hosts each sleep 1 s between two timestamps: every start precedes every end."""
    state, errors = connect({f"h{i}": server.host_data() for i in range(10)})
    assert errors.by_host == {}
    results = {}

    def stamp(host):
        ok, out = host.run_shell_command("date +%s.%N; sleep 1; date +%s.%N")
        results[host.name] = [float(x) for x in out.stdout_lines]

    gevent.joinall([gevent.spawn(stamp, h) for h in state.inventory], raise_error=True)
    disconnect_all(state)
    assert len(results) == 10
    assert max(start for start, _ in results.values()) < min(end for _, end in results.values())


def test_sftp_upload_and_download_round_trip(one, tmp_path):
    payload = os.urandom(5 * 1024 * 1024 + 17)
    remote = tmp_path / "uploaded.bin"
    assert one.put_file(io.BytesIO(payload), str(remote))
    assert remote.read_bytes() == payload
    assert one.put_file(io.StringIO("text\n"), str(tmp_path / "text.txt"))
    assert (tmp_path / "text.txt").read_text() == "text\n"
    back = io.BytesIO()
    assert one.get_file(str(remote), back)
    assert back.getvalue() == payload
    with pytest.raises(FileNotFoundError, match=f"SFTP open of {tmp_path}/missing-dir/f failed: No such file"):
        one.put_file(io.BytesIO(b"x"), str(tmp_path / "missing-dir" / "f"))


def test_a_dropped_connection_fails_that_host_only(server):
    state, errors = connect({"drops": server.host_data(), "stays": server.host_data()})
    drops, stays = the_host(state, "drops"), the_host(state, "stays")
    with pytest.raises(ConnectionError, match="SSH connection lost"):
        drops.run_shell_command(f"echo {DROP_MARKER}; sleep 5")
    ok, out = stays.run_shell_command("echo fine")
    assert ok and out.stdout_lines == ["fine"]
    with pytest.raises(OSError):
        drops.run_shell_command("echo again")
    disconnect_all(state)


@pytest.fixture
def silent_port():
    """A TCP port that accepts connections but never speaks: an SSH banner timeout."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def closed_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_connect_failures_are_reported_per_host_while_the_good_host_connects(
    server, tmp_path, silent_port, closed_port
):
    other_key = tmp_path / "other_key"
    other = tmp_path / "other_known_hosts"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    other.write_text(f"[127.0.0.1]:{server.port} {(tmp_path / 'other_key.pub').read_text()}")
    state, errors = connect(
        {
            "good": server.host_data(),
            "changed": server.host_data(ssh_known_hosts_file=str(other)),
            "unknown": server.host_data(ssh_known_hosts_file=str(tmp_path / "empty_known_hosts")),
            "badauth": server.host_data(ssh_key=str(other_key)),
            "refused": server.host_data(ssh_port=closed_port),
            "silent": server.host_data(ssh_port=silent_port, ssh_connect_timeout=1),
            "nodns": server.host_data(ssh_hostname="no-such-host.invalid"),
        }
    )
    assert [h.name for h in state.activated_hosts] == ["good"]
    msgs = errors.by_host
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in msgs["changed"]
    assert f"[127.0.0.1]:{server.port}" in msgs["changed"] and "SHA256:" in msgs["changed"]
    assert "not in" in msgs["unknown"] and "accept-new" in msgs["unknown"]
    assert msgs["badauth"].startswith("Authentication failed") and "user=root" in msgs["badauth"]
    assert msgs["refused"] == f"Connection refused (127.0.0.1:{closed_port})"
    assert msgs["silent"] == f"Connect timed out after 1 s (127.0.0.1:{silent_port})"
    assert msgs["nodns"].startswith("Could not resolve hostname no-such-host.invalid")
    disconnect_all(state)


def test_accept_new_records_an_unknown_key_and_no_skips_checking(server, tmp_path):
    learned = tmp_path / "learned_known_hosts"
    state, errors = connect(
        {"tofu": server.host_data(ssh_known_hosts_file=str(learned), ssh_strict_host_key_checking="accept-new")}
    )
    assert errors.by_host == {}
    disconnect_all(state)
    assert learned.read_text().split() == server.known_hosts.read_text().split()
    state, errors = connect({"again": server.host_data(ssh_known_hosts_file=str(learned))})  # strict now passes
    assert errors.by_host == {}
    disconnect_all(state)
    state, errors = connect(
        {"nocheck": server.host_data(ssh_known_hosts_file=str(tmp_path / "none"), ssh_strict_host_key_checking="no")}
    )
    assert errors.by_host == {}
    disconnect_all(state)
    assert not (tmp_path / "none").exists()


def test_a_bad_strict_value_is_refused_by_name(server):
    _, errors = connect({"typo": server.host_data(ssh_strict_host_key_checking="maybe"), "ok": server.host_data()})
    assert errors.by_host == {"typo": "ssh_strict_host_key_checking: expected yes, accept-new or no, got 'maybe'"}


def test_the_pyinfra_cli_finishes_and_exits_after_a_run_with_a_failed_host(server, tmp_path, closed_port):
    """A whole ``pyinfra`` run over @asyncssh in a subprocess: the good host runs its
    operation, the unreachable one is reported, and the process exits (no hang at exit)."""
    inventory = tmp_path / "inventory.py"
    inventory.write_text(
        textwrap.dedent(f"""
        from fleetforge.inventory import group
        hosts = group(
            [("good", {server.host_data()!r}), ("down", {server.host_data(ssh_port=closed_port)!r})],
            {{"fleetforge_connector": "asyncssh"}},
        )
        """)
    )
    marker = tmp_path / "ran"
    deploy = tmp_path / "deploy.py"
    deploy.write_text(
        f"from pyinfra.operations import server\nserver.shell(name='touch', commands=['touch {marker}'])\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "pyinfra", "-y", "--fail-percent", "100", str(inventory), str(deploy)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == 1, run.stderr  # pyinfra's exit code when a host failed
    assert marker.exists()
    assert "touch         1       1" in run.stderr
    assert f"Connection refused (127.0.0.1:{closed_port})" in run.stderr + run.stdout
