"""``fleetforge tune``: opt-in, bad options refused before any host, and hosts of one
``hardware_group`` measured one after another while other hosts run at the same time (the
measurement itself is replaced by a recorder here: the real runs are in tests/e2e)."""

import argparse
import time

import pytest

from fleetforge.measure import cli


def inventory(tmp_path, groups: dict[str, str | None]) -> str:
    rows = ", ".join(f"({name!r}, { ({'hardware_group': g} if g else {})!r})" for name, g in groups.items())
    path = tmp_path / "inventory.py"
    path.write_text(f"hosts = [{rows}]\n")
    return str(path)


def args(path: str, **extra) -> argparse.Namespace:
    base = dict(inventory=path, measure=True, limit=None, budget_s=10.0, repeats=4, file_mib=32, knob=None, disk=None)
    return argparse.Namespace(**{**base, "report": None, **extra})


def test_hosts_sharing_hardware_are_measured_one_at_a_time_others_at_once(tmp_path, monkeypatch):
    spans: dict[str, tuple[float, float]] = {}

    def record(h, options):
        start = time.monotonic()
        time.sleep(0.3)
        spans[h.name] = (start, time.monotonic())
        return None

    monkeypatch.setattr(cli, "_measure_one", record)
    path = inventory(tmp_path, {"ovh-a1": "rack-7", "ovh-a2": "rack-7", "ovh-b1": None, "ovh-c1": None})
    assert cli.cmd_tune(args(path)) == 0

    def overlap(a: str, b: str) -> bool:
        return spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]

    assert not overlap("ovh-a1", "ovh-a2")  # one physical host: one after the other
    assert overlap("ovh-a1", "ovh-b1") and overlap("ovh-b1", "ovh-c1")


def test_a_host_that_fails_is_reported_and_the_exit_code_is_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_measure_one", lambda h, o: "ovh-b1: not measured: boom" if h.name == "ovh-b1" else None)
    path = inventory(tmp_path, {"ovh-a1": None, "ovh-b1": None})
    assert cli.cmd_tune(args(path)) == 1
    assert "fleetforge tune: ovh-b1: not measured: boom" in capsys.readouterr().err


@pytest.mark.parametrize("extra", [{"measure": False}, {"repeats": 3}, {"file_mib": 1}, {"budget_s": 0.0}])
def test_nothing_runs_without_measure_or_with_bad_options(tmp_path, monkeypatch, extra):
    monkeypatch.setattr(cli, "_measure_one", lambda h, o: pytest.fail("no host may be measured"))
    assert cli.cmd_tune(args(inventory(tmp_path, {"ovh-a1": None}), **extra)) == 3


def test_bad_host_data_is_refused_before_any_host(tmp_path, monkeypatch):
    from fleetforge.settings import SettingsError

    monkeypatch.setattr(cli, "_measure_one", lambda h, o: pytest.fail("no host may be measured"))
    with pytest.raises(SettingsError, match="host ovh-a1: hardware_group: expected a group name"):
        cli.cmd_tune(args(inventory(tmp_path, {"ovh-a1": "rack 7; reboot"})))


def test_a_host_that_stops_answering_fails_its_measurement_after_the_command_timeout():
    import subprocess

    from fleetforge.measure.run import MeasureError, TimedConn, _run

    class Backend:
        def run(self, command, timeout=None):
            assert timeout == 2.5
            raise subprocess.TimeoutExpired(command, timeout)

        def result(self, rc, command, stdout, stderr):
            return argparse.Namespace(rc=rc, stdout=stdout.decode(), stderr=stderr.decode())

    conn = TimedConn(argparse.Namespace(backend=Backend()), 2.5)
    with pytest.raises(MeasureError, match="host vm-blk-1: fio randread: exit 124: no answer in 2.5 s"):
        _run(conn, "vm-blk-1", "fio randread", "fio --version")
