"""The sysctl component in one place: rule, file, NixOS options, checks, drift, restore, rows."""

import shlex

from fleetforge.components.sysctl import SYSCTL_APPLY, Sysctl, sysctl_keys
from fleetforge.paths import SYSCTL_CONF
from fleetforge.planner import plan_host
from tests.components.helpers import facts, settings, snap

SYSCTL = Sysctl()


def test_profiles_and_swap_sysctls_follow_the_swap_the_host_will_have():
    values = plan_host("h", facts(), settings()).sysctl_values()
    assert values["vm.dirty_ratio"] == "15" and values["net.core.rmem_max"] == "134217728"
    assert (values["vm.swappiness"], values["vm.page-cluster"]) == ("133", "0")  # zram only, Linux >= 5.8
    no_zram = plan_host("h", facts(), settings(zram=False)).sysctl_values()
    assert "vm.swappiness" not in no_zram  # the kernel's 60 stays


def test_host_data_wins_and_a_key_the_host_lacks_is_skipped_with_the_reason():
    f = facts()
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
    post = snap(files={SYSCTL_CONF: "b" * 64}, sysctl={"vm.swappiness": "133", "vm.dirty_ratio": "20"})
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
