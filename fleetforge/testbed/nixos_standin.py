"""Turn a test VM into a TEST STAND-IN for a NixOS host. It is not NixOS.

NixOS cannot be built here (no nixpkgs, no binary cache). The stand-in is a Debian test VM that
presents as NixOS where fleetforge looks (``/etc/os-release`` ``ID=nixos``,
``/etc/nixos/configuration.nix``) and has a ``nixos-rebuild`` (``standin/nixos-rebuild``) that
evaluates the configuration with the real ``nix-instantiate``, fails on Nix errors and on the
option types NixOS would reject, and activates the options fleetforge writes the way NixOS does,
with generations and ``--rollback``. Everything fleetforge does to the host is real.
"""

from __future__ import annotations

from pathlib import Path

STANDIN = Path(__file__).parent / "standin"
OS_RELEASE = """\
NAME=NixOS
ID=nixos
VERSION_ID="24.05"
PRETTY_NAME="NixOS 24.05 (fleetforge TEST STAND-IN on Debian)"
"""
CONFIGURATION = """\
# Stand-in NixOS configuration of a fleetforge test VM.
{ config, pkgs, ... }:
{
  imports = [ ./hardware-configuration.nix ];
  networking.hostName = "%s";
  system.stateVersion = "24.05";
}
"""


def install_nixos_standin(testbed, name: str) -> None:
    """Make VM ``name`` of ``testbed`` (a ``fleetforge.testbed.Testbed``) the NixOS stand-in and
    build its first generation (``nixos-rebuild switch``).

    Raises ``subprocess.CalledProcessError`` if a step fails on the VM.
    """
    steps = [
        ("install -D -m 755 /dev/stdin /usr/local/sbin/nixos-rebuild", (STANDIN / "nixos-rebuild").read_text()),
        ("install -D -m 644 /dev/stdin /usr/local/share/nixos-standin/eval.nix", (STANDIN / "eval.nix").read_text()),
        ("rm -f /etc/os-release && cat > /etc/os-release", OS_RELEASE),
        ("install -D -m 644 /dev/stdin /etc/nixos/configuration.nix", CONFIGURATION % name),
        ("cat > /etc/nixos/hardware-configuration.nix", "{ ... }: { }\n"),
        ("nixos-rebuild switch", None),
    ]
    for command, text in steps:
        testbed.ssh(name, command, input=text, check=True)
