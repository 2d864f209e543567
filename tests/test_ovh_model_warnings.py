"""A host whose detected hardware differs from its ``ovh_model`` host data is a warning in
``fleetforge verify`` (exit 2), never a failure; from captured probe output of the 1 GiB,
1 vCPU, 10 GiB virtio-blk test VM. The same check on the real VMs: tests/e2e/test_fleet_report.py."""

import pytest

from fleetforge.settings import SettingsError, settings_from_data
from fleetforge.verify import exit_code, model_warnings
from tests.conftest import facts_from

FACTS = "qemu-virtio-blk-vda-bios"  # 1 vCPU, MemTotal 960 MiB, vda 10 GiB


def warnings_for(model: dict) -> list:
    settings = settings_from_data("vps-1", {"ovh_model": model})
    return model_warnings("vps-1", facts_from(FACTS), settings)


def test_the_model_the_host_has_gives_no_warning():
    assert warnings_for({"name": "vps-le-1-1-10", "vcores": 1, "memory_mib": 1024, "disk_gb": 10}) == []


def test_each_difference_is_one_warning_naming_detected_sold_and_model():
    found = warnings_for({"name": "vps-le-2-4-80", "vcores": 2, "memory_mib": 4096, "disk_gb": 80})
    assert [r.severity for r in found] == ["warn"] * 3
    assert {r.item for r in found} == {"hardware matches OVH model vps-le-2-4-80"}
    cpu, ram, disk = (r.actual for r in found)
    assert cpu == "vCPU 1 detected, model vps-le-2-4-80 sells 2 vCores"
    assert ram.startswith("RAM 0.9 GiB detected, model vps-le-2-4-80 sells 4 GiB")
    assert disk.startswith("disk 10 GiB detected (largest disk vda), model vps-le-2-4-80 sells 80 GB")
    assert exit_code(found) == 2


def test_only_the_ram_differs():
    (ram,) = warnings_for({"name": "vps-le-1-2-10", "vcores": 1, "memory_mib": 2048, "disk_gb": 10})
    assert "RAM" in ram.actual and ram.expected == "1 vCores, 2048 MiB RAM, 10 GB disk"


def test_no_model_no_check():
    assert model_warnings("vps-1", facts_from(FACTS), settings_from_data("vps-1", {})) == []


@pytest.mark.parametrize(
    "model, key",
    [
        ({"name": "x", "vcores": "2", "memory_mib": 1024, "disk_gb": 10}, "ovh_model.vcores"),
        ({"name": "x; rm -rf /", "vcores": 1, "memory_mib": 1024, "disk_gb": 10}, "ovh_model.name"),
        ({"name": "x", "vcores": 1, "memory_mib": 1024}, "ovh_model.disk_gb"),
    ],
)
def test_a_bad_model_in_host_data_is_refused_naming_host_and_key(model, key):
    with pytest.raises(SettingsError, match=f"host vps-1: {key}"):
        settings_from_data("vps-1", {"ovh_model": model})
