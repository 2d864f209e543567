"""The sysctl component in one place: rule, file, NixOS options, checks, drift, restore, rows."""

import math
import re
import shlex

import pytest

from fleetforge.components.sysctl import (
    SYSCTL_APPLY,
    ZRAM_IO_COST_RATIO,
    Sysctl,
    swappiness_for_ratio,
    sysctl_keys,
)
from fleetforge.models import SwapDevice
from fleetforge.paths import SYSCTL_CONF
from fleetforge.planner import plan_host
from fleetforge.settings import SettingsError
from tests.components.helpers import facts, settings, snap

SYSCTL = Sysctl()
WATERMARKS = ("vm.watermark_boost_factor", "vm.watermark_scale_factor")
# what a Linux >= 5.0 host has (kernel defaults); set or removed explicitly, whatever a capture holds
KERNEL_WATERMARKS = {"vm.watermark_boost_factor": "15000", "vm.watermark_scale_factor": "10"}
DISK_SWAP = SwapDevice(path="/swapfile", kind="file", size_bytes=1 << 30, used_bytes=0, priority=-2)


def wm_facts(name: str = "qemu-virtio-blk-vda-bios", **updates):
    """Captured facts plus the watermark keys a probe of today reads, fields then replaced."""
    f = facts(name)
    return f.model_copy(update={"sysctl": {**f.sysctl, **KERNEL_WATERMARKS}, **updates})


def no_wm_facts(name: str = "qemu-virtio-blk-vda-bios", **updates):
    """Captured facts as from a host without the watermark keys (or a probe that did not read them)."""
    f = facts(name)
    return f.model_copy(update={"sysctl": {k: v for k, v in f.sysctl.items() if k not in KERNEL_WATERMARKS}, **updates})


def with_disk_swap(f):
    return f.model_copy(update={"memory": f.memory.model_copy(update={"swap_devices": [DISK_SWAP]})})


def test_profiles_and_swap_sysctls_follow_the_swap_the_host_will_have():
    values = plan_host("h", facts(), settings()).sysctl_values()
    assert values["vm.dirty_ratio"] == "15" and values["net.core.rmem_max"] == "134217728"
    assert (values["vm.swappiness"], values["vm.page-cluster"]) == ("180", "0")  # zram only, Linux >= 5.8
    no_zram = plan_host("h", facts(), settings(zram=False)).sysctl_values()
    assert "vm.swappiness" not in no_zram  # the kernel's 60 stays


def test_host_data_wins_and_a_key_the_host_lacks_is_skipped_with_the_reason():
    f = wm_facts()
    missing = {k: v for k, v in f.sysctl.items() if k != "net.netfilter.nf_conntrack_max"}
    p = plan_host("h", f.model_copy(update={"sysctl": missing}), settings(swappiness=10, sysctl={"vm.dirty_ratio": 20}))
    assert p.sysctl_values()["vm.swappiness"] == "10" and p.sysctl_values()["vm.dirty_ratio"] == "20"
    (skipped,) = p.skipped_sysctls
    assert skipped.key == "net.netfilter.nf_conntrack_max" and "does not exist on this host" in skipped.reason
    assert "net.netfilter.nf_conntrack_max" in sysctl_keys(settings())  # the probe still asks for it


def test_file_and_nixos_options_hold_the_same_values_ints_as_ints():
    p, f = plan_host("h", facts(), settings()), facts()
    text = SYSCTL.file(p, f)
    assert "vm.dirty_ratio = 15\n" in text and text.startswith(
        f"# Managed by fleetforge. Edit host data, not this file. Applied with: sysctl -p {SYSCTL_CONF}"
    )
    sysctl = SYSCTL.nixos_options(p, f)["boot"]["kernel"]["sysctl"]
    assert sysctl["vm.dirty_ratio"] == 15 and sysctl["net.ipv4.tcp_rmem"] == "4096 87380 134217728"


def test_checks_live_and_drift_compare_the_same_items():
    p, f = plan_host("h", facts(), settings()), facts()
    checks = {c.item: c for c in SYSCTL.checks(p, nixos=False)}
    assert checks["sysctl vm.dirty_ratio"].path == "/proc/sys/vm/dirty_ratio"
    assert checks["sysctl net.ipv4.tcp_rmem"].parse("4096\t87380\t134217728\n") == "4096 87380 134217728"
    assert f"sysctl vm.dirty_ratio: {f.sysctl['vm.dirty_ratio']} -> 15" in SYSCTL.drift(p, f)
    converged = f.model_copy(update={"sysctl": {**f.sysctl, **p.sysctl_values()}})
    assert SYSCTL.drift(p, converged) == []


def test_restore_reapplies_a_restored_file_and_writes_recorded_values_back():
    pre = snap(files={SYSCTL_CONF: "a" * 64}, sysctl={"vm.swappiness": "60", "vm.dirty_ratio": "20"})
    post = snap(files={SYSCTL_CONF: "b" * 64}, sysctl={"vm.swappiness": "180", "vm.dirty_ratio": "20"})
    cmds, problems = SYSCTL.restore(pre, post, [SYSCTL_CONF])
    assert cmds[0] == str(SYSCTL_APPLY[0].get_raw_value())
    assert [shlex.split(c) for c in cmds[1:]] == [["sysctl", "-q", "-w", "vm.swappiness=60"]] and problems == []
    new_file, _ = SYSCTL.restore(snap(sysctl=pre.sysctl), post, [SYSCTL_CONF])  # was new: removed, not re-read
    assert not any(c.startswith("sysctl -p") for c in new_file)


def test_rows_include_skipped_keys():
    f = facts()
    p = plan_host(
        "h", f.model_copy(update={"sysctl": {k: v for k, v in f.sysctl.items() if k != "vm.dirty_ratio"}}), settings()
    )
    rows = {row[0]: row for row in SYSCTL.rows(p, lambda key: False)}
    assert rows["vm.dirty_ratio"][1] == "(skipped)" and rows["vm.vfs_cache_pressure"][1] == "50"


# ---------------------------------------------------------------- swap sysctls when zram is the only swap


@pytest.mark.parametrize(("r", "swappiness"), [(1, 100), (2, 133), (9, 180), (0.5, 67), (1e12, 200), (1e308, 200)])
def test_swappiness_follows_vm_rst_formula(r, swappiness):
    assert swappiness_for_ratio(r) == swappiness  # round(200*r/(1+r)), at most 200


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, True, "9"])
def test_swappiness_for_ratio_refuses_what_is_no_ratio(bad):
    with pytest.raises(ValueError, match="expected a swap I/O cost ratio"):
        swappiness_for_ratio(bad)


def test_zram_only_swappiness_states_r_and_the_formula_with_numbers():
    assert ZRAM_IO_COST_RATIO == 9
    (item,) = [s for s in plan_host("h", wm_facts(), settings()).sysctls if s.key == "vm.swappiness"]
    assert item.value.value == "180"
    assert item.value.reason == (
        "swap is zram only: swappiness = 200*r/(1+r) with r = 9 (swap I/O to compressed RAM about 9x cheaper"
        " than filesystem I/O on the disk) = 180"
    )
    assert item.value.source.startswith("fleetforge default: r = 9")
    assert "Documentation/admin-guide/sysctl/vm.rst (swappiness)" in item.value.source
    zram_swap_now = plan_host("h", wm_facts("qemu-nvme-efi-zram-swap"), settings())  # /dev/zram0 is no disk swap
    assert zram_swap_now.sysctl_values()["vm.swappiness"] == "180"


@pytest.mark.parametrize(("release", "swappiness"), [("5.7.19", "100"), ("4.19.0-27-amd64", "100"), ("5.8.0", "180")])
def test_kernel_before_5_8_caps_swappiness_at_100(release, swappiness):
    p = plan_host("h", wm_facts(kernel_release=release), settings())
    (item,) = [s for s in p.sysctls if s.key == "vm.swappiness"]
    assert item.value.value == swappiness
    assert ("kernel < 5.8 caps swappiness at 100" in item.value.reason) is (swappiness == "100")
    capped = plan_host("h", wm_facts(kernel_release=release), settings(swap_io_cost_ratio=0.5))
    assert capped.sysctl_values()["vm.swappiness"] == "67"  # below 100: no cap, whatever the kernel


def test_host_data_ratio_changes_value_and_reason_whatever_the_swap():
    for f in (wm_facts(), with_disk_swap(wm_facts())):
        (item,) = [s for s in plan_host("h", f, settings(swap_io_cost_ratio=4)).sysctls if s.key == "vm.swappiness"]
        assert item.value.value == "160"
        assert item.value.reason == "swap_io_cost_ratio r = 4 set in host data: swappiness = 200*r/(1+r) = 160"
        assert item.value.source == "host data; Documentation/admin-guide/sysctl/vm.rst (swappiness)"
    assert plan_host("h", wm_facts(), settings(swap_io_cost_ratio="1.5")).sysctl_values()["vm.swappiness"] == "120"


def test_swappiness_host_data_wins_over_the_ratio_and_the_zram_default():
    p = plan_host("h", wm_facts(), settings(swappiness=30, swap_io_cost_ratio=4))
    (item,) = [s for s in p.sysctls if s.key == "vm.swappiness"]
    assert (item.value.value, item.value.reason, item.value.source) == ("30", "set in host data", "host data")
    assert p.sysctl_values()["vm.watermark_scale_factor"] == "125"  # the other zram sysctls stay


def test_watermarks_only_when_zram_is_the_only_swap():
    values = plan_host("h", wm_facts(), settings()).sysctl_values()
    assert (values["vm.watermark_boost_factor"], values["vm.watermark_scale_factor"]) == ("0", "125")
    for f, data in ((with_disk_swap(wm_facts()), {}), (wm_facts(), {"zram": False})):
        assert not set(plan_host("h", f, settings(**data)).sysctl_values()) & {"vm.swappiness", *WATERMARKS}
    for f, data in ((with_disk_swap(no_wm_facts()), {}), (no_wm_facts(), {"zram": False})):  # not even skipped
        assert not {s.key for s in plan_host("h", f, settings(**data)).skipped_sysctls} & set(WATERMARKS)
    assert {s.key for s in plan_host("h", no_wm_facts(), settings()).skipped_sysctls} >= set(WATERMARKS)
    assert set(WATERMARKS) <= set(sysctl_keys(settings(zram=False)))  # the probe reads them anyway


def test_watermark_reasons_and_sources_and_the_file_and_nixos_options():
    p, f = plan_host("h", wm_facts(), settings()), wm_facts()
    by_key = {s.key: s.value for s in p.sysctls}
    assert by_key["vm.watermark_boost_factor"].source == (
        "Documentation/admin-guide/sysctl/vm.rst (watermark_boost_factor); ArchWiki Zram (Optimizing swap on zram)"
    )
    assert "compress/swap churn" in by_key["vm.watermark_boost_factor"].reason
    assert by_key["vm.watermark_scale_factor"].source == (
        "Documentation/admin-guide/sysctl/vm.rst (watermark_scale_factor); ArchWiki Zram"
    )
    assert "1.25 % of RAM above the min watermark" in by_key["vm.watermark_scale_factor"].reason
    text = SYSCTL.file(p, f)
    assert "\nvm.watermark_boost_factor = 0\n" in text and "\nvm.watermark_scale_factor = 125\n" in text
    nixos = SYSCTL.nixos_options(p, f)["boot"]["kernel"]["sysctl"]
    assert (nixos["vm.watermark_scale_factor"], nixos["vm.swappiness"]) == (125, 180)


def test_a_watermark_key_the_host_lacks_is_skipped_with_the_reason():
    f = no_wm_facts()  # Linux < 5.0 has no watermark_boost_factor
    f = f.model_copy(update={"sysctl": {**f.sysctl, "vm.watermark_scale_factor": "10"}})
    p = plan_host("h", f, settings())
    assert "vm.watermark_boost_factor" not in p.sysctl_values() and p.sysctl_values()["vm.watermark_scale_factor"]
    (skipped,) = [s for s in p.skipped_sysctls if s.key.startswith("vm.")]
    assert skipped.key == "vm.watermark_boost_factor"
    assert skipped.reason.startswith("/proc/sys/vm/watermark_boost_factor does not exist on this host")
    assert "# skipped vm.watermark_boost_factor: /proc/sys/vm/watermark_boost_factor" in SYSCTL.file(p, f)


@pytest.mark.parametrize("bad", [0, -1, "fast", True, 1001, "nan"])
def test_invalid_swap_io_cost_ratio_is_refused_naming_host_and_key(bad):
    with pytest.raises(SettingsError) as err:
        settings(swap_io_cost_ratio=bad)
    (line,) = str(err.value).splitlines()
    assert line.startswith("host h: swap_io_cost_ratio: expected")


def test_every_source_names_a_document_or_starts_with_fleetforge_default_and_why():
    document = r"(Documentation/[\w/.-]+\.rst( \([\w-]+\))?|ArchWiki \w+( \([\w ]+\))?|host data)"
    source = re.compile(rf"(fleetforge default: [^;]{{10,}}; )?{document}(; {document})*")
    plans = [settings(), settings(swap_io_cost_ratio=3), settings(sysctl_profiles=["network"], swappiness=5)]
    sources = {s.value.source for data in plans for s in plan_host("h", wm_facts(), data).sysctls}
    assert len(sources) >= 8
    for text in sources:
        assert source.fullmatch(text), text
