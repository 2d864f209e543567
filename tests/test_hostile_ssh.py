"""SSH data that would become an OpenSSH option, and the connection settings pyinfra honours,
through every fleetforge command that opens ``ssh`` itself (``fleetforge.sshopts``): health
checks, and verify's testinfra connection (also the rollout's snapshots).

- hostile ``ssh_user`` / ``ssh_hostname`` values are refused by the validator (naming host and
  key), by ``fleetforge verify`` before anything runs, and by the argv builder if they got past;
  a ``-oProxyCommand=touch MARKER`` never creates the marker on this machine;
- the exact argv for a normal host, recorded by an ``ssh`` stand-in first on ``PATH``, ends its
  options with ``--``; secrets are never on it, and the askpass program answers only its prompts;
- against real hosts: ``ssh_config_file`` and ``ssh_key_password`` with OpenSSH ``sshd`` in a
  network namespace (``fleetforge.testbed.sshd_hosts``; run under
  ``flock /tmp/fleetforge-vm.lock``), ``ssh_password`` with an asyncssh server accepting only
  that password.
"""

import hashlib
import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from fleetforge import sshopts, verify
from fleetforge.health import run_health_check, ssh_argv
from fleetforge.settings import HealthCheck, HostSettings

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def marker():
    path = Path(f"/tmp/fleetforge-PWNED-{uuid.uuid4().hex}")
    yield path
    assert not path.exists(), f"{path} was created on the controller"


def hostile(marker):
    return [
        ("ssh_user", f"-oProxyCommand=touch {marker}"),
        ("ssh_user", f"-oProxyCommand=touch${{IFS}}{marker}"),
        ("ssh_hostname", f"-oProxyCommand=touch {marker}"),
        ("ssh_hostname", f"-oProxyCommand=touch${{IFS}}{marker}"),
        ("ssh_user", "root@203.0.113.9"),
        ("ssh_hostname", "ssh://evil@203.0.113.9"),
        ("ssh_user", "debian\n"),
        ("ssh_port", "22 -oProxyCommand=x"),
        ("ssh_key", "-oProxyCommand=x"),
        ("ssh_config_file", "/tmp/a config"),
        ("ssh_known_hosts_file", "%d/.ssh/known_hosts"),
        ("ssh_strict_host_key_checking", "no -oProxyCommand=x"),
        ("ssh_keepalive_interval", "15 -oProxyCommand=x"),
        ("ssh_keepalive_count_max", 0),
    ]


def test_the_validator_names_host_and_key_of_every_unsafe_value(marker):
    for key, value in hostile(marker):
        problems = sshopts.ssh_data_problems("web-1", {key: value})
        assert [(h, k) for h, k, _ in problems] == [("web-1", key)], (key, value)
        assert repr(value) in problems[0][2]
    assert sshopts.ssh_data_problems("-oProxyCommand=x", {})[0][:2] == ("-oProxyCommand=x", "ssh_hostname")
    assert sshopts.ssh_data_problems("@fake/x;y", {}) == []  # a connector's name is no destination
    secret = sshopts.ssh_data_problems("web-1", {"ssh_password": "hunter2\n"})
    assert [(h, k) for h, k, _ in secret] == [("web-1", "ssh_password")] and "hunter2" not in secret[0][2]
    good = {"ssh_hostname": "fe80::1%eth0", "ssh_user": "deploy.bot", "ssh_port": "2222", "ssh_key": "~/.ssh/id"}
    assert sshopts.ssh_data_problems("web-1", good) == []


def test_the_argv_builder_refuses_what_the_validator_would(marker):
    """If a hostile value ever got past validation, no argv is built from it."""
    for key, value in hostile(marker):
        with pytest.raises(ValueError, match=f"host web-1: {key}: "):
            ssh_argv("web-1", {key: value}, "true")
    with pytest.raises(ValueError, match="host web-1: ssh_user: "):
        sshopts.SshConnection(host="web-1", hostname="203.0.113.9", user=f"-oProxyCommand=touch {marker}")
    with pytest.raises(ValueError, match="host web-1: ssh_hostname: "):
        sshopts.SshConnection(host="web-1", hostname="-oProxyCommand=x")


@pytest.fixture
def ssh_stub(tmp_path, monkeypatch):
    """An ``ssh`` first on ``PATH`` that records its argv (and, given ``FF_PROMPTS``, what the
    askpass program answers to each prompt) as one JSON line per call, and exits 0."""
    bin_dir, record = tmp_path / "bin", tmp_path / "record.jsonl"
    bin_dir.mkdir()
    stub = bin_dir / "ssh"
    stub.write_text(
        f"#!{sys.executable}\n"
        "import json, os, subprocess, sys\n"
        "out = {'argv': sys.argv[1:], 'askpass': {}, 'require': os.environ.get('SSH_ASKPASS_REQUIRE')}\n"
        "for prompt in json.loads(os.environ.get('FF_PROMPTS', '[]')):\n"
        "    if os.environ.get('SSH_ASKPASS'):\n"
        "        r = subprocess.run([os.environ['SSH_ASKPASS'], prompt], capture_output=True, text=True)\n"
        "        out['askpass'][prompt] = [r.returncode, r.stdout]\n"
        "open(os.environ['FF_RECORD'], 'a').write(json.dumps(out) + '\\n')\n"
    )
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FF_RECORD", str(record))

    def calls() -> list[dict]:
        return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []

    return calls


DATA = {
    "ssh_hostname": "203.0.113.10",
    "ssh_user": "debian",
    "ssh_port": 2222,
    "ssh_key": "/srv/keys/id_ed25519",
    "ssh_known_hosts_file": "/srv/keys/known_hosts",
    "ssh_strict_host_key_checking": "yes",
    "_sudo": True,
}
OPTIONS = [
    "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3",
    "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=/srv/keys/known_hosts",
    "-p", "2222", "-l", "debian", "-i", "/srv/keys/id_ed25519", "-o", "IdentitiesOnly=yes",
]  # fmt: skip


def test_health_check_and_verify_run_exactly_the_expected_argv(ssh_stub):
    result = run_health_check("web-1", DATA, HealthCheck(command="systemctl is-active nginx", retries=0))
    assert result.ok, result
    verify.testinfra_host("web-1", DATA).run("cat /proc/swaps")
    health, testinfra = (call["argv"] for call in ssh_stub())
    assert health == [
        *["-o", "BatchMode=yes", *OPTIONS, "-o", "ControlMaster=no", "-o", "ControlPath=none"],
        *["--", "203.0.113.10", "sudo -n sh -c 'systemctl is-active nginx'"],
    ]
    options = ["ssh", "-o", "BatchMode=yes", *OPTIONS]
    name = hashlib.sha256("\0".join(["web-1", "203.0.113.10", *options]).encode()).hexdigest()[:24]
    control = os.path.join(sshopts.private_dir(), name)
    assert testinfra == [
        *["-o", "BatchMode=yes", *OPTIONS, "-o", "ControlMaster=auto", "-o", f"ControlPath={control}"],
        *["-o", "ControlPersist=1800s", "--", "203.0.113.10", "sudo /bin/sh -c 'cat /proc/swaps'"],
    ]
    assert stat.S_IMODE(os.stat(sshopts.private_dir()).st_mode) == 0o700


def test_hostile_values_stop_health_checks_and_verify_before_ssh_runs(ssh_stub, marker):
    settings = HostSettings()
    for key, value in hostile(marker)[:4]:
        result = run_health_check("web-1", {key: value}, HealthCheck(command="true", retries=0))
        assert not result.ok and f"host web-1: {key}: " in result.reason
        (failed,) = verify.verify_host("web-1", {key: value}, settings).results
        assert failed.severity == "fail" and f"host web-1: {key}: " in failed.actual
    assert ssh_stub() == []  # ssh never ran


def test_fleetforge_verify_refuses_the_inventory_and_runs_nothing(tmp_path, marker, ssh_stub):
    inventory = tmp_path / "inventory.py"
    inventory.write_text(
        f"hosts = [('web-1', {{'ssh_user': {f'-oProxyCommand=touch {marker}'!r}}}),\n"
        f"         ('-oProxyCommand=touch${{IFS}}{marker}', {{}})]\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "fleetforge.cli", "verify", str(inventory)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    text = out.stdout + out.stderr
    assert out.returncode != 0, text
    assert "host web-1: ssh_user: expected a user name" in text
    assert f"host -oProxyCommand=touch${{IFS}}{marker}: " in text
    assert ssh_stub() == []


PROMPTS = [
    "debian@203.0.113.10's password: ",
    "(debian@203.0.113.10) Password: ",
    "Enter passphrase for key '/srv/keys/id_ed25519': ",
    "(debian@203.0.113.10) Enter passphrase for key '/srv/keys/id_ed25519': ",  # a server's prompt
    "Are you sure you want to continue connecting (yes/no/[fingerprint])? ",
]


def test_secrets_never_reach_argv_and_askpass_answers_only_its_own_prompts(ssh_stub, monkeypatch):
    monkeypatch.setenv("FF_PROMPTS", json.dumps(PROMPTS))
    data = {**DATA, "ssh_password": "pass word$(x)", "ssh_key_password": "key phrase'"}
    assert run_health_check("web-1", data, HealthCheck(command="true", retries=0)).ok
    verify.testinfra_host("web-1", data).run("true")
    for call in ssh_stub():
        assert not any("pass word" in arg or "key phrase" in arg for arg in call["argv"])
        assert call["argv"][:4] == ["-o", "BatchMode=no", "-o", "NumberOfPasswordPrompts=1"]
        assert call["require"] == "force"
        assert call["askpass"] == {
            PROMPTS[0]: [0, "pass word$(x)\n"],
            PROMPTS[1]: [0, "pass word$(x)\n"],
            PROMPTS[2]: [0, "key phrase'\n"],
            PROMPTS[3]: [1, ""],
            PROMPTS[4]: [1, ""],
        }
    askpass = sshopts.askpass_program()
    assert stat.S_IMODE(os.stat(askpass).st_mode) == 0o700 and "pass word" not in Path(askpass).read_text()
    shown = repr(sshopts.connection("web-1", data))
    assert "pass word" not in shown and "key phrase" not in shown
