"""Making records (``fleetforge.runs.record``): hardware and facts digest from real probe output,
secrets masked in checks and errors, and a recorder whose store fails costs one warning line and
never the command's exit code."""

import json

import pytest

from fleetforge.checks import CheckResult
from fleetforge.errors import FleetforgeError
from fleetforge.facts.probe import HostProbe
from fleetforge.runs import record as rr
from fleetforge.runs.store import FILE_NAME, RunStore
from fleetforge.secrets import REDACTED, secret_keys
from tests.conftest import facts_from
from tests.probe_edit import fixture_output, with_file

SECRET = "SECRET-TOKEN-41"


def test_hardware_of_real_probe_output():
    facts = facts_from("qemu-virtio-scsi-sda-bios")
    hw = rr.hardware_of(facts)
    assert hw.logical_cpus == facts.cpu.logical_cpus and hw.mem_total_bytes == facts.memory.mem_total_bytes
    assert (hw.virtualization, hw.firmware, hw.kernel) == (facts.virtualization, facts.firmware, facts.kernel_release)
    assert hw.os == facts.os.pretty_name
    assert [(d.name, d.transport, d.size_bytes) for d in hw.disks] == [
        (d.name, d.transport, d.size_bytes) for d in facts.disks
    ]
    assert any(d.transport == "virtio-scsi" for d in hw.disks)


def test_facts_digest_changes_with_the_machine_not_with_what_a_deploy_changes():
    output = fixture_output("qemu-virtio-blk-vda-bios")
    conf = "sandbox = false\naccess-tokens = github.com={}\n"
    a = HostProbe().process(with_file(output, "/etc/nix/nix.conf", conf.format(SECRET)))
    deployed = HostProbe().process(with_file(output, "/etc/nix/nix.conf", conf.format(SECRET).replace("false", "true")))
    tuned = deployed.model_copy(update={"sysctl": {**deployed.sysctl, "vm.swappiness": "180"}})
    assert rr.facts_digest(a) == rr.facts_digest(tuned)  # managed files and sysctls are not the machine
    assert len(rr.facts_digest(a)) == 64 and SECRET not in json.dumps(rr.host_summary(a, set()), default=str)
    more_ram = a.model_copy(update={"memory": a.memory.model_copy(update={"mem_total_bytes": 2**31})})
    assert rr.facts_digest(more_ram) != rr.facts_digest(a)
    new_kernel = a.model_copy(update={"kernel_release": "6.12.0-1-amd64"})
    assert rr.facts_digest(new_kernel) != rr.facts_digest(a)
    other_disks = fixture_output("qemu-virtio-scsi-sda-bios")
    assert rr.facts_digest(HostProbe().process(other_disks)) != rr.facts_digest(a)


def test_checks_of_secret_settings_are_masked():
    keys = secret_keys({"secret_keys": ["my-token"]})
    secret = rr.check_record(CheckResult("h", "nix access-tokens", f"github.com={SECRET}", "other", "fail"), keys)
    assert (secret.expected, secret.actual, secret.severity) == (REDACTED, REDACTED, "fail")
    extra = rr.check_record(CheckResult("h", "nix extra-my-token", SECRET, None, "warn"), keys)
    assert (extra.expected, extra.actual) == (REDACTED, None)
    line = rr.check_record(CheckResult("h", "file x", f"my-token = {SECRET}", "x", "fail"), keys)
    assert SECRET not in line.expected
    plain = rr.check_record(CheckResult("h", "sysctl vm.swappiness", "10", "60", "fail"), keys)
    assert (plain.item, plain.expected, plain.actual) == ("sysctl vm.swappiness", "10", "60")


def test_errors_are_one_trimmed_line_without_secrets():
    text = f"\n  access-tokens = {SECRET} failed  \nsecond line\n"
    assert rr.one_line(text) == f"access-tokens = {REDACTED}"
    assert rr.one_line("x" * 1000) == "x" * 297 + "..."
    assert rr.error_of(ValueError("bad\nmore")) == "ValueError: bad"


def test_a_store_that_cannot_be_opened_is_one_warning_and_the_exit_code_stays(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    rec = rr.RunRecorder.open("probe", tmp_path / "inventory.py", record=str(blocker / "runs.sqlite"))
    with rec:
        with rec.phase("probe"):
            pass
    assert rec.finish(2) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("fleetforge: run record not written: ")


def test_a_store_that_fails_while_writing_is_one_warning(tmp_path, capsys, monkeypatch):
    rec = rr.RunRecorder.open("verify", tmp_path / "inventory.py").begin()
    assert rec.run_id is not None

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(RunStore, "finish", broken)
    assert rec.finish(1) == 1
    assert rec.finish(1) == 1  # finished once: no second try, no second warning
    (line,) = capsys.readouterr().err.splitlines()
    assert line == f"fleetforge: run record not written: {tmp_path / FILE_NAME}: OSError: disk full"


def test_an_exception_finishes_the_run_with_fleetforges_exit_code(tmp_path):
    inventory = tmp_path / "inventory.py"
    with pytest.raises(FleetforgeError), rr.RunRecorder.open("plan", inventory):
        raise FleetforgeError("host a: zram_size: bad")
    with pytest.raises(RuntimeError), rr.RunRecorder.open("probe", inventory):
        raise RuntimeError("bug")
    with pytest.raises(KeyboardInterrupt), rr.RunRecorder.open("verify", inventory):
        raise KeyboardInterrupt
    runs = RunStore(tmp_path / FILE_NAME).runs()
    assert [(r.command, r.exit_code) for r in runs] == [("plan", 3), ("probe", 1), ("verify", None)]


def test_phases_are_timed_and_failed_by_exception_or_result(tmp_path):
    with rr.RunRecorder.open("tune", tmp_path / "inventory.py") as rec:
        assert rec.call("measure", "a", lambda x: x + 1, 1, failed=lambda r: r != 2) == 2
        rec.call("measure", "b", lambda: "error line", failed=lambda r: r is not None)
        with pytest.raises(ZeroDivisionError):
            rec.call("measure", "c", lambda: 1 / 0)
        rec.finish(1)
    (run,) = RunStore(tmp_path / FILE_NAME).runs()
    assert [(p.name, p.host, p.status) for p in sorted(run.phases, key=lambda p: p.host)] == [
        ("measure", "a", "ok"), ("measure", "b", "failed"), ("measure", "c", "failed"),
    ]  # fmt: skip
    assert all(p.ended_at >= p.started_at >= run.started_at for p in run.phases)
    assert run.ended_at >= max(p.ended_at for p in run.phases)
