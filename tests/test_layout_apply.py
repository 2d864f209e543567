"""Applying a layout: the refusal rules, the commands, and the read-back, from real
``DiskStateFact`` outputs captured on vm-blk-1's second disk (tests/facts/layout.DiskStateFact)."""

import json
from pathlib import Path

import pytest
from pyinfra.api import QuoteString, StringCommand
from pyinfra.api.exceptions import FactProcessError

from fleetforge.facts.layout import DiskStateFact, parse_disk_state
from fleetforge.layout.apply import (
    apply_steps,
    decide,
    differences,
    expected_state,
    joined,
    read_state,
    state_args,
)
from fleetforge.layout.plan import layout_for
from fleetforge.layout.settings import LayoutSettings
from fleetforge.planner import PlanError
from tests.conftest import facts_from

FIXTURES = Path(__file__).parent / "facts" / "layout.DiskStateFact"


def state(name: str):
    return parse_disk_state(json.loads((FIXTURES / f"{name}.json").read_text())["output"])


def plan(**data):
    settings = LayoutSettings.model_validate({"disk": "vdb", "boot": "hybrid", "swap_size": "256M", **data})
    return layout_for("vm-blk-1", facts_from("qemu-virtio-blk-vda-bios"), settings)


def test_fixtures_were_captured_with_this_layouts_arguments():
    for path in FIXTURES.glob("*.json"):
        assert json.loads(path.read_text())["args"] == state_args(plan()), path.name


def test_blank_disk_is_laid_out():
    disk = state("vdb-blank")
    assert disk.blank and disk.serial == "ff-data" and disk.size_bytes == 4294967296
    assert decide("vm-blk-1", plan(), disk, None) == "blank"


@pytest.mark.parametrize("fixture", ["vdb-ext4-no-partition-table", "vdb-gpt-ext4-mounted"])
def test_disk_with_data_is_refused_naming_host_and_disk(fixture):
    disk = state(fixture)
    assert not disk.blank
    with pytest.raises(PlanError) as err:
        decide("vm-blk-1", plan(), disk, None)
    message = str(err.value)
    assert message.startswith("host vm-blk-1: disk_layout.")
    assert "disk vdb (/dev/disk/by-id/virtio-ff-data, serial ff-data)" in message


def test_ext4_signature_is_reported_and_a_matching_serial_confirms_the_wipe():
    disk = state("vdb-ext4-no-partition-table")
    assert disk.signatures == ["vdb ext4 0x438"] and disk.partitions == [] and not disk.in_use()
    with pytest.raises(PlanError, match="it is not blank \\(vdb ext4 0x438\\); nothing was written; set disk_layout"):
        decide("vm-blk-1", plan(), disk, None)
    with pytest.raises(PlanError, match="confirm_wipe_serial 'ff-root' is not this disk's serial"):
        decide("vm-blk-1", plan(), disk, "ff-root")
    assert decide("vm-blk-1", plan(), disk, "ff-data") == "wipe"


def test_a_disk_in_use_is_refused_even_when_confirmed():
    disk = state("vdb-gpt-ext4-mounted")
    assert disk.in_use() == ["/dev/vdb1 mounted at /srv/x"]
    with pytest.raises(PlanError, match="^host vm-blk-1: disk_layout.disk: refusing to lay out disk vdb .* in use"):
        decide("vm-blk-1", plan(), disk, "ff-data")


def test_laid_out_disk_reads_back_as_planned_and_is_left_alone():
    disk = state("vdb-laid-out-hybrid-swap")
    assert read_state(plan(), disk) == expected_state(plan())
    assert decide("vm-blk-1", plan(), disk, None) == "noop"
    found = read_state(plan(), disk)
    assert found.subvolumes["@var-log"].nodatacow and found.subvolumes["@var-cache"].compression == "none"
    assert found.mounts["/boot"].umask == "0077" and found.mounts["/nix"].compress == "zstd:2"
    assert found.swapfile_size_mib == 256


def test_a_different_plan_on_a_mounted_layout_is_refused_with_the_differences():
    with pytest.raises(PlanError) as err:
        decide("vm-blk-1", plan(boot="bios"), state("vdb-laid-out-hybrid-swap"), "ff-data")
    assert "in use" in str(err.value) and "differs from the plan" in str(err.value)
    drift = differences(expected_state(plan(boot="bios")), read_state(plan(), state("vdb-laid-out-hybrid-swap")))
    assert any(line.startswith("mounts /boot: planned None") for line in drift)


def test_missing_device_is_a_plan_error():
    with pytest.raises(PlanError, match="it is not there"):
        decide("vm-blk-1", plan(), parse_disk_state(["@@device", "@@lsblk", "@@done"]), None)


def test_truncated_output_fails_this_host_only():
    with pytest.raises(FactProcessError):
        DiskStateFact().process(["@@device", "/dev/vdb", "@@lsblk", '{"blockdevices": ['])
    with pytest.raises(FactProcessError):
        DiskStateFact().process(["@@device", "/dev/vdb"])


def test_commands_are_quoted_and_ordered():
    steps = apply_steps(plan(), "wipe", ["/dev/vdb1"])
    assert [what for what, _ in steps][:3] == [
        "check the disk again",
        "partition",
        "make filesystems, subvolumes, properties",
    ]
    raw = [[c.get_raw_value() for c in commands] for _, commands in steps]
    guard = raw[0][0]
    assert guard.startswith("sh -c ") and guard.endswith("fleetforge-guard /dev/disk/by-id/virtio-ff-data ff-data wipe")
    assert raw[1][:3] == [
        "wipefs -a /dev/vdb1",
        "sgdisk --zap-all /dev/disk/by-id/virtio-ff-data",
        "wipefs -a /dev/disk/by-id/virtio-ff-data",
    ]
    assert raw[1][3] == (
        "sgdisk --align-end --new=1:0:+1M --change-name=1:disk-main-boot --typecode=1:EF02 "
        "--new=2:0:+512M --change-name=2:disk-main-ESP --typecode=2:EF00 "
        "--new=3:0:-0 --change-name=3:disk-main-root --typecode=3:8300 /dev/disk/by-id/virtio-ff-data"
    )
    fmt = raw[2]
    assert fmt[:2] == [
        "mkfs.vfat /dev/disk/by-id/virtio-ff-data-part2",
        "mkfs.btrfs -f /dev/disk/by-id/virtio-ff-data-part3",
    ]
    assert "btrfs property set /run/fleetforge-btrfs-top/@nix compression zstd" in fmt
    assert "btrfs property set /run/fleetforge-btrfs-top/@var-cache compression none" in fmt
    assert "chattr +C /run/fleetforge-btrfs-top/@var-log" in fmt
    assert "btrfs filesystem mkswapfile --size 256M /run/fleetforge-btrfs-top/@swap/swapfile" in fmt
    mounts = [c for c in raw[3] if c.startswith("mount ")]
    assert mounts[0] == (
        "mount -o noatime,compress=zstd:2,space_cache=v2,subvol=@ /dev/disk/by-id/virtio-ff-data-part3 /mnt/fleetforge"
    )
    assert mounts.index(next(m for m in mounts if m.endswith(" /mnt/fleetforge/home"))) < mounts.index(
        next(m for m in mounts if m.endswith(" /mnt/fleetforge/home/dev"))
    )
    assert "mount -o umask=0077 /dev/disk/by-id/virtio-ff-data-part2 /mnt/fleetforge/boot" in mounts
    blank = [c.get_raw_value() for c in apply_steps(plan(), "blank")[1][1]]
    assert not [c for c in blank if "zap-all" in c] and blank[0].startswith("sgdisk --align-end")


def test_odd_values_stay_quoted():
    odd = plan().model_copy(update={"mount_root": "/mnt/my dir"})  # host data validation rejects it
    mounts = [c.get_raw_value() for c in apply_steps(odd, "blank")[3][1]]
    assert "mkdir -p '/mnt/my dir'" in mounts


def test_joined_runs_in_order_and_stops_at_the_first_failure():
    command = joined([StringCommand("true"), StringCommand("echo", QuoteString("a b")), StringCommand("false")])
    assert command.get_raw_value() == "true && echo 'a b' && false"
