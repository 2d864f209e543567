"""``measure_host`` against a strict fake host (a mock: the real runs are in
``tests/e2e/test_measure.py``): the fake answers only the commands a measurement may send,
keeps sysfs values, files and the restore state, and raises on anything else. It shows the
order (restore state written before any knob changes; restored whatever happens) and that
hostile answers stop the run without acting on them."""

import json
import random
import shlex
from dataclasses import dataclass

import pytest

from fleetforge.measure import host as remote
from fleetforge.measure import swap
from fleetforge.measure.run import MeasureError, Options, measure_host
from fleetforge.planner import plan_host
from fleetforge.settings import settings_from_data
from tests.conftest import facts_from
from tests.measure.test_parsers import FINDMNT_VM

SCHED = "/sys/block/vda/queue/scheduler"
RA = "/sys/block/vda/queue/read_ahead_kb"


@dataclass
class Result:
    rc: int
    stdout: str = ""
    stderr: str = ""


class FakeHost:
    """vm-blk-1 with ext4 on vda1 only; ``none`` gives 40 % more IOPS, read-ahead 4096 the most MiB/s."""

    def __init__(self, fio_installed=True, state="", mktemp_path=None, fail_job=None, slow=1.0):
        self.sysfs = {SCHED: "mq-deadline", RA: "128", "/sys/block/vdb/queue/scheduler": "mq-deadline"}
        self.files: set[str] = set()
        self.state = state
        self.fio = fio_installed
        self.mktemp_path = mktemp_path
        self.fail_job = fail_job
        self.jobs = 0
        self.log: list[str] = []
        self.rng = random.Random(1)
        self.zram: set[int] = set()
        self.slow = slow  # a job of runtime t reads rate x t x slow MiB at most
        self.read_ahead_jobs: list[list[str]] = []

    def run(self, command: str) -> Result:
        self.log.append(command)
        if command == f"cat -- {remote.STATE_FILE} 2>/dev/null; true":
            return Result(0, self.state)
        if command == remote.FINDMNT:
            rows = [r for r in FINDMNT_VM["filesystems"] if r["target"] in ("/", "/proc")]
            return Result(0, json.dumps({"filesystems": rows}))
        if command.startswith("sh -c 'for d in"):
            return Result(0, "vda1 /sys/devices/pci0000:00/0000:00:05.0/virtio2/block/vda/vda1\n")
        if command.startswith("sh -c 'umask 077"):
            self.state = shlex.split(command)[-1]
            return Result(0)
        if command == "command -v fio >/dev/null":
            return Result(0 if self.fio else 1)
        if command.endswith("apt-get install -y -q --no-install-recommends fio"):
            self.fio = True
            return Result(0)
        if command.endswith("apt-get remove -y -q fio"):
            self.fio = False
            return Result(0)
        if command == "test -w /sys/class/zram-control/hot_add":
            return Result(0)
        if command == "cat /sys/class/zram-control/hot_add":
            self.zram.add(1)
            return Result(0, "1\n")
        if command.startswith("echo zstd > /sys/block/zram1/comp_algorithm && echo 48M > /sys/block/zram1/disksize"):
            assert json.loads(self.state)["zram_devices"] == [1], "the test zram device is recorded before use"
            return Result(0)
        if command.startswith("fio --name=fleetforge-zram --filename=/dev/zram1"):
            return Result(0)
        if command == swap.LIVE_ZRAM:
            return Result(0, "209715200 52428800 55000000 0 55000000 0 0 0 0\n")  # 200 MiB in 50 MiB
        if command.startswith('sh -c \'grep -q "^/dev/zram$1 " /proc/swaps'):
            self.zram.discard(int(shlex.split(command)[-1]))
            return Result(0)
        if command == "fio --version":
            return Result(0, "fio-3.33\n")
        if command == remote.mktemp_command("/", f"{remote.TEST_FILE_PREFIX}XXXXXXXXXX"):
            path = self.mktemp_path or "/.fleetforge-fio.AbCdEfGh12"
            self.files.add(path)
            return Result(0, path + "\n")
        if command.startswith("rm -f -- "):
            target = shlex.split(command)[-1]
            self.files.discard(target)
            if target == remote.STATE_FILE:
                self.state = ""
            return Result(0)
        if command.startswith("fio --output-format=json --name=fleetforge-layout"):
            return Result(0, "{}")
        if "--rw=randread" in command and "--ioengine=psync" in command:  # the swap cost jobs
            zram = "--filename=/dev/zram1" in command
            side = {
                "iops": 1,
                "bw_bytes": 1,
                "clat_ns": {"mean": (12_000 if zram else 300_000) * self.rng.uniform(0.95, 1.05)},
            }
            return Result(0, json.dumps({"jobs": [{"read": side}]}))
        if command.startswith("echo "):
            first, _, rest = command.partition(" && ")
            value, path = shlex.split(first.removeprefix("echo ").replace(">", " "))
            assert path in self.sysfs, path
            assert self.state, "a knob changed before the restore state was written"
            self.sysfs[path] = value
            return self.fio_job(shlex.split(rest)) if rest else Result(0)
        raise AssertionError(f"the fake host was not told to expect: {command}")

    def fio_job(self, argv: list[str]) -> Result:
        self.jobs += 1
        if self.jobs == self.fail_job:
            return Result(1, "", "fio: io_u error: Input/output error")
        noise = self.rng.uniform(0.98, 1.02)
        iops = (1400 if self.sysfs[SCHED] == "none" else 1000) * noise
        mib_s = {"128": 20, "1024": 90, "4096": 120}[self.sysfs[RA]] * noise
        side = {"iops": iops, "bw_bytes": mib_s * 2**20, "clat_ns": {"percentile": {"99.000000": 2e6}}}
        size_mib = int(next(a for a in argv if a.startswith("--size=")).removeprefix("--size=").removesuffix("M"))
        runtime_s = int(next(a for a in argv if a.startswith("--runtime=")).split("=")[1].removesuffix("ms")) / 1000
        self.read_ahead_jobs.append(argv) if "--bs=128k" in argv else None
        side["io_bytes"] = min(size_mib, mib_s * runtime_s * self.slow) * 2**20
        return Result(0, json.dumps({"jobs": [{"read": side, "write": side}]}))


QUICK = Options(repeats=4, budget_s=10, file_mib=64)


def measure(fake, options=QUICK):
    facts = facts_from("qemu-virtio-blk-vda-bios")
    settings = settings_from_data("vm-blk-1", {})
    return measure_host(
        fake, "vm-blk-1", lambda: facts, lambda f: plan_host("vm-blk-1", f, settings, measured=False), settings, options
    )


def test_a_measurement_decides_from_the_samples_and_leaves_the_host_as_it_was():
    fake = FakeHost(fio_installed=False)
    found = measure(fake)
    (vda,) = found.disks
    decided = {s.knob: s for s in vda.series if s.decides}
    assert decided["scheduler"].decision.chosen == "none" and decided["scheduler"].decision.changed
    assert decided["read_ahead_kb"].decision.chosen == "4096"
    reason = decided["read_ahead_kb"].decision.reason  # medians of noisy samples around 120 and 90
    assert reason.startswith("measured: 4096 best: 4096 11") and " MiB/s vs 1024 " in reason and "n = 4)" in reason
    assert len(decided["scheduler"].samples) == 4 * 2 and len(decided["read_ahead_kb"].samples) == 4 * 3
    # candidate order rotates each round
    firsts = [s.candidate for s in decided["read_ahead_kb"].samples[::3]]
    assert firsts == ["128", "1024", "4096", "128"]
    assert [(s.disk, s.reason.split(" (")[0]) for s in found.skipped] == [("vdb", "no mounted filesystem")]
    # back as it was: values, no test file, fio removed again (fleetforge installed it), no state
    assert (fake.sysfs[SCHED], fake.sysfs[RA]) == ("mq-deadline", "128")
    assert fake.files == set() and not fake.fio and fake.state == ""
    assert found.fio_installed_by_fleetforge and found.fio_version == "fio-3.33"
    # swap: r from single 4 KiB reads (about 300 us from the file, 12 us from zram), the test zram device removed
    assert 20 < found.swap.r < 30 and found.swap.swappiness == round(200 * found.swap.r / (1 + found.swap.r))
    assert found.swap.compression_ratio == 4.0 and found.swap.compression_note == "200 MiB stored in 50 MiB"
    assert fake.zram == set()
    # the state naming fio was written before fio was installed
    install = next(i for i, c in enumerate(fake.log) if "apt-get install" in c)
    assert "fio" in json.loads(shlex.split(fake.log[install - 1])[-1])["packages"]


def test_read_ahead_jobs_read_to_the_end_of_the_file_as_much_as_the_planned_value_reads_in_the_job_time():
    fake = FakeHost()
    measure(fake, Options(repeats=4, budget_s=10, file_mib=64, knobs=("read_ahead_kb",)))
    calibration, *jobs = fake.read_ahead_jobs
    assert "--offset" not in " ".join(calibration) and "--size=64M" in calibration and "--runtime=500ms" in calibration
    assert len(jobs) == 4 * 3
    # the planned 4096 reads 120 MiB/s: 60 MiB in the job time (0.5 s), the last 60 MiB of the 64 MiB file
    assert {(a[4], a[7]) for a in jobs} == {("--size=60M", "--offset=4M")}


def test_a_read_ahead_job_stopped_by_time_before_the_end_of_the_file_stops_the_run():
    fake = FakeHost(slow=1e-4)
    with pytest.raises(MeasureError, match=r"host vm-blk-1: fio seqread-buffered at .*: read 1\.0 of 60 MiB in 480 s"):
        measure(fake, Options(repeats=4, budget_s=10, file_mib=64, knobs=("read_ahead_kb",)))
    assert (fake.sysfs[RA], fake.files, fake.state) == ("128", set(), "")


def test_a_failing_job_stops_the_run_and_the_host_is_restored_all_the_same():
    fake = FakeHost(fail_job=4)
    with pytest.raises(MeasureError, match="host vm-blk-1: fio randread: exit 1: fio: io_u error"):
        measure(fake)
    assert (fake.sysfs[SCHED], fake.sysfs[RA], fake.files, fake.state) == ("mq-deadline", "128", set(), "")
    assert fake.fio  # it was there before: fleetforge leaves it


def test_what_an_interrupted_run_left_is_restored_first():
    left = remote.RestoreState(values={SCHED: "mq-deadline", RA: "128"}, files=["/.fleetforge-fio.OldOldOld1"])
    fake = FakeHost(state=left.model_dump_json())
    fake.sysfs.update({SCHED: "none", RA: "4096"})
    fake.files.add("/.fleetforge-fio.OldOldOld1")
    found = measure(fake, Options(repeats=4, budget_s=10, file_mib=64, knobs=("read_ahead_kb",)))
    assert found.restored == [
        "/sys/block/vda/queue/scheduler = mq-deadline (left by an interrupted run)",
        "/sys/block/vda/queue/read_ahead_kb = 128 (left by an interrupted run)",
        "deleted /.fleetforge-fio.OldOldOld1 (left by an interrupted run)",
    ]
    assert fake.log.index(f"rm -f -- {remote.STATE_FILE}") < fake.log.index(remote.FINDMNT)
    assert fake.files == set() and fake.sysfs[SCHED] == "mq-deadline"


def test_a_restore_state_fleetforge_did_not_write_stops_the_run_before_anything_runs():
    fake = FakeHost(state=json.dumps({"values": {"/etc/shadow": "x"}, "files": ["/etc/passwd"]}))
    with pytest.raises(MeasureError, match="fleetforge did not write this, so it acts on none of it"):
        measure(fake)
    assert len(fake.log) == 1


def test_a_hostile_mktemp_answer_is_refused_and_never_deleted():
    fake = FakeHost(mktemp_path="/etc/passwd")
    with pytest.raises(MeasureError, match="mktemp: expected a new file in /, got '/etc/passwd'"):
        measure(fake)
    assert not any("/etc/passwd" in c for c in fake.log[1:] if c.startswith("rm"))
    assert fake.sysfs[SCHED] == "mq-deadline" and fake.state == ""
