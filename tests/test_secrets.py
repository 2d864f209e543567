"""Secrets on a host never reach fleetforge's output: a nix.conf holding ``access-tokens`` (and a
configuration.nix holding a password hash) is fed through the real probe parser and the real
commands with pyinfra's ``@fake`` connector replaying a captured probe; ``fleetforge plan``
(table and ``--json``), ``probe --json``, pyinfra ``--dry`` and ``--diff`` (with ``-vv``, which
prints every command) must not contain a secret value anywhere, while the rest still shows."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fleetforge.secrets import REDACTED, redact_facts, redact_plan, redact_text, secret_keys
from tests.probe_edit import fake_inventory, fixture_output, with_file

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SECRETS = ("SECRET123", "SECRET456", "SECRET789", "SECRETUSER", "SECRETHASH", "SECRETPLAN")
NIX_CONF = (
    "# written by the operator\n"
    "sandbox = false\n"
    "netrc-file = /root/SECRET789.netrc\n"
    "extra-access-tokens = gitlab.com=SECRET456\n"
    "my-token = SECRETUSER\n"
    "access-tokens = github.com=SECRET123\n"
    "max-jobs = 7\n"  # a key fleetforge manages: moved into its block, so the lines above are diff context
)
CONFIGURATION_NIX = (
    "{ config, pkgs, ... }:\n{\n  imports = [ ./hardware-configuration.nix ];\n"
    '  users.users.root.hashedPassword = "$6$SECRETHASH";\n}\n'
)


def inventory(tmp_path: Path, **data) -> Path:
    output = with_file(fixture_output("qemu-virtio-blk-vda-bios"), "/etc/nix/nix.conf", NIX_CONF)
    output = with_file(output, "/etc/nixos/configuration.nix", CONFIGURATION_NIX)
    host_data = {"secret_keys": ["my-token"], **data}
    return fake_inventory(tmp_path / "inventory.py", {"@fake/vps-1": (output, host_data)})


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)


def assert_no_secret(text: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"{leaked} printed:\n{text[-3000:]}"


def test_plan_json_masks_secret_lines_and_keeps_the_rest(tmp_path):
    out = run(sys.executable, "-m", "fleetforge.cli", "plan", str(inventory(tmp_path)), "--json")
    assert out.returncode == 0, out.stderr
    assert_no_secret(out.stdout + out.stderr)
    host = json.loads(out.stdout)["@fake/vps-1"]
    nix_conf = host["facts"]["files"]["/etc/nix/nix.conf"]["content"].splitlines()
    assert nix_conf == [
        "# written by the operator",
        "sandbox = false",
        f"netrc-file = {REDACTED}",
        f"extra-access-tokens = {REDACTED}",
        f"my-token = {REDACTED}",  # listed in the host's secret_keys
        f"access-tokens = {REDACTED}",
        "max-jobs = 7",
    ]
    configuration = host["facts"]["files"]["/etc/nixos/configuration.nix"]["content"]
    assert f"users.users.root.hashedPassword = {REDACTED}" in configuration
    assert "imports = [ ./hardware-configuration.nix ];" in configuration
    assert host["plan"]["nix"]["settings"]["max-jobs"]["value"] == "1"


def test_plan_table_and_json_mask_a_secret_set_in_host_data(tmp_path):
    inv = inventory(tmp_path, nix_settings={"access-tokens": "github.com=SECRETPLAN"})
    table = run(sys.executable, "-m", "fleetforge.cli", "plan", str(inv))
    as_json = run(sys.executable, "-m", "fleetforge.cli", "plan", str(inv), "--json")
    assert table.returncode == as_json.returncode == 0, table.stderr + as_json.stderr
    assert_no_secret(table.stdout + table.stderr + as_json.stdout + as_json.stderr)
    assert "nix access-tokens" in table.stdout and REDACTED in table.stdout
    assert json.loads(as_json.stdout)["@fake/vps-1"]["plan"]["nix"]["settings"]["access-tokens"]["value"] == REDACTED


def test_probe_json_and_table_mask_secrets(tmp_path):
    inv = str(inventory(tmp_path))
    as_json = run(sys.executable, "-m", "fleetforge.cli", "probe", inv, "--json")
    table = run(sys.executable, "-m", "fleetforge.cli", "probe", inv)
    assert as_json.returncode == table.returncode == 0, as_json.stderr + table.stderr
    assert_no_secret(as_json.stdout + as_json.stderr + table.stdout + table.stderr)
    files = json.loads(as_json.stdout)["@fake/vps-1"]["files"]
    assert "sandbox = false" in files["/etc/nix/nix.conf"]["content"]


@pytest.mark.parametrize("mode", [["--dry"], ["-y", "--diff", "-vv"]], ids=["dry", "diff-run"])
def test_pyinfra_diff_masks_secrets_and_the_command_carries_none(tmp_path, mode):
    inv = inventory(tmp_path, nix_settings={"access-tokens": "github.com=SECRETPLAN"})
    out = run(str(BIN / "pyinfra"), *mode, str(inv), "deploys/vps.py")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "Will modify /etc/nix/nix.conf" in text
    assert f"access-tokens = {REDACTED}" in text  # the line is shown, its value is not
    assert "- max-jobs = 7" in text and "sandbox = false" not in text.split("Will modify /etc/nix/nix.conf")[0]
    assert_no_secret(text)
    if "-vv" in mode:  # the write ran: the content went on stdin, not on the printed command line
        assert "w 'Nix settings' /etc/nix/nix.conf" in text  # the batch's write step for it


def test_redact_text_forms():
    keys = secret_keys({"secret_keys": ["MyToken", 3, ""]})  # malformed entries are ignored
    text = (
        "a = 1\naccess-tokens=x\n  # access-tokens = commented\nmytoken = y\nfoo = a == b\n"
        'nix.settings = { "access-tokens" = "z"; cores = 2; };\n'
    )
    assert redact_text(text, keys).splitlines() == [
        "a = 1",
        f"access-tokens= {REDACTED}",
        f"  # access-tokens = {REDACTED}",
        f"mytoken = {REDACTED}",
        "foo = a == b",
        f'nix.settings = {{ "access-tokens" = {REDACTED}',
    ]
    nix = '{\n  nix.settings.access-tokens = [\n    "github.com=x"\n  ];\n  networking.hostName = "h";\n}\n'
    assert redact_text(nix, keys, nix=True).splitlines() == [
        "{",
        f"  nix.settings.access-tokens = {REDACTED}",
        REDACTED,
        REDACTED,
        '  networking.hostName = "h";',
        "}",
    ]
    assert secret_keys({"secret_keys": "not-a-list"}) == secret_keys(None)


def test_redact_json_helpers_leave_other_values():
    facts = {
        "kernel_release": "6.1",
        "files": {"/etc/nix/nix.conf": {"sha256": "ab", "content": "access-tokens = s\n"}},
    }
    assert redact_facts(facts)["files"]["/etc/nix/nix.conf"] == {
        "sha256": "ab",
        "content": f"access-tokens = {REDACTED}\n",
    }
    assert facts["files"]["/etc/nix/nix.conf"]["content"] == "access-tokens = s\n"  # a copy, not in place
    plan = {"nix": {"settings": {"cores": {"value": "2"}, "extra-access-tokens": {"value": "s"}}}}
    assert redact_plan(plan)["nix"]["settings"] == {"cores": {"value": "2"}, "extra-access-tokens": {"value": REDACTED}}
    assert redact_plan({"nix": None}) == {"nix": None}
