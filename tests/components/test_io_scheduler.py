"""The I/O scheduler component in one place: rule, file, NixOS options, checks, drift, restore, rows."""

import shlex

import pytest

from fleetforge.components.io_scheduler import UDEV_APPLY, IoScheduler, disk_class
from fleetforge.errors import PlanError
from fleetforge.models import TuningPlan
from fleetforge.paths import UDEV_RULES
from fleetforge.planner import plan_host
from tests.components.helpers import facts, settings, snap

IO = IoScheduler()


def plan(name="qemu-virtio-blk-vda-bios", **data) -> TuningPlan:
    return plan_host("h", facts(name), settings(**data))


@pytest.mark.parametrize(
    ("fixture", "disk", "cls", "scheduler", "read_ahead", "sources"),
    [
        # virtio-blk with 1 vCPU: 1 hardware queue, the kernel's mq-deadline
        (
            "qemu-virtio-blk-vda-bios",
            "vda",
            "virtual",
            "mq-deadline",
            4096,
            ("elevator_get_default", "fleetforge default"),
        ),
        # virtio-scsi with 2 vCPUs: 2 hardware queues, the kernel's none
        ("qemu-virtio-scsi-sda-bios", "sda", "virtual", "none", 4096, ("elevator_get_default", "fleetforge default")),
        # NVMe is NVMe even in a guest: multi-queue, the kernel's own default
        ("qemu-nvme-efi", "nvme0n1", "nvme", "none", 128, ("block/elevator.c", "include/linux/mm.h")),
    ],
)
def test_rule_by_disk_class_with_reason_and_source(fixture, disk, cls, scheduler, read_ahead, sources):
    (d,) = [d for d in plan(fixture).disks if d.name == disk]
    assert (d.disk_class, d.scheduler.value, d.read_ahead_kb.value) == (cls, scheduler, read_ahead)
    assert sources[0] in d.scheduler.source and sources[1] in d.read_ahead_kb.source
    assert "RHEL 9" in d.scheduler.source and "hardware queue" in d.scheduler.reason or cls == "nvme"


@pytest.mark.parametrize(
    ("queues", "scheduler", "said"),
    [(1, "mq-deadline", "1 hardware queue"), (4, "none", "4 hardware queues"), (None, "mq-deadline", "unknown")],
)
def test_virtual_disk_scheduler_follows_its_hardware_queues(queues, scheduler, said):
    f = facts()
    disks = [d.model_copy(update={"nr_hw_queues": queues}) for d in f.disks]
    (vda, _) = plan_host("h", f.model_copy(update={"disks": disks}), settings()).disks
    assert vda.scheduler.value == scheduler and said in vda.scheduler.reason


def test_bare_metal_classes():
    nvme, hdd = facts("qemu-nvme-efi").disks[1], facts("qemu-virtio-blk-vda-bios").disks[0]
    assert disk_class(nvme, "none") == "nvme"
    assert disk_class(hdd.model_copy(update={"transport": "sata"}), "none") == "hdd"
    assert disk_class(hdd.model_copy(update={"transport": "sata", "rotational": False}), "none") == "ssd"


def test_host_data_wins_and_a_scheduler_the_disk_lacks_is_refused_naming_the_key():
    d = plan(disks={"vda": {"scheduler": "mq-deadline", "read_ahead_kb": 256}}).disks[0]
    assert (d.scheduler.value, d.scheduler.source, d.read_ahead_kb.value) == ("mq-deadline", "host data", 256)
    with pytest.raises(PlanError, match=r"host h: disks.vda.scheduler: expected one of the schedulers vda offers"):
        plan(disks={"vda": {"scheduler": "bfq"}})


def test_file_has_one_rule_per_disk_and_nixos_gets_the_same_rules():
    p, f = plan(), facts()
    text = IO.file(p, f)
    assert text.count('KERNEL=="vda"') == 1 and 'ATTR{queue/scheduler}="mq-deadline"' in text
    assert IO.nixos_options(p, f) == {"services": {"udev": {"extraRules": text}}}


def test_checks_live_and_drift_compare_the_same_items():
    p, f = plan(), facts()
    checks = {c.item: c for c in IO.checks(p, nixos=False)}
    assert checks["vda scheduler"].path == "/sys/block/vda/queue/scheduler"
    assert checks["vda scheduler"].parse("[mq-deadline] none") == "mq-deadline"
    assert set(IO.live(f)) == set(checks)
    assert "vda read_ahead_kb: 128 -> 4096" in IO.drift(p, f)
    drifted = f.model_copy(update={"disks": [d.model_copy(update={"scheduler": "none"}) for d in f.disks]})
    assert "vda scheduler: none -> mq-deadline" in IO.drift(p, drifted)
    converged = f.model_copy(update={"disks": [d.model_copy(update={"read_ahead_kb": 4096}) for d in f.disks]})
    assert IO.drift(p, converged) == []


def test_apply_and_restore():
    assert IO.apply(plan(), facts()) == UDEV_APPLY
    pre = snap(disks={"vda": {"scheduler": "mq-deadline", "read_ahead_kb": 128}})
    cmds, problems = IO.restore(pre, snap(), [UDEV_RULES])
    assert [shlex.split(c) for c in cmds[-2:]] == [
        ["echo", "mq-deadline", ">", "/sys/block/vda/queue/scheduler"],
        ["echo", "128", ">", "/sys/block/vda/queue/read_ahead_kb"],
    ]
    assert cmds[0].startswith("udevadm control --reload") and problems == []
    nixos_cmds, _ = IO.restore(snap(is_nixos=True, disks=pre.disks), snap(is_nixos=True), [UDEV_RULES])
    assert not any(c.startswith("udevadm") for c in nixos_cmds)  # NixOS: the generation does it


def test_rows():
    rows = list(IO.rows(plan(), lambda key: False))
    assert rows[0][:2] == ("vda scheduler (virtual)", "mq-deadline") and rows[1][:2] == ("vda read_ahead_kb", "4096")
