"""``fleetforge tune --measure`` against a compromised host: the host controls everything it prints
(findmnt JSON, ``/sys/class/block`` links, fio's JSON, ``mktemp``'s path, the restore state file,
``hot_add``, ``mm_stat``, ``fio --version``, exit codes). Each test is one attack and asserts the
safe behaviour: the controller runs nothing beyond the measurement, acts on no hostile value,
stores nothing it cannot read back, prints no terminal escapes, and never leaves a changed knob
without a restore state.

The host is a strict fake (a mock: ``tests.measure.test_measure_flow.FakeHost``, which answers
only the commands a measurement may send and raises on anything else); the shell snippets that
guard the host side (zram removal, the test file's directory) run for real in a temporary tree.
"""

import json
import os
import re
import shlex
import subprocess
import time

import pytest
from pydantic import ValidationError

from fleetforge.facts.models import ZramDevice
from fleetforge.measure import host as remote
from fleetforge.measure import results, swap
from fleetforge.measure.apply import apply_measured
from fleetforge.measure.decide import Samples, decide
from fleetforge.measure.host import HostOutputError
from fleetforge.measure.run import MeasureError, Options, measure_host, printable
from fleetforge.planner import plan_host
from fleetforge.settings import settings_from_data
from tests.conftest import facts_from
from tests.measure.test_measure_flow import RA, SCHED, FakeHost, Result

QUICK = Options(repeats=4, budget_s=10, file_mib=64)
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
TEST_FILE = "/.fleetforge-fio.AbCdEfGh12"


def vm_facts(**update):
    return facts_from("qemu-virtio-blk-vda-bios").model_copy(update=update)


def measure(fake, options=QUICK, facts=None):
    facts = facts or vm_facts()
    settings = settings_from_data("vm-blk-1", {})
    return measure_host(
        fake, "vm-blk-1", lambda: facts, lambda f: plan_host("vm-blk-1", f, settings, measured=False), settings, options
    )


class Killed(BaseException):
    """The controller dies here (SIGKILL, power loss): no ``finally`` of it reaches the host any more."""


class HostileHost(FakeHost):
    """``FakeHost`` whose answers the attack chooses: ``answer(command)`` returns a ``Result`` to
    send instead of the honest one (or ``None``). ``fail_at``: the n-th command (1-based) exits 1
    without effect; ``kill_at``: the controller dies at the n-th command (``run_then_kill``: after
    it ran), and the host answers nothing after that."""

    def __init__(self, *args, answer=None, fail_at=None, kill_at=None, run_then_kill=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.answer = answer or (lambda command: None)
        self.fail_at, self.kill_at, self.run_then_kill = fail_at, kill_at, run_then_kill
        self.dead = False
        self.count = 0

    def run(self, command):
        if self.dead:  # the controller's own ``finally`` still runs in the test: nothing reaches the host
            raise Killed(command)
        self.count += 1
        if self.count == self.kill_at:
            self.dead = True
            if self.run_then_kill:
                super().run(command)
            raise Killed(command)
        if self.count == self.fail_at:
            self.log.append(command)
            return Result(1, "", "injected failure")
        hostile = self.answer(command)
        if hostile is not None:
            self.log.append(command)
            return hostile
        return super().run(command)

    def knobs_are_recoverable(self, original):
        """No knob differs from ``original`` unless the host's restore state names its original
        value; every test file and zram device left is named there too."""
        state = json.loads(self.state) if self.state else {}
        for path, value in self.sysfs.items():
            if value != original[path]:
                assert state.get("values", {}).get(path) == original[path], (path, value, state)
        assert self.files <= set(state.get("files", [])), (self.files, state)
        assert self.zram <= set(state.get("zram_devices", [])), (self.zram, state)


def fio_side(**side):
    return Result(0, json.dumps({"jobs": [{"read": side, "write": side}]}))


def candidate(command):
    """The knob value a measuring job sets first: ``echo VALUE > PATH && fio ...``."""
    return command.partition(" > ")[0].removeprefix("echo ")


# --- the restore state file: refused before anything runs ------------------------------------------

HOSTILE_STATES = {
    "a zram device number out of range": {"zram_devices": [5000]},
    "a negative zram device": {"zram_devices": [-1]},
    "many zram devices": {"zram_devices": list(range(64))},
    "a package twice": {"packages": ["fio", "fio"], "manager": "apt"},
    "a package without its manager": {"packages": ["fio"]},
    "a manager without a package": {"manager": "apt"},
    "another package": {"packages": ["openssh-server"], "manager": "apt"},
    "a read-ahead of 50 digits": {"values": {RA: "9" * 50}},
    "a scheduler of 100 letters": {"values": {SCHED: "a" * 100}},
    "a scheduler value for read-ahead": {"values": {RA: "none"}},
    "a knob path ending in a newline": {"values": {SCHED + "\n": "none"}},
    "another sysfs file": {"values": {"/sys/kernel/mm/transparent_hugepage/enabled": "never"}},
    "a proc file": {"values": {"/proc/sys/kernel/sysrq": "1"}},
    "a file outside the test file pattern": {"files": ["/etc/passwd"]},
    "a test file name with a newline": {"files": [TEST_FILE + "\n"]},
    "a test file name through ..": {"files": ["/srv/../etc/.fleetforge-fio.AbCdEfGh12"]},
    "thousands of test files": {"files": [f"/.fleetforge-fio.{i:010d}" for i in range(1000)]},
    "an unknown key": {"command": "reboot"},
}


@pytest.mark.parametrize("state", HOSTILE_STATES.values(), ids=HOSTILE_STATES.keys())
def test_a_restore_state_fleetforge_would_not_write_stops_the_run_before_any_command(state):
    fake = HostileHost(state=json.dumps(state))
    with pytest.raises(MeasureError, match="fleetforge did not write this, so it acts on none of it"):
        measure(fake)
    assert len(fake.log) == 1  # only the read of the state itself


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000, '{"values":' * 5_000, json.dumps({"files": []}) + " " * (2 << 20), "{'values': {}}", "null"],
    ids=["deep array", "deep object", "more than 1 MiB", "not JSON", "null"],
)
def test_a_restore_state_that_is_deep_huge_or_not_json_is_refused_as_host_output(text):
    with pytest.raises(HostOutputError, match="measure-restore.json"):
        remote.parse_state(text)
    fake = HostileHost(state=text)
    with pytest.raises(MeasureError, match="acts on none of it"):
        measure(fake)
    assert len(fake.log) == 1


def test_a_state_naming_the_live_zram_swap_fails_the_restore_and_nothing_else_runs():
    """zram0 is a legal number (a first ``hot_add`` can answer 0), so the state is accepted; the
    host-side guard refuses to reset a device in /proc/swaps (run for real below), the run stops
    and the state is kept for the next run."""
    state = remote.RestoreState(zram_devices=[0]).model_dump_json()
    zram0 = remote.zram_remove_command(0)
    fake = HostileHost(state=state, answer=lambda c: Result(1) if c == zram0 else None)
    fake.zram.add(0)
    with pytest.raises(MeasureError, match="restore failed for .*fleetforge-zram 0"):
        measure(fake)
    assert 0 in fake.zram and json.loads(fake.state)["zram_devices"] == [0]
    assert remote.FINDMNT not in fake.log and not any(c.startswith("echo ") for c in fake.log)


def _zram_tree(tmp_path, swaps="", mounts="", disksize="0"):
    """A /proc and /sys of one zram device (zram0) under tmp_path; the removal script with its
    absolute paths moved there."""
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/swaps").write_text("Filename Type Size Used Priority\n" + swaps)
    (tmp_path / "proc/mounts").write_text(mounts)
    block = tmp_path / "sys/block/zram0"
    block.mkdir(parents=True)
    (block / "disksize").write_text(disksize + "\n")
    (tmp_path / "sys/class/zram-control").mkdir(parents=True)
    argv = shlex.split(remote.zram_remove_command(0))
    argv[2] = argv[2].replace("/proc/", f"{tmp_path}/proc/").replace("/sys/", f"{tmp_path}/sys/")
    out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    reset = (block / "reset").read_text() if (block / "reset").exists() else None
    removed = tmp_path / "sys/class/zram-control/hot_remove"
    return out.returncode, reset, removed.read_text() if removed.exists() else None


@pytest.mark.parametrize(
    ("swaps", "mounts", "disksize"),
    [
        ("/dev/zram0 partition 4194300 0 100\n", "", "4294967296"),  # the live swap
        ("", "/dev/zram0 /tmp ext4 rw 0 0\n", "4294967296"),  # a mounted zram filesystem
        ("", "", "4294967296"),  # a 4 GiB zram device not in use right now: someone's, not the test device
    ],
    ids=["live swap", "mounted", "another size"],
)
def test_the_zram_removal_never_resets_a_device_in_use_or_of_another_size(tmp_path, swaps, mounts, disksize):
    rc, reset, removed = _zram_tree(tmp_path, swaps, mounts, disksize)
    assert rc != 0 and reset is None and removed is None


@pytest.mark.parametrize("disksize", ["0", str(swap.ZRAM_TEST_MIB * 2**20)])
def test_the_zram_removal_resets_and_removes_the_test_device(tmp_path, disksize):
    assert _zram_tree(tmp_path, disksize=disksize) == (0, "1\n", "0\n")


# --- hot_add -----------------------------------------------------------------------------------


def _zram_swap_facts():
    return vm_facts(zram=[ZramDevice(name="zram0", disksize_bytes=2**32, algorithm="zstd", swap_active=True)])


@pytest.mark.parametrize(
    "answer", ["0\n", "007\n", "4096\n", "-1\n", "1 2\n", "\uff11\n", "", "1e3\n", "0x1\n", "9" * 5000]
)
def test_a_hot_add_answer_that_is_not_a_new_device_is_refused_never_recorded_nor_reset(answer):
    fake = HostileHost(answer=lambda c: Result(0, answer) if c == f"cat {swap.HOT_ADD}" else None)
    with pytest.raises(HostOutputError, match="zram hot_add: expected a"):
        measure(fake, facts=_zram_swap_facts())
    assert not any("/sys/block/zram" in c or "fleetforge-zram" in c for c in fake.log)
    assert (fake.sysfs[SCHED], fake.sysfs[RA], fake.files, fake.state) == ("mq-deadline", "128", set(), "")


# --- fio's JSON ---------------------------------------------------------------------------------

HOSTILE_FIO = {
    "deep nesting": '{"jobs":' + "[" * 100_000,
    "clat_ns a list": '{"jobs":[{"read":{"iops":1,"bw_bytes":1,"clat_ns":[1]}}]}',
    "percentile a list": '{"jobs":[{"read":{"iops":1,"bw_bytes":1,"clat_ns":{"percentile":[1]}}}]}',
    "clat_ns a string": '{"jobs":[{"read":{"iops":1,"bw_bytes":1,"clat_ns":"x"}}]}',
    "read a list": '{"jobs":[{"read":[1,2]}]}',
    "an integer of 400 digits": '{"jobs":[{"read":{"iops":1' + "0" * 400 + ',"bw_bytes":1}}]}',
    "an integer of 5000 digits": '{"jobs":[{"read":{"iops":1' + "0" * 5000 + ',"bw_bytes":1}}]}',
    "1e300": '{"jobs":[{"read":{"iops":1e300,"bw_bytes":1}}]}',
    "NaN": '{"jobs":[{"read":{"iops":NaN,"bw_bytes":1}}]}',
    "Infinity": '{"jobs":[{"read":{"iops":1,"bw_bytes":Infinity}}]}',
    "negative": '{"jobs":[{"read":{"iops":-1,"bw_bytes":1}}]}',
    "a string number": '{"jobs":[{"read":{"iops":"5","bw_bytes":1}}]}',
    "a bool": '{"jobs":[{"read":{"iops":true,"bw_bytes":1}}]}',
    "p99 huge": '{"jobs":[{"read":{"iops":1,"bw_bytes":1,"clat_ns":{"percentile":{"99.000000":1e30}}}}]}',
    "mean NaN": '{"jobs":[{"read":{"iops":1,"bw_bytes":1,"clat_ns":{"mean":NaN}}}]}',
    "no jobs": '{"jobs":[]}',
    "trailing data": '{"jobs":[]} {"jobs":[]}',
}


@pytest.mark.parametrize("text", HOSTILE_FIO.values(), ids=HOSTILE_FIO.keys())
def test_fio_json_that_is_hostile_is_refused_as_host_output_never_another_exception(text):
    with pytest.raises(HostOutputError, match="^fio"):
        remote.parse_fio(text, "randread")


def _honest_until(n, hostile):
    """An ``answer`` sending ``hostile`` for the n-th and later fio measuring jobs."""
    seen = {"jobs": 0}

    def answer(command):
        if " && fio --output-format=json --name=fleetforge " in command:
            seen["jobs"] += 1
            if seen["jobs"] >= n:
                return hostile
        return None

    return answer


@pytest.mark.parametrize(
    ("hostile", "message"),
    [
        (Result(0, HOSTILE_FIO["clat_ns a list"]), "fio: expected JSON"),
        (Result(0, HOSTILE_FIO["an integer of 400 digits"]), "fio: iops: expected a finite number"),
        (fio_side(iops=0, bw_bytes=0), r"fio \w+: no I/O completed"),
    ],
    ids=["malformed", "overflow", "zero IOPS"],
)
def test_a_hostile_fio_answer_mid_run_stops_it_and_the_host_is_restored(hostile, message):
    fake = HostileHost(answer=_honest_until(3, hostile))
    with pytest.raises(HostOutputError, match=message):
        measure(fake)
    assert (fake.sysfs[SCHED], fake.sysfs[RA], fake.files, fake.state) == ("mq-deadline", "128", set(), "")


def test_a_baseline_of_almost_no_io_gives_no_infinite_gain_and_no_unreadable_results():
    """1e-300 IOPS for the planned scheduler and 1e15 for the other: the gain overflows to inf,
    which JSON cannot hold (pydantic writes null): such a result file would be saved and then
    fail every plan of the host. The run is refused instead, and the host restored."""
    fake = HostileHost()

    def answer(command):
        if "--name=fleetforge " in command and "--rw=randread" in command and "--ioengine=libaio" in command:
            tiny = candidate(command) == "mq-deadline"
            iops = 1e-300 if tiny else 1e15
            return fio_side(iops=iops, bw_bytes=1, clat_ns={"percentile": {"99.000000": 1e-300 if tiny else 1e15}})
        return None

    fake.answer = answer
    with pytest.raises(HostOutputError, match="no finite comparison"):
        measure(fake)
    assert (fake.sysfs[SCHED], fake.files, fake.state) == ("mq-deadline", set(), "")


def test_a_comparison_that_is_not_finite_is_never_stored():
    inf = decide(Samples("a", [0.0] * 4), [Samples("b", [1.0] * 4)]).comparisons[0]
    assert inf.gain == float("inf")
    with pytest.raises(ValidationError, match="finite"):
        results.ComparisonRecord(**inf.__dict__)


def test_extreme_but_finite_samples_make_a_result_that_reads_back_and_plans_only_offered_values(tmp_path):
    """The host picks the numbers (it can always make a candidate win): what reaches the plan is
    still a scheduler the disk offers and a read-ahead candidate fleetforge chose, and the file
    round-trips."""
    fake = HostileHost()

    def answer(command):
        if " && fio --output-format=json --name=fleetforge " in command:
            big = candidate(command) in ("none", "1024")
            value = remote.MAX_FIO_NUMBER if big else 1.0
            io = {"io_bytes": remote.MAX_FIO_NUMBER} if "--bs=128k" in command else {}  # read to the end
            return fio_side(iops=value, bw_bytes=value, clat_ns={"percentile": {"99.000000": 1}}, **io)
        return None

    fake.answer = answer
    facts = vm_facts()
    found = measure(fake, Options(repeats=4, budget_s=10, file_mib=64, knobs=("scheduler", "read_ahead_kb")), facts)
    path = results.save(tmp_path, found)
    assert path.parent == tmp_path
    loaded = results.load(tmp_path, "vm-blk-1")
    assert loaded == found
    settings = settings_from_data("vm-blk-1", {})
    plan = apply_measured(plan_host("vm-blk-1", facts, settings, measured=False), loaded, facts)
    vda = next(d for d in plan.disks if d.name == "vda")
    assert vda.scheduler.value == "none" and vda.read_ahead_kb.value == 1024
    for planned in (vda.scheduler, vda.read_ahead_kb):
        assert not CONTROL.search(planned.source) and not CONTROL.search(planned.reason)


# --- findmnt, sysfs links, mktemp, fio --version, mm_stat ---------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"filesystems":' + "[" * 100_000,
        json.dumps({"filesystems": [{"target": "/", "source": "/dev/vda1", "fstype": "ext4", "size": "9" * 5000}]}),
        json.dumps({"filesystems": [{"target": "/", "source": "/dev/vda1", "fstype": "ext4", "size": 2**64}]}),
    ],
    ids=["deep nesting", "a size of 5000 digits", "a size beyond 2^63"],
)
def test_findmnt_output_that_is_deep_or_overflows_is_refused_as_host_output(text):
    with pytest.raises(HostOutputError, match="^findmnt"):
        remote.parse_mounts(text)


def test_sysfs_links_name_only_kernel_disks_and_a_disk_fleetforge_does_not_know_is_not_measured():
    text = (
        "vda1 /sys/devices/x/block/../../etc/vda1\n"
        "vda1\r /sys/devices/x/block/vda/vda1\n"
        "vda1 /sys/devices/x/block/vda\x1b[2J/vda1\n"
        "vda1 /sys/devices/x/block\n"
    )
    assert remote.parse_parent_disks(text) == {}
    fake = HostileHost(
        answer=lambda c: Result(0, "vda1 /sys/devices/x/block/sdz/vda1\n") if "fleetforge-disks" in c else None
    )
    found = measure(fake)
    assert found.disks == [] and not any(c.startswith("echo ") for c in fake.log)


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "/etc/.fleetforge-fio.AbCdEfGh12",
        "/.fleetforge-fio.AbCdEfGh12\n/etc/passwd",
        "/../.fleetforge-fio.AbCdEfGh12",
        ".fleetforge-fio.AbCdEfGh12",
        "/.fleetforge-fio.AbCdEfGh1",
        "/.fleetforge-fio.AbCdEfGh12 /etc/passwd",
        "/" + "a/" * 500_000 + ".fleetforge-fio.AbCdEfGh12",
    ],
    ids=["another file", "another dir", "two lines", "dot-dot", "relative", "short", "two words", "1 MB"],
)
def test_a_hostile_mktemp_path_is_refused_never_recorded_written_or_deleted(path):
    fake = HostileHost(mktemp_path=path)
    start = time.monotonic()
    with pytest.raises(MeasureError, match="mktemp: expected a new file in /"):
        measure(fake)
    assert time.monotonic() - start < 5
    assert not any("fleetforge-layout" in c or c.startswith("rm -f -- /etc") for c in fake.log)
    assert fake.state == "" and fake.sysfs[SCHED] == "mq-deadline"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_no_test_file_where_another_user_could_swap_it_for_a_link(tmp_path):
    """fio writes the test file as root, following links: in a directory another user can write
    (a user's mount point, a group-writable one) that user could replace the file with a link to
    /etc/shadow between mktemp and fio. mktemp runs only in root-only or sticky directories."""
    dirs = {"root 755": (0, 0o755), "root 1777": (0, 0o1777), "root 777": (0, 0o777), "root 775": (0, 0o775)}
    dirs["user 755"] = (65534, 0o755)
    made = {}
    for label, (uid, mode) in dirs.items():
        d = tmp_path / label.replace(" ", "-")
        d.mkdir()
        os.chown(d, uid, 0)
        d.chmod(mode)
        out = subprocess.run(
            shlex.split(remote.mktemp_command(str(d), "x.XXXXXXXXXX")), capture_output=True, text=True, timeout=10
        )
        made[label] = (out.returncode, list(d.iterdir()))
    assert {k: rc for k, (rc, _) in made.items()} == {
        "root 755": 0, "root 1777": 0, "root 777": 3, "root 775": 3, "user 755": 3,
    }  # fmt: skip
    assert made["user 755"][1] == [] and made["root 777"][1] == []


def test_a_mount_directory_the_host_says_is_not_root_only_stops_the_run_restored():
    refused = Result(3, "", "/: not root-only (another owner, or group/other-writable): no test file there")
    fake = HostileHost(answer=lambda c: refused if "fleetforge-mktemp" in c else None)
    with pytest.raises(MeasureError, match="create the test file: exit 3: /: not root-only"):
        measure(fake)
    assert not any("fleetforge-layout" in c for c in fake.log) and fake.state == ""


@pytest.mark.parametrize(
    "version", ["fio-3.33\x1b[2J", "fio-3.33; reboot", "fio-" + "3" * 1_000_000, "", "fio-3.33\n\n1"]
)
def test_a_hostile_fio_version_is_refused(version):
    with pytest.raises(HostOutputError, match="fio --version"):
        remote.fio_version(version)


@pytest.mark.parametrize(
    "text",
    ["1" + "0" * 400 + " 1\n", "9" * 5000 + " 1\n", "-1 1\n", "1\n", "\uff11 1\n", str(2**64) + " 1\n"],
    ids=["400 digits", "5000 digits", "negative", "one field", "fullwidth digit", "beyond u64"],
)
def test_mm_stat_that_overflows_or_is_not_byte_counts_is_refused_as_host_output(text):
    with pytest.raises(HostOutputError, match="mm_stat"):
        swap.compression(text)


def test_a_zram_latency_of_almost_nothing_gives_no_infinite_r():
    fake = HostileHost()

    def answer(command):
        if "--filename=/dev/zram1" in command and "--ioengine=psync" in command:
            return fio_side(iops=1, bw_bytes=1, clat_ns={"mean": 1e-310})  # 300 us / 1e-313 us = inf
        return None

    fake.answer = answer
    with pytest.raises(HostOutputError, match="expected a finite ratio"):
        measure(fake)
    assert (fake.sysfs[SCHED], fake.files, fake.zram, fake.state) == ("mq-deadline", set(), set(), "")


# --- the controller's terminal ------------------------------------------------------------------

ESCAPES = "\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\x1b]0;owned\x07\u202e"


def test_a_hosts_stderr_reaches_the_error_without_terminal_escapes():
    fake = HostileHost(fail_job=1)
    fake.fio_job = lambda argv: Result(1, "", ESCAPES + "fio: io_u error")
    with pytest.raises(MeasureError) as e:
        measure(fake)
    assert not CONTROL.search(str(e.value)) and "\\x1b]52;c;" in str(e.value)


def test_the_cli_prints_a_hosts_text_in_any_error_without_terminal_escapes(monkeypatch):
    """A probe's stderr reaches the error as it is (``verify.probe_with``); the line printed is escaped."""
    from fleetforge import verify
    from fleetforge.measure import cli

    def failing(*args, **kwargs):
        raise RuntimeError(f"probe exited 1: {ESCAPES}")

    monkeypatch.setattr(verify, "testinfra_host", lambda name, data: object())
    monkeypatch.setattr(cli, "measure_host", failing)

    class H:
        name, data, settings = "vm-blk-1", {}, settings_from_data("vm-blk-1", {})

    line = cli._measure_one(H(), QUICK)
    assert line.startswith("vm-blk-1: not measured: probe exited 1: ") and not CONTROL.search(line)
    assert printable("a\nb\x9b\u2066") == "a\\nb\\x9b\\u2066"


# --- the state machine ----------------------------------------------------------------------------


def test_a_scheduler_whose_current_value_is_unknown_is_never_changed():
    """The probe's scheduler line without brackets gives no current scheduler: there would be
    nothing to restore it to (the restore state skipped it), so it is not measured."""
    facts = vm_facts()
    vda = facts.disks[0].model_copy(update={"scheduler": None})
    facts = facts.model_copy(update={"disks": [vda, *facts.disks[1:]]})
    fake = HostileHost()
    found = measure(fake, facts=facts)
    assert not any(c.startswith(f"echo none > {SCHED}") for c in fake.log)
    assert [s.knob for s in found.disks[0].series] == ["read_ahead_kb"]
    assert fake.sysfs[SCHED] == "mq-deadline" and fake.state == ""


def test_a_planned_knob_without_an_original_value_stops_the_run_before_the_state_is_written():
    from fleetforge.measure import run

    facts = vm_facts()
    mount = remote.Mount("/", "vda1", "ext4", 2**32, 2**31, False)
    plan = remote.Plan("vda", mount, None, [], None, "/sys/fs/btrfs/0b3c2a1e-8f4d-4c2b-9a7e-1d2c3b4a5f60/bdi/read_ahead_kb",
                       [128, 4096], 4096)  # fmt: skip
    with pytest.raises(MeasureError, match="no value to restore /sys/fs/btrfs/.* to; nothing was changed"):
        run._originals("vm-blk-1", facts, [plan])


def _honest_commands():
    fake = HostileHost(fio_installed=False)
    measure(fake)
    return len(fake.log)


N_COMMANDS = _honest_commands()


@pytest.mark.parametrize("n", range(1, N_COMMANDS + 1))
def test_a_failure_at_any_command_leaves_no_changed_knob_without_its_restore_state(n):
    original = HostileHost().sysfs.copy()
    fake = HostileHost(fio_installed=False, fail_at=n)
    try:
        measure(fake)
    except (MeasureError, HostOutputError):
        pass
    fake.knobs_are_recoverable(original)
    fake.fail_at = None  # the next run, with the host answering again, ends with the host as it was
    measure(fake)
    assert (fake.sysfs, fake.files, fake.zram, fake.state, fake.fio) == (original, set(), set(), "", False)


@pytest.mark.parametrize("run_then_kill", [False, True], ids=["killed before", "killed after"])
@pytest.mark.parametrize("n", range(1, N_COMMANDS + 1))
def test_a_controller_killed_at_any_command_leaves_a_state_the_next_run_restores(n, run_then_kill):
    """Killed with no ``finally`` reaching the host. Residual, by design: when killed right after
    ``mktemp`` or ``hot_add`` ran, the new empty file or unset zram device is not yet named
    (its name is known only from the answer); nothing else is ever left unnamed."""
    original = HostileHost().sysfs.copy()
    fake = HostileHost(fio_installed=False, kill_at=n, run_then_kill=run_then_kill)
    with pytest.raises(Killed):
        measure(fake)
    last_run = fake.log[-1] if fake.log else ""
    if last_run.startswith(("sh -c 'test -n", f"cat {swap.HOT_ADD}")):  # the residual above
        fake.files.clear()
        fake.zram.clear()
    fake.knobs_are_recoverable(original)
    fake.dead, fake.kill_at = False, None
    measure(fake)
    assert (fake.sysfs, fake.files, fake.zram, fake.state, fake.fio) == (original, set(), set(), "", False)


def test_a_failed_restore_keeps_a_state_naming_everything_still_to_undo():
    """The test file's state write fails (exit 1), then its removal fails: the host's copy of the
    state did not name the file, so the controller writes the state again before it gives up."""
    fake = HostileHost()
    writes = {"n": 0}

    def answer(command):
        if command.startswith("sh -c 'umask 077"):
            writes["n"] += 1
            if writes["n"] == 2:  # the write naming the test file
                return Result(1, "", "No space left on device")
        if command.startswith("rm -f -- /.fleetforge-fio."):
            return Result(1, "", "Device or resource busy")
        return None

    fake.answer = answer
    with pytest.raises(MeasureError, match="restore failed"):
        measure(fake)
    assert json.loads(fake.state)["files"] == [TEST_FILE] and TEST_FILE in fake.files
    fake.answer = lambda command: None
    found = measure(fake, Options(repeats=4, budget_s=10, file_mib=64, knobs=("read_ahead_kb",)))
    assert f"deleted {TEST_FILE} (left by an interrupted run)" in found.restored
    assert fake.files == set() and fake.state == ""


def test_a_restored_zram_device_is_named_in_what_the_next_run_reports():
    fake = HostileHost(state=remote.RestoreState(zram_devices=[3]).model_dump_json())
    fake.zram.add(3)
    found = measure(fake, Options(repeats=4, budget_s=10, file_mib=64, knobs=("read_ahead_kb",)))
    assert found.restored == ["removed test zram device zram3 (left by an interrupted run)"] and fake.zram == set()


# --- regexes, sizes, local files --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        (remote.TEST_FILE, "/a" * 500_000 + "/.fleetforge-fio.AAAAAAAAA!"),
        (remote.TEST_FILE, "/.fleetforge-fio.AAAAAAAAAA" * 40_000 + "!"),
        (remote._TARGET, "/" + "a/" * 500_000 + "!"),
        (remote._SOURCE, "/dev/a" + "0" * 1_000_000 + "-"),
        (remote._SOURCE, "/dev/vda[/" + "]" * 1_000_000),
        (remote.QUEUE_KNOB, "/sys/block/a" + "1" * 1_000_000 + "-1-"),
        (remote.BDI_KNOB, "/sys/fs/btrfs/" + "0" * 1_000_000),
    ],
    ids=["test file segments", "test file names", "target", "source", "source subvolume", "queue knob", "bdi"],
)
def test_the_parsers_regexes_take_linear_time_on_a_megabyte(pattern, text):
    start = time.monotonic()
    assert pattern.fullmatch(text) is None
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize("host", ["../../etc/cron.d/x", "/etc/passwd", "..", "a/../../b", "vm\x00", "-rf"])
def test_results_stay_in_the_measurements_dir_whatever_the_host_is_called(tmp_path, host):
    inside = tmp_path / "m"
    found = results.HostMeasurement(
        host=host, measured_at="2026-12-06T19:30:00Z", kernel="6.1", fio_version="", fio_installed_by_fleetforge=False,
        repeats=4, runtime_s=0, file_mib=64,
    )  # fmt: skip
    path = results.save(inside, found)
    assert path.resolve().parent == inside.resolve() and results.load(inside, host) == found
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(["m", path.name])


def test_printable_leaves_ordinary_text_alone():
    assert printable("host vm-blk-1: fio randread: exit 1: fio: io_u error (été)") == (
        "host vm-blk-1: fio randread: exit 1: fio: io_u error (été)"
    )
