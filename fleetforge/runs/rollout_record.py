"""The run record of ``fleetforge rollout``: one ``rollout`` run whose phases are timed around the
rollout's own steps, per host and wave (``snapshot``, ``deploy``, ``verify``, ``health``,
``rollback``; wave ``i`` is the ``i``-th wave, 0 the first: the canary when there is one), and
whose host records are read from the rollout's JSON record when it ends.

``fleetforge.rollout`` calls it thinly: ``Rollout`` wraps each step with ``RolloutRecorder``'s
``snapshot``/``verify``/``health`` (for ``_parallel``), ``deploy`` and ``rollback``; without a
store (``RolloutRecorder(None)``) the wrappers only call through. The wave's pyinfra process
records nothing of its own (``fleetforge.rollout_wave`` runs it with ``FLEETFORGE_RUN_STORE=off``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, TypeVar

from fleetforge.runs.models import HostRecord, HostStatus
from fleetforge.runs.record import RunRecorder, check_record, host_summary, one_line, plan_json
from fleetforge.secrets import secret_keys

T = TypeVar("T")
UNKNOWN = "unknown"  # fleetforge.rollout_wave.UNKNOWN: what changed is not known


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--run-store PATH`` / ``--no-run-store`` of ``fleetforge rollout`` (its ``--record`` is
    the path of its JSON record)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--run-store", metavar="PATH",
                       help="run store to record this rollout in (default: $FLEETFORGE_RUN_STORE, else "
                       "fleetforge-runs.sqlite next to the inventory)")  # fmt: skip
    group.add_argument("--no-run-store", action="store_true", help="do not record this rollout in the run store")


class RolloutRecorder:
    """One rollout's run record. ``rec`` None: every wrapper just calls through.

    Use as a context manager around the whole command: ``begin(waves)`` once the waves are
    planned; an exception before the end finishes the run as ``RunRecorder`` does (bad input: 3).
    """

    def __init__(self, rec: RunRecorder | None, data: dict[str, dict[str, Any]] | None = None) -> None:
        self.rec = rec
        self.data = data or {}  # {host: its data}, for its secret keys
        self.facts: dict[str, Any] = {}
        self.results: dict[str, list[Any]] = {}

    @classmethod
    def for_args(cls, args: argparse.Namespace) -> RolloutRecorder:
        rec = RunRecorder.open(
            "rollout", args.inventory, record=getattr(args, "run_store", None),
            disabled=bool(getattr(args, "no_run_store", False)), target=args.deploy, dry=bool(args.dry),
        )  # fmt: skip
        return cls(rec)

    def __enter__(self) -> RolloutRecorder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.rec is not None:
            self.rec.__exit__(exc_type, exc, tb)

    def begin(self, waves: list[Any], data: dict[str, dict[str, Any]]) -> None:
        """Store the run as started: ``waves`` (``Wave``s) in order; ``data``: ``{host: data}``."""
        self.data = data
        if self.rec is not None:
            self.rec.record = self.rec.record.model_copy(update={"waves": [w.name for w in waves]})
            self.rec.begin()

    # ---------------------------------------------------------------- the steps
    def _timed(self, phase: str, index: int, name: str, func: Callable[..., T], *args: Any,
               failed: Callable[[T], bool]) -> T:  # fmt: skip
        if self.rec is None:
            return func(*args)
        return self.rec.call(phase, name, func, *args, wave=index - 1, failed=failed)

    def snapshot(self, index: int, func: Callable[[str], T]) -> Callable[[str], T]:
        """``func(host) -> (host, snapshot | reason, seconds)`` (``Rollout._pre``) of wave
        ``index`` (1-based), timed; keeps the snapshot's facts for hardware and digest."""

        def run(name: str) -> T:
            out: Any = self._timed("snapshot", index, name, func, name, failed=lambda r: isinstance(r[1], str))
            if getattr(out[1], "facts", None) is not None:
                self.facts[name] = out[1].facts
            return out

        return run

    def verify(self, index: int, func: Callable[[str], T]) -> Callable[[str], T]:
        """``func(host) -> (host, snapshot | reason, results, seconds)`` (``Rollout._post``),
        timed; keeps the check results."""

        def run(name: str) -> T:
            out: Any = self._timed("verify", index, name, func, name, failed=_verify_failed)
            self.results[name] = list(out[2])
            return out

        return run

    def health(self, index: int, func: Callable[[str], T]) -> Callable[[str], T]:
        """``func(host) -> (host, results, seconds)`` (``Rollout._health``), timed."""
        return lambda name: self._timed("health", index, name, func, name, failed=lambda r: any(not x.ok for x in r[1]))

    def rollback(self, index: int, name: str, func: Callable[..., dict], *args: Any) -> dict:
        """``func(name, *args)`` (``Rollout._rollback``), timed; failed unless verified."""
        return self._timed("rollback", index, name, func, name, *args, failed=lambda r: not r.get("verified"))

    def deploy(self, index: int, hosts: list[str], func: Callable[[], T]) -> T:
        """``func()`` (the wave's ``run_deploy``), timed as each of ``hosts``' ``deploy`` phase;
        failed for the hosts its result names as failed."""
        if self.rec is None:
            return func()
        from fleetforge.runs.record import now

        start = now()
        try:
            result: Any = func()
        except BaseException:
            failed, end = set(hosts), now()
            raise
        else:
            failed, end = set(result.failed), now()
        finally:
            for name in hosts:
                status = "failed" if name in failed else "ok"
                self.rec.add_phase("deploy", start, end, host=name, wave=index - 1, status=status)
        return result

    # ---------------------------------------------------------------- the end
    def finish(self, record: dict[str, Any]) -> int:
        """Store the hosts from the rollout's JSON ``record`` and its exit code; returns it."""
        if self.rec is not None:
            for wave in record["waves"]:
                for host in self._hosts(wave):
                    self.rec.set_host(host)
            self.rec.finish(record["exit_code"])
        return record["exit_code"]

    def finish_dry(self, code: int, waves: list[Any], facts: dict[str, Any], plans: dict[str, Any]) -> int:
        """``rollout --dry``: each host's hardware, digest and plan (or why not), its wave."""
        if self.rec is not None:
            for index, wave in enumerate(waves):
                for name in wave.hosts:
                    self.rec.set_host(self._dry_host(name, index, facts.get(name, "not probed"), plans.get(name)))
            self.rec.finish(code)
        return code

    def _dry_host(self, name: str, wave: int, found: Any, plan: Any) -> HostRecord:
        keys = secret_keys(self.data.get(name))
        if isinstance(found, str):
            status: HostStatus = "unreachable" if found.startswith("could not connect") else "failed"
            return HostRecord(host=name, status=status, error=one_line(found, keys), wave=wave)
        return HostRecord(host=name, status="ok", plan=plan_json(plan, keys), wave=wave, **host_summary(found, keys))

    def _hosts(self, wave: dict[str, Any]) -> list[HostRecord]:
        index = wave["index"] - 1
        if wave["status"] == "not-run":
            note = ["not run: the rollout stopped at an earlier wave"]
            return [HostRecord(host=name, status="skipped", wave=index, warnings=note) for name in wave["hosts"]]
        return [self._host(name, result, index) for name, result in wave["host_results"].items()]

    def _host(self, name: str, result: dict[str, Any], wave: int) -> HostRecord:
        keys = secret_keys(self.data.get(name))
        reasons = [str(r) for r in result.get("reasons", [])]
        ops, files = result.get("operations_changed"), result.get("changed_files") or []
        changed = [*(ops if isinstance(ops, list) else []), *files]
        status, warnings = _status(result, changed, reasons), _warnings(result)
        return HostRecord(
            host=name,
            status=status,
            error=one_line("; ".join(reasons), keys) if reasons else None,
            changed=changed,
            checks=[check_record(r, keys) for r in self.results.get(name, [])],
            warnings=warnings,
            wave=wave,
            **host_summary(self.facts.get(name), keys),
        )


def _verify_failed(out: Any) -> bool:
    return isinstance(out[1], str) or any(r.severity == "fail" for r in out[2])


def _status(result: dict[str, Any], changed: list[str], reasons: list[str]) -> HostStatus:
    """The rollout's host status (``ok``, ``failed``, ``rolled-back``, ``rollback-failed``,
    ``not-rolled-back``) as a ``HostStatus``: a host rolled back only because its wave's gate
    failed is ``warn``; one unreachable before its deploy ``unreachable``."""
    status = result.get("status")
    if status == "ok":
        return "changed" if changed else "ok"
    if status == "rolled-back" and not reasons:
        return "warn"
    if status == "failed" and reasons and reasons[0].startswith("unreachable before the deploy"):
        return "unreachable"
    return "failed"


def _warnings(result: dict[str, Any]) -> list[str]:
    """What the rollout did besides pass or fail: unknown or unfinished operations, rollback."""
    out = []
    if result.get("operations_changed") == UNKNOWN:
        out.append("operations changed: unknown")
    if result.get("operations_unfinished"):
        out.append("operations unfinished (may have changed the host): " + ", ".join(result["operations_unfinished"]))
    rollback = result.get("rollback")
    if rollback and rollback.get("rolled_back"):
        out.append("rolled back, state equals the pre-deploy record" if rollback.get("verified") else
                   "rolled back, NOT verified: state differs from the pre-deploy record")  # fmt: skip
        if not result.get("reasons"):
            out.append("rolled back because the wave's gate failed")
    elif rollback and rollback.get("needed") is not False:
        out.append(f"not rolled back: {rollback.get('error', 'unknown reason')}")
    return out
