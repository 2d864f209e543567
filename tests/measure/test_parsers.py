"""What a host answers during a measurement is untrusted: findmnt, /sys/class/block links, fio's
JSON, mktemp's path and the restore state file are parsed strictly, and hostile values are
refused or left out, never quoted into a command or acted on."""

import json

import pytest

from fleetforge.measure import host as remote
from fleetforge.measure.host import HostOutputError

# findmnt -J -b -l -o TARGET,SOURCE,FSTYPE,SIZE,AVAIL,OPTIONS on vm-blk-1 (Debian 12) after
# deploys/disk_layout.py: ext4 root on vda1, btrfs on vdb with two subvolume mounts
FINDMNT_VM = {
    "filesystems": [
        {"target": "/", "source": "/dev/vda1", "fstype": "ext4", "size": 4109344768, "avail": 2472435712,
         "options": "rw,relatime"},
        {"target": "/proc", "source": "proc", "fstype": "proc", "size": 0, "avail": 0, "options": "rw"},
        {"target": "/run", "source": "tmpfs", "fstype": "tmpfs", "size": 104857600, "avail": 104000000,
         "options": "rw"},
        {"target": "/var/lib/containers", "source": "/dev/vdb[/@containers]", "fstype": "btrfs",
         "size": 4294967296, "avail": 4200000000, "options": "rw,relatime,space_cache=v2,subvol=/@containers"},
        {"target": "/srv/data", "source": "/dev/vdb[/@data]", "fstype": "btrfs", "size": 4294967296,
         "avail": 4200000000, "options": "rw,relatime"},
    ]
}  # fmt: skip


def test_mounts_keep_disk_filesystems_and_map_btrfs_subvolumes_to_their_device():
    mounts = remote.parse_mounts(json.dumps(FINDMNT_VM))
    assert [(m.target, m.device, m.fstype, m.read_only) for m in mounts] == [
        ("/", "vda1", "ext4", False),
        ("/var/lib/containers", "vdb", "btrfs", False),
        ("/srv/data", "vdb", "btrfs", False),
    ]
    assert mounts[0].avail_bytes == 2472435712


@pytest.mark.parametrize(
    "row",
    [
        {"target": "/x; rm -rf /", "source": "/dev/vdb", "fstype": "ext4", "size": 1, "avail": 1},
        {"target": "/a b", "source": "/dev/vdb", "fstype": "ext4", "size": 1, "avail": 1},
        {"target": "/a/../etc", "source": "/dev/vdb", "fstype": "ext4", "size": 1, "avail": 1},
        {"target": "relative", "source": "/dev/vdb", "fstype": "ext4", "size": 1, "avail": 1},
        {"target": "/m", "source": "/dev/../sda", "fstype": "ext4", "size": 1, "avail": 1},
        {"target": "/m", "source": "/dev/$(reboot)", "fstype": "ext4", "size": 1, "avail": 1},
        {"target": "/m\n/", "source": "/dev/vdb", "fstype": "ext4", "size": 1, "avail": 1},
    ],
)
def test_a_mount_a_command_could_not_carry_as_one_word_is_left_out(row):
    assert remote.parse_mounts(json.dumps({"filesystems": [row]})) == []


@pytest.mark.parametrize("size", ["-5", "1e9", True, None, "١٢"])
def test_a_size_that_is_not_a_byte_count_is_refused_naming_the_field(size):
    row = {"target": "/", "source": "/dev/vda1", "fstype": "ext4", "size": size, "avail": 1}
    with pytest.raises(HostOutputError, match="findmnt: size: expected a byte count"):
        remote.parse_mounts(json.dumps({"filesystems": [row]}))


def test_findmnt_output_that_is_not_json_is_refused():
    with pytest.raises(HostOutputError, match="findmnt: expected JSON"):
        remote.parse_mounts("<html>")


def test_parent_disks_from_sysfs_links_and_only_kernel_names():
    text = (
        "vda1 /sys/devices/pci0000:00/0000:00:05.0/virtio2/block/vda/vda1\n"
        "vdb /sys/devices/pci0000:00/0000:00:06.0/virtio3/block/vdb\n"
        "sda1 /sys/devices/x/block/$(reboot)/sda1\n"
        "$(id) /sys/devices/x/block/sdb\n"
    )
    assert remote.parse_parent_disks(text) == {"vda1": "vda", "vdb": "vdb"}
    assert "'$(reboot)'" not in remote.parent_disks_command(["vda1", "$(reboot)"])
    assert remote.parent_disks_command(["vda1", "$(reboot)"]).endswith("fleetforge-disks vda1")


FIO_RANDREAD = {
    "fio version": "fio-3.33",
    "jobs": [
        {
            "jobname": "fleetforge",
            "read": {"iops": 5120.5, "bw_bytes": 20973568, "clat_ns": {"percentile": {"99.000000": 2899968}}},
            "write": {"iops": 0, "bw_bytes": 0, "clat_ns": {}},
        }
    ],
}


def test_fio_json_after_warnings_gives_iops_mib_s_and_p99_ms():
    text = "fio: file hash not empty on exit\n" + json.dumps(FIO_RANDREAD)
    result = remote.parse_fio(text, "randread")
    assert result.iops == 5120.5 and result.mib_s == pytest.approx(20.002, abs=1e-3)
    assert result.p99_ms == pytest.approx(2.899968)


@pytest.mark.parametrize("iops", [-1, float("nan"), "9e9", True, 1e400])
def test_fio_numbers_that_are_not_finite_non_negative_are_refused(iops):
    bad = json.loads(json.dumps(FIO_RANDREAD))
    bad["jobs"][0]["read"]["iops"] = iops
    with pytest.raises(HostOutputError, match="fio: "):
        remote.parse_fio(json.dumps(bad), "randread")


def test_fio_version_is_a_version_or_refused():
    assert remote.fio_version("fio-3.33\n") == "fio-3.33"
    with pytest.raises(HostOutputError):
        remote.fio_version("fio-3.33; reboot")


def test_job_argv_is_one_word_per_option_and_the_buffered_read_is_a_cold_single_pass():
    job = remote.Job("seqread-buffered", "/srv/.fleetforge-fio.AbCdEfGh12", 64, 0.5)
    argv = job.argv()
    assert "--filename=/srv/.fleetforge-fio.AbCdEfGh12" in argv and "--runtime=500ms" in argv
    assert {"--direct=0", "--invalidate=1", "--time_based=0"} <= set(argv)
    assert {"--direct=1", "--time_based=1", "--bs=4k"} <= set(remote.Job("randwrite", "/x", 64, 1).argv())


def test_restore_state_accepts_what_fleetforge_writes_and_round_trips():
    state = remote.RestoreState(
        values={
            "/sys/block/vda/queue/scheduler": "mq-deadline",
            "/sys/block/vda/queue/read_ahead_kb": "128",
            "/sys/fs/btrfs/0b3c2a1e-8f4d-4c2b-9a7e-1d2c3b4a5f60/bdi/read_ahead_kb": "4096",
        },
        files=["/.fleetforge-fio.AbCdEfGh12", "/srv/data/.fleetforge-fio.ZyXwVuTs98"],
        packages=["fio"],
        manager="apt",
    )
    assert remote.parse_state(state.model_dump_json()) == state
    commands = remote.restore_commands(state)
    assert commands[0] == "echo mq-deadline > /sys/block/vda/queue/scheduler"
    assert "rm -f -- /srv/data/.fleetforge-fio.ZyXwVuTs98" in commands
    assert commands[-1] == "DEBIAN_FRONTEND=noninteractive apt-get remove -y -q fio"
    assert remote.parse_state("") is None


@pytest.mark.parametrize(
    "state",
    [
        {"values": {"/etc/shadow": "x"}},
        {"values": {"/sys/block/vda/queue/scheduler": "none; reboot"}},
        {"values": {"/sys/block/vda/queue/read_ahead_kb": "4096 > /etc/passwd"}},
        {"values": {"/sys/block/../../etc/queue/scheduler": "none"}},
        {"files": ["/etc/passwd"]},
        {"files": ["/srv/../etc/.fleetforge-fio.AbCdEfGh12"]},
        {"files": ["/srv/.fleetforge-fio.AbCdEfGh12 /etc"]},
        {"packages": ["openssh-server"]},
        {"manager": "sh -c reboot"},
        {"unknown": 1},
    ],
)
def test_a_restore_state_fleetforge_would_not_write_is_refused_and_never_acted_on(state):
    with pytest.raises(HostOutputError, match="measure-restore.json"):
        remote.parse_state(json.dumps(state))


def test_zram_compression_of_the_live_swap_in_readable_units():
    from fleetforge.measure.swap import compression

    assert compression("209715200 52428800 55000000 0 55000000 0 0 0 0\n") == (4.0, "200 MiB stored in 50 MiB")
    assert compression("262144 4096 12288 0 12288 0 0 0 0\n") == (64.0, "256 KiB stored in 4 KiB")
    assert compression("4096 64 12288 0 12288 0 0 0 0\n") == (64.0, "4 KiB stored in 64 bytes")
    assert compression("") == (None, "no zram swap active")
    assert compression("0 0 0 0 0 0 0 0 0\n") == (None, "zram swap holds no pages yet")
