"""Run records of a small fleet over three days, shaped as the run store keeps them.

Hosts: ``vps-1``, ``vps-2``, ``vm-blk-1`` (the inventory) and ``HOSTILE_HOST`` (records only, and
every text of it is hostile markup). What happened, ``T0`` = 2026-05-04 09:00 UTC:

- run 1 probe (T0): hardware of every host; run 2 plan (T0+10 min): real plans (``vps-1`` with
  ``zram_size`` from host data);
- run 3 deploy (T0+1 h, alice): ``vps-1`` changed, ``vps-2`` ok;
- run 4 verify (T0+2 h): every host ok;
- run 5 rollout (T0+1 d, alice, exit 1): wave 0 ``vps-1`` (canary), wave 1 ``vps-2`` and
  ``vm-blk-1``; ``vm-blk-1``'s deploy fails and it is rolled back;
- run 6 verify (``DRIFT_AT`` = T0+2 d): ``vps-2`` fails ``vm.swappiness``, ``HOSTILE_HOST`` warns;
- run 7 deploy --dry (T0+2 d 1 h, bob); run 8 verify, unfinished (T0+3 d).
"""

from __future__ import annotations

import datetime as dt

from fleetforge.planner import plan_host
from fleetforge.runs.models import CheckRecord, DiskSummary, Hardware, HostRecord, Phase, RunRecord
from fleetforge.settings import HostSettings
from tests.conftest import facts_from

T0 = dt.datetime(2026, 5, 4, 9, 0, tzinfo=dt.UTC)
DRIFT_AT = T0 + dt.timedelta(days=2)
ROLLOUT_AT = T0 + dt.timedelta(days=1)
INVENTORY = ("vps-1", "vps-2", "vm-blk-1")
HOSTILE_HOST = "<script>alert(1)</script>"
HOSTILE = '"><img src=x onerror=alert(2)>'
HOSTILE_USER = "eve</td><script>alert(3)</script>"
GIB = 2**30


def at(minutes: float = 0, days: int = 0) -> dt.datetime:
    return T0 + dt.timedelta(days=days, minutes=minutes)


def hardware(cpus: int, mem_gib: float, disk: str, disk_gib: int, transport: str = "virtio-blk") -> Hardware:
    return Hardware(
        logical_cpus=cpus,
        mem_total_bytes=int(mem_gib * GIB),
        virtualization="kvm",
        firmware="bios",
        os="Debian GNU/Linux 12 (bookworm)",
        kernel="6.1.0-28-amd64",
        disks=[DiskSummary(name=disk, size_bytes=disk_gib * GIB, transport=transport, rotational=False)],
    )


def plan_of(host: str, **settings) -> dict:
    """A real plan of the virtio-blk test VM's facts, as JSON."""
    return plan_host(host, facts_from("qemu-virtio-blk-vda-bios"), HostSettings(**settings), measured=False).to_json()


def run(run_id: int, command: str, start: dt.datetime, minutes: float | None, hosts, **extra) -> RunRecord:
    end = None if minutes is None else start + dt.timedelta(minutes=minutes)
    code = extra.pop("exit_code", None if end is None else 0)
    return RunRecord(
        id=run_id,
        command=command,
        started_at=start,
        ended_at=end,
        user=extra.pop("user", "alice"),
        inventory="/srv/fleet/inventory.py",
        exit_code=code,
        hosts=hosts,
        **extra,
    )


SWAPPINESS_FAIL = CheckRecord(item="sysctl vm.swappiness", expected="180", actual="60", severity="fail")
OK_CHECKS = [
    CheckRecord(item="sysctl vm.swappiness", expected="180", actual="180", severity="ok"),
    CheckRecord(item="zram0 size", expected="512M", actual="512M", severity="ok"),
]


def _rollout() -> RunRecord:
    """Run 5: one wave of one canary, then a wave of two; ``vm-blk-1``'s deploy fails."""
    start = ROLLOUT_AT
    phases: list[Phase] = [Phase(name="connect", started_at=start, ended_at=at(0.5, 1))]
    plan = {  # host: [(phase, start minute, end minute, status)]
        "vps-1": [("snapshot", 1, 2, "ok"), ("deploy", 2, 5, "ok"), ("verify", 5, 6, "ok"), ("health", 6, 7, "ok")],
        "vps-2": [
            ("snapshot", 8, 9, "ok"),
            ("deploy", 9, 12, "ok"),
            ("verify", 12, 13, "ok"),
            ("health", 13, 14, "ok"),
        ],
        "vm-blk-1": [("snapshot", 8, 9, "ok"), ("deploy", 9, 11, "failed"), ("rollback", 11, 13, "ok")],
    }
    for host, steps in plan.items():
        wave = 0 if host == "vps-1" else 1
        for name, a, b, status in steps:
            phases.append(Phase(name=name, host=host, wave=wave, started_at=at(a, 1), ended_at=at(b, 1), status=status))
    hosts = [
        HostRecord(host="vps-1", status="ok", checks=OK_CHECKS),
        HostRecord(host="vps-2", status="ok", checks=OK_CHECKS),
        HostRecord(host="vm-blk-1", status="failed", error="deploy failed: operation 3 of 7"),
    ]
    return run(
        5, "rollout", start, 15, hosts, target="deploys/vps.py", exit_code=1, phases=phases, waves=["canary", "wave1"]
    )


def sample_runs() -> list[RunRecord]:
    """The eight runs of the module docstring, oldest first."""
    hw = {
        "vps-1": hardware(2, 3.8, "vda", 80),
        "vps-2": hardware(4, 7.7, "sda", 160, "virtio-scsi"),
        "vm-blk-1": hardware(1, 0.94, "vda", 10),
        HOSTILE_HOST: hardware(1, 1.9, "vda", 20).model_copy(update={"os": HOSTILE}),
    }
    probe = [HostRecord(host=h, status="ok", hardware=v, facts_digest="a" * 64) for h, v in hw.items()]
    plans = [HostRecord(host="vps-1", status="ok", plan=plan_of("vps-1", zram_size="512M"))]
    plans += [HostRecord(host=h, status="ok", plan=plan_of(h)) for h in ("vps-2", "vm-blk-1")]
    hostile_plan = plan_of("x")
    hostile_plan["zram"]["size_mib"] = {"value": 512, "reason": HOSTILE, "source": HOSTILE}
    plans.append(HostRecord(host=HOSTILE_HOST, status="ok", plan=hostile_plan))
    deploy = [
        HostRecord(host="vps-1", status="changed", changed=["/etc/sysctl.d/90-fleetforge.conf", "zram0 resized"]),
        HostRecord(host="vps-2", status="ok"),
    ]
    verify_ok = [HostRecord(host=h, status="ok", checks=OK_CHECKS) for h in (*INVENTORY, HOSTILE_HOST)]
    drift = [
        HostRecord(host="vps-1", status="ok", checks=OK_CHECKS),
        HostRecord(host="vps-2", status="failed", checks=[SWAPPINESS_FAIL, OK_CHECKS[1]]),
        HostRecord(host="vm-blk-1", status="ok", checks=OK_CHECKS, facts_digest="b" * 64),
        HostRecord(
            host=HOSTILE_HOST,
            status="warn",
            error=HOSTILE,
            checks=[CheckRecord(item=HOSTILE, expected=HOSTILE_HOST, actual=None, severity="warn")],
            warnings=[f"hardware does not match the OVH model {HOSTILE}"],
        ),
    ]
    dry = [HostRecord(host="vps-2", status="changed", changed=["would write /etc/sysctl.d/90-fleetforge.conf"])]
    return [
        run(1, "probe", T0, 1, probe, target="probe"),
        run(2, "plan", at(10), 1, plans),
        run(3, "deploy", at(60), 4, deploy, target="deploys/vps.py"),
        run(4, "verify", at(120), 1, verify_ok),
        _rollout(),
        run(6, "verify", DRIFT_AT, 1, drift, user=HOSTILE_USER, exit_code=1),
        run(7, "deploy", at(60, 2), 2, dry, user="bob", dry=True, target="deploys/vps.py"),
        run(8, "verify", at(0, 3), None, [HostRecord(host="vps-1", status="ok", checks=OK_CHECKS)]),
    ]
