"""``model_mismatches``: the probed hardware of the captured fixtures against OVH models."""

import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

from fleetforge.ovh import hardware
from fleetforge.ovh.hardware import OvhModel, model_mismatches
from tests.conftest import facts_from

# qemu-virtio-blk-vda-bios: 1 vCPU, MemTotal 960.7 MiB (a 1 GiB VM), vda 10 GiB + vdb 4 GiB
# qemu-virtio-scsi-sda-bios: 2 vCPUs, MemTotal 1966.9 MiB (a 2 GiB VM), sda 10 GiB + sdb 4 GiB
BLK = "qemu-virtio-blk-vda-bios"
SCSI = "qemu-virtio-scsi-sda-bios"


def model(name: str = "vps-test-1-1-10", vcores: int = 1, memory_mib: int = 1024, disk_gb: int = 10) -> OvhModel:
    return OvhModel(name=name, vcores=vcores, memory_mib=memory_mib, disk_gb=disk_gb)


@pytest.mark.parametrize(("fixture", "sold"), [(BLK, model()), (SCSI, model("vps-le-2-2-10", 2, 2048, 10))])
def test_hosts_that_match_their_model(fixture, sold):
    assert model_mismatches(facts_from(fixture), sold) == []


def test_ram_below_what_the_model_sells():
    assert model_mismatches(facts_from(SCSI), model("vps-le-2-4-80", 2, 4096, 10)) == [
        "RAM 1.9 GiB detected, model vps-le-2-4-80 sells 4 GiB (MemTotal 1966 MiB, accepted 85% to 102% of 4096 MiB)"
    ]


def test_vcpus_differ():
    assert model_mismatches(facts_from(BLK), model("vps-le-2-2-40", 2, 1024, 10)) == [
        "vCPU 1 detected, model vps-le-2-2-40 sells 2 vCores"
    ]


def test_disk_differs():
    assert model_mismatches(facts_from(BLK), model("vps-le-1-1-80", 1, 1024, 80)) == [
        "disk 10 GiB detected (largest disk vda), model vps-le-1-1-80 sells 80 GB (accepted 80 GiB +-10%)"
    ]


def test_every_mismatch_is_one_line_in_order():
    lines = model_mismatches(facts_from(BLK), model("vps-2025-model3", 8, 24576, 200))
    assert [line.split(" ", 1)[0] for line in lines] == ["vCPU", "RAM", "disk"]
    assert all("vps-2025-model3" in line and "\n" not in line for line in lines)


@pytest.mark.parametrize(("memory_mib", "ok"), [(1130, True), (1131, False), (942, True), (941, False)])
def test_ram_tolerance_is_85_to_102_percent(memory_mib, ok):
    # MemTotal 1007329280 B = 960.66 MiB: 85 % of 1130 MiB is 960.5, 102 % of 942 MiB is 960.8
    assert (model_mismatches(facts_from(BLK), model(memory_mib=memory_mib)) == []) is ok


@pytest.mark.parametrize(("disk_gb", "ok"), [(10, True), (11, True), (12, False), (9, False)])
def test_disk_tolerance_is_10_percent_of_gib(disk_gb, ok):
    # largest disk vda: 10 GiB exactly: -9.1 % of 11 GiB is accepted, -16.7 % of 12 and +11.1 % of 9 are not
    mismatches = model_mismatches(facts_from(BLK), model(disk_gb=disk_gb))
    assert (mismatches == []) is ok, mismatches


def test_a_decimal_gb_disk_is_within_tolerance():
    facts = facts_from(BLK)
    decimal = facts.model_copy(update={"disks": [facts.disks[0].model_copy(update={"size_bytes": 80 * 10**9})]})
    assert model_mismatches(decimal, model(disk_gb=80)) == []


def test_no_disk_at_all():
    facts = facts_from(BLK).model_copy(update={"disks": []})
    assert model_mismatches(facts, model()) == ["disk: no whole disk detected, model vps-test-1-1-10 sells 10 GB"]


@pytest.mark.parametrize(
    "bad",
    [
        {"vcores": 0},
        {"memory_mib": -1},
        {"disk_gb": True},
        {"vcores": "2"},
        {"vcores": 2.0},
        {"name": "a b"},
        {"name": ""},
        {"name": "x\n"},
        {"extra": 1},
    ],
)
def test_the_model_refuses_bad_values(bad):
    values = {"name": "vps-le-2-4-80", "vcores": 2, "memory_mib": 4096, "disk_gb": 80, **bad}
    with pytest.raises(ValidationError):
        OvhModel(**values)


def test_the_model_is_frozen():
    with pytest.raises(ValidationError):
        model().vcores = 4


def test_hardware_imports_only_pydantic_and_the_facts_models():
    tree = ast.parse(Path(hardware.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert imported - {"__future__", "typing"} == {"pydantic", "fleetforge.facts.models"}
