"""verify's pure parts: which checks a plan yields, how live values are judged, exit codes."""

from fleetforge.planner import plan_host
from fleetforge.settings import HostSettings, settings_from_data
from fleetforge.verify import CheckResult, checks_for, evaluate, exit_code
from tests.conftest import facts_from


def plan(name="qemu-virtio-scsi-sda-bios", **data):
    return plan_host("h", facts_from(name), settings_from_data("h", data) if data else HostSettings())


def test_checks_cover_every_planned_value():
    p = plan()
    items = {c.item: c for c in checks_for(p)}
    assert items["sda scheduler"].path == "/sys/block/sda/queue/scheduler"
    assert items["sysctl net.ipv4.tcp_rmem"].expected == "4096 87380 134217728"
    assert items["zram0 disksize"].expected == str(p.zram.size_mib.value * 1048576)
    assert {f"nix {k}" for k in p.nix.settings} <= set(items)
    assert len(items) == 2 * len(p.disks) + len(p.sysctls) + 3 + 1 + len(p.nix.settings)
    off = {c.item for c in checks_for(plan(zram=False))}
    assert "zram0 swap" in off and "zram0 disksize" not in off


def test_evaluate_parses_bracketed_and_whitespace_values():
    checks = {c.item: c for c in checks_for(plan())}
    live = {
        "/sys/block/sda/queue/scheduler": "[none] mq-deadline\n",
        "/proc/sys/net/ipv4/tcp_rmem": "4096\t87380\t134217728\n",
        "/proc/swaps": "Filename Type Size Used Priority\n/dev/zram0 partition 1 0 100\n",
    }
    assert evaluate("h", checks["sda scheduler"], live).severity == "ok"
    assert evaluate("h", checks["sysctl net.ipv4.tcp_rmem"], live).severity == "ok"
    assert evaluate("h", checks["zram0 swap priority"], live).severity == "ok"
    live["/sys/block/sda/queue/scheduler"] = "none [mq-deadline]"
    bad = evaluate("h", checks["sda scheduler"], live)
    assert bad.severity == "fail" and bad.line() == "FAIL h: sda scheduler: expected 'none', got 'mq-deadline'"
    assert evaluate("h", checks["sysctl vm.swappiness"], live).severity == "fail"  # unreadable = failure
    assert evaluate("h", checks["nix fsync-metadata"], live).severity == "warn"  # unknown to this Nix = warning


def test_exit_codes_follow_seed_001():
    ok = CheckResult("h", "i", "1", "1", "ok")
    warn = CheckResult("h", "i", "1", None, "warn")
    fail = CheckResult("h", "i", "1", "2", "fail")
    assert [exit_code([ok]), exit_code([ok, warn]), exit_code([warn, fail]), exit_code([])] == [0, 2, 1, 0]
