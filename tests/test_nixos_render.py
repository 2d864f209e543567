"""NixOS modules checked with the real Nix evaluator (Debian's nix-bin, Nix 2.8): every module
parses, and evaluating it gives back exactly the option values built from the plan
(plan -> Nix -> JSON -> same values), for several captured hardware variants."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fleetforge.facts.models import BtrfsFilesystem, PodmanInfo
from fleetforge.nixos.modules import ensure_import, nixos_options, render_modules, to_nix
from fleetforge.planner import plan_host
from fleetforge.settings import HostSettings, settings_from_data
from tests.components.helpers import facts, settings
from tests.conftest import facts_from

VARIANTS = ["qemu-virtio-blk-vda-bios", "qemu-virtio-scsi-sda-bios", "qemu-nvme-efi", "qemu-nvme-efi-zram-swap"]
pytestmark = pytest.mark.skipif(shutil.which("nix-instantiate") is None, reason="needs nix-instantiate (nix-bin)")


def nix_eval(expr: str) -> object:
    out = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "-E", expr], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def write_modules(tmp_path: Path, files: dict[str, str]) -> Path:
    for path, content in files.items():
        target = tmp_path / Path(path).relative_to("/etc/nixos")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    return tmp_path / "fleetforge"


@pytest.mark.parametrize("variant", VARIANTS)
def test_modules_parse_and_evaluate_to_the_plan(tmp_path, variant):
    facts = facts_from(variant)
    plan = plan_host("h", facts, HostSettings())
    directory = write_modules(tmp_path, render_modules(plan, facts))
    for module in directory.iterdir():
        parsed = subprocess.run(["nix-instantiate", "--parse", str(module)], capture_output=True, text=True)
        assert parsed.returncode == 0, f"{module.name}: {parsed.stderr}"
    for name, options in nixos_options(plan, facts).items():
        assert nix_eval(f"import {directory / name} {{ }}") == options, name
    imports = nix_eval(f"map builtins.baseNameOf (import {directory} {{ }}).imports")
    assert sorted(imports) == sorted(nixos_options(plan, facts))


def test_podman_and_btrfs_read_ahead_modules_evaluate_to_the_plan(tmp_path):
    """A host whose Podman store and disk vdb are btrfs: podman.nix and btrfs-read-ahead.nix too."""
    podman = PodmanInfo(
        version="4.3.1", conf=None, driver=None, graphroot="/var/lib/containers/storage", runroot=None,
        graphroot_fstype="btrfs", stores=[],
    )  # fmt: skip
    fsid = "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
    host = facts(podman=podman, btrfs=[BtrfsFilesystem(fsid=fsid, bdi="btrfs-1", read_ahead_kb=4096, devices=["vdb"])])
    plan = plan_host("h", host, settings())
    directory = write_modules(tmp_path, render_modules(plan, host))
    options = nixos_options(plan, host)
    for name in ("podman.nix", "btrfs-read-ahead.nix"):
        assert nix_eval(f"import {directory / name} {{ }}") == options[name], name
    assert options["podman.nix"] == {
        "virtualisation": {"containers": {"storage": {"settings": {"storage": {"driver": "btrfs"}}}}}
    }
    rule = f"w /sys/fs/btrfs/{fsid}/bdi/read_ahead_kb - - - - 4096"
    assert options["btrfs-read-ahead.nix"] == {"systemd": {"tmpfiles": {"rules": [rule]}}}


@pytest.mark.parametrize("variant", VARIANTS)
def test_option_values_are_the_plan(variant):
    facts = facts_from(variant)
    plan = plan_host("h", facts, settings_from_data("h", {"nix_substituters": ["http://10.0.0.5:5000"]}))
    options = nixos_options(plan, facts)
    sysctl = options["sysctl.nix"]["boot"]["kernel"]["sysctl"]
    assert {k: str(v) for k, v in sysctl.items()} == plan.sysctl_values()
    assert isinstance(sysctl["vm.swappiness"], int) and isinstance(sysctl["net.ipv4.tcp_rmem"], str)
    zram = options["zram.nix"]["zramSwap"]
    ram_mib = facts.memory.mem_total_bytes // 2**20
    # NixOS: zram-size = min(memoryPercent * ram / 100, memoryMax)
    assert min(zram["memoryPercent"] * ram_mib // 100, zram["memoryMax"] // 2**20) == plan.zram.size_mib.value
    rules = options["io-scheduler.nix"]["services"]["udev"]["extraRules"]
    for disk in plan.disks:
        assert f'KERNEL=="{disk.name}", ATTR{{queue/scheduler}}="{disk.scheduler.value}"' in rules
    settings = options["nix-settings.nix"]["nix"]["settings"]
    assert settings["substituters"] == ["http://10.0.0.5:5000", "https://cache.nixos.org"]
    assert settings["fsync-metadata"] is True and settings["max-jobs"] == int(plan.nix.settings["max-jobs"].value)


def test_zram_above_ram_and_disabled(tmp_path):
    facts = facts_from("qemu-virtio-blk-vda-bios")
    ram_mib = facts.memory.mem_total_bytes // 2**20
    big = nixos_options(plan_host("h", facts, settings_from_data("h", {"zram_size": int(ram_mib * 1.5)})), facts)
    zram = big["zram.nix"]["zramSwap"]
    assert zram["memoryPercent"] == 150 and min(
        zram["memoryPercent"] * ram_mib // 100, zram["memoryMax"] // 2**20
    ) == int(ram_mib * 1.5)
    off = nixos_options(plan_host("h", facts, settings_from_data("h", {"zram": False})), facts)
    assert off["zram.nix"] == {"zramSwap": {"enable": False}}


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        'quo"te',
        "back\\slash",
        "dollar ${HOME} $x",
        "two ''quotes''",
        "multi\nline ${x}\n''\n\nend\n",
        "tab\there",
        "cr\rlf\r\n",
        "",
    ],
)
def test_strings_survive_the_evaluator(value):
    assert nix_eval(to_nix({"a.b": [value, 1, True, None, {"k": value}]})) == {
        "a.b": [value, 1, True, None, {"k": value}]
    }


CONFIGS = {
    "imports-list": '{ config, pkgs, ... }:\n{\n  imports = [ ./hardware-configuration.nix ];\n  networking.hostName = "h";\n}\n',
    "no-imports": '# my host\n{ config, lib, pkgs, ... }:\n\n{\n  networking.hostName = "h";\n}\n',
    "already": "{ ... }:\n{\n  imports = [ ./hardware-configuration.nix ./fleetforge ];\n}\n",
}


@pytest.mark.parametrize("shape", CONFIGS)
def test_configuration_import_is_added_once_and_still_parses(tmp_path, shape):
    text = ensure_import(CONFIGS[shape])
    assert text.count("./fleetforge") == 1
    assert ensure_import(text) == text
    (tmp_path / "configuration.nix").write_text(text)
    (tmp_path / "hardware-configuration.nix").write_text("{ ... }: { }\n")
    (tmp_path / "fleetforge").mkdir()
    (tmp_path / "fleetforge" / "default.nix").write_text("{ ... }: { }\n")
    imports = nix_eval(
        f"map builtins.baseNameOf (import {tmp_path}/configuration.nix {{ config = {{}}; lib = {{}}; pkgs = {{}}; }}).imports"
    )
    assert "fleetforge" in imports


def test_unknown_configuration_shape_is_refused_not_guessed():
    with pytest.raises(ValueError, match="not a"):
        ensure_import("import ./other.nix\n")
