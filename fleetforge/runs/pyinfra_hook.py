"""Run records of pyinfra's own runs: ``pyinfra inventory.py deploys/vps.py`` (any deploy file
that uses ``recorded()`` or ``fleetforge.vps.tune_host``), and per-host connect phases for the
fleetforge commands that connect through pyinfra (``ConnectPhases``).

A deploy registers the hook once per pyinfra CLI process, while pyinfra prepares the first host
(``recorded()`` around the deploy file's body, or ``note_plan`` from ``tune_host``): it stores the
run as started, adds a state callback (``pyinfra.api.state.BaseStateCallback``) that notes the
time of each host's first and last operation (a dict write per operation and host: no SQL), and
an ``atexit`` function that reads pyinfra's state once and finishes the run. Nothing else is
written while the run goes.

pyinfra's CLI connects to every host before it loads a deploy file, so connections are not seen
as they happen: a host that is in the run but not connected is ``unreachable`` (pyinfra's output
names the reason), and each host's ``connect`` phase spans the process start to the moment the
deploy started preparing (inventory loading and the parallel connect). A run in which no host
could be connected never loads the deploy and leaves no record.

The record: ``command="deploy"``, ``target`` the deploy file(s) as given, ``dry`` for ``--dry``,
exit code as pyinfra's CLI gives it (1 when a host failed or the deploy raised, else 0). Per
host: ``changed`` when an operation changed it (``changed``: those operations' names; for the
batch of ``managed_files``, one entry per file that changed: ``"<operation>: <file title>"``;
in a dry run what would change, status ``ok``), ``failed`` (an operation failed, a fact could
not be read, or the deploy raised for it: ``error``), ``unreachable``, ``skipped`` (the run
stopped before executing: another host's deploy raised, or the changes were not confirmed);
hardware, facts digest and redacted plan from what ``tune_host`` probed and planned. Phases per
host: ``connect``, ``plan`` (the deploy file's code for the host: probe, plan, queue operations),
``deploy`` (its first operation's start to its last one's end). A run stopped while executing
without any failed host (Ctrl-C) is left unfinished (exit code NULL).

``FLEETFORGE_RUN_STORE=off`` turns it off (a rollout's wave processes run so).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyinfra
from pyinfra.api.state import BaseStateCallback, StateStage
from pyinfra.context import ctx_host, ctx_state

from fleetforge.runs.models import HostRecord, HostStatus
from fleetforge.runs.record import RunRecorder, error_of, host_summary, now, one_line, plan_json, warn
from fleetforge.secrets import secret_keys

_HOOK: DeployHook | None = None


def process_started_at() -> dt.datetime:
    """When this process started (``/proc/self/stat`` against ``/proc/uptime``), else now."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        age = float(Path("/proc/uptime").read_text().split()[0]) - int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return now() - dt.timedelta(seconds=min(max(age, 0.0), 86400.0))
    except (OSError, ValueError, IndexError):
        return now()


def _cli_params() -> dict[str, Any]:
    """pyinfra's own parse of this process's command line (``inventory``, ``operations``, ``dry``)."""
    from pyinfra_cli.cli import cli

    try:
        return dict(cli.make_context("pyinfra", sys.argv[1:], resilient_parsing=True).params)
    except Exception:  # noqa: BLE001 - a command line pyinfra itself accepted; if not: no details
        return {}


def _active_hook() -> DeployHook | None:
    """This pyinfra CLI run's hook, registered on first use; ``None`` outside pyinfra's CLI
    (the API, tests) or when recording is off or the store could not be opened."""
    global _HOOK
    if not pyinfra.is_cli or not ctx_state.isset():
        return None
    state = ctx_state.get()
    if _HOOK is None or _HOOK.state is not state:
        _HOOK = DeployHook(state)  # set before any I/O: other hosts' greenlets see it
        _HOOK.install()
    return _HOOK if _HOOK.active else None


def _host_name() -> str | None:
    return ctx_host.get().name if ctx_host.isset() else None


@contextlib.contextmanager
def recorded() -> Iterator[None]:
    """Around a deploy file's body: registers the run record hook (first host only), times the
    current host's ``plan`` phase and keeps the one-line reason when the body raises for it."""
    hook, name = _active_hook(), _host_name()
    if hook is None or name is None:
        yield
        return
    start, status = now(), "ok"
    try:
        yield
    except BaseException as exc:
        status = "failed"
        hook.errors[name] = error_of(exc, secret_keys(ctx_host.get().data))
        raise
    finally:
        hook.plan_phases[name] = (start, now(), status)


def note_plan(facts: Any, plan: Any) -> None:
    """The current host's probed facts and plan (``fleetforge.vps.tune_host``), for its record."""
    hook, name = _active_hook(), _host_name()
    if hook is not None and name is not None:
        hook.noted[name] = (facts, plan)


def note_files(operation: str, steps: list[Any]) -> None:
    """The titles of the ``FileStep``s of the current host's ``managed_files`` operation named
    ``operation`` that change a file; listed in ``changed`` if that operation changed the host."""
    hook, name = _active_hook(), _host_name()
    if hook is not None and name is not None:
        hook.files.setdefault(name, {})[operation] = [step.title for step in steps if step.changed]


class DeployHook(BaseStateCallback):
    """The record of one pyinfra CLI run (see the module docstring)."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self.active = False
        self.registered_at = now()
        self.recorder: RunRecorder | None = None
        self.op_start: dict[str, dt.datetime] = {}
        self.op_end: dict[str, dt.datetime] = {}
        self.plan_phases: dict[str, tuple[dt.datetime, dt.datetime, str]] = {}
        self.errors: dict[str, str] = {}
        self.noted: dict[str, tuple[Any, Any]] = {}
        self.files: dict[str, dict[str, list[str]]] = {}  # host -> operation -> changed file titles

    def install(self) -> None:
        """Open the store, store the run as started, add the callback and the exit function."""
        params = _cli_params()
        inventory = str(params.get("inventory") or "")
        target = " ".join(params.get("operations") or ()) or str(self.state.current_deploy_filename or "")
        self.recorder = RunRecorder.open(
            "deploy", inventory or ".", target=target, dry=bool(params.get("dry")), started_at=process_started_at()
        )
        if self.recorder.store is None or self.recorder.begin().run_id is None:
            return
        self.state.add_callback_handler(self)
        atexit.register(self.write)
        self.active = True

    # the state callback: one dict write per operation and host
    def operation_host_start(self, state, host, op_hash) -> None:  # type: ignore[override]
        self.op_start.setdefault(host.name, now())

    def operation_host_success(self, state, host, op_hash, retry_count: int = 0) -> None:  # type: ignore[override]
        self.op_end[host.name] = now()

    def operation_host_error(self, state, host, op_hash, retry_count=0, max_retries=0) -> None:  # type: ignore[override]
        self.op_end[host.name] = now()

    # at exit
    def write(self) -> None:
        """Finish the run from pyinfra's state (at exit; never raises)."""
        try:
            self._write()
        except Exception as exc:  # noqa: BLE001 - recording must never change the run's outcome
            warn(error_of(exc))

    def _write(self) -> None:
        state, recorder = self.state, self.recorder
        assert recorder is not None
        executed = state.current_stage >= StateStage.Execute
        failed = {h.name for h in state.failed_hosts}
        if executed and state.current_stage < StateStage.Disconnect and not failed and not self.errors:
            return  # stopped while executing, nothing failed: interrupted; the run stays unfinished
        ended = now()
        for host in state.inventory:
            if state.is_host_in_limit(host):
                recorder.set_host(self._host_record(host, executed, failed))
                self._phases(host, executed, failed, ended)
        recorder.finish(1 if failed or self.errors else 0)

    def _operations(self, host: Any, executed: bool) -> tuple[list[str], str | None]:
        """``(changed, first failed operation)`` of ``host``: names of the operations that
        changed it (a dry run: that would), file titles for noted ``managed_files`` batches."""
        from pyinfra_cli.prints import pretty_op_name

        changed, failed_op = [], None
        for op_hash, op_data in self.state.ops.get(host, {}).items():
            meta, op_meta = op_data.operation_meta, self.state.op_meta[op_hash]
            if executed:
                if not meta.is_complete():
                    continue
                if not meta.did_succeed():
                    failed_op = failed_op or pretty_op_name(op_meta)
                    continue
                change = meta.did_change()
            else:
                change = bool(getattr(meta, "_maybe_is_change", None))  # as pyinfra's own change table reads it
            if change:
                name = pretty_op_name(op_meta)
                files = self._file_titles(host.name, op_meta.names)
                changed.extend([f"{name}: {title}" for title in files] if files else [name])
        return changed, failed_op

    def _file_titles(self, host: str, names: set[str]) -> list[str] | None:
        """The noted file titles of the operation named one of ``names`` (inside a ``@deploy``,
        pyinfra names it ``"<deploy> | <operation>"``)."""
        for operation, titles in self.files.get(host, {}).items():
            if any(n == operation or n.endswith(f" | {operation}") for n in names):
                return titles
        return None

    def _host_record(self, host: Any, executed: bool, failed: set[str]) -> HostRecord:
        name, keys = host.name, secret_keys(host.data)
        facts, plan = self.noted.get(name, (None, None))
        fields: dict[str, Any] = {**host_summary(facts, keys), "plan": plan_json(plan, keys)}
        if host not in self.state.activated_hosts:
            return HostRecord(host=name, status="unreachable", error="could not connect (see pyinfra's output)")
        changed, failed_op = self._operations(host, executed)
        status: HostStatus
        error = None
        if name in self.errors:
            status, error = "failed", self.errors[name]
        elif name in failed:
            status = "failed"
            error = f"operation failed: {failed_op}" if failed_op else "failed before its operations ran (see pyinfra)"
        elif not executed:
            status = "ok" if self.recorder and self.recorder.record.dry else "skipped"
        else:
            status = "changed" if changed else "ok"
        error = None if error is None else one_line(error, keys)
        return HostRecord(host=name, status=status, error=error, changed=changed, **fields)

    def _phases(self, host: Any, executed: bool, failed: set[str], ended: dt.datetime) -> None:
        recorder, name = self.recorder, host.name
        assert recorder is not None
        connected = host in self.state.activated_hosts
        recorder.add_phase("connect", recorder.started_at, self.registered_at, host=name,
                           status="ok" if connected else "failed")  # fmt: skip
        if name in self.plan_phases:
            start, end, status = self.plan_phases[name]
            if name in failed and name not in self.op_start:  # a fact failed: pyinfra failed the host
                status = "failed"
            recorder.add_phase("plan", start, end, host=name, status=status)
        if name in self.op_start:
            status = "failed" if name in failed else "ok"
            recorder.add_phase("deploy", self.op_start[name], self.op_end.get(name, ended), host=name, status=status)


class ConnectPhases(BaseStateCallback):
    """Per host ``connect`` phases, as pyinfra connects (``fleetforge probe``/``plan``): add
    to the ``State`` before ``connect_all``."""

    def __init__(self, recorder: RunRecorder) -> None:
        self.recorder = recorder
        self.started: dict[str, dt.datetime] = {}

    def host_before_connect(self, state, host) -> None:  # type: ignore[override]
        self.started[host.name] = now()

    def host_connect(self, state, host) -> None:  # type: ignore[override]
        self._end(host.name, "ok")

    def host_connect_error(self, state, host, error) -> None:  # type: ignore[override]
        self._end(host.name, "failed")

    def _end(self, name: str, status: str) -> None:
        self.recorder.add_phase("connect", self.started.get(name, now()), now(), host=name, status=status)
