"""End to end on the local QEMU test hosts (real VMs, real SSH, real systemd/udev/zram):
bad data changes nothing; plans differ per host; deploy; verify (CLI and plain pytest);
a second run changes nothing; backups kept; drift is reported and repaired.

The tests of this module run in order on the same two VMs, reset to their clean snapshot once,
through an inventory of exactly those two (other test modules start VMs of their own in the same
testbed, which the shipped inventory.py would list too).
"""

import json
import re
import subprocess
import sys

import pytest

from tests.e2e import helpers

pytestmark = pytest.mark.vm

STATE = (
    "sha256sum /etc/udev/rules.d/60-fleetforge-io.rules /etc/sysctl.d/60-fleetforge.conf "
    "/etc/systemd/zram-generator.conf /etc/nix/nix.conf 2>/dev/null; "
    "ls /etc/udev/rules.d /etc/sysctl.d /etc/systemd /etc/nix 2>/dev/null; "
    "cat /proc/sys/vm/swappiness /proc/sys/vm/dirty_ratio /proc/swaps /sys/block/[vs]d?/queue/scheduler "
    "/sys/block/[vs]d?/queue/read_ahead_kb; ls /sys/block"
)
# What Debian's systemd-zram-generator ships enabled: a fresh VPS that installed it has this zram0.
DEBIAN_DEFAULT_ZRAM = "[zram0]\nzram-size = min(ram / 2, 4096)\ncompression-algorithm = lzo-rle\n"


HOSTS = ("vm-blk-1", "vm-scsi-1")
INVENTORY: list[str] = []  # the module's inventory file, written by the ``vms`` fixture


def inventory() -> str:
    return INVENTORY[0]


def run(*argv: str) -> subprocess.CompletedProcess:
    return helpers.run(*argv, env={"FLEETFORGE_INVENTORY": INVENTORY[0]})


@pytest.fixture(scope="module", params=["asyncssh", "ssh"])
def vms(request, testbed, testbed_vms, tmp_path_factory):
    """The two VMs from their clean snapshot, reached over fleetforge's @asyncssh connector, then
    again over pyinfra's @ssh: every test of this module runs unchanged over both."""
    inventory = tmp_path_factory.mktemp("inventory") / "inventory.py"
    inventory.write_text(
        "from fleetforge.inventory import group\n"
        "from fleetforge.testbed import inventory_hosts\n"
        f"testbed = group([entry for entry in inventory_hosts() if entry[0] in {HOSTS!r}],\n"
        f"                {{'fleetforge_connector': {request.param!r}}})\n"
    )
    INVENTORY[:] = [str(inventory)]
    for name in HOSTS:
        testbed.reset(name)
    # vm-scsi-1 starts like a VPS where Debian's zram-generator default is already active.
    testbed.ssh(
        "vm-scsi-1",
        "cat > /etc/systemd/zram-generator.conf && systemctl daemon-reload && systemctl start dev-zram0.swap",
        input=DEBIAN_DEFAULT_ZRAM,
        check=True,
    )
    return testbed


def state(testbed, name: str) -> str:
    return testbed.ssh(name, STATE, check=True).stdout


def test_bad_host_data_stops_the_run_and_changes_no_host(vms):
    before = {name: state(vms, name) for name in ("vm-blk-1", "vm-scsi-1")}
    out = run("pyinfra", "-y", "--data", "zram_size=lots", inventory(), "deploys/vps.py")
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert 'host vm-blk-1: zram_size: expected a size like "2G", "512M" or a number of MiB, got \'lots\'' in text
    assert "Traceback" not in text and "Beginning operation run" not in text
    assert {name: state(vms, name) for name in before} == before


def test_plans_differ_per_host_and_explain_themselves(vms):
    out = run("fleetforge", "plan", inventory(), "--json")
    assert out.returncode == 0, out.stderr
    plans = {name: item["plan"] for name, item in json.loads(out.stdout).items()}
    facts = {name: item["facts"] for name, item in json.loads(out.stdout).items()}
    blk, scsi = plans["vm-blk-1"], plans["vm-scsi-1"]
    assert [d["name"] for d in blk["disks"]] == ["vda", "vdb"] and [d["name"] for d in scsi["disks"]] == ["sda", "sdb"]
    assert facts["vm-scsi-1"]["disks"][0]["transport"] == "virtio-scsi"
    assert facts["vm-blk-1"]["disks"][0]["by_id_path"] == "/dev/disk/by-id/virtio-ff-root"
    ram = {n: f["memory"]["mem_total_bytes"] // 2**20 for n, f in facts.items()}
    assert blk["zram"]["size_mib"]["value"] == ram["vm-blk-1"] < scsi["zram"]["size_mib"]["value"] == ram["vm-scsi-1"]
    assert (blk["nix"]["settings"]["cores"]["value"], scsi["nix"]["settings"]["cores"]["value"]) == ("1", "2")
    skipped = {s["key"]: s["reason"] for s in blk["skipped_sysctls"]}
    assert "does not exist" in skipped["net.netfilter.nf_conntrack_max"]  # no nf_conntrack module on the VMs
    # the kernel's own scheduler choice by hardware queues: 1 vCPU -> 1 queue, 2 vCPUs -> 2 queues
    assert [d["nr_hw_queues"] for d in facts["vm-blk-1"]["disks"]] == [1, 1]
    assert [d["nr_hw_queues"] for d in facts["vm-scsi-1"]["disks"]] == [2, 2]
    assert (blk["disks"][0]["scheduler"]["value"], scsi["disks"][0]["scheduler"]["value"]) == ("mq-deadline", "none")
    # Podman from Debian, store on the ext4 root: its default kept, with the reason
    assert blk["podman"]["driver"]["value"] == "overlay" and not blk["podman"]["write"]
    assert "is on ext4: the btrfs driver needs btrfs" in blk["podman"]["driver"]["reason"]
    assert (
        blk["sysctls"]
        and {"vm.watermark_scale_factor": "125"}.items()
        <= {s["key"]: s["value"]["value"] for s in blk["sysctls"]}.items()
    )
    for plan in plans.values():
        for disk in plan["disks"]:
            assert disk["scheduler"]["reason"] and disk["scheduler"]["source"]


def test_dry_run_shows_plan_and_diff_and_changes_nothing(vms):
    before = {name: state(vms, name) for name in ("vm-blk-1", "vm-scsi-1")}
    out = run("pyinfra", inventory(), "deploys/vps.py", "--dry")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "[vm-blk-1]  plan: vda mq-deadline/ra 4096" in text and "[vm-scsi-1] plan: sda none/ra 4096" in text
    assert "Will create /etc/sysctl.d/60-fleetforge.conf" in text and "+ vm.swappiness = 180" in text
    assert "Will modify /etc/systemd/zram-generator.conf" in text  # vm-scsi-1 has Debian's default
    assert "Beginning operation run" not in text
    assert {name: state(vms, name) for name in before} == before


def test_verify_fails_before_the_deploy(vms):
    out = run("fleetforge", "verify", inventory())
    assert out.returncode == 1
    assert "FAIL vm-blk-1: vda read_ahead_kb: expected '4096', got '128'" in out.stdout


def test_deploy_then_verify_passes(vms):
    out = run("pyinfra", "-y", inventory(), "deploys/vps.py")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    verify = run("fleetforge", "verify", inventory())
    assert verify.returncode == 0, verify.stdout
    # live values, plus the SHA-256 of every file the deploy wrote and zram-generator installed
    assert re.search(r"vm-blk-1: (\d+)/\1 checks passed", verify.stdout), verify.stdout
    assert int(re.search(r"vm-blk-1: (\d+)/", verify.stdout)[1]) >= 33
    # the ext4 store keeps Debian's setup: no storage.conf written
    assert vms.ssh("vm-blk-1", "test -e /etc/containers/storage.conf").returncode == 1


def test_debian_default_zram_is_replaced_not_stacked(vms):
    devices = vms.ssh(
        "vm-scsi-1", "ls /sys/block | grep zram; swapon --show=NAME --noheadings", check=True
    ).stdout.split()
    assert devices == ["zram0", "/dev/zram0"]
    backups = vms.ssh("vm-scsi-1", "cat /etc/systemd/zram-generator.conf.fleetforge-*.bak", check=True).stdout
    assert backups == DEBIAN_DEFAULT_ZRAM


def test_same_checks_pass_under_plain_pytest_with_testinfra(vms):
    out = run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "fleetforge/pytest_checks.py")
    assert out.returncode == 0, out.stdout[-3000:]
    assert "passed" in out.stdout and "vm-scsi-1" not in out.stdout.split("passed")[-1]


def test_second_run_changes_nothing(vms):
    before = {name: state(vms, name) for name in ("vm-blk-1", "vm-scsi-1")}
    out = run("pyinfra", "-y", inventory(), "deploys/vps.py")
    assert out.returncode == 0, out.stdout[-3000:]
    grand_total = next(line for line in (out.stdout + out.stderr).splitlines() if "Grand total" in line).split()
    assert grand_total[-4:] == ["2", "-", "-", "2"]  # hosts x ops (one batch each): no change, no error
    assert {name: state(vms, name) for name in before} == before


def test_drift_is_reported_by_verify_and_repaired_by_the_next_run(vms):
    vms.ssh("vm-blk-1", "sysctl -qw vm.swappiness=60 && echo none > /sys/block/vda/queue/scheduler", check=True)
    out = run("fleetforge", "verify", inventory())
    assert out.returncode == 1
    assert "FAIL vm-blk-1: sysctl vm.swappiness: expected '180', got '60'" in out.stdout
    assert "FAIL vm-blk-1: vda scheduler: expected 'mq-deadline', got 'none'" in out.stdout
    assert re.search(r"vm-scsi-1: (\d+)/\1 checks passed", out.stdout), out.stdout
    pytest_out = run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "fleetforge/pytest_checks.py")
    assert pytest_out.returncode == 1 and "2 failed" in pytest_out.stdout
    assert "vm-blk-1: sysctl vm.swappiness: expected '180', got '60'" in pytest_out.stdout
    redeploy = run("pyinfra", "-y", inventory(), "deploys/vps.py")
    assert "live state differs from the plan: sysctl vm.swappiness: 60 -> 180" in redeploy.stdout + redeploy.stderr
    assert run("fleetforge", "verify", inventory()).returncode == 0


def test_the_inventory_reaches_the_hosts_over_the_chosen_connector(vms, request):
    from pyinfra.api import State
    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory

    from fleetforge.connector.asyncssh_connector import AsyncSSHConnector

    ctx_state.set(State(check_for_changes=False))
    hosts = list(make_inventory(inventory()))
    assert sorted(h.name for h in hosts) == sorted(HOSTS)
    over_asyncssh = request.node.callspec.params["vms"] == "asyncssh"
    assert all(issubclass(h.connector_cls, AsyncSSHConnector) == over_asyncssh for h in hosts)
