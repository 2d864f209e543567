"""NixOS path end to end on a TEST STAND-IN for NixOS (``fleetforge.testbed.nixos_standin``): a
Debian test VM that presents as NixOS and whose ``nixos-rebuild`` evaluates the configuration
with the real nix-instantiate and activates what fleetforge writes. NixOS itself cannot be built
here; everything fleetforge does (probe, plan, modules, import, test -> verify -> switch,
rollback) runs for real over SSH.

Uses its own VM (vm-nixos-1) and inventory, and removes the VM at the end.
"""

import re
import textwrap

import pytest

from fleetforge.testbed.nixos_standin import install_nixos_standin
from tests.e2e.helpers import run

pytestmark = pytest.mark.vm

NAME = "vm-nixos-1"
SNAPSHOT = (
    "readlink /nix/var/nix/profiles/system; sha256sum /etc/nixos/configuration.nix /etc/nixos/fleetforge/*.nix "
    "2>/dev/null; cat /proc/sys/vm/swappiness /proc/sys/vm/dirty_ratio /sys/block/vda/queue/scheduler"
)


@pytest.fixture(scope="module")
def standin(testbed, tmp_path_factory):
    testbed.up([f"{NAME}:blk"])
    install_nixos_standin(testbed, NAME)
    (data,) = [d for n, d in testbed.inventory_hosts() if n == NAME]

    def inventory(**extra) -> str:
        path = tmp_path_factory.mktemp("inv") / "inventory.py"
        path.write_text(textwrap.dedent(f"nixos = [({NAME!r}, {dict(data, **extra)!r})]\n"))
        return str(path)

    yield testbed, inventory
    testbed.down([NAME])


def snapshot(testbed) -> str:
    return testbed.ssh(NAME, SNAPSHOT, check=True).stdout


def test_modules_written_imported_tested_verified_and_switched(standin):
    testbed, inventory = standin
    out = run("pyinfra", "-y", inventory(), "deploys/vps.py")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-4000:]
    assert "NixOS activated (test, switch): system profile system-1-link -> system-2-link" in text
    config = testbed.ssh(NAME, "cat /etc/nixos/configuration.nix", check=True).stdout
    assert "imports = [ ./fleetforge ./hardware-configuration.nix ];" in config
    assert not testbed.ssh(NAME, "test -e /etc/sysctl.d/60-fleetforge.conf").returncode == 0  # /etc path not used
    verify = run("fleetforge", "verify", inventory())
    assert verify.returncode == 0, verify.stdout
    # live values and the SHA-256 of every module and configuration.nix (no nix.conf block on NixOS)
    assert re.search(r"vm-nixos-1: (\d+)/\1 checks passed", verify.stdout), verify.stdout


def test_second_run_changes_nothing(standin):
    testbed, inventory = standin
    before = snapshot(testbed)
    out = run("pyinfra", "-y", inventory(), "deploys/vps.py")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "NixOS activated" not in text
    assert snapshot(testbed) == before


@pytest.mark.parametrize(
    ("data", "failed_step"),
    [
        (
            {"nix_settings": {"max-jobs": "lots"}},
            "nixos-rebuild test failed: error: A definition for option `nix.settings.max-jobs' is not of type",
        ),
        ({"sysctl": {"vm.dirty_ratio": 500}}, "nixos-rebuild test failed: error: sysctl -q -w vm.dirty_ratio=500"),
        # the kernel keeps read-ahead in whole pages: 4097 KiB reads back as 4096
        (
            {"disks": {"vda": {"read_ahead_kb": 4097}}},
            "nixos-rebuild test failed: FAIL vm-nixos-1: vda read_ahead_kb: expected '4097', got '4096'",
        ),
    ],
    ids=["type-error", "activation-error", "verification-after-test"],
)
def test_failure_returns_host_to_previous_configuration_and_fails_it(standin, data, failed_step):
    testbed, inventory = standin
    before = snapshot(testbed)
    out = run("pyinfra", "-y", inventory(**data), "deploys/vps.py")
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert failed_step in text, text[-3000:]
    assert "files restored, system profile back at system-2-link (was system-2-link)" in text
    assert snapshot(testbed) == before


def test_boot_only_host_gets_a_new_generation_but_no_live_change(standin):
    testbed, inventory = standin
    before = testbed.ssh(NAME, "cat /proc/sys/vm/swappiness", check=True).stdout
    out = run("pyinfra", "-y", inventory(nixos_activation=["boot"], swappiness=100), "deploys/vps.py")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "NixOS activated (boot): system profile system-2-link -> system-3-link" in text
    assert testbed.ssh(NAME, "cat /proc/sys/vm/swappiness", check=True).stdout == before  # not switched live
    assert (
        '"vm.swappiness": 100' in testbed.ssh(NAME, "cat /nix/var/nix/profiles/system/config.json", check=True).stdout
    )


def test_boot_only_host_rerun_makes_no_new_generation(standin):
    testbed, inventory = standin
    out = run("pyinfra", "-y", inventory(nixos_activation=["boot"], swappiness=100), "deploys/vps.py")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "NixOS activated" not in text
    assert testbed.ssh(NAME, "readlink /nix/var/nix/profiles/system", check=True).stdout.strip() == "system-3-link"
