"""Disk layouts planned from captured facts: disk choice, boot partitions, subvolumes, what each
seed-002 btrfs option becomes, and host-data errors naming host and key."""

import pytest

from fleetforge.layout.plan import layout_for, partition_device
from fleetforge.layout.settings import DEFAULT_SUBVOLUMES, LayoutSettings
from fleetforge.planner import PlanError
from fleetforge.settings import SettingsError, settings_from_data
from tests.conftest import facts_from

BLK = "qemu-virtio-blk-vda-bios"
SCSI = "qemu-virtio-scsi-sda-bios"
NVME = "qemu-nvme-efi"


def layout(fixture, **data):
    settings = settings_from_data("h", {"disk_layout": data} if data else {}).disk_layout
    return layout_for("h", facts_from(fixture), settings)


def test_root_disk_by_id_and_bios_boot_on_virtio_blk():
    plan = layout(BLK)
    assert (plan.disk, plan.device, plan.kernel_path) == ("vda", "/dev/disk/by-id/virtio-ff-root", "/dev/vda")
    assert "mounted at /" in plan.disk_reason
    assert plan.boot_mode == "bios"
    assert [(p.name, p.number, p.type_code, p.size_mib, p.format) for p in plan.partitions] == [
        ("boot", 1, "EF02", 1, None),
        ("root", 2, "8300", None, "btrfs"),
    ]
    assert [p.label for p in plan.partitions] == ["disk-main-boot", "disk-main-root"]  # disko's default labels


def test_scsi_disk_is_sda_and_efi_can_be_forced():
    plan = layout(SCSI)
    assert (plan.disk, plan.transport, plan.device) == (
        "sda",
        "virtio-scsi",
        "/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_ff-root",
    )
    efi = layout(SCSI, boot="efi")
    assert efi.boot_mode == "efi" and efi.boot_reason == "set in host data (disk_layout.boot)"
    (esp,) = [p for p in efi.partitions if p.type_code == "EF00"]
    assert (esp.name, esp.size_mib, esp.format, esp.mountpoint, esp.mount_options) == (
        "ESP",
        512,
        "vfat",
        "/boot",
        ["umask=0077"],
    )
    assert [p.type_code for p in efi.partitions] == ["EF00", "8300"]


def test_efi_firmware_is_detected_and_a_disk_can_be_chosen():
    plan = layout(NVME)
    assert (plan.firmware, plan.boot_mode, plan.disk) == ("efi", "efi", "vda")
    nvme = layout(NVME, disk="nvme0n1")
    assert (nvme.disk, nvme.device, nvme.transport) == (
        "nvme0n1",
        "/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_ffnvme0",
        "nvme",
    )
    assert layout(NVME, disk="/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_ffnvme0").disk == "nvme0n1"
    assert layout(NVME, disk="/dev/nvme0n1").disk == "nvme0n1"


def test_hybrid_when_firmware_cannot_be_told_and_single_disk_without_root_mount():
    plan = layout("controller-docker-vda")
    assert plan.boot_mode == "hybrid" and "container" in plan.boot_reason
    assert [p.name for p in plan.partitions] == ["boot", "ESP", "root"]  # disko example/hybrid.nix
    assert plan.device == "/dev/vda"  # no by-id link: the kernel path
    assert plan.disk_reason.startswith("the only disk")


def test_default_subvolumes_follow_seed_002():
    plan = layout(BLK)
    got = {s.name: (s.mountpoint, s.compression, s.nodatacow) for s in plan.subvolumes}
    assert got == {name: value[:3] for name, value in DEFAULT_SUBVOLUMES.items()}
    assert got["@dev"][0] == "/home/dev"
    assert got["@var-log"] == ("/var/log", None, True)
    assert got["@var-cache"] == ("/var/cache", "none", False)
    mountpoints = [s.mountpoint for s in plan.subvolumes]
    assert mountpoints[0] == "/" and mountpoints.index("/home") < mountpoints.index("/home/dev")  # mount order


def test_mount_options_are_filesystem_wide_and_per_subvolume_settings_are_properties():
    plan = layout(BLK)
    assert plan.btrfs_mount_options == ["noatime", "compress=zstd:2", "space_cache=v2"]
    for forbidden in ("nodatacow", "autodefrag", "ssd", "compress=zstd:3", "compress=zstd:1"):
        assert forbidden not in plan.btrfs_mount_options
    steps = plan.tuning_steps()
    assert ("property", "@nix", "zstd") in steps and ("property", "@containers", "zstd") in steps
    assert ("property", "@var-cache", "none") in steps and ("nocow", "@var-log", "+C") in steps
    assert not [s for s in steps if s[1] == "@var-log" and s[0] == "property"]
    notes = {(n.subvolume, n.seed_option): n.realised_as for n in plan.notes}
    assert notes[("@nix", "compress=zstd:3")] == "btrfs property (level dropped)"
    assert notes[("@var-log", "nodatacow")] == "chattr +C"
    assert notes[("@dev", "autodefrag")] == "dropped" and notes[("@", "ssd")] == "dropped"
    assert layout(BLK, compress_level=5).btrfs_mount_options[1] == "compress=zstd:5"


def test_host_data_merges_over_defaults_and_adds_swap():
    plan = layout(BLK, subvolumes={"@dev": {"mountpoint": "/home/alice/dev"}, "@containers": None,
                                   "@srv": {"mountpoint": "/srv", "compression": "lzo"}}, swap_size="2G",
                  extra_mount_options=["autodefrag"])  # fmt: skip
    subs = {s.name: s for s in plan.subvolumes}
    assert (subs["@dev"].mountpoint, subs["@dev"].compression) == ("/home/alice/dev", "zstd")
    assert "@containers" not in subs and subs["@srv"].compression == "lzo"
    assert (subs["@swap"].mountpoint, subs["@swap"].swapfile_size_mib, subs["@swap"].compression) == (
        "/.swapvol",
        2048,
        None,
    )
    assert ("swapfile", "@swap", "2048") in plan.tuning_steps()
    assert plan.btrfs_mount_options[-1] == "autodefrag"
    assert "@containers" not in {n.subvolume for n in plan.notes}


@pytest.mark.parametrize(
    ("data", "key", "fragment"),
    [
        (
            {"subvolumes": {"@nix": {"mountpoint": "/var/log"}}},
            "disk_layout.subvolumes",
            "@nix and @var-log on /var/log",
        ),
        ({"subvolumes": {"@": None}}, "disk_layout.subvolumes", "a subvolume mounted at /"),
        (
            {"subvolumes": {"@nix": {"compression": "zstd:3"}}},
            "disk_layout.subvolumes.@nix.compression",
            "per filesystem",
        ),
        ({"subvolumes": {"@nix": {"size_mib": 100}}}, "disk_layout.subvolumes.@nix", "no size"),
        ({"subvolumes": {"@nix": {"nodatacow": True}}}, "disk_layout.subvolumes", "nodatacow on @nix"),
        (
            {"subvolumes": {"@x": {"compression": "zstd"}}},
            "disk_layout.subvolumes",
            "a mountpoint for the new subvolume @x",
        ),
        ({"subvolumes": {"@x": {"mountpoint": "/srv/../etc"}}}, "disk_layout.subvolumes.@x.mountpoint", "normalised"),
        ({"subvolumes": {"a/b": {"mountpoint": "/x"}}}, "disk_layout.subvolumes", "no '/'"),
        (
            {"swap_size": "1G", "subvolumes": {"@x": {"mountpoint": "/.swapvol"}}},
            "disk_layout.subvolumes",
            "@swap and @x",
        ),
        ({"swap_size": "lots"}, "disk_layout.swap_size", "a size like"),
        ({"extra_mount_options": ["nodatacow"]}, "disk_layout.extra_mount_options", "whole filesystem"),
        ({"extra_mount_options": ["compress=lzo"]}, "disk_layout.extra_mount_options", "the layout sets it"),
        ({"boot": "uefi"}, "disk_layout.boot", "'hybrid'"),
        ({"disk": "/etc/passwd; rm"}, "disk_layout.disk", "expected a disk like vda"),
        # A trailing newline passed `re.match(r"^...$")` checks: every pattern is a fullmatch now.
        ({"disk": "vdb\n"}, "disk_layout.disk", "got 'vdb\\n'"),
        ({"disk": "/dev/vdb\n"}, "disk_layout.disk", "expected a disk like vda"),
        ({"mount_root": "/mnt/ff\n"}, "disk_layout.mount_root", "normalised path"),
        ({"disko_file": "/etc/disko.nix\n"}, "disk_layout.disko_file", "normalised path"),
        ({"hardware_file": "/etc/x.json\r"}, "disk_layout.hardware_file", "normalised path"),
        ({"confirm_wipe_serial": "ff-data\n"}, "disk_layout.confirm_wipe_serial", "serial"),
        ({"extra_mount_options": ["autodefrag\n"]}, "disk_layout.extra_mount_options", "mount options like"),
        ({"subvolumes": {"@x\n": {"mountpoint": "/x"}}}, "disk_layout.subvolumes", "subvolume names"),
        ({"subvolumes": {"@x": {"mountpoint": "/x\n"}}}, "disk_layout.subvolumes.@x.mountpoint", "normalised"),
        ({"dsk": "vdb"}, "disk_layout", "unknown ['dsk']"),
    ],
)
def test_bad_layout_data_names_host_and_key(data, key, fragment):
    with pytest.raises(SettingsError) as err:
        settings_from_data("web1", {"disk_layout": data})
    (line,) = str(err.value).splitlines()
    assert line.startswith(f"host web1: {key}: "), line
    assert fragment in line


def test_fact_dependent_problems_are_plan_errors():
    with pytest.raises(PlanError, match=r"^host h: disk_layout.disk: expected one of the detected disks \(vda"):
        layout(BLK, disk="sdz")
    with pytest.raises(
        PlanError, match=r"^host h: disk_layout.swap_size: expected a layout that fits vdb \(4096 MiB\)"
    ):
        layout(BLK, disk="vdb", swap_size="4G")
    with pytest.raises(PlanError, match="expected no subvolume at /boot"):
        layout(NVME, subvolumes={"@boot": {"mountpoint": "/boot"}})
    assert layout(BLK, subvolumes={"@boot": {"mountpoint": "/boot"}}).boot_mode == "bios"  # no ESP: fine
    facts = facts_from(NVME)
    two_disks_no_root = facts.model_copy(
        update={"disks": [d.model_copy(update={"partitions": []}) for d in facts.disks]}
    )
    with pytest.raises(PlanError, match="no partition is mounted at / and there are several disks"):
        layout_for("h", two_disks_no_root, LayoutSettings())


@pytest.mark.parametrize(
    ("device", "n", "expected"),
    [
        ("/dev/disk/by-id/virtio-ff-data", 3, "/dev/disk/by-id/virtio-ff-data-part3"),
        ("/dev/nvme0n1", 1, "/dev/nvme0n1p1"),
        ("/dev/vdb", 2, "/dev/vdb2"),
        ("/dev/sda", 15, "/dev/sda15"),
    ],
)
def test_partition_devices_number_like_disko(device, n, expected):
    assert partition_device(device, n) == expected
