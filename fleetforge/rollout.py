"""Staged rollout: ``fleetforge rollout INVENTORY DEPLOY``.

Waves come from inventory groups (``canary``, then ``wave1``, ``wave2``, ... or the groups named
with ``--waves``) or from a size schedule like Ansible's ``serial`` (``--serial 1,25%,100%``).
Host order is stable: within a wave, and for the serial schedule over the whole inventory,
hosts are sorted by name in natural order (``vps-2`` before ``vps-10``).

Per wave:

1. record each host's pre-deploy state (``fleetforge.hoststate.snapshot``: managed file hashes,
   backups, the live values the plan checks); a host that cannot be reached fails here and is
   not deployed;
2. run the deploy on exactly the wave's hosts: pyinfra's CLI as a subprocess
   (``fleetforge.rollout_wave``: ``pyinfra -y --json --fail-percent 100 INVENTORY DEPLOY`` with
   the wave's hosts as its limit by exact name, never a ``--limit`` pattern); its JSON results,
   or its event log when it stops without them, name the failed hosts and what changed;
3. verify each host (``fleetforge.verify``'s checks from the plan) and run its health checks
   (``health_checks`` in host data, ``fleetforge.health``);
4. gate: the wave passes when ``failed * 100 <= max_fail_percentage * hosts`` (Ansible's
   ``max_fail_percentage``: the share of failed hosts may not exceed it; default 0);
5. roll back: after a failed gate every host of the wave, after a passed gate the failed hosts
   only (``fleetforge.hoststate.rollback_commands``), and check that each rolled-back host is
   back at its recorded pre-deploy state. A failed gate stops the rollout; later waves are not
   touched. A host that cannot be reached after its deploy cannot be rolled back: it is
   recorded as ``not-rolled-back``, named in the summary, and the exit code is 1.

Besides its JSON record, each rollout is one run in the run store (``fleetforge.runs``): the steps
above are timed per host and wave by ``fleetforge.runs.rollout_record.RolloutRecorder``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from fleetforge.errors import FleetforgeError
from fleetforge.rollout_wave import UNKNOWN, DeployResult, parse_deploy, run_deploy
from fleetforge.runs.rollout_record import RolloutRecorder
from fleetforge.runs.rollout_record import add_arguments as add_run_store_arguments

__all__ = ["DeployResult", "parse_deploy", "run_deploy"]  # the wave's deploy: fleetforge.rollout_wave

EXIT_OK, EXIT_STOPPED, EXIT_FAILURES_WITHIN_BUDGET = 0, 1, 2
SSH_ATTEMPTS, SSH_RETRY_DELAY_S = 2, 3.0
RECORD_VERSION = 1
_WAVE_GROUP = re.compile(r"^wave(\d+)$")


class RolloutError(FleetforgeError):
    """A rollout that cannot start (bad schedule, unknown group, no hosts)."""


@dataclass(frozen=True)
class Wave:
    name: str
    hosts: tuple[str, ...]


# ---------------------------------------------------------------- waves and budget (pure)
def natural_key(name: str) -> tuple:
    """Sort key: digit runs compare as numbers (``vps-2`` < ``vps-10``)."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part)


def sort_hosts(names: Iterable[str]) -> list[str]:
    return sorted(names, key=natural_key)


def group_waves(hosts: dict[str, Sequence[str]], groups: Sequence[str] | None = None) -> list[Wave]:
    """Waves from inventory groups. ``hosts``: ``{host name: its groups}``.

    ``groups``: the wave groups in order; ``None`` means ``canary`` (if it has hosts) then every
    ``waveN`` group by N. A host in several wave groups goes in the first. Hosts in none of them
    form a last wave named ``rest``. Raises ``RolloutError`` for a named group without hosts or
    when no wave group exists.
    """
    present = {g for gs in hosts.values() for g in gs}
    if groups is None:
        numbered = sorted((int(m.group(1)), g) for g in present if (m := _WAVE_GROUP.match(g)))
        groups = (["canary"] if "canary" in present else []) + [g for _, g in numbered]
        if not groups:
            raise RolloutError("the inventory has no canary or waveN group: name wave groups with --waves, or --serial")
    else:
        missing = [g for g in groups if g not in present]
        if missing:
            known = ", ".join(sorted(present))
            raise RolloutError(f"no hosts in group(s) {', '.join(missing)} (inventory groups: {known})")
        if len(set(groups)) != len(groups):
            raise RolloutError(f"a group is named twice in --waves: {', '.join(groups)}")
    placed: set[str] = set()
    waves = []
    for group in groups:
        members = [h for h in sort_hosts(hosts) if group in hosts[h] and h not in placed]
        placed.update(members)
        if members:
            waves.append(Wave(group, tuple(members)))
    rest = [h for h in sort_hosts(hosts) if h not in placed]
    if rest:
        waves.append(Wave("rest", tuple(rest)))
    return waves


def parse_serial(text: str) -> list[int | str]:
    """``"1,25%,100%"`` -> ``[1, "25%", "100%"]``; raises ``RolloutError`` for anything else."""
    items: list[int | str] = []
    for raw in text.split(","):
        item = raw.strip()
        if re.fullmatch(r"\d+", item) and int(item) >= 1:
            items.append(int(item))
        elif re.fullmatch(r"\d+(\.\d+)?%", item) and 0 < float(item[:-1]) <= 100:
            items.append(item)
        else:
            raise RolloutError(f"--serial: expected a host count >= 1 or a percentage in (0, 100], got {item!r}")
    return items


def batch_size(item: int | str, total: int) -> int:
    """Hosts in one batch: a count, or a percentage of all hosts rounded down (at least 1)."""
    if isinstance(item, int):
        return item
    return max(1, int(total * float(item[:-1]) / 100))


def serial_waves(names: Iterable[str], schedule: Sequence[int | str]) -> list[Wave]:
    """Batches like Ansible's ``serial``: sizes in order, the last size repeating until every
    host is in a batch. Waves are named ``batch1``, ``batch2``, ..."""
    ordered = sort_hosts(names)
    waves, start, i = [], 0, 0
    while start < len(ordered):
        size = batch_size(schedule[min(i, len(schedule) - 1)], len(ordered))
        waves.append(Wave(f"batch{i + 1}", tuple(ordered[start : start + size])))
        start += size
        i += 1
    return waves


def allowed_failures(hosts: int, max_fail_percentage: float) -> int:
    """How many of ``hosts`` may fail within the budget (rounded down)."""
    return int(hosts * max_fail_percentage // 100)


def gate_passes(failed: int, hosts: int, max_fail_percentage: float) -> bool:
    """The wave passes when the failed share does not exceed ``max_fail_percentage``."""
    return failed * 100 <= max_fail_percentage * hosts


# ---------------------------------------------------------------- the rollout
@dataclass
class Target:
    """A host to roll out to: name, merged pyinfra data, validated settings."""

    name: str
    data: dict[str, Any]
    settings: Any


Progress = Callable[[str], None]


def _parallel(func, items: list) -> list:
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(items))) as pool:
        return list(pool.map(func, items))


def _err(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"[:300]


class Rollout:
    """One rollout run; ``run()`` returns the record (``dict``, JSON-ready)."""

    def __init__(
        self,
        inventory: str,
        deploy: str,
        waves: list[Wave],
        targets: dict[str, Target],
        max_fail_percentage: float = 0,
        schedule: dict[str, Any] | None = None,
        verify: bool = True,
        deploy_timeout: float = 1800,
        progress: Progress | None = None,
        recorder: RolloutRecorder | None = None,
    ):
        self.inventory, self.deploy, self.waves, self.targets = inventory, deploy, waves, targets
        self.max_fail = max_fail_percentage
        self.schedule = schedule or {}
        self.verify = verify
        self.deploy_timeout = deploy_timeout
        self.progress = progress or (lambda _msg: None)
        self.rec = recorder or RolloutRecorder(None)  # the run store's record (fleetforge.runs)
        self.t0 = time.monotonic()

    def say(self, msg: str) -> None:
        self.progress(f"[{time.monotonic() - self.t0:7.1f}s] {msg}")

    # one host's phases ------------------------------------------------
    def _pre(self, name: str) -> tuple[str, Any, float]:
        """Pre-deploy snapshot; SSH is tried ``SSH_ATTEMPTS`` times before the host counts as
        unreachable (one dropped connection is not an outage)."""
        from fleetforge.hoststate import HostUnreachable, snapshot

        t = time.monotonic()
        target = self.targets[name]
        for attempt in range(1, SSH_ATTEMPTS + 1):
            try:
                snap = snapshot(name, target.data, target.settings)
            except HostUnreachable as exc:
                if attempt == SSH_ATTEMPTS:
                    return name, f"{exc} ({SSH_ATTEMPTS} attempts)", time.monotonic() - t
                time.sleep(SSH_RETRY_DELAY_S)
            except Exception as exc:  # noqa: BLE001 - any failure to probe is this host's failure
                return name, _err(exc), time.monotonic() - t
            else:
                return name, snap, time.monotonic() - t
        raise AssertionError("unreachable")

    def _post(self, name: str) -> tuple[str, Any, list, float]:
        from fleetforge.hoststate import inspect

        t = time.monotonic()
        target = self.targets[name]
        try:
            snap, results = inspect(name, target.data, target.settings)
        except Exception as exc:  # noqa: BLE001
            return name, _err(exc), [], time.monotonic() - t
        return name, snap, results, time.monotonic() - t

    def _health(self, name: str) -> tuple[str, list, float]:
        from fleetforge.health import run_health_checks

        t = time.monotonic()
        target = self.targets[name]
        return name, run_health_checks(name, target.data, target.settings.health_checks), time.monotonic() - t

    def _rollback(self, name: str, pre, post) -> dict[str, Any]:
        from fleetforge.hoststate import diff, run_rollback, snapshot

        t = time.monotonic()
        target = self.targets[name]
        try:
            done = run_rollback(name, target.data, pre, post)
            after = snapshot(name, target.data, target.settings)
            differences = diff(pre, after)
        except Exception as exc:  # noqa: BLE001
            return {"rolled_back": False, "error": _err(exc), "verified": False, "seconds": time.monotonic() - t}
        return {
            **done,
            "rolled_back": True,
            "verified": not differences and not done["problems"],
            "differences": differences,
            "seconds": round(time.monotonic() - t, 2),
        }

    # one wave ---------------------------------------------------------------
    def run_wave(self, index: int, wave: Wave) -> dict[str, Any]:
        from fleetforge.hoststate import changed_files, diff, new_backups

        rec_hosts: dict[str, dict[str, Any]] = {h: {"status": "ok", "reasons": [], "timings_s": {}} for h in wave.hosts}
        timings: dict[str, float] = {}
        n = len(wave.hosts)
        self.say(f"wave {index} {wave.name}: {n} host(s): {', '.join(wave.hosts)}")

        def fail(host: str, reason: str) -> None:
            rec_hosts[host]["status"] = "failed"
            rec_hosts[host]["reasons"].append(reason)
            self.say(f"  {host}: FAILED: {reason}")

        t = time.monotonic()
        pre: dict[str, Any] = {}
        for name, snap, secs in _parallel(self.rec.snapshot(index, self._pre), list(wave.hosts)):
            rec_hosts[name]["timings_s"]["snapshot"] = round(secs, 2)
            if isinstance(snap, str):
                fail(name, f"unreachable before the deploy: {snap}")
            else:
                pre[name] = snap
                rec_hosts[name]["pre"] = snap.to_json()
        timings["snapshot"] = round(time.monotonic() - t, 2)
        self.say(f"  pre-deploy state recorded for {len(pre)}/{n} host(s) ({timings['snapshot']:.1f} s)")

        reachable = [h for h in wave.hosts if h in pre]
        deploy_rec: dict[str, Any] = {"ran": False}
        if reachable:
            self.say(f"  deploying to {', '.join(reachable)} (pyinfra)")
            facts = {h: pre[h].facts for h in reachable if pre[h].facts is not None}
            deploy = partial(run_deploy, self.inventory, self.deploy, reachable, self.deploy_timeout, facts)
            result = self.rec.deploy(index, reachable, deploy)
            timings["deploy"] = result.seconds
            deploy_rec = {
                "ran": True,
                "returncode": result.returncode,
                "failed_hosts": result.failed,
                "results_from": result.source,
                "log_tail": result.log_tail,
                "seconds": result.seconds,
            }
            for h in reachable:
                rec_hosts[h]["operations_changed"] = result.changed_ops.get(h, UNKNOWN)
                if result.unfinished_ops.get(h):
                    rec_hosts[h]["operations_unfinished"] = result.unfinished_ops[h]
                if h in result.failed:
                    fail(h, result.failed[h])
            self.say(f"  deploy finished in {result.seconds:.1f} s, {len(result.failed)} host(s) failed")

            t = time.monotonic()
            post: dict[str, Any] = {}
            for name, snap, results, secs in _parallel(self.rec.verify(index, self._post), reachable):
                rec_hosts[name]["timings_s"]["verify"] = round(secs, 2)
                if isinstance(snap, str):
                    fail(name, f"unreachable after the deploy: {snap}")
                    continue
                post[name] = snap
                rec_hosts[name]["changed_files"] = changed_files(pre[name], snap)
                rec_hosts[name]["backups_made"] = new_backups(pre[name], snap)
                rec_hosts[name]["changed"] = diff(pre[name], snap)
                bad = [r for r in results if r.severity == "fail"]
                rec_hosts[name]["verification"] = {
                    "ran": self.verify,
                    "passed": sum(r.severity == "ok" for r in results),
                    "total": len(results),
                    "failures": [r.line() for r in bad],
                    "warnings": [r.line() for r in results if r.severity == "warn"],
                }
                if self.verify and name not in result.failed:
                    if bad:
                        fail(name, f"verification failed: {'; '.join(r.line() for r in bad[:3])}")
                    else:
                        self.say(f"  {name}: verified, {len(results)} checks passed ({secs:.1f} s)")
            timings["verify"] = round(time.monotonic() - t, 2)

            t = time.monotonic()
            healthy = [h for h in reachable if h in post and h not in result.failed]
            for name, results, secs in _parallel(self.rec.health(index, self._health), healthy):
                rec_hosts[name]["health"] = [r.to_json() for r in results]
                rec_hosts[name]["timings_s"]["health"] = round(secs, 2)
                for r in results:
                    if not r.ok:
                        fail(name, f"health check {r.check} failed after {r.attempts} attempt(s): {r.reason}")
                if results and all(r.ok for r in results):
                    self.say(f"  {name}: {len(results)} health check(s) passed ({secs:.1f} s)")
            timings["health"] = round(time.monotonic() - t, 2)
        else:
            post = {}

        failed = [h for h in wave.hosts if rec_hosts[h]["status"] == "failed"]
        passes = gate_passes(len(failed), n, self.max_fail)
        gate = {
            "failed": len(failed),
            "hosts": n,
            "failed_percentage": round(100 * len(failed) / n, 1) if n else 0.0,
            "max_fail_percentage": self.max_fail,
            "allowed_failures": allowed_failures(n, self.max_fail),
            "passed": passes,
        }
        verdict = "passed" if passes else "FAILED"
        self.say(
            f"  gate {verdict}: {len(failed)}/{n} failed ({gate['failed_percentage']:g}%), "
            f"max_fail_percentage {self.max_fail:g} allows {gate['allowed_failures']}"
        )

        t = time.monotonic()
        to_roll = [h for h in (wave.hosts if not passes else failed) if h in pre]
        for h in to_roll:
            if h not in post:
                rec_hosts[h]["rollback"] = {"rolled_back": False, "error": "host unreachable after the deploy"}
                rec_hosts[h]["status"] = "not-rolled-back"
                self.say(f"  {h}: NOT ROLLED BACK: unreachable after the deploy, its state is unknown")
                continue
            if not diff(pre[h], post[h]):
                rec_hosts[h]["rollback"] = {"rolled_back": False, "needed": False, "verified": True}
                self.say(f"  {h}: nothing changed, nothing to roll back")
                continue
            self.say(f"  {h}: rolling back {len(rec_hosts[h].get('changed_files', []))} file(s) and live state")
            rb = self.rec.rollback(index, h, self._rollback, pre[h], post[h])
            rec_hosts[h]["rollback"] = rb
            rec_hosts[h]["status"] = "rolled-back" if rb.get("verified") else "rollback-failed"
            if rb.get("verified"):
                self.say(f"  {h}: rolled back, state equals the pre-deploy record ({rb['seconds']:.1f} s)")
            else:
                detail = rb.get("error") or "; ".join((rb.get("differences") or [])[:5] + rb.get("problems", []))
                self.say(f"  {h}: ROLLBACK NOT VERIFIED: {detail}")
        if to_roll:
            timings["rollback"] = round(time.monotonic() - t, 2)
        return {
            "name": wave.name,
            "index": index,
            "hosts": list(wave.hosts),
            "status": "passed" if passes else "failed",
            "gate": gate,
            "deploy": deploy_rec,
            "timings_s": timings,
            "host_results": rec_hosts,
        }

    def run(self) -> dict[str, Any]:
        started = datetime.now(UTC)
        waves_rec: list[dict[str, Any]] = []
        stopped_at = None
        for i, wave in enumerate(self.waves, 1):
            t = time.monotonic()
            rec = self.run_wave(i, wave)
            rec["seconds"] = round(time.monotonic() - t, 2)
            waves_rec.append(rec)
            if rec["status"] == "failed":
                stopped_at = wave.name
                break
        for wave in self.waves[len(waves_rec) :]:
            waves_rec.append(
                {"name": wave.name, "index": len(waves_rec) + 1, "hosts": list(wave.hosts), "status": "not-run"}
            )
            self.say(f"wave {len(waves_rec)} {wave.name}: not run (rollout stopped), hosts untouched")
        any_failed = any(hr["status"] != "ok" for w in waves_rec for hr in w.get("host_results", {}).values())
        # a rollback that failed, could not run (host unreachable) or did not reach the record
        rollback_bad = any(
            "rollback" in hr and not hr["rollback"].get("verified")
            for w in waves_rec
            for hr in w.get("host_results", {}).values()
        )
        if stopped_at or rollback_bad:
            outcome, code = ("stopped" if stopped_at else "completed-with-failures"), EXIT_STOPPED
        elif any_failed:
            outcome, code = "completed-with-failures", EXIT_FAILURES_WITHIN_BUDGET
        else:
            outcome, code = "completed", EXIT_OK
        finished = datetime.now(UTC)
        self.say(f"rollout {outcome}" + (f" at wave {stopped_at}" if stopped_at else ""))
        return {
            "version": RECORD_VERSION,
            "inventory": self.inventory,
            "deploy": self.deploy,
            "schedule": self.schedule,
            "max_fail_percentage": self.max_fail,
            "verify": self.verify,
            "started_at": started.isoformat(timespec="seconds"),
            "finished_at": finished.isoformat(timespec="seconds"),
            "seconds": round((finished - started).total_seconds(), 2),
            "outcome": outcome,
            "exit_code": code,
            "stopped_at_wave": stopped_at,
            "waves": waves_rec,
        }


# ---------------------------------------------------------------- summary
def _host_line(name: str, h: dict[str, Any]) -> str:
    v = h.get("verification")
    parts = [h["status"]]
    if v and v.get("ran"):
        parts.append(f"verify {v['passed']}/{v['total']}")
    if h.get("health"):
        parts.append(f"health {sum(x['ok'] for x in h['health'])}/{len(h['health'])}")
    if h.get("changed_files") is not None:
        parts.append(f"{len(h['changed_files'])} file(s) changed")
    ops = h.get("operations_changed")
    if ops == UNKNOWN:
        parts.append("operations changed: unknown")
    elif h.get("operations_unfinished"):
        unfinished = ", ".join(h["operations_unfinished"])
        parts.append(f"{len(ops or [])} operation(s) changed, unfinished (may have changed it): {unfinished}")
    rb = h.get("rollback")
    if rb and rb.get("rolled_back"):
        parts.append("rollback verified" if rb.get("verified") else "ROLLBACK NOT VERIFIED")
    elif rb and rb.get("needed") is not False:
        parts.append(f"ROLLBACK NOT RUN: {rb.get('error', 'unknown reason')}")
    return f"  {name}: {', '.join(parts)}"


def not_restored(record: dict[str, Any]) -> dict[str, str]:
    """Hosts a rollback should have returned to their pre-deploy state but did not:
    ``{host: "rollback not run: <why>" | "rollback not verified"}``."""
    hosts = {}
    for w in record["waves"]:
        for name, h in w.get("host_results", {}).items():
            rb = h.get("rollback")
            if not rb or rb.get("verified"):
                continue
            hosts[name] = "rollback not verified" if rb.get("rolled_back") else f"rollback not run: {rb.get('error')}"
    return hosts


def summary_lines(record: dict[str, Any]) -> list[str]:
    """The human summary of a record: one line per wave and per host, and a last line naming
    every host left neither deployed nor back at its pre-deploy state (rollback not run or not
    verified)."""
    lines = [
        f"rollout {record['outcome']} in {record['seconds']:.0f} s "
        f"(max_fail_percentage {record['max_fail_percentage']:g}, exit {record['exit_code']})"
    ]
    for w in record["waves"]:
        if w["status"] == "not-run":
            lines.append(f"wave {w['index']} {w['name']}: not run; untouched: {', '.join(w['hosts'])}")
            continue
        g = w["gate"]
        lines.append(
            f"wave {w['index']} {w['name']}: gate {'passed' if g['passed'] else 'FAILED'} "
            f"({g['failed']}/{g['hosts']} failed, {w['seconds']:.0f} s)"
        )
        for name, h in w["host_results"].items():
            lines.append(_host_line(name, h))
            for reason in h["reasons"]:
                lines.append(f"    - {reason}")
    left = not_restored(record)
    if left:
        lines.append(
            "NOT ROLLED BACK, state unknown, check by hand: " + "; ".join(f"{h} ({why})" for h, why in left.items())
        )
    return lines


def default_record_path(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return os.path.join("runs", f"rollout-{stamp}.json")


def write_record(record: dict[str, Any], path: str) -> None:
    """Write the record to ``path`` atomically: a new file with an unpredictable name created
    exclusively in the same directory (``tempfile``), then renamed over ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".rollout-", suffix=".json.tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=2, default=str)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------- CLI
def add_parser(sub) -> None:
    """The ``rollout`` subcommand of ``fleetforge`` (``fleetforge.cli``)."""
    text = "roll a deploy out wave by wave: verify, health-check, gate, roll back a failed wave"
    p = sub.add_parser("rollout", help=text, description=text)
    p.add_argument("inventory", help="pyinfra inventory file, e.g. inventory.py")
    p.add_argument("deploy", help="pyinfra deploy file, e.g. deploys/vps.py")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--waves", help="inventory groups in order (default: canary, wave1, wave2, ...)")
    how.add_argument("--serial", help="batch sizes like Ansible's serial, e.g. 1,25%%,100%%")
    p.add_argument("--max-fail-percentage", type=float, default=0.0, metavar="N",
                   help="failed hosts a wave may have, in %% of its hosts (default 0)")  # fmt: skip
    p.add_argument("--dry", action="store_true", help="print waves, hosts and plans; change nothing")
    p.add_argument("--json", action="store_true", help="print the record as JSON (no progress)")
    p.add_argument("--record", help="where to write the JSON record (default runs/rollout-<UTC stamp>.json)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip fleetforge's plan verification (deploys other than the tuning)")  # fmt: skip
    p.add_argument("--deploy-timeout", type=float, default=1800, metavar="S", help="per wave (default 1800)")
    add_run_store_arguments(p)
    p.set_defaults(func=cmd_rollout)


def plan_waves(args, hosts) -> tuple[list[Wave], dict[str, Any]]:
    if args.serial:
        schedule = parse_serial(args.serial)
        return serial_waves([h.name for h in hosts], schedule), {"kind": "serial", "serial": schedule}
    groups = [g.strip() for g in args.waves.split(",") if g.strip()] if args.waves else None
    waves = group_waves({h.name: h.groups for h in hosts}, groups)
    return waves, {"kind": "groups", "groups": [w.name for w in waves]}


def cmd_rollout(args) -> int:
    from fleetforge.console import make_console  # host names and reasons print as text, never markup
    from fleetforge.gather import load_inventory

    with RolloutRecorder.for_args(args) as rec:  # the run store's record (fleetforge.runs)
        if not 0 <= args.max_fail_percentage <= 100:
            raise RolloutError(f"--max-fail-percentage: expected 0 to 100, got {args.max_fail_percentage:g}")
        _, hosts = load_inventory(args.inventory)
        if not hosts:
            raise RolloutError(f"{args.inventory}: no hosts")
        waves, schedule = plan_waves(args, hosts)
        rec.begin(waves, {h.name: h.data for h in hosts})
        console, out = make_console(stderr=True), make_console()
        if args.dry:
            return dry_run(args, hosts, waves, schedule, out, rec)
        targets = {h.name: Target(h.name, h.data, h.settings) for h in hosts}
        progress = None if args.json else console.print
        record = Rollout(
            args.inventory,
            args.deploy,
            waves,
            targets,
            max_fail_percentage=args.max_fail_percentage,
            schedule=schedule,
            verify=not args.no_verify,
            deploy_timeout=args.deploy_timeout,
            progress=progress,
            recorder=rec,
        ).run()
        path = args.record or default_record_path()
        record["record_path"] = path
        write_record(record, path)
        rec.finish(record)
    if args.json:
        print(json.dumps(record, indent=2, default=str))
    else:
        for line in summary_lines(record):
            out.print(line)
        out.print(f"record: {path}")
    return record["exit_code"]


def dry_run(args, hosts, waves: list[Wave], schedule: dict[str, Any], out, rec: RolloutRecorder | None = None) -> int:
    """Waves, hosts and each host's plan; probes the hosts read-only, changes nothing. ``rec``:
    the run store's record, given each host's plan."""
    from fleetforge.gather import load_inventory, probe
    from fleetforge.plan_table import plan_table
    from fleetforge.planner import plan_host

    state, _ = load_inventory(args.inventory)
    facts = probe(state, hosts)
    by_name = {h.name: h for h in hosts}
    plans: dict[str, Any] = {}
    for h in hosts:
        f = facts.get(h.name, "not probed")
        plans[h.name] = {"error": f} if isinstance(f, str) else plan_host(h.name, f, h.settings)
    code = 1 if any(isinstance(p, dict) for p in plans.values()) else 0
    (rec or RolloutRecorder(None)).finish_dry(code, waves, facts, plans)
    if args.json:
        payload = {
            "dry": True,
            "schedule": schedule,
            "max_fail_percentage": args.max_fail_percentage,
            "waves": [{"name": w.name, "hosts": list(w.hosts)} for w in waves],
            "plans": {n: p if isinstance(p, dict) else p.to_json() for n, p in plans.items()},
        }
        print(json.dumps(payload, indent=2, default=str))
        return code
    out.print(f"dry run: {len(waves)} wave(s), max_fail_percentage {args.max_fail_percentage:g}; nothing changes")
    for i, w in enumerate(waves, 1):
        n = len(w.hosts)
        out.print(
            f"wave {i} {w.name}: {', '.join(w.hosts)} "
            f"(may fail: {allowed_failures(n, args.max_fail_percentage)} of {n})",
        )
        for name in w.hosts:
            plan = plans[name]
            if isinstance(plan, dict):
                out.print(f"  {name}: cannot plan: {plan['error']}")
                continue
            checks = by_name[name].settings.health_checks
            out.print(plan_table(plan))
            if checks:
                out.print(f"  {name}: health checks: {', '.join(c.describe() for c in checks)}")
    return code
