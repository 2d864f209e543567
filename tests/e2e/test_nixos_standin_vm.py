"""The TEST STAND-IN for NixOS on a VM, as a flake in git (``install_nixos_standin(flake=True,
git=True)``): ``nixos-rebuild`` finds /etc/nixos/flake.nix by itself, evaluates only what git
knows (an import of an untracked file fails until ``git add``), activates, and rolls back.

Uses its own VM (vm-standin-1) and removes it at the end.
"""

import pytest

from fleetforge.testbed.nixos_standin import install_nixos_standin

pytestmark = pytest.mark.vm

NAME = "vm-standin-1"
EXTRA = '{ ... }: { boot.kernel.sysctl."vm.dirty_ratio" = 33; }\n'


@pytest.fixture(scope="module")
def vm(testbed):
    testbed.up([f"{NAME}:blk"])
    install_nixos_standin(testbed, NAME, flake=True, git=True)
    yield testbed
    testbed.down([NAME])


def ssh(testbed, command: str, text: str | None = None):
    return testbed.ssh(NAME, command, input=text)


def test_flake_in_git_is_found_and_activated(vm):
    assert ssh(vm, "readlink /nix/var/nix/profiles/system").stdout.strip() == "system-1-link"
    assert ssh(vm, "nixos-version").stdout.startswith("24.05.")
    assert ssh(vm, "git -C /etc/nixos ls-files").stdout.split() == [
        "configuration.nix",
        "flake.nix",
        "hardware-configuration.nix",
    ]
    out = ssh(vm, "nixos-rebuild test")
    assert out.returncode == 0, out.stderr


def test_untracked_import_fails_until_git_add(vm):
    ssh(vm, "cat > /etc/nixos/extra.nix", EXTRA)
    config = ssh(vm, "cat /etc/nixos/configuration.nix").stdout
    ssh(vm, "cat > /etc/nixos/configuration.nix", config.replace("imports = [", "imports = [ ./extra.nix"))
    out = ssh(vm, "nixos-rebuild test")
    assert out.returncode != 0 and "extra.nix" in out.stderr, out.stderr
    assert ssh(vm, "cat /proc/sys/vm/dirty_ratio").stdout.strip() != "33"
    ssh(vm, "git -C /etc/nixos add extra.nix")  # added, not committed: the flake sees it
    out = ssh(vm, f"nixos-rebuild switch --flake /etc/nixos#{NAME}")
    assert out.returncode == 0, out.stderr
    assert ssh(vm, "cat /proc/sys/vm/dirty_ratio").stdout.strip() == "33"
    assert ssh(vm, "readlink /nix/var/nix/profiles/system").stdout.strip() == "system-2-link"


def test_rollback_returns_to_the_previous_generation(vm):
    out = ssh(vm, "nixos-rebuild switch --rollback")
    assert out.returncode == 0, out.stderr
    assert ssh(vm, "readlink /nix/var/nix/profiles/system").stdout.strip() == "system-1-link"
    assert "vm.dirty_ratio" not in ssh(vm, "cat /nix/var/nix/profiles/system/config.json").stdout


def test_missing_host_is_named(vm):
    out = ssh(vm, "nixos-rebuild test --flake /etc/nixos#nope")
    assert out.returncode != 0
    assert "flake 'git+file:///etc/nixos' does not provide attribute 'nixosConfigurations.nope'" in out.stderr
