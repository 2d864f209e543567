"""Turn a test VM into a TEST STAND-IN for a NixOS host. It is not NixOS.

NixOS cannot be built here (no nixpkgs, no binary cache). The stand-in is a Debian test VM that
presents as NixOS where fleetforge looks (``/etc/os-release`` ``ID=nixos`` and ``VERSION_ID``,
``nixos-version``, ``/etc/nixos/configuration.nix``, optionally ``/etc/nixos/flake.nix``) and has
a ``nixos-rebuild`` (``standin/nixos-rebuild``) that evaluates the configuration with the real
``nix-instantiate`` and the stand-in module system (``standin/eval.nix`` and the files it
imports: option types, priorities, unknown options, NixOS's own definitions and assertions, for
the release in ``VERSION_ID``), and activates the options fleetforge writes the way NixOS does,
with generations and ``--rollback``. Everything fleetforge does to the host is real.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

STANDIN = Path(__file__).parent / "standin"
#: The stand-in module system: eval.nix and every file it imports, installed side by side.
EVAL_FILES = ("eval.nix", "lib.nix", "types.nix", "modules.nix", "options.nix")
SHARE = "/usr/local/share/nixos-standin"
RELEASE = re.compile(r"\d\d\.\d\d")
OS_RELEASE = """\
NAME=NixOS
ID=nixos
VERSION_ID="{release}"
PRETTY_NAME="NixOS {release} (fleetforge TEST STAND-IN on Debian)"
"""
CONFIGURATION = """\
# Stand-in NixOS configuration of a fleetforge test VM.
{{ config, pkgs, ... }}:
{{
  imports = [ ./hardware-configuration.nix ];
  networking.hostName = "{name}";
  system.stateVersion = "{release}";
}}
"""
# What `nixos-generate-config --flake` writes (nixpkgs nixos/modules/installer/tools/tools.nix,
# defaultFlakeTemplate), with the host's name where the template has the default host name.
FLAKE = """\
{{
  inputs = {{
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-{release}";
  }};
  outputs = inputs@{{ self, nixpkgs, ... }}: {{
    nixosConfigurations.{name} = nixpkgs.lib.nixosSystem {{
      modules = [ ./configuration.nix ];
    }};
  }};
}}
"""
GIT_INIT = (
    "git -C /etc/nixos init -q && git -C /etc/nixos config user.name 'fleetforge test stand-in' && "
    "git -C /etc/nixos config user.email standin@fleetforge.invalid && git -C /etc/nixos add -A && "
    "git -C /etc/nixos commit -q -m 'NixOS stand-in: initial configuration'"
)


def install_nixos_standin(testbed, name: str, release: str = "24.05", flake: bool = False, git: bool = False) -> None:
    """Make VM ``name`` of ``testbed`` (a ``fleetforge.testbed.Testbed``) the NixOS stand-in for
    NixOS ``release`` ("YY.MM") and build its first generation (``nixos-rebuild switch``).

    ``flake``: also write ``/etc/nixos/flake.nix`` as ``nixos-generate-config --flake`` does, with
    ``nixosConfigurations.<name>`` importing ``./configuration.nix`` (the real template names the
    default host name "nixos"; an operator renames it). ``git``: make ``/etc/nixos`` a git
    repository with everything committed (a git flake sees only committed or added files).

    Raises ``ValueError`` for a release that is not "YY.MM" or a name that is not a Nix
    identifier, and ``subprocess.CalledProcessError`` if a step fails on the VM.
    """
    if not RELEASE.fullmatch(release):
        raise ValueError(f"NixOS stand-in: release {release!r}: expected YY.MM, e.g. 24.05")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name):
        raise ValueError(f"NixOS stand-in: VM name {name!r}: expected letters, digits, _ and -")
    steps = [
        ("install -D -m 755 /dev/stdin /usr/local/sbin/nixos-rebuild", (STANDIN / "nixos-rebuild").read_text()),
        ("install -D -m 755 /dev/stdin /usr/local/bin/nixos-version", (STANDIN / "nixos-version").read_text()),
        *[
            (f"install -D -m 644 /dev/stdin {shlex.quote(f'{SHARE}/{file}')}", (STANDIN / file).read_text())
            for file in EVAL_FILES
        ],
        ("rm -f /etc/os-release && cat > /etc/os-release", OS_RELEASE.format(release=release)),
        ("install -D -m 644 /dev/stdin /etc/nixos/configuration.nix", CONFIGURATION.format(name=name, release=release)),
        ("cat > /etc/nixos/hardware-configuration.nix", "{ ... }: { }\n"),
    ]
    if flake:
        steps.append(("cat > /etc/nixos/flake.nix", FLAKE.format(name=name, release=release)))
    if git:
        steps.append((GIT_INIT, None))
    steps.append(("nixos-rebuild switch", None))
    for command, text in steps:
        testbed.ssh(name, command, input=text, check=True)
