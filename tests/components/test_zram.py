"""The zram component in one place: rule, file, NixOS options, checks, drift, restore, rows."""

import pytest

from fleetforge.components.base import raw
from fleetforge.components.zram import UNLOAD, ZRAM_APPLY, ZRAM_REMOVE, Zram
from fleetforge.errors import PlanError
from fleetforge.paths import ZRAM_GENERATOR_CONF
from fleetforge.planner import plan_host
from tests.components.helpers import facts, settings, snap

ZRAM = Zram()


def test_size_is_min_ram_8gib_and_above_2x_ram_is_refused():
    small, big = facts(), facts("controller-docker-vda")
    assert plan_host("h", small, settings()).zram.size_mib.value == 960  # RAM
    assert plan_host("h", big, settings()).zram.size_mib.value == 8192  # the cap
    assert "Scale_ZRAM_to_full_memory" in plan_host("h", small, settings()).zram.size_mib.source
    with pytest.raises(PlanError, match=r"host h: zram_size: expected at most 2x RAM \(1920 MiB"):
        plan_host("h", small, settings(zram_size="4G"))


def test_file_and_nixos_options_give_the_same_device():
    p, f = plan_host("h", facts(), settings(zram_size=512, zram_algorithm="lz4")), facts()
    text = ZRAM.file(p, f)
    assert "[zram0]\n" in text and "zram-size = 512\n" in text and "compression-algorithm = lz4\n" in text
    options = ZRAM.nixos_options(p, f)["zramSwap"]
    # NixOS: min(memoryPercent % of RAM, memoryMax) = exactly 512 MiB
    assert options["memoryMax"] == 512 * 1048576 and options["memoryPercent"] * 960 / 100 >= 512
    off = plan_host("h", f, settings(zram=False))
    assert "\n[zram0]\n" not in ZRAM.file(off, f) and ZRAM.nixos_options(off, f) == {"zramSwap": {"enable": False}}


def test_checks_live_and_drift():
    f = facts("qemu-nvme-efi-zram-swap")  # zram0 256 MiB lz4, priority 5, active
    p = plan_host("h", f, settings(zram_size=256, zram_algorithm="lz4", zram_priority=5))
    checks = {c.item: c for c in ZRAM.checks(p, nixos=False)}
    assert checks["zram0 swap priority"].parse("Filename Type Size Used Priority\n/dev/zram0 partition 1 0 5\n") == "5"
    assert ZRAM.drift(p, f) == []
    other = plan_host("h", f, settings(zram_size=256, zram_algorithm="zstd", zram_priority=100))
    assert ZRAM.drift(other, f) == ["zram0 algorithm: lz4 -> zstd", "zram0 swap priority: 5 -> 100"]
    off = plan_host("h", f, settings(zram=False))
    assert [c.item for c in ZRAM.checks(off, nixos=False)] == ["zram0 swap"]
    assert ZRAM.drift(off, f) == ["zram0 swap: active -> inactive"]


def test_apply_and_restore_follow_the_recorded_swap_state():
    f = facts()
    assert ZRAM.apply(plan_host("h", f, settings()), f) == ZRAM_APPLY
    assert ZRAM.apply(plan_host("h", f, settings(zram=False)), f) == ZRAM_REMOVE
    was_active = snap(zram_device=True, checks={"zram0 swap priority": "100"})
    assert ZRAM.restore(was_active, snap(zram_device=True), [ZRAM_GENERATOR_CONF]) == (raw(ZRAM_APPLY), [])
    none_before = ZRAM.restore(snap(zram_device=False), snap(zram_device=True), [ZRAM_GENERATOR_CONF])
    assert none_before == (raw(ZRAM_REMOVE) + [UNLOAD], [])
    assert ZRAM.restore(snap(zram_device=True), snap(zram_device=True), []) == ([], [])  # nothing changed


def test_rows():
    rows = [row[0] for row in ZRAM.rows(plan_host("h", facts(), settings()), lambda key: False)]
    assert rows == ["zram", "zram-size MiB", "zram algorithm", "zram swap-priority"]
