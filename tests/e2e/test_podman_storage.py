"""Podman's storage driver on a real VM: the data disk laid out by ``deploys/disk_layout.py``,
its ``@containers`` subvolume mounted at ``/var/lib/containers`` (as on the installed system),
Podman from Debian, an image made locally (``podman import`` of a busybox tarball: there is no
registry here). A store that holds an image is refused naming host, store and count, and keeps
its image; with the switch allowed the driver becomes btrfs, the old image stays on disk, and a
container runs. The btrfs filesystem's own read-ahead (its bdi) is the knob the plan sets.
The ext4 case (Debian's default kept, with its reason) is in ``test_vps_deploy.py``.
"""

import json
import re

import pytest

from tests.e2e.helpers import run

pytestmark = pytest.mark.vm

VM = "vm-blk-1"
LAYOUT = {"disk": "vdb", "boot": "bios"}
STORE = "/var/lib/containers/storage"
INVENTORY = """
import json, os
from fleetforge.testbed import inventory_hosts

_data = json.loads(os.environ["FF_TEST_DATA"])
testbed = [(name, {**data, **_data}) for name, data in inventory_hosts() if name == "vm-blk-1"]
"""
# a one-binary image, built on the VM in a directory mktemp makes (no predictable name as root)
IMPORT = (
    'd=$(mktemp -d) && mkdir "$d/bin" && cp /bin/busybox "$d/bin/" && '
    'tar -C "$d" -cf "$d.tar" . && podman import -q "$d.tar" ff-test:1 >/dev/null; '
    'r=$?; rm -rf "$d" "$d.tar"; exit $r'
)
READINGS = (
    "cat /sys/block/vdb/queue/read_ahead_kb; for f in /sys/fs/btrfs/*/bdi; do "
    'echo "$(basename "$(readlink -f "$f")") $(cat "$f/read_ahead_kb")"; done'
)


@pytest.fixture(scope="module")
def vm(testbed, testbed_vms, tmp_path_factory):
    """vm-blk-1 with vdb laid out and ``@containers`` bind-mounted at /var/lib/containers."""
    testbed.reset(VM)
    inventory = tmp_path_factory.mktemp("inventory") / "inventory.py"
    inventory.write_text(INVENTORY)
    out = run(
        "pyinfra",
        "-y",
        str(inventory),
        "deploys/disk_layout.py",
        env={"FF_TEST_DATA": json.dumps({"disk_layout": LAYOUT})},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    testbed.ssh(VM, "mount --bind /mnt/fleetforge/var/lib/containers /var/lib/containers", check=True)
    yield testbed, inventory
    testbed.reset(VM)


def deploy(inventory, **data):
    return run("pyinfra", "-y", str(inventory), "deploys/vps.py", env={"FF_TEST_DATA": json.dumps(data)})


def readings(testbed) -> tuple[int, dict[str, int]]:
    """``(vdb queue/read_ahead_kb, {bdi: read_ahead_kb})`` of the btrfs filesystems."""
    first, *rest = testbed.ssh(VM, READINGS, check=True).stdout.splitlines()
    return int(first), {bdi: int(kb) for bdi, kb in (line.split() for line in rest)}


IMPORTED: list[str] = []  # the short ID of the image imported while the store was overlay


def images(testbed) -> list[str]:
    return testbed.ssh(VM, "podman images -q", check=True).stdout.split()


def test_the_store_is_on_btrfs_and_btrfs_reads_through_its_own_bdi(vm):
    testbed, _ = vm
    assert testbed.ssh(VM, "findmnt -n -o FSTYPE -T /var/lib/containers", check=True).stdout.strip() == "btrfs"
    device_kb, bdi = readings(testbed)
    print(f"before the deploy: vdb queue/read_ahead_kb={device_kb}, btrfs bdi read_ahead_kb={bdi}")
    # two knobs: the disk keeps the kernel's 128 KiB while btrfs gave its own bdi at least 4 MiB
    assert device_kb == 128 and list(bdi.values()) == [4096]


def test_a_store_with_an_image_is_refused_and_keeps_it(vm):
    testbed, inventory = vm
    testbed.ssh(VM, IMPORT, check=True)
    assert len(before := images(testbed)) == 1
    IMPORTED[:] = before
    out = deploy(inventory)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert (
        f"host vm-blk-1: containers_storage_switch_with_images: store {STORE} holds 1 image(s) and 0 "
        "container(s) of the overlay driver; switching to the btrfs driver hides them from Podman"
    ) in text
    assert "Beginning operation run" not in text and "Traceback" not in text
    assert images(testbed) == before
    assert testbed.ssh(VM, "test -e /etc/containers/storage.conf").returncode == 1


def test_allowed_switch_gives_btrfs_keeps_the_old_image_and_runs_a_container(vm):
    testbed, inventory = vm
    data = {"containers_storage_switch_with_images": True, "disks": {"vdb": {"read_ahead_kb": 8192}}}
    out = deploy(inventory, **data)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    conf = testbed.ssh(VM, "cat /etc/containers/storage.conf", check=True).stdout
    assert re.search(r'^driver = "btrfs"$', conf, re.M) and f'graphroot = "{STORE}"' in conf
    assert images(testbed) == []  # the overlay image is no longer shown...
    kept = testbed.ssh(VM, f"ls {STORE}/overlay-images | grep -E '^[0-9a-f]{{64}}$'", check=True).stdout.split()
    assert [image[:12] for image in kept] == IMPORTED  # ...but is still there: nothing was deleted
    testbed.ssh(VM, IMPORT, check=True)
    ran = testbed.ssh(VM, "podman run --rm --network none ff-test:1 /bin/busybox echo from-btrfs", check=True)
    assert ran.stdout.strip() == "from-btrfs"
    info = testbed.ssh(VM, "podman info --format '{{.Store.GraphDriverName}}'; ls " + STORE, check=True).stdout
    assert info.split()[0] == "btrfs" and "btrfs-images" in info.split()
    device_kb, bdi = readings(testbed)
    print(f"after the deploy: vdb queue/read_ahead_kb={device_kb}, btrfs bdi read_ahead_kb={bdi}")
    assert device_kb == 8192 and list(bdi.values()) == [8192]  # host data reached the knob that acts
    verify = run("fleetforge", "verify", str(inventory), "--json", env={"FF_TEST_DATA": json.dumps(data)})
    assert verify.returncode == 0, verify.stdout
    results = {r["item"]: r for r in json.loads(verify.stdout)["results"]}
    assert results["podman storage driver"]["actual"] == "btrfs"  # podman info, after the deploy
    (bdi,) = [r for item, r in results.items() if item.startswith("btrfs ") and item.endswith("read_ahead_kb")]
    assert bdi["actual"] == "8192" and bdi["severity"] == "ok"


def kib_per_read_request(testbed, device_kb: int, bdi_kb: int) -> int:
    """Average size of vdb's read requests while a 64 MiB file on the btrfs is read cold, with the
    disk's and the btrfs bdi's read-ahead set as given (``/sys/block/vdb/stat`` before and after)."""
    script = (
        f"echo {device_kb} > /sys/block/vdb/queue/read_ahead_kb && "
        f"for f in /sys/fs/btrfs/*/bdi; do echo {bdi_kb} > $f/read_ahead_kb; done && "
        "echo 3 > /proc/sys/vm/drop_caches && s1=$(awk '{print $1, $3}' /sys/block/vdb/stat) && "
        "dd if=/mnt/fleetforge/home/ra-file of=/dev/null bs=4k 2>/dev/null && "
        "s2=$(awk '{print $1, $3}' /sys/block/vdb/stat) && echo $s1 $s2"
    )
    ios1, sectors1, ios2, sectors2 = map(int, testbed.ssh(VM, script, check=True).stdout.split())
    return (sectors2 - sectors1) // 2 // (ios2 - ios1)


def test_file_reads_on_btrfs_follow_the_bdi_not_the_disk(vm):
    """Why the plan sets the bdi: with the disk's read-ahead high and the bdi's low, a cold read
    goes in small requests; the other way round in large ones (up to max_sectors_kb)."""
    testbed, _ = vm
    testbed.ssh(VM, "head -c 64M /dev/urandom > /mnt/fleetforge/home/ra-file && sync", check=True)
    disk_high = kib_per_read_request(testbed, 8192, 128)
    bdi_high = kib_per_read_request(testbed, 128, 4096)
    print(f"KiB per read request: disk 8192/bdi 128 -> {disk_high}; disk 128/bdi 4096 -> {bdi_high}")
    assert disk_high <= 136 and bdi_high >= 4 * disk_high
