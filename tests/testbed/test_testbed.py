"""Tests of the local QEMU test hosts.

Unit tests (no VM): recipe hash, mirror discovery, VM specs, QEMU argv, inventory helper, CLI.
VM tests (``-m vm``): the two default VMs look like the OVH VPS they stand for, and reset works.
The VM facts are read once per VM right after a reset, in one SSH command, to keep this fast.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import paramiko
import pytest

from fleetforge.testbed import Testbed, TestbedNotUpError, inventory_hosts
from fleetforge.testbed.cli import format_table, main
from fleetforge.testbed.flavours import FLAVOURS, flavour_for_name
from fleetforge.testbed.image import Recipe
from fleetforge.testbed.mirror import ENV_MIRROR, mirror_lines
from fleetforge.testbed.qemu import qemu_command
from fleetforge.testbed.ssh import SSHTarget, run_ssh
from fleetforge.testbed.vm import VMInfo, _State, normalize_specs

# ---------------------------------------------------------------------------- unit tests


def test_recipe_hash_is_stable():
    assert Recipe().hash() == Recipe().hash()
    assert len(Recipe().hash()) == 16


@pytest.mark.parametrize(
    "change",
    [
        {"packages": (*Recipe().packages, "htop")},
        {"hook_script": Recipe().hook_script + "\necho changed\n"},
        {"flavours": (dataclasses.replace(FLAVOURS["blk"], memory_mib=512), FLAVOURS["scsi"])},
        {"qemu_settings": (*Recipe().qemu_settings, ("extra", "x"))},
        {"kernel_cmdline": Recipe().kernel_cmdline + " debug"},
        {"code_version": Recipe().code_version + 1},
    ],
    ids=["packages", "script", "flavour", "qemu", "cmdline", "code-version"],
)
def test_recipe_hash_changes_with_the_recipe(change):
    assert dataclasses.replace(Recipe(), **change).hash() != Recipe().hash()


def test_recipe_hash_ignores_package_order():
    r = Recipe()
    assert dataclasses.replace(r, packages=tuple(reversed(r.packages))).hash() == r.hash()


def test_recipe_script_has_no_placeholders_left():
    assert "@" not in "".join(w for w in Recipe().script().split() if w.startswith("@") and w.endswith("@"))


def test_mirror_from_deb822_and_one_line_sources(tmp_path):
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n"
        "Components: main\n\nTypes: deb\nURIs: http://old.example/debian\nSuites: bullseye\n"
        "Components: main\n"
    )
    (d / "x.sources.disabled").write_text("Types: deb\nURIs: http://no\nSuites: bookworm\n")
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [arch=amd64] http://sec.example/debian-security bookworm-security main\n"
    )
    assert mirror_lines({}, tmp_path) == [
        "deb http://mirror.example/debian bookworm main",
        "deb http://mirror.example/debian bookworm-updates main",
        "deb http://sec.example/debian-security bookworm-security main",
    ]


def test_mirror_env_override_and_missing(tmp_path):
    assert mirror_lines({ENV_MIRROR: "http://m.example/debian/"}, tmp_path) == [
        "deb http://m.example/debian bookworm main",
        "deb http://m.example/debian bookworm-updates main",
    ]
    assert mirror_lines({ENV_MIRROR: "deb http://a/debian bookworm main"}, tmp_path) == [
        "deb http://a/debian bookworm main"
    ]
    with pytest.raises(Exception, match=ENV_MIRROR):
        mirror_lines({}, tmp_path)


def test_specs():
    assert normalize_specs(None) == [("vm-blk-1", "blk"), ("vm-scsi-1", "scsi")]
    assert normalize_specs(["vm-blk-2", "x1:scsi", ("y", "blk")]) == [
        ("vm-blk-2", "blk"),
        ("x1", "scsi"),
        ("y", "blk"),
    ]
    assert flavour_for_name("vm-scsi-3") == "scsi"
    for bad in (["Bad_Name:blk"], ["vm-1"], ["a:nvme"], ["a:blk", "a:scsi"]):
        with pytest.raises((ValueError, KeyError)):
            normalize_specs(bad)


@pytest.mark.parametrize("flavour", ["blk", "scsi"])
def test_qemu_command(flavour, tmp_path):
    argv = qemu_command(
        name="vm-x",
        flavour=FLAVOURS[flavour],
        accel="tcg",
        kernel=tmp_path / "k",
        initrd=tmp_path / "i",
        append="console=ttyS0",
        root_disk=tmp_path / "r.qcow2",
        data_disk=tmp_path / "d.qcow2",
        ssh_port=2222,
        qmp_socket=tmp_path / "q.sock",
        pidfile=tmp_path / "p",
        console_log=tmp_path / "c.log",
        incoming=tmp_path / "s.zst",
    )
    line = " ".join(argv)
    for part in (
        "-nodefaults",
        "-daemonize",
        "tcg,thread=multi,tb-size=256",
        "-cpu qemu64",
        "virtio-net-pci,addr=0x3",
        "hostfwd=tcp:127.0.0.1:2222-:22",
        "cache=unsafe",
        "serial=ff-root",
        "serial=ff-data",
        f"-m {FLAVOURS[flavour].memory_mib}",
        f"-smp {FLAVOURS[flavour].vcpus}",
        "-incoming exec:zstd -dcq",
    ):
        assert part in line
    assert ("virtio-scsi-pci" in line) == (flavour == "scsi")
    assert ("virtio-blk-pci" in line) == (flavour == "blk")


def _fake_vm(tmp_path: Path, name: str, port: int) -> VMInfo:
    return VMInfo(
        name=name,
        flavour="blk",
        ssh_port=port,
        ssh_key=tmp_path / "id",
        known_hosts=tmp_path / "kh",
        memory_mib=1024,
        vcpus=1,
        root_disk="vda",
        data_disk="vdb",
        pid=None,
        running=False,
        accel="tcg",
        image="0" * 16,
        vm_dir=tmp_path / name,
        qmp_socket=tmp_path / name / "q",
        console_log=tmp_path / name / "c",
        started_at=0.0,
    )


def test_inventory_hosts_from_state(tmp_path):
    assert inventory_hosts(tmp_path) == []
    with pytest.raises(TestbedNotUpError, match="testbed up"):
        inventory_hosts(tmp_path, required=True)
    state = _State(vms={"vm-blk-1": _fake_vm(tmp_path, "vm-blk-1", 40001)})
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "state.json").write_text(state.model_dump_json())
    [(name, data)] = inventory_hosts(tmp_path)
    assert name == "vm-blk-1"
    assert data["ssh_port"] == 40001
    assert data["ssh_user"] == "root"
    assert data["ssh_hostname"] == "127.0.0.1"
    assert data["ssh_strict_host_key_checking"] == "yes"
    assert data["ssh_known_hosts_file"] == str(tmp_path / "run" / "known_hosts")
    assert inventory_hosts(tmp_path, running_only=True) == []


def test_cli_status_and_inventory_without_vms(tmp_path, capsys):
    assert main(["--dir", str(tmp_path), "status", "--no-ssh"]) == 0
    assert "no VMs" in capsys.readouterr().out
    assert main(["--dir", str(tmp_path), "inventory"]) == 1
    assert "testbed up" in capsys.readouterr().err
    assert main(["--dir", str(tmp_path), "reset", "vm-blk-1"]) == 1
    assert "vm-blk-1" in format_table([_fake_vm(tmp_path, "vm-blk-1", 1)])


# ---------------------------------------------------------------------------- VM tests

FACTS_SCRIPT = r"""
echo "hostname=$(hostname)"
echo "rootsrc=$(findmnt -no SOURCE /)"
echo "disks=$(lsblk -dno NAME,SERIAL | tr -s ' ' ':' | tr '\n' ',')"
echo "byid=$(ls /dev/disk/by-id | tr '\n' ',')"
echo "memkib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
echo "nproc=$(nproc)"
echo "swaps=$(tail -n +2 /proc/swaps | wc -l)"
echo "zram=$(ls /sys/block | grep -c '^zram' || true)"
echo "virt=$(systemd-detect-virt || true)"
echo "ifaces=$(ls /sys/class/net | tr '\n' ',')"
echo "epoch=$(date +%s.%N)"
echo "sshd=$(sshd -T 2>/dev/null | grep -E '^(permitrootlogin|passwordauthentication) ' | tr ' \n' '=,')"
"""


@pytest.fixture(scope="module")
def vm_facts(testbed: Testbed) -> dict[str, dict[str, str]]:
    """Facts of each default VM right after a reset to its clean snapshot."""
    out = {}
    for name in ("vm-blk-1", "vm-scsi-1"):
        testbed.reset(name)
        p = testbed.ssh(name, FACTS_SCRIPT, check=True, multiplex=False)
        out[name] = dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)
        out[name]["host_epoch"] = str(time.time())
    return out


@pytest.mark.vm
@pytest.mark.parametrize("name", ["vm-blk-1", "vm-scsi-1"])
def test_vm_reachable_by_key_as_root(vm_facts, testbed_vms, name):
    f = vm_facts[name]
    assert f["hostname"] == name
    assert "permitrootlogin=without-password" in f["sshd"]
    assert "passwordauthentication=no" in f["sshd"]
    vm = testbed_vms[name]
    assert (vm.ssh_host, vm.ssh_user) == ("127.0.0.1", "root")
    assert abs(float(f["epoch"]) - float(f["host_epoch"])) < 3, "guest clock not synced"


@pytest.mark.vm
@pytest.mark.parametrize(
    "name,root,data,byid",
    [
        ("vm-blk-1", "vda", "vdb", "virtio-ff-root"),
        ("vm-scsi-1", "sda", "sdb", "scsi-0QEMU_QEMU_HARDDISK_ff-root"),
    ],
)
def test_vm_disks(vm_facts, testbed_vms, name, root, data, byid):
    f = vm_facts[name]
    assert f["rootsrc"] == f"/dev/{root}1"
    assert f"{root}:ff-root" in f["disks"].split(",")
    assert f"{data}:ff-data" in f["disks"].split(",")
    assert byid in f["byid"].split(",")
    assert testbed_vms[name].root_disk == root


@pytest.mark.vm
@pytest.mark.parametrize("name", ["vm-blk-1", "vm-scsi-1"])
def test_vm_memory_cpus_nic_virt(vm_facts, testbed_vms, name):
    f = vm_facts[name]
    vm = testbed_vms[name]
    flavour = FLAVOURS[vm.flavour]
    mem_mib = int(f["memkib"]) / 1024
    # MemTotal excludes what the kernel reserves: 90-100 % of the configured RAM
    assert 0.9 * flavour.memory_mib < mem_mib <= flavour.memory_mib
    assert int(f["nproc"]) == flavour.vcpus == vm.vcpus
    assert "ens3" in f["ifaces"].split(",")
    assert f["virt"] in ("qemu", "kvm")


@pytest.mark.vm
@pytest.mark.parametrize("name", ["vm-blk-1", "vm-scsi-1"])
def test_vm_starts_without_swap_or_zram(vm_facts, name):
    assert vm_facts[name]["swaps"] == "0"
    assert vm_facts[name]["zram"] == "0"


@pytest.mark.vm
def test_flavours_differ(testbed_vms):
    blk, scsi = testbed_vms["vm-blk-1"], testbed_vms["vm-scsi-1"]
    assert (blk.memory_mib, blk.vcpus, blk.root_disk) == (1024, 1, "vda")
    assert (scsi.memory_mib, scsi.vcpus, scsi.root_disk) == (2048, 2, "sda")


@pytest.mark.vm
def test_reset_restores_clean_state(testbed):
    name = "vm-blk-1"
    testbed.ssh(name, "echo dirty > /root/fleetforge-reset-probe && sync", check=True)
    assert testbed.ssh(name, "cat /root/fleetforge-reset-probe").stdout.strip() == "dirty"
    took = testbed.reset(name)
    assert testbed.ssh(name, "test -e /root/fleetforge-reset-probe").returncode == 1
    assert took < 15, f"reset took {took:.1f} s"


@pytest.mark.vm
def test_host_key_is_checked(testbed_vms, tmp_path):
    vm = testbed_vms["vm-blk-1"]
    (tmp_path / "empty_known_hosts").write_text("")
    target = SSHTarget(vm.ssh_host, vm.ssh_port, "root", vm.ssh_key, tmp_path / "empty_known_hosts")
    p = run_ssh(target, "true", timeout=60)
    assert p.returncode == 255
    assert "host key verification failed" in p.stderr.lower()


@pytest.mark.vm
def test_inventory_entries_work_with_paramiko(testbed):
    """The pyinfra entries (exact known_hosts lines, strict checking) log in with paramiko."""
    hosts = dict(testbed.inventory_hosts(running_only=True))
    data = hosts["vm-scsi-1"]
    client = paramiko.SSHClient()
    client.load_host_keys(str(data["ssh_known_hosts_file"]))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        str(data["ssh_hostname"]),
        port=int(data["ssh_port"]),  # type: ignore[arg-type]
        username=str(data["ssh_user"]),
        key_filename=str(data["ssh_key"]),
        look_for_keys=False,
        allow_agent=False,
        timeout=30,
    )
    try:
        _, stdout, _ = client.exec_command("hostname")
        assert stdout.read().decode().strip() == "vm-scsi-1"
    finally:
        client.close()


@pytest.mark.vm
def test_cli_status_json(testbed, capsys):
    assert main(["--dir", str(testbed.layout.root), "-q", "status", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    for name in ("vm-blk-1", "vm-scsi-1"):
        assert rows[name]["running"] and rows[name]["reachable"]
        assert Path(rows[name]["ssh_key"]).exists()


def test_missing_qemu_is_reported(monkeypatch):
    import fleetforge.testbed.prereq as prereq

    monkeypatch.setattr(prereq, "find_program", lambda name: None)
    with pytest.raises(prereq.MissingPrerequisiteError, match="apt-get install"):
        prereq.check_prerequisites()
    assert "qemu-system-x86" in prereq.missing_packages()
