"""End to end on vm-blk-1's empty second disk (virtio-blk /dev/vdb, serial ff-data): a layout
applied by ``deploys/disk_layout.py`` reads back equal to the plan; a second run changes
nothing; a disk with data is refused (host and disk named) and its data survives; with
``confirm_wipe_serial`` it is wiped and laid out. Also ``fleetforge disko`` and
``deploys/disko.py`` against the live VM.

Self-contained: the VM is reset to its clean snapshot at module start (other modules reset the
VMs too). The tests run in order on the same disk.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fleetforge.facts.layout import DiskStateFact, parse_disk_state
from fleetforge.facts.probe import HostProbe
from fleetforge.layout.apply import expected_state, read_state, state_args
from fleetforge.layout.disko import hardware_json, render_disko
from fleetforge.layout.plan import DiskLayout, layout_for
from fleetforge.layout.settings import LayoutSettings
from fleetforge.paths import MANAGED_FILES

pytestmark = pytest.mark.vm

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
VM = "vm-blk-1"
LAYOUT = {"disk": "vdb", "boot": "hybrid", "swap_size": "256M"}  # hybrid: BIOS boot and ESP both
INVENTORY = """
import json, os
from fleetforge.testbed import inventory_hosts

_layout = json.loads(os.environ["FF_TEST_LAYOUT"])
testbed = [(name, {**data, "disk_layout": _layout}) for name, data in inventory_hosts() if name == "vm-blk-1"]
"""
DATA = "/mnt/ff-test-data"


@pytest.fixture(scope="module")
def vm(testbed, testbed_vms, tmp_path_factory):
    testbed.reset(VM)
    inventory = tmp_path_factory.mktemp("inventory") / "inventory.py"
    inventory.write_text(INVENTORY)
    return testbed, inventory


def run(inventory: Path, deploy: str, layout: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "FF_TEST_LAYOUT": json.dumps(layout)}
    return subprocess.run(
        ["pyinfra", "-y", str(inventory), deploy], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def plan(testbed, settings: dict):
    """The layout the deploy plans, from the VM's live facts (HostProbe over the testbed's SSH)."""
    facts = HostProbe().process(
        testbed.ssh(VM, HostProbe().command((), MANAGED_FILES).get_raw_value(), check=True).stdout.splitlines()
    )
    return layout_for(VM, facts, LayoutSettings.model_validate(settings))


def live_state(testbed, layout):
    command = DiskStateFact().command(**state_args(layout)).get_raw_value()
    return parse_disk_state(testbed.ssh(VM, command, check=True).stdout.splitlines())


def data_checksum(testbed) -> str:
    out = testbed.ssh(VM, f"mount -o ro /dev/vdb {DATA} && sha256sum {DATA}/file; umount {DATA}", check=True)
    return out.stdout.split()[0]


def test_blank_disk_is_laid_out_and_reads_back_as_planned(vm):
    testbed, inventory = vm
    layout = plan(testbed, LAYOUT)
    assert live_state(testbed, layout).blank
    out = run(inventory, "deploys/disk_layout.py", LAYOUT)
    assert out.returncode == 0, out.stdout + out.stderr
    found = read_state(layout, live_state(testbed, layout))
    assert found == expected_state(layout)
    # what the plan promises, spelled out: the kernel agrees
    assert found.subvolumes["@var-log"].nodatacow and found.subvolumes["@nix"].compression == "zstd"
    assert {m.compress for m in found.mounts.values() if m.fstype == "btrfs"} == {"zstd:2"}
    assert found.mounts["/boot"].umask == "0077" and found.swapfile_size_mib == 256
    attrs = testbed.ssh(VM, "touch /mnt/fleetforge/var/log/x /mnt/fleetforge/nix/y && lsattr /mnt/fleetforge/var/log/x "
                        "&& btrfs property get /mnt/fleetforge/nix/y compression", check=True).stdout  # fmt: skip
    assert "C" in attrs.split()[0] and "compression=zstd" in attrs  # inherited by new files


def test_second_run_changes_nothing(vm):
    _, inventory = vm
    out = run(inventory, "deploys/disk_layout.py", LAYOUT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "is laid out as planned and mounted at /mnt/fleetforge" in out.stdout + out.stderr
    assert "Starting operation" not in out.stdout


def test_disk_with_data_is_refused_and_its_data_survives(vm):
    testbed, inventory = vm
    testbed.ssh(
        VM,
        f"umount -R /mnt/fleetforge && wipefs -qa /dev/vdb3 /dev/vdb2 && sgdisk --zap-all /dev/vdb >/dev/null && "
        f"mkfs.ext4 -qF /dev/vdb && mkdir -p {DATA} && mount /dev/vdb {DATA} && "
        f"head -c 4M /dev/urandom > {DATA}/file && umount {DATA}",
        check=True,
    )
    before = data_checksum(testbed)
    out = run(inventory, "deploys/disk_layout.py", LAYOUT)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert (
        "host vm-blk-1: disk_layout.confirm_wipe_serial: refusing to wipe disk vdb "
        "(/dev/disk/by-id/virtio-ff-data, serial ff-data): it is not blank (vdb ext4 0x438)"
    ) in text
    assert "Beginning operation run" not in text and "Traceback" not in text
    assert data_checksum(testbed) == before


def test_matching_confirm_wipe_serial_wipes_and_lays_out(vm):
    testbed, inventory = vm
    settings = {**LAYOUT, "boot": "bios", "confirm_wipe_serial": "ff-data"}
    out = run(inventory, "deploys/disk_layout.py", settings)
    assert out.returncode == 0, out.stdout + out.stderr
    layout = plan(testbed, settings)
    assert read_state(layout, live_state(testbed, layout)) == expected_state(layout)
    assert "ext4" not in testbed.ssh(VM, "wipefs -n /dev/vdb /dev/vdb1 /dev/vdb2", check=True).stdout


def test_fleetforge_disko_prints_an_evaluating_layout_of_the_root_disk(vm, tmp_path):
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    out = subprocess.run(["fleetforge", "disko", "inventory.py", "--limit", VM, "--json"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    item = json.loads(out.stdout)[VM]
    layout = DiskLayout.model_validate(item["layout"])
    assert (layout.disk, layout.device, layout.boot_mode) == ("vda", "/dev/disk/by-id/virtio-ff-root", "bios")
    assert layout == plan(vm[0], {})
    (tmp_path / "disko.nix").write_text(render_disko(layout))  # what the command prints without --json
    nix = shutil.which("nix-instantiate")
    assert nix, "nix-instantiate is missing: apt-get install nix-bin"
    evaluated = subprocess.run([nix, "--eval", "--strict", "--json", str(tmp_path / "disko.nix")],
                               capture_output=True, text=True, timeout=60)  # fmt: skip
    assert json.loads(evaluated.stdout) == item["disko"]


def test_disko_deploy_pushes_the_layout_and_hardware_note(vm):
    testbed, inventory = vm
    out = run(inventory, "deploys/disko.py", {})
    assert out.returncode == 0, out.stdout + out.stderr
    layout = plan(testbed, {})
    files = testbed.ssh(VM, "cat /etc/fleetforge/disko.nix; echo @@; cat /etc/fleetforge/disko-hardware.json",
                        check=True).stdout.split("@@\n")  # fmt: skip
    assert files == [render_disko(layout), hardware_json(layout)]
