"""Which disks are measured (and which refused, with the reason), and how a stored measurement
enters the plan: a win replaces the rule with the numbers as source, no difference keeps the
rule and says so, host data pins, a measurement that no longer fits is ignored."""

import json

import pytest

from fleetforge.measure import results, targets
from fleetforge.measure.host import Mount
from fleetforge.measure.results import HostMeasurement, MeasurementError
from fleetforge.planner import plan_host
from fleetforge.settings import settings_from_data
from tests.conftest import facts_from

GIB = 2**30


def vm():
    return facts_from("qemu-virtio-blk-vda-bios")  # vda (root) and an empty vdb, mq-deadline/none


def rules(facts, data=None):
    return plan_host("vm-blk-1", facts, settings_from_data("vm-blk-1", data or {}), measured=False)


ROOT = Mount("/", "vda1", "ext4", 4 * GIB, 3 * GIB, False)
PARENTS = {"vda1": "vda", "vdb": "vdb"}


def test_the_root_disk_is_measured_and_a_disk_without_a_filesystem_is_refused_by_name():
    facts = vm()
    plans, skipped = targets.choose(facts, rules(facts), [ROOT], PARENTS, 256)
    (item,) = plans
    assert (item.disk, item.mount.target, item.schedulers, item.scheduler_baseline) == (
        "vda", "/", ["mq-deadline", "none"], "mq-deadline",
    )  # fmt: skip
    assert item.read_ahead_path == "/sys/block/vda/queue/read_ahead_kb"
    assert (item.read_aheads, item.read_ahead_baseline) == ([128, 1024, 4096], 4096)
    assert [(s.disk, s.reason) for s in skipped] == [
        ("vdb", "no mounted filesystem (fleetforge never measures a raw device)")
    ]


def test_a_test_file_that_would_pass_85_percent_full_is_refused_with_the_figures():
    full = Mount("/", "vda1", "ext4", 4 * GIB, 700 * 2**20, False)  # 82.9 % used before the file
    _, skipped = targets.choose(vm(), rules(vm()), [full], PARENTS, 256)
    assert skipped[0].reason == (
        "refused: a 256 MiB test file would take / to 89% full (limit 85%; 700 MiB free of 4096 MiB)"
    )
    fits = Mount("/", "vda1", "ext4", 4 * GIB, 900 * 2**20, False)
    assert targets.choose(vm(), rules(vm()), [fits], PARENTS, 256)[0]


def test_read_only_and_pinned_knobs_are_not_measured():
    ro = Mount("/", "vda1", "ext4", 4 * GIB, 3 * GIB, True)
    assert targets.choose(vm(), rules(vm()), [ro], PARENTS, 256)[1][0].reason == "/ is mounted read-only"
    facts = vm()
    pinned = rules(facts, {"disks": {"vda": {"scheduler": "none", "read_ahead_kb": 512}}})
    _, skipped = targets.choose(facts, pinned, [ROOT], PARENTS, 256, ("scheduler", "read_ahead_kb"))
    assert skipped[0].reason == "scheduler pinned in host data (none); read_ahead_kb pinned in host data (512)"
    # with swappiness measured, the root filesystem still gets a test file (the swap's file read)
    plans, _ = targets.choose(facts, pinned, [ROOT], PARENTS, 256)
    assert [(p.disk, p.scheduler_path, p.read_ahead_path) for p in plans] == [("vda", None, None)]


def measurement(chosen="none", changed=True, ra_chosen="4096", ra_changed=False, baseline="mq-deadline"):
    def series(knob, workload, unit, base, candidates, pick, changed, reason):
        samples = [
            {"candidate": c, "round": r, "value": 100.0 + 10 * i + r, "p99_ms": 1.0}
            for r in range(4)
            for i, c in enumerate(candidates)
        ]
        return {
            "knob": knob, "workload": workload, "unit": unit, "decides": True, "baseline": base,
            "candidates": candidates, "samples": samples,
            "decision": {"chosen": pick, "changed": changed, "reason": reason, "comparisons": []},
        }  # fmt: skip

    sched_reason = (
        "none 61,000 IOPS p99 0.90 ms vs mq-deadline 44,000 IOPS p99 1.40 ms (+39%, p = 0.008, n = 5)"
        if changed
        else "measured: no significant difference; kept mq-deadline (best other: none +1%, not beyond the noise)"
    )
    return HostMeasurement.model_validate(
        {
            "host": "vm-blk-1", "measured_at": "2026-12-06T19:30:00Z", "kernel": "6.1.0", "fio_version": "fio-3.33",
            "fio_installed_by_fleetforge": False, "repeats": 4, "runtime_s": 0.5, "file_mib": 64,
            "disks": [{
                "disk": "vda", "mount": "/", "fstype": "ext4", "read_ahead_path": "/sys/block/vda/queue/read_ahead_kb",
                "series": [
                    series("scheduler", "randread", "IOPS", baseline, ["mq-deadline", "none"], chosen, changed, sched_reason),
                    series("read_ahead_kb", "seqread-buffered", "MiB/s", "4096", ["128", "1024", "4096"], ra_chosen,
                           ra_changed, "measured: 4096 best: 4096 210 MiB/s vs 1024 120 MiB/s (+75%, p = 0.008, n = 5)"),
                ],
            }],
        }
    )  # fmt: skip


def test_a_measured_win_replaces_the_rule_with_the_figures_as_source():
    facts = vm()
    plan = plan_host("vm-blk-1", facts, settings_from_data("vm-blk-1", {}), measured=measurement())
    vda = plan.disks[0]
    assert vda.scheduler.value == "none"
    assert vda.scheduler.source == (
        "measured on vm-blk-1 2026-12-06 (randread, fio): none 61,000 IOPS p99 0.90 ms vs "
        "mq-deadline 44,000 IOPS p99 1.40 ms (+39%, p = 0.008, n = 5)"
    )
    # the read-ahead measurement found the rule's value best: value and source stay, the reason adds it
    assert vda.read_ahead_kb.value == 4096 and vda.read_ahead_kb.source.startswith("fleetforge default")
    assert vda.read_ahead_kb.reason.endswith(
        "measured: 4096 best: 4096 210 MiB/s vs 1024 120 MiB/s (+75%, p = 0.008, n = 5) (2026-12-06)"
    )
    assert plan.disks[1] == rules(facts).disks[1]  # vdb was not measured


def test_no_significant_difference_keeps_the_rule_and_says_so():
    plan = plan_host(
        "vm-blk-1", vm(), settings_from_data("vm-blk-1", {}), measured=measurement(changed=False, chosen="mq-deadline")
    )
    assert plan.disks[0].scheduler.value == "mq-deadline"
    assert "measured: no significant difference; kept mq-deadline" in plan.disks[0].scheduler.reason


def test_host_data_pins_against_the_measurement():
    data = {"disks": {"vda": {"scheduler": "mq-deadline"}}}
    plan = plan_host("vm-blk-1", vm(), settings_from_data("vm-blk-1", data), measured=measurement())
    assert (plan.disks[0].scheduler.value, plan.disks[0].scheduler.source) == ("mq-deadline", "host data")


def test_a_measurement_made_against_another_baseline_or_a_scheduler_no_longer_offered_is_ignored():
    plan = plan_host("vm-blk-1", vm(), settings_from_data("vm-blk-1", {}), measured=measurement(baseline="none"))
    assert plan.disks[0].scheduler.value == "mq-deadline"
    assert "measurement of 2026-12-06 ignored: it compared against none, the rule now plans mq-deadline" in (
        plan.disks[0].scheduler.reason
    )
    gone = measurement(chosen="kyber")
    plan = plan_host("vm-blk-1", vm(), settings_from_data("vm-blk-1", {}), measured=gone)
    assert (
        plan.disks[0].scheduler.value == "mq-deadline"
        and "kyber is not offered any more" in plan.disks[0].scheduler.reason
    )


def test_plans_read_the_stored_measurement_from_measurements_dir(tmp_path):
    path = results.save(tmp_path, measurement())
    assert path == tmp_path / "vm-blk-1.json" and not list(tmp_path.glob(".*"))
    settings = settings_from_data("vm-blk-1", {"measurements_dir": str(tmp_path)})
    assert plan_host("vm-blk-1", vm(), settings).disks[0].scheduler.value == "none"
    path.write_text(json.dumps({**json.loads(path.read_text()), "host": "other"}))
    with pytest.raises(MeasurementError, match="host vm-blk-1: measurements .*: expected host 'vm-blk-1', got 'other'"):
        plan_host("vm-blk-1", vm(), settings)
    path.write_text('{"host": "vm-blk-1"}')
    with pytest.raises(
        MeasurementError, match="host vm-blk-1: measurements .*vm-blk-1.json: measured_at: Field required"
    ):
        plan_host("vm-blk-1", vm(), settings)


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b", "..", "-rf", "héllo"])
def test_a_host_name_that_is_not_a_plain_file_name_is_stored_under_a_digest(tmp_path, name):
    path = results.results_file(tmp_path, name)
    assert path.parent == tmp_path and path.name.startswith("host-") and path.suffix == ".json"


def test_measured_r_sets_swappiness_unless_host_data_pins_it():
    found = measurement().model_copy(
        update={
            "swap": results.SwapMeasurement(
                algorithm="zstd", file_disk="vda", zram_read_us=[12, 13, 12, 14], file_read_us=[300, 320, 310, 290],
                r=24.8, swappiness=192, compression_ratio=3.1, compression_note="310 MiB stored in 100 MiB",
            )
        }
    )  # fmt: skip
    facts = vm()
    assert {s.key: s.value.value for s in rules(facts).sysctls}["vm.swappiness"] == "180"
    plan = plan_host("vm-blk-1", facts, settings_from_data("vm-blk-1", {}), measured=found)
    row = next(s.value for s in plan.sysctls if s.key == "vm.swappiness")
    assert row.value == "192" and row.reason.endswith("with measured r = 24.8 = 192")
    assert row.source.startswith(
        "measured on vm-blk-1 2026-12-06 (fio, 4 KiB reads one at a time): zstd zram 12 us vs vda file 305 us"
    )
    assert row.source.endswith("Documentation/admin-guide/sysctl/vm.rst (swappiness)")
    pinned = plan_host("vm-blk-1", facts, settings_from_data("vm-blk-1", {"swap_io_cost_ratio": 2}), measured=found)
    assert next(s.value.value for s in pinned.sysctls if s.key == "vm.swappiness") == "133"
