"""``fleetforge tune --measure`` on the two test VMs: both root filesystems (ext4 on virtio-blk
vda, ext4 on virtio-scsi sda) and a btrfs data disk (vdb on vm-blk-1, whose read-ahead is the
filesystem's own bdi). Afterwards every scheduler and read-ahead is back, no test file or
restore state is left, the plan shows the measurement, and ``deploys/vps.py`` applies the plan.
Refusals: a nearly full filesystem, a disk without a mounted filesystem, a run killed midway
(restored by the next run, which also measures r for swappiness; the deploy after it applies
the measured swappiness and verify checks it).
"""

import json
import os
import signal
import subprocess
import time

import pytest

from tests.e2e.helpers import BIN, REPO, run

pytestmark = pytest.mark.vm

VMS = ("vm-blk-1", "vm-scsi-1")
DATA = "/srv/data"
# every knob a measurement touches, and what it must leave behind
READINGS = (
    "for q in /sys/block/[sv]d?/queue; do echo $q $(cat $q/scheduler) $(cat $q/read_ahead_kb); done; "
    "for f in /sys/fs/btrfs/*-*/bdi; do echo $f $(cat $f/read_ahead_kb); done"
)
LEFTOVERS = (
    f"ls -a / {DATA} 2>/dev/null | grep -c fleetforge-fio; ls /var/lib/fleetforge/measure-restore.json 2>&1; true"
)
INVENTORY = """
import json, os
from fleetforge.testbed import inventory_hosts

_data = json.loads(os.environ["FF_TEST_DATA"])
testbed = [(name, {**data, **_data}) for name, data in inventory_hosts() if name in ("vm-blk-1", "vm-scsi-1")]
"""


@pytest.fixture(scope="module")
def fleet(testbed, testbed_vms, tmp_path_factory):
    """Both VMs reset; btrfs on vm-blk-1's vdb mounted at /srv/data; vm-scsi-1's sdb left empty."""
    for name in VMS:
        testbed.reset(name)
    testbed.ssh("vm-blk-1", f"mkfs.btrfs -q -f /dev/vdb && mkdir -p {DATA} && mount /dev/vdb {DATA}", check=True)
    tmp = tmp_path_factory.mktemp("measure")
    (tmp / "inventory.py").write_text(INVENTORY)
    env = {"FF_TEST_DATA": json.dumps({"measurements_dir": str(tmp / "measured")})}
    yield testbed, tmp, env
    for name in VMS:
        testbed.reset(name)


def readings(testbed) -> dict[str, str]:
    return {name: testbed.ssh(name, READINGS, check=True).stdout for name in VMS}


def tune(tmp, env, *args: str) -> subprocess.CompletedProcess:
    return run("fleetforge", "tune", str(tmp / "inventory.py"), "--measure", *args, env=env, timeout=900)


def test_measured_on_both_roots_and_a_btrfs_disk_restored_planned_and_deployed(fleet, io_alone):
    testbed, tmp, env = fleet
    before = readings(testbed)
    out = tune(tmp, env, "--repeats", "4", "--budget-s", "25", "--file-mib", "32")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert readings(testbed) == before
    for name in VMS:
        assert testbed.ssh(name, LEFTOVERS, check=True).stdout.split("\n")[0] == "0"
        assert "No such file" in testbed.ssh(name, LEFTOVERS, check=True).stdout
    blk = json.loads((tmp / "measured" / "vm-blk-1.json").read_text())
    scsi = json.loads((tmp / "measured" / "vm-scsi-1.json").read_text())
    assert [(d["disk"], d["mount"], d["fstype"]) for d in blk["disks"]] == [
        ("vda", "/", "ext4"),
        ("vdb", DATA, "btrfs"),
    ]
    assert blk["disks"][1]["read_ahead_path"].startswith("/sys/fs/btrfs/")
    assert [(d["disk"], d["mount"]) for d in scsi["disks"]] == [("sda", "/")]
    assert scsi["skipped"][0]["disk"] == "sdb" and scsi["skipped"][0]["reason"].startswith("no mounted filesystem")
    for disk in blk["disks"] + scsi["disks"]:
        for series in disk["series"]:
            per = {c: sum(1 for s in series["samples"] if s["candidate"] == c) for c in series["candidates"]}
            assert set(per.values()) == {4} and all(s["value"] > 0 for s in series["samples"]), series
    # the plan shows each measured value's finding: a win as its source, else in its reason
    plan = run("fleetforge", "plan", str(tmp / "inventory.py"), "--json", env=env)
    assert plan.returncode == 0, plan.stderr[-2000:]
    plans = {name: json.loads(plan.stdout)[name]["plan"] for name in VMS}
    rows = [(n, d["name"], d["scheduler"]) for n in VMS for d in plans[n]["disks"] if d["name"] in ("vda", "sda")]
    rows += [(n, "bdi", b["read_ahead_kb"]) for n in VMS for b in plans[n]["btrfs_read_ahead"]]
    for host, _, row in rows:
        assert row["source"].startswith(f"measured on {host} ") or "measured: " in row["reason"], row
    # a deploy applies the measured plan; the live values are the plan's
    deployed = run("pyinfra", "-y", str(tmp / "inventory.py"), "deploys/vps.py", env=env, timeout=900)
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-2000:]
    live = readings(testbed)
    for name in VMS:
        for d in plans[name]["disks"]:
            queue = f"/sys/block/{d['name']}/queue"
            line = next(x for x in live[name].splitlines() if x.startswith(queue + " "))
            assert f"[{d['scheduler']['value']}]" in line and line.endswith(f" {d['read_ahead_kb']['value']}"), line
    bdi = plans["vm-blk-1"]["btrfs_read_ahead"][0]["read_ahead_kb"]["value"]
    assert live["vm-blk-1"].splitlines()[-1].endswith(f"/bdi {bdi}")


def test_refusals_full_filesystem_and_a_killed_run_restored_by_the_next(fleet, io_alone):
    testbed, tmp, env = fleet
    before = readings(testbed)
    # nearly full: 3.5 GiB of the 4 GiB btrfs disk taken
    testbed.ssh("vm-blk-1", f"fallocate -l 3500M {DATA}/filler && sync", check=True)
    out = tune(tmp, env, "--limit", "vm-blk-1", "--disk", "vdb", "--repeats", "4", "--budget-s", "5")
    testbed.ssh("vm-blk-1", f"rm -f {DATA}/filler && btrfs filesystem sync {DATA}", check=True)
    assert out.returncode == 0, out.stderr[-3000:]
    (skipped,) = json.loads((tmp / "measured" / "vm-blk-1.json").read_text())["skipped"]
    assert skipped["disk"] == "vdb" and skipped["reason"].startswith(
        f"refused: a 256 MiB test file would take {DATA} to "
    )
    assert "(limit 85%;" in skipped["reason"] and "vm-blk-1: vdb: refused" in out.stderr

    # killed midway: the controller dies while fio runs; the host keeps its restore state
    argv = [str(BIN / "fleetforge"), "tune", str(tmp / "inventory.py"), "--measure", "--limit", "vm-blk-1"]
    argv += ["--disk", "vda", "--repeats", "4", "--budget-s", "60", "--file-mib", "32"]
    proc = subprocess.Popen(
        argv, cwd=REPO, env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    state = ""
    while time.monotonic() < deadline and '"files":["/' not in state:
        time.sleep(1)
        state = testbed.ssh("vm-blk-1", "cat /var/lib/fleetforge/measure-restore.json 2>/dev/null; true").stdout
    time.sleep(3)  # into the fio jobs
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert '"files":["/.fleetforge-fio.' in state, state
    assert testbed.ssh("vm-blk-1", "ls -a / | grep -c fleetforge-fio", check=True).stdout.strip() == "1"

    # the next run restores first, then measures (zram is loaded since the first test's deploy:
    # the swap measurement runs too)
    out = tune(tmp, env, "--limit", "vm-blk-1", "--disk", "vda", "--knob", "read_ahead_kb", "--knob", "swappiness",
               "--repeats", "4", "--budget-s", "10", "--file-mib", "32")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads((tmp / "measured" / "vm-blk-1.json").read_text())
    assert any(line.startswith("deleted /.fleetforge-fio.") for line in found["restored"]), found["restored"]
    assert "(left by an interrupted run)" in out.stderr
    assert readings(testbed) == before
    assert testbed.ssh("vm-blk-1", LEFTOVERS, check=True).stdout.split("\n")[0] == "0"
    # swap: single 4 KiB reads from a test zram device and from the root disk's test file
    swap = found["swap"]
    assert swap["algorithm"] == "zstd" and swap["file_disk"] == "vda" and len(swap["zram_read_us"]) == 4
    assert swap["r"] > 1 and swap["swappiness"] == round(200 * swap["r"] / (1 + swap["r"])), swap
    assert testbed.ssh("vm-blk-1", "ls /sys/block | grep -c zram", check=True).stdout.strip() == "1"
    plan = run("fleetforge", "plan", str(tmp / "inventory.py"), "--limit", "vm-blk-1", "--json", env=env)
    sysctls = {s["key"]: s["value"] for s in json.loads(plan.stdout)["vm-blk-1"]["plan"]["sysctls"]}
    assert sysctls["vm.swappiness"]["value"] == str(min(200, swap["swappiness"]))
    assert sysctls["vm.swappiness"]["source"].startswith("measured on vm-blk-1 "), sysctls["vm.swappiness"]
    # the next deploy applies the measured value and verify checks it
    inventory = str(tmp / "inventory.py")
    deployed = run("pyinfra", "-y", inventory, "deploys/vps.py", "--limit", "vm-blk-1", env=env, timeout=900)
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-2000:]
    live = testbed.ssh("vm-blk-1", "cat /proc/sys/vm/swappiness", check=True).stdout.strip()
    assert live == sysctls["vm.swappiness"]["value"]
    verified = run("fleetforge", "verify", inventory, "--limit", "vm-blk-1", "--json", env=env)
    assert verified.returncode == 0, verified.stdout[-3000:]
