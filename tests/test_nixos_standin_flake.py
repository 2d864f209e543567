"""Flake hosts on the TEST STAND-IN for NixOS: ``eval.nix`` evaluates ``nixosConfigurations.<host>``
of a flake the way ``nixos-rebuild --flake`` would (a stand-in ``nixpkgs.lib.nixosSystem``), and
the stand-in ``nixos-rebuild`` evaluates a git flake from the files git knows only, and renders
nix.conf like NixOS. Real ``nix-instantiate`` and real ``git``; no VM.
"""

import json
import socket
import subprocess
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path

import pytest

from fleetforge.testbed.nixos_standin import FLAKE, STANDIN

CONFIGURATION = '{ lib, ... }: { imports = [ ./hardware-configuration.nix ]; networking.hostName = "web-1"; }\n'


def rebuild_module(tmp_path: Path):
    """The stand-in nixos-rebuild script as a module, reading eval.nix from the source tree and
    the release from an os-release file under ``tmp_path``."""
    loader = SourceFileLoader("standin_nixos_rebuild", str(STANDIN / "nixos-rebuild"))
    module = module_from_spec(spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    (tmp_path / "os-release").write_text('ID=nixos\nVERSION_ID="24.05"\n')
    module.EVAL, module.OS_RELEASE, module.NIXOS = STANDIN / "eval.nix", tmp_path / "os-release", tmp_path / "none"
    return module


def write_flake(directory: Path, flake: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "flake.nix").write_text(flake or FLAKE.format(name="web-1", release="24.05"))
    (directory / "configuration.nix").write_text(CONFIGURATION)
    (directory / "hardware-configuration.nix").write_text('{ ... }: { boot.kernel.sysctl."vm.swappiness" = 30; }\n')
    return directory


def eval_flake(directory: Path, host: str) -> subprocess.CompletedProcess:
    argv = [
        "nix-instantiate",
        "--eval",
        "--strict",
        "--json",
        str(STANDIN / "eval.nix"),
        "--argstr",
        "release",
        "24.05",
    ]
    return subprocess.run(
        [*argv, "--arg", "flake", str(directory), "--argstr", "host", host], capture_output=True, text=True
    )


def test_generated_flake_evaluates_configuration_nix(tmp_path):
    out = eval_flake(write_flake(tmp_path / "nixos"), "web-1")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["config"]["boot"]["kernel"]["sysctl"]["vm.swappiness"] == 30


def test_missing_host_attribute_is_named(tmp_path):
    out = eval_flake(write_flake(tmp_path / "nixos"), "db-2")
    assert out.returncode != 0
    assert f"flake 'path:{tmp_path}/nixos' does not provide attribute 'nixosConfigurations.db-2'" in out.stderr


def test_other_inputs_system_and_special_args(tmp_path):
    flake = """{
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05";
  inputs.home-manager.url = "github:nix-community/home-manager";
  outputs = { self, nixpkgs, home-manager, ... }@inputs: {
    nixosConfigurations.web-1 = nixpkgs.lib.nixosSystem {
      system = "x86_64-linux";
      specialArgs = { inherit inputs; swappiness = 40; };
      modules = [ ./configuration.nix ({ swappiness, ... }: { boot.kernel.sysctl."vm.swappiness" = nixpkgs.lib.mkForce swappiness; }) ];
    };
  };
}
"""
    out = eval_flake(write_flake(tmp_path / "nixos", flake), "web-1")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["config"]["boot"]["kernel"]["sysctl"]["vm.swappiness"] == 40


def test_flake_modules_are_as_strict_as_configuration_nix(tmp_path):
    directory = write_flake(tmp_path / "nixos")
    (directory / "configuration.nix").write_text("{ ... }: { zramSwap.memorypercent = 5; }\n")
    out = eval_flake(directory, "web-1")
    assert out.returncode != 0 and "The option `zramSwap.memorypercent' does not exist." in out.stderr


def git(directory: Path, *args: str) -> None:
    base = ["git", "-C", str(directory), "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    subprocess.run([*base, *args], check=True, capture_output=True)


def test_git_flake_sees_only_files_git_knows(tmp_path):
    """An import of an untracked file fails, as Nix fails it for a git flake, until `git add`."""
    nixos = rebuild_module(tmp_path)
    directory = write_flake(tmp_path / "etc-nixos")
    git(directory, "init", "-q")
    git(directory, "add", "-A")
    git(directory, "commit", "-q", "-m", "initial")
    (directory / "fleetforge").mkdir()
    (directory / "fleetforge" / "default.nix").write_text('{ ... }: { boot.kernel.sysctl."vm.dirty_ratio" = 7; }\n')
    (directory / "configuration.nix").write_text(CONFIGURATION.replace("imports = [", "imports = [ ./fleetforge"))
    before = set(Path("/tmp").glob("nixos-standin-flake-*"))
    with pytest.raises(nixos.Fail, match="fleetforge"):
        nixos.evaluate((str(directory), "web-1"))
    git(directory, "add", "fleetforge", "configuration.nix")  # added, not committed: Nix sees it
    assert nixos.evaluate((str(directory), "web-1"))["boot"]["kernel"]["sysctl"]["vm.dirty_ratio"] == 7
    assert set(Path("/tmp").glob("nixos-standin-flake-*")) <= before, "the private copies are removed"


def test_missing_host_fails_rebuild_with_the_git_flake_named(tmp_path):
    nixos = rebuild_module(tmp_path)
    directory = write_flake(tmp_path / "etc-nixos")
    git(directory, "init", "-q")
    git(directory, "add", "-A")
    with pytest.raises(
        nixos.Fail, match=rf"flake 'git\+file://{directory}' does not provide attribute 'nixosConfigurations.db-2'"
    ):
        nixos.evaluate((str(directory), "db-2"))


def test_flake_reference_forms(tmp_path):
    nixos = rebuild_module(tmp_path)
    assert nixos.parse_args(["test", "--flake", f"{tmp_path}#web-1"]) == ("test", False, (str(tmp_path), "web-1"))
    assert nixos.parse_args(["--flake", f"path:{tmp_path}", "switch"])[2] == (str(tmp_path), socket.gethostname())
    assert nixos.parse_args(["switch", "--rollback"]) == ("switch", True, None)
    nixos.NIXOS = write_flake(tmp_path / "etc-nixos")  # /etc/nixos/flake.nix present: flake mode by default
    assert nixos.parse_args(["test"])[2] == (str(nixos.NIXOS), socket.gethostname())
    assert nixos.parse_args(["test", "--no-flake"])[2] is None
    with pytest.raises(nixos.Fail, match="local flakes only"):
        nixos.parse_args(["test", "--flake", "github:owner/repo#web-1"])


def test_nix_conf_lists_each_entry_once_like_nixos_renders_it(tmp_path):
    nixos = rebuild_module(tmp_path)
    (tmp_path / "configuration.nix").write_text(
        '{ ... }: { nix.settings = { substituters = [ "http://10.0.0.1:5000?priority=30" ];'
        ' trusted-public-keys = [ "fleet-1:abc=" ]; extra-experimental-features = [ "nix-command" ]; }; }\n'
    )
    nixos.NIXOS = tmp_path
    lines = nixos.nix_conf(nixos.evaluate(None)["nix"]).splitlines()
    settings = dict(line.split(" = ", 1) for line in lines if not line.startswith("#"))
    assert settings["substituters"] == "http://10.0.0.1:5000?priority=30 https://cache.nixos.org/"
    assert settings["trusted-public-keys"].split() == [
        "fleet-1:abc=",
        "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=",
    ]
    assert settings["trusted-users"] == "root" and settings["sandbox"] == "true"
    keys = [line.split(" = ")[0] for line in lines if not line.startswith("#")]
    extra = [k.startswith("extra-") for k in keys]
    assert extra == sorted(extra) and settings["extra-experimental-features"] == "nix-command"  # extra-* keys last
    assert len(settings) == len([line for line in lines if not line.startswith("#")])
