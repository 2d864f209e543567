"""``fleetforge rollout`` end to end on three test VMs of its own (vm-roll-1, vm-roll-2, vm-roll-3,
blk flavour), in groups canary=[vm-roll-1], wave1=[vm-roll-2], wave2=[vm-roll-3]:

- a good deploy rolls out wave by wave and verifies every host;
- a deploy that breaks the canary (a failing health check; host data the verification rejects)
  stops after the canary, rolls it back to its recorded pre-deploy state (file hashes and live
  values compared over SSH, not only in the record), and leaves the other hosts byte-identical;
- a host made unreachable (its VM stopped) is reported and counted against
  ``max_fail_percentage``; the rollout stops or continues as the budget says.

The tests run in order on the same VMs; the VMs are removed at the end.
"""

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e import helpers

pytestmark = pytest.mark.vm

VMS = ("vm-roll-1", "vm-roll-2", "vm-roll-3")
GROUPS = {"canary": "vm-roll-1", "wave1": "vm-roll-2", "wave2": "vm-roll-3"}
MANAGED = "/etc/udev/rules.d/60-fleetforge-io.rules /etc/sysctl.d/60-fleetforge.conf /etc/systemd/zram-generator.conf /etc/nix/nix.conf"
# Everything the tuning touches: managed files (hashes, backups), sysctls, disk queues, zram swap.
STATE = (
    f"sha256sum {MANAGED} 2>/dev/null; ls -a /etc/udev/rules.d /etc/sysctl.d /etc/systemd /etc/nix; "
    "for k in vm/swappiness vm/watermark_scale_factor vm/watermark_boost_factor vm/dirty_ratio "
    "vm/dirty_background_ratio vm/page-cluster vm/vfs_cache_pressure "
    "net/core/rmem_max net/core/wmem_max net/ipv4/tcp_rmem net/ipv4/tcp_wmem net/ipv4/tcp_fastopen; "
    "do echo $k=$(cat /proc/sys/$k); done; "
    "cat /sys/block/vd?/queue/scheduler /sys/block/vd?/queue/read_ahead_kb; ls /sys/block; "
    "swapon --show=NAME,PRIORITY --noheadings; true"
)


def run(*argv: str) -> subprocess.CompletedProcess:
    return helpers.run(*argv, timeout=900)


@pytest.fixture(scope="module")
def fleet(testbed, tmp_path_factory):
    testbed.up([f"{name}:blk" for name in VMS])
    for name in VMS:
        testbed.reset(name)
    data = {n: d for n, d in testbed.inventory_hosts() if n in VMS}
    tmp = tmp_path_factory.mktemp("rollout")

    def inventory(**extra: dict) -> str:
        """An inventory with the three groups; ``extra``: more host data per group name."""
        path = tmp / "inventory.py"
        lines = [f"{g} = [({h!r}, {dict(data[h], **extra.get(g, {}))!r})]" for g, h in GROUPS.items()]
        path.write_text("\n".join(lines) + "\n")
        return str(path)

    yield testbed, inventory, tmp
    testbed.down(list(VMS))


def state(testbed, name: str) -> str:
    return testbed.ssh(name, STATE, check=True).stdout


def rollout(tmp: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    record = tmp / "record.json"
    record.unlink(missing_ok=True)
    out = run("fleetforge", "rollout", *args, "--record", str(record))
    assert record.exists(), out.stdout[-3000:] + out.stderr[-3000:]
    return out, json.loads(record.read_text())


def test_good_deploy_rolls_out_wave_by_wave_and_verifies_every_host(fleet):
    testbed, inventory, tmp = fleet
    out, record = rollout(tmp, inventory(), "deploys/vps.py")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert record["outcome"] == "completed" and record["stopped_at_wave"] is None
    assert [(w["name"], w["hosts"], w["status"]) for w in record["waves"]] == [
        ("canary", ["vm-roll-1"], "passed"),
        ("wave1", ["vm-roll-2"], "passed"),
        ("wave2", ["vm-roll-3"], "passed"),
    ]
    for wave in record["waves"]:
        assert set(wave["timings_s"]) == {"snapshot", "deploy", "verify", "health"}
        (host,) = wave["host_results"].values()
        assert host["status"] == "ok" and host["reasons"] == []
        # live values plus the SHA-256 of every file the deploy wrote and zram-generator installed
        assert host["verification"]["passed"] == host["verification"]["total"] >= 33
        assert (
            len(host["changed_files"]) == 4
            and "fleetforge: tune VPS | Tuning files and follow-ups" in host["operations_changed"]
        )
    # wave by wave: each wave's deploy starts after the previous wave was verified
    progress = out.stderr
    order = [
        "wave 1 canary",
        f"vm-roll-1: verified, {record['waves'][0]['host_results']['vm-roll-1']['verification']['total']} checks passed",
        "wave 2 wave1",
        "deploying to vm-roll-2",
        "vm-roll-2: verified",
        "wave 3 wave2",
        "deploying to vm-roll-3",
        "vm-roll-3: verified",
        "rollout completed",
    ]
    positions = [progress.index(text) for text in order]
    assert positions == sorted(positions), progress
    assert "wave 3 wave2: gate passed (0/1 failed" in out.stdout


def test_failing_health_check_stops_after_canary_and_restores_its_backups(fleet):
    testbed, inventory, tmp = fleet
    before = {name: state(testbed, name) for name in VMS}
    # the new swappiness verifies, but the host's health check rejects it
    canary = {
        "swappiness": 100,
        "health_checks": [{"command": "test $(cat /proc/sys/vm/swappiness) -ne 100", "retries": 1, "delay_s": 1}],
    }
    out, record = rollout(tmp, inventory(canary=canary), "deploys/vps.py")
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    assert record["outcome"] == "stopped" and record["stopped_at_wave"] == "canary"
    assert [w["status"] for w in record["waves"]] == ["failed", "not-run", "not-run"]
    host = record["waves"][0]["host_results"]["vm-roll-1"]
    assert host["verification"]["passed"] == host["verification"]["total"]
    assert host["reasons"] == [
        "health check command 'test $(cat /proc/sys/vm/swappiness) -ne 100' failed after 2 attempt(s): exit 1"
    ]
    assert host["changed_files"] == ["/etc/sysctl.d/60-fleetforge.conf"]
    (backup,) = host["backups_made"]
    assert backup.startswith("/etc/sysctl.d/60-fleetforge.conf.fleetforge-")
    rollback = host["rollback"]
    assert rollback["rolled_back"] and rollback["verified"] and rollback["differences"] == []
    assert f"mv -f {backup} /etc/sysctl.d/60-fleetforge.conf" in rollback["commands"]
    assert "sysctl -p /etc/sysctl.d/60-fleetforge.conf" in rollback["commands"]
    assert host["status"] == "rolled-back"
    assert {name: state(testbed, name) for name in VMS} == before
    assert "vm-roll-1: rolled back, state equals the pre-deploy record" in out.stderr
    assert "wave 2 wave1: not run; untouched: vm-roll-2" in out.stdout


def test_verification_failure_on_a_fresh_canary_rolls_it_back_to_the_recorded_state(fleet):
    testbed, inventory, tmp = fleet
    testbed.reset("vm-roll-1")  # a host fleetforge never touched: every file is new
    before = {name: state(testbed, name) for name in VMS}
    # the kernel keeps read-ahead in whole pages: 4097 KiB reads back as 4096
    out, record = rollout(tmp, inventory(canary={"disks": {"vda": {"read_ahead_kb": 4097}}}), "deploys/vps.py")
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    assert [w["status"] for w in record["waves"]] == ["failed", "not-run", "not-run"]
    host = record["waves"][0]["host_results"]["vm-roll-1"]
    assert host["reasons"] == ["verification failed: FAIL vm-roll-1: vda read_ahead_kb: expected '4097', got '4096'"]
    assert len(host["changed_files"]) == 4 and host["backups_made"] == []
    rollback = host["rollback"]
    assert rollback["verified"] and rollback["differences"] == [] and rollback["errors"] == []
    assert "rm -f /etc/sysctl.d/60-fleetforge.conf" in rollback["commands"]
    # the recorded pre-deploy state is what the host shows again, over SSH
    pre = host["pre"]
    assert pre["files"]["/etc/sysctl.d/60-fleetforge.conf"] is None and pre["zram_device"] is False
    live = testbed.ssh("vm-roll-1", "cat /proc/sys/vm/swappiness /sys/block/vda/queue/read_ahead_kb", check=True)
    assert live.stdout.split() == [pre["sysctl"]["vm.swappiness"], str(pre["disks"]["vda"]["read_ahead_kb"])]
    assert {name: state(testbed, name) for name in VMS} == before


def test_unreachable_host_is_counted_against_the_budget(fleet):
    testbed, inventory, tmp = fleet
    testbed.stop("vm-roll-3")
    untouched = state(testbed, "vm-roll-2")
    # default budget 0: the unreachable host fails wave 2, the rollout stops, wave1 is not run
    out, record = rollout(tmp, inventory(), "deploys/vps.py", "--waves", "canary,wave2,wave1")
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    assert [(w["name"], w["status"]) for w in record["waves"]] == [
        ("canary", "passed"),
        ("wave2", "failed"),
        ("wave1", "not-run"),
    ]
    wave2 = record["waves"][1]
    assert wave2["gate"] == {
        "failed": 1,
        "hosts": 1,
        "failed_percentage": 100.0,
        "max_fail_percentage": 0.0,
        "allowed_failures": 0,
        "passed": False,
    }
    (reason,) = wave2["host_results"]["vm-roll-3"]["reasons"]
    assert reason.startswith("unreachable before the deploy:") and "Connection refused" in reason, reason
    assert wave2["deploy"] == {"ran": False}
    assert "vm-roll-3: FAILED: unreachable before the deploy" in out.stderr
    assert state(testbed, "vm-roll-2") == untouched

    # a budget of 100 %: the same failure is within it, the rollout continues to wave1 (and the
    # hosts of no named group, the last wave "rest": vm-roll-1, already deployed)
    out, record = rollout(tmp, inventory(), "deploys/vps.py", "--waves", "wave2,wave1", "--max-fail-percentage", "100")
    assert out.returncode == 2, out.stdout[-3000:] + out.stderr[-3000:]
    assert record["outcome"] == "completed-with-failures"
    assert [(w["name"], w["hosts"], w["status"]) for w in record["waves"]] == [
        ("wave2", ["vm-roll-3"], "passed"),
        ("wave1", ["vm-roll-2"], "passed"),
        ("rest", ["vm-roll-1"], "passed"),
    ]
    assert record["waves"][0]["gate"]["failed"] == 1 and record["waves"][0]["gate"]["allowed_failures"] == 1
    assert record["waves"][1]["host_results"]["vm-roll-2"]["status"] == "ok"
    assert "vm-roll-3: failed" in out.stdout and "unreachable before the deploy" in out.stdout
