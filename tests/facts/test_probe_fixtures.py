"""pyinfra-testing fixtures: real ``HostProbe`` outputs captured from test VMs and machines
(``tests/facts/capture.py``), one per hardware variant, parsed and compared with the reviewed
fact. Plus malformed outputs that must raise ``FactProcessError``."""

import warnings
from pathlib import Path

import pytest
from pyinfra.api.exceptions import FactProcessError
from pyinfra_testing.facts import make_fact_tests

from fleetforge.facts.probe import HostProbe
from tests.conftest import load_fixture

warnings.filterwarnings("ignore", message="No command set for test")

TestHostProbe = make_fact_tests("fleetforge.facts", "probe.HostProbe", Path(__file__).parent / "probe.HostProbe")


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


def test_probe_command_passes_sysctl_keys_and_files_as_quoted_arguments():
    """The fact is a leaf: the files it reads are its arguments, quoted, after ``--files``."""
    command = HostProbe().command(sysctl_keys=["vm.swappiness", "net.ipv4.tcp_rmem"], files=["/etc/a b.conf"])
    text = command.get_raw_value()
    assert text.startswith("sh -c ")
    assert text.endswith(
        "fleetforge-probe vm.swappiness /proc/sys/vm/swappiness net.ipv4.tcp_rmem /proc/sys/net/ipv4/tcp_rmem "
        "--files '/etc/a b.conf'"
    )


def test_the_probe_reads_exactly_the_files_it_is_given(tmp_path):
    """The real script under ``sh``: a present file is read with its SHA-256, an absent one is
    ``None``, and a file it was not given is not in the fact."""
    import subprocess

    from fleetforge.facts.probe import SCRIPT, probe_argv

    present, absent = tmp_path / "present.conf", tmp_path / "absent.conf"
    present.write_text("x = 1\n")
    argv = ["sh", "-c", SCRIPT, "fleetforge-probe", *probe_argv(["vm.swappiness"], [str(present), str(absent)])]
    facts = HostProbe().process(subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines())
    assert set(facts.files) == {str(present), str(absent)}
    assert facts.files[str(present)].content == "x = 1\n" and facts.files[str(absent)] is None
    assert set(facts.sysctl) == {"vm.swappiness"}
