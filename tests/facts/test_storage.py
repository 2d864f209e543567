"""Parsing the probe's btrfs, podman and nix-settings sections: real shapes, and host output
that is not what it claims (a compromised host) refused with the field named."""

import pytest
from pyinfra.api.exceptions import FactProcessError

from fleetforge.facts.storage import parse_btrfs, parse_nix_setting_names, parse_podman

FSID = "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"


def test_btrfs_filesystem_with_its_bdi_and_devices():
    (fs,) = parse_btrfs([f"{FSID}|btrfs-1|4096|vdb1 vdc "])
    assert (fs.fsid, fs.bdi, fs.read_ahead_kb, fs.devices) == (FSID, "btrfs-1", 4096, ["vdb1", "vdc"])
    assert parse_btrfs([]) == []


@pytest.mark.parametrize(
    "line, field",
    [
        ("../../etc|btrfs-1|4096|vdb1", "btrfs fsid"),
        (f"{FSID}|sda|4096|vdb1", "bdi of btrfs"),
        (f"{FSID}|btrfs-1|4096|vdb1 ../x", "device of btrfs"),
        (f"{FSID}|btrfs-1|lots|vdb1", "bad btrfs line"),
        (f"{FSID}|btrfs-1|4096", "bad btrfs line"),
    ],
)
def test_btrfs_lines_that_are_not_what_they_claim_are_refused(line, field):
    with pytest.raises(FactProcessError, match=field):
        parse_btrfs([line])


def test_podman_section_as_debian_prints_it_and_with_a_storage_conf():
    info = parse_podman(
        ["version podman version 4.3.1", "fstype ext4", "store overlay-images 0", "store overlay-containers 0"]
    )
    assert (info.version, info.conf, info.driver, info.graphroot) == (
        "4.3.1",
        None,
        None,
        "/var/lib/containers/storage",
    )
    assert info.graphroot_fstype == "ext4" and [(s.driver, s.images) for s in info.stores] == [("overlay", 0)]
    info = parse_podman(
        [
            "version podman version 5.4.2",
            "conf /etc/containers/storage.conf",
            "set driver overlay",
            "set graphroot /srv/containers",
            "set runroot /run/containers/storage",
            "set transient_store true",  # other keys of the table are not used
            "fstype btrfs",
            "store overlay-images 2",
            "store overlay-containers 1",
            "store vfs-images 1",
        ]
    )
    assert (info.driver, info.graphroot, info.runroot, info.graphroot_fstype) == (
        "overlay", "/srv/containers", "/run/containers/storage", "btrfs",
    )  # fmt: skip
    assert [(s.driver, s.images, s.containers) for s in info.stores] == [("overlay", 2, 1), ("vfs", 1, 0)]
    assert parse_podman([]) is None  # not installed


@pytest.mark.parametrize(
    "line, field",
    [
        ('set graphroot /x" driver="vfs', "storage graphroot"),
        ("set graphroot relative/path", "storage graphroot"),
        ("set runroot /run/a b", "storage runroot"),
        ("set driver btrfs;rm", "storage driver"),
        ("conf /tmp/evil.conf", "storage.conf path"),
        ("fstype ext4 x", "graphroot fstype"),
        ("store ../../x-images 1", "podman store"),
        ("store overlay-images many", "podman store"),
    ],
)
def test_podman_output_that_is_not_what_it_claims_is_refused(line, field):
    with pytest.raises(FactProcessError, match=field):
        parse_podman(["version podman version 4.3.1", line])


def test_nix_setting_names_only_names():
    assert parse_nix_setting_names(["max-jobs", "cores", "max-jobs"]) == ["cores", "max-jobs"]
    assert parse_nix_setting_names([]) is None
    with pytest.raises(FactProcessError, match="nix setting name"):
        parse_nix_setting_names(["max-jobs = 4"])
