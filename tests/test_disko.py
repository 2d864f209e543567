"""disko.nix checked with the real Nix evaluator (Debian's nix-bin, Nix 2.8): it parses, and it
evaluates standalone to exactly the layout's own JSON projection, for each hardware variant."""

import json
import shutil
import subprocess

import jinja2
import pytest

from fleetforge.layout.disko import hardware_json, render_disko
from fleetforge.layout.plan import layout_for
from fleetforge.layout.settings import LayoutSettings
from fleetforge.nixos.modules import to_nix
from fleetforge.render import render
from tests.conftest import facts_from

NIX_INSTANTIATE = shutil.which("nix-instantiate")

VARIANTS = {
    "virtio-blk vda, BIOS": ("qemu-virtio-blk-vda-bios", {}),
    "virtio-scsi sda, BIOS": ("qemu-virtio-scsi-sda-bios", {}),
    "virtio-scsi sda, EFI forced": ("qemu-virtio-scsi-sda-bios", {"boot": "efi"}),
    "NVMe disk, EFI": ("qemu-nvme-efi", {"disk": "nvme0n1"}),
    "hybrid, swap, own subvolumes": (
        "controller-docker-vda",
        {
            "swap_size": "8G",
            "subvolumes": {"@srv": {"mountpoint": "/srv", "compression": "lzo"}, "@containers": None},
            "extra_mount_options": ["autodefrag", "commit=120"],
        },
    ),  # fmt: skip
}


def nix(*args: str, path) -> subprocess.CompletedProcess:
    if NIX_INSTANTIATE is None:
        pytest.fail("nix-instantiate is missing: apt-get install nix-bin (scripts/setup.sh does)", pytrace=False)
    return subprocess.run([NIX_INSTANTIATE, *args, str(path)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("variant", VARIANTS)
def test_disko_file_evaluates_to_the_layouts_json(variant, tmp_path):
    fixture, data = VARIANTS[variant]
    plan = layout_for("h", facts_from(fixture), LayoutSettings.model_validate(data))
    path = tmp_path / "disko.nix"
    path.write_text(render_disko(plan))
    parsed = nix("--parse", path=path)
    assert parsed.returncode == 0, parsed.stderr
    evaluated = nix("--eval", "--strict", "--json", path=path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout) == plan.disko_config()


def test_projection_has_disko_structure():
    plan = layout_for("h", facts_from("qemu-nvme-efi"), LayoutSettings(disk="nvme0n1", swap_size=1024))
    disk = plan.disko_config()["disko"]["devices"]["disk"]["main"]
    assert disk["type"] == "disk" and disk["device"] == "/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_ffnvme0"
    parts = disk["content"]["partitions"]
    assert disk["content"]["type"] == "gpt" and list(parts) == ["ESP", "root"]
    assert parts["ESP"]["content"] == {
        "type": "filesystem", "format": "vfat", "mountpoint": "/boot", "mountOptions": ["umask=0077"],
    }  # fmt: skip
    btrfs = parts["root"]["content"]
    assert btrfs["type"] == "btrfs" and btrfs["extraArgs"] == ["-f"] and parts["root"]["size"] == "100%"
    assert btrfs["subvolumes"]["/@"] == {
        "mountpoint": "/",
        "mountOptions": ["noatime", "compress=zstd:2", "space_cache=v2"],
    }
    assert btrfs["subvolumes"]["/@swap"]["swap"] == {"swapfile": {"size": "1024M"}}
    assert 'btrfs property set "$MNTPOINT/@nix" compression zstd' in btrfs["postCreateHook"]
    assert 'chattr +C "$MNTPOINT/@var-log"' in btrfs["postCreateHook"]
    assert "@swap" not in btrfs["postCreateHook"]  # mkswapfile makes it NOCOW; a property would break that


def test_strict_undefined_fails_instead_of_rendering_empty():
    plan = layout_for("h", facts_from("qemu-virtio-blk-vda-bios"), None)
    with pytest.raises(jinja2.UndefinedError):
        render("disko.nix.j2", layout=plan, disk_name="main", swapfile="swapfile", hook=[])  # no nix()
    with pytest.raises(jinja2.UndefinedError):
        render("disko.nix.j2", disk_name="main", swapfile="swapfile", hook=[], nix=to_nix)  # no layout


def test_nix_strings_are_escaped(tmp_path):
    text = 'a "quoted" ${interpolation} \\ back\nslash $device'
    path = tmp_path / "s.nix"
    path.write_text(to_nix(text))
    assert json.loads(nix("--eval", "--strict", "--json", path=path).stdout) == text


def test_hardware_note_names_what_was_detected():
    plan = layout_for("h", facts_from("qemu-virtio-scsi-sda-bios"), None)
    note = json.loads(hardware_json(plan))
    assert note["disk"] == "sda" and note["by_id_path"] == "/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_ff-root"
    assert (note["size_bytes"], note["firmware"], note["transport"], note["boot_mode"]) == (
        10737418240, "bios", "virtio-scsi", "bios",
    )  # fmt: skip
    assert hardware_json(plan) == hardware_json(plan)  # no timestamps: a second push changes nothing
