"""pyinfra-testing fixtures: real ``HostProbe`` outputs captured from test VMs and machines
(``tests/facts/capture.py``), one per hardware variant, parsed and compared with the reviewed
fact. Plus malformed outputs that must raise ``FactProcessError``."""

import warnings
from pathlib import Path

import pytest
from pyinfra.api.exceptions import FactProcessError
from pyinfra_testing.facts import make_fact_tests

from facts.probe import HostProbe
from tests.conftest import load_fixture

warnings.filterwarnings("ignore", message="No command set for test")

TestHostProbe = make_fact_tests("facts", "probe.HostProbe", Path(__file__).parent / "probe.HostProbe")


def _output(name="controller-docker-vda"):
    return list(load_fixture(name)["output"])


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda out: out[: len(out) // 3], id="truncated"),
        pytest.param(lambda out: [line.replace('"size"', '"sighs"') for line in out], id="lsblk-missing-size"),
        pytest.param(lambda out: [line.replace("{", "[", 1) for line in out], id="lsblk-bad-json"),
        pytest.param(
            lambda out: [line if "MemTotal" not in line else "MemTotal: lots kB" for line in out],
            id="meminfo-not-a-number",
        ),  # fmt: skip
        pytest.param(
            lambda out: [line + "|extra" if line.startswith("vda|") else line for line in out], id="queue-extra-field"
        ),  # fmt: skip
    ],
)
def test_malformed_output_raises_fact_process_error(mangle):
    with pytest.raises(FactProcessError):
        HostProbe().process(mangle(_output()))


def test_probe_command_passes_sysctl_keys_as_quoted_arguments():
    command = HostProbe().command(sysctl_keys=["vm.swappiness", "net.ipv4.tcp_rmem"])
    text = command.get_raw_value()
    assert text.startswith("sh -c ")
    assert text.endswith("fleetforge-probe vm.swappiness net.ipv4.tcp_rmem")


def test_by_id_prefers_readable_model_serial_names():
    from facts.probe import pick_by_id

    links = [
        "/dev/disk/by-id/nvme-nvme.1b36-6666-00000001",
        "/dev/disk/by-id/nvme-eui.0011",
        "/dev/disk/by-id/nvme-samsung_ssd_ffnvme0_1",
        "/dev/disk/by-id/nvme-samsung_ssd_ffnvme0",
    ]
    assert pick_by_id(links) == "/dev/disk/by-id/nvme-samsung_ssd_ffnvme0"
    assert pick_by_id(["/dev/disk/by-id/wwn-0x5", "/dev/disk/by-id/ata-ST1000_Z1"]) == "/dev/disk/by-id/ata-ST1000_Z1"
    assert pick_by_id([]) is None


@pytest.mark.parametrize(
    ("hostname", "version", "expected"),
    [
        (["web-1"], ["24.05.20240601.abcdef0 (Uakari)"], ("web-1", "24.05")),
        (["cache.example.org"], ["25.11pre-git (Xantusia)"], ("cache.example.org", "25.11")),
        (["c"], ["2405 (Uakari)"], ("c", None)),
        (["cache"], ["26.05 (Yarara)"], ("cache", "26.05")),
        (["evil$(reboot)"], [], (None, None)),  # the kernel accepts any bytes as a host name
        (["-leading-dash"], ["garbage"], (None, None)),
        ([], [], (None, None)),  # sections absent: an older probe's output
    ],
)
def test_hostname_and_nixos_release_are_read_only_when_well_formed(hostname, version, expected):
    from facts.probe import parse_os_release

    os_release = parse_os_release(['ID="nixos"', 'VERSION_ID="24.05"'], hostname, version)
    assert (os_release.hostname, os_release.nixos_release) == expected
