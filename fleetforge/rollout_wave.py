"""One rollout wave's deploy: pyinfra's CLI on exactly the wave's hosts, and what it changed.

Why not ``pyinfra ... --limit HOST``: pyinfra matches each ``--limit`` value against group names
first and then as an ``fnmatch`` glob, so a host named like a group (``wave1``) deploys that whole
group, and a host named ``db[1]`` matches ``db1`` instead of itself.

How instead: the parent runs ``python -m fleetforge.rollout_wave WAVE_DIR -- pyinfra-args...``.
That process runs pyinfra's own CLI (``pyinfra_cli.main``) unchanged, on the user's inventory
file (so ``group_data/``, the inventory file's own group, ``--data`` and connectors apply
exactly as in the user's ``pyinfra`` run, and a deploy may still read other hosts of the
inventory, as ``deploys/nix_cache.py`` reads the cache host), with two additions made through
pyinfra's public API:

- ``State.init`` gets ``initial_limit`` = the wave's ``Host`` objects, looked up by exact name
  (``Inventory.get_host``): the wave and nothing else is connected and deployed. A name the
  inventory does not hold stops the run before any connection;
- a state callback appends one JSON line per event to ``WAVE_DIR/events.jsonl`` (line-buffered):
  an operation started on a host, and its result (``changed``, ``no change``, ``failed``) once
  known. So what changed is known even when pyinfra stops without its JSON results ("No hosts
  remaining!" when the last host of a wave dies) or is killed at the deploy timeout.

``WAVE_DIR`` is a private directory (``tempfile.mkdtemp``: unpredictable name, mode 0700) holding
``hosts.json`` (the wave's host names) and the event log; it is removed after the run.

The wave process runs with ``FLEETFORGE_RUN_STORE=off``: its deploy is part of the rollout's own
run record (``fleetforge.runs.rollout_record``), not a deploy record of its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
HOSTS_FILE, EVENTS_FILE, FACTS_FILE = "hosts.json", "events.jsonl", "facts.json"
UNKNOWN = "unknown"
#: the wave's pyinfra process records no run of its own: the rollout's record has its deploy
RUN_STORE_ENV = "FLEETFORGE_RUN_STORE"


@dataclass
class DeployResult:
    """What one wave's pyinfra run did.

    ``failed``: ``{host: reason}``. ``changed_ops``: ``{host: [operation names]}``, or
    ``{host: "unknown"}`` when neither pyinfra's JSON nor the event log tells. ``unfinished_ops``:
    ``{host: [names]}`` of operations that started but did not finish successfully (they may
    have changed the host partly): from pyinfra's JSON, the operations that errored on the host
    (a failed command, a connection dropped mid-operation); without it, from the event log.
    ``source``: ``"pyinfra results"``, ``"event log"`` or ``"none"``.
    """

    returncode: int
    failed: dict[str, str]
    changed_ops: dict[str, Any]
    log_tail: list[str]
    seconds: float
    unfinished_ops: dict[str, list[str]] = field(default_factory=dict)
    source: str = "pyinfra results"


def wave_argv(inventory: str, deploy: str, wave_dir: str) -> list[str]:
    """The command that deploys one wave (hosts in ``wave_dir/hosts.json``); no ``--limit``."""
    return [sys.executable, "-m", "fleetforge.rollout_wave", wave_dir, "--"] + [
        "-y", "--json", "--fail-percent", "100", inventory, deploy,
    ]  # fmt: skip


def _host_reasons(stderr: str, host: str) -> list[str]:
    words = ("error", "could not", "failed", "timed out", "timeout", "refused", "unreachable", "exception")
    reasons = []
    for raw in stderr.splitlines():
        line = _ANSI.sub("", raw).strip()
        if f"[{host}]" in line and any(w in line.lower() for w in words):
            reasons.append(line.replace(f"[{host}]", "").strip()[:300])
    return reasons


def read_events(path: str) -> list[dict[str, Any]] | None:
    """The event log's records, or ``None`` when the log does not exist or recording never
    started (then nothing is known). A torn last line (a killed process) is skipped."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    if not any(e.get("event") == "recording" for e in events):
        return None
    return events


def changes_from_events(hosts: Sequence[str], events: list[dict[str, Any]]) -> tuple[dict, dict]:
    """``(changed {host: [op]}, unfinished {host: [op]})`` from the event log, in run order."""
    changed: dict[str, list[str]] = {h: [] for h in hosts}
    started: dict[str, list[str]] = {h: [] for h in hosts}
    finished: dict[str, set[str]] = {h: set() for h in hosts}
    for e in events:
        h, op = e.get("host"), e.get("op")
        if h not in changed or not isinstance(op, str):
            continue
        if e.get("event") == "start" and op not in started[h]:
            started[h].append(op)
        elif e.get("event") == "done":
            if e.get("result") == "changed":
                changed[h].append(op)
            if e.get("result") in ("changed", "no change"):
                finished[h].add(op)
    unfinished = {h: [op for op in started[h] if op not in finished[h]] for h in hosts}
    return changed, {h: ops for h, ops in unfinished.items() if ops}


def parse_deploy(
    hosts: Sequence[str], returncode: int, stdout: str, stderr: str, events: list[dict[str, Any]] | None = None
) -> DeployResult:
    """Read one wave's run: pyinfra's ``--json`` results when it printed them; otherwise every
    host failed (with its own log lines when there are any) and what changed comes from the
    event log, or is ``"unknown"`` without one."""
    tail = [_ANSI.sub("", line) for line in stderr.strip().splitlines()[-5:]]
    try:
        results = json.loads(stdout)["results"]
        failed_names = set(results["failed_hosts"]) & set(hosts)
        operations = results["operations"]
    except (ValueError, KeyError, TypeError):
        why = f"pyinfra exited {returncode} without results"
        failed = {}
        for h in hosts:
            own = _host_reasons(stderr, h)
            failed[h] = f"deploy failed: {'; '.join(own[-3:])} ({why})" if own else f"{why}: {' | '.join(tail)[-400:]}"
        if events is None:
            return DeployResult(returncode, failed, dict.fromkeys(hosts, UNKNOWN), [], 0.0, {}, "none")
        changed, unfinished = changes_from_events(hosts, events)
        return DeployResult(returncode, failed, dict(changed), [], 0.0, unfinished, "event log")
    changed_ops: dict[str, Any] = {h: [] for h in hosts}
    unfinished: dict[str, list[str]] = {}
    for op in operations:
        for h in op.get("success", []):
            if h in changed_ops:
                changed_ops[h].append(op["name"])
        errored = [h for h in op.get("error", []) if h in changed_ops]
        failed_names.update(errored)
        for h in errored:  # started, never completed (a failed command, a dropped connection)
            unfinished.setdefault(h, []).append(op["name"])
    failed = {}
    for h in sorted(failed_names):
        reasons = _host_reasons(stderr, h)
        failed[h] = "deploy failed: " + ("; ".join(reasons[-3:]) if reasons else "pyinfra reported the host failed")
    return DeployResult(returncode, failed, changed_ops, [], 0.0, unfinished)


def run_deploy(
    inventory: str, deploy: str, hosts: Sequence[str], timeout: float, facts: dict[str, Any] | None = None
) -> DeployResult:
    """Deploy ``deploy`` on exactly ``hosts`` of ``inventory`` (see the module docstring).

    ``timeout``: seconds before the run is killed (every host then fails). ``facts``: ``{host:
    HostFacts}`` the rollout's pre-deploy snapshot just gathered; the deploy uses them instead of
    probing those hosts again (``fleetforge.vps.gather``). They go to the wave process in
    a file of its private directory (``mkdtemp``, mode 0700), removed with it. Never raises for
    a failed run; the result says what failed and what changed.
    """
    start = time.monotonic()
    wave_dir = tempfile.mkdtemp(prefix="fleetforge-wave-")
    try:
        with open(os.path.join(wave_dir, HOSTS_FILE), "x", encoding="utf-8") as f:
            json.dump(list(hosts), f)
        if facts:
            fd = os.open(os.path.join(wave_dir, FACTS_FILE), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({h: value.to_json() for h, value in facts.items() if h in hosts}, f)
        try:
            out = subprocess.run(
                wave_argv(inventory, deploy, wave_dir), env={**os.environ, RUN_STORE_ENV: "off"},
                capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            code, stdout, stderr = out.returncode, out.stdout, out.stderr
        except subprocess.TimeoutExpired as exc:
            code, stdout = -1, ""
            raw = exc.stderr or b""
            stderr = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
            stderr += f"\npyinfra did not finish within {timeout:g} s"
        events = read_events(os.path.join(wave_dir, EVENTS_FILE))
    finally:
        shutil.rmtree(wave_dir, ignore_errors=True)
    result = parse_deploy(hosts, code, stdout, stderr, events)
    result.log_tail = [_ANSI.sub("", line) for line in stderr.strip().splitlines()[-40:]]
    result.seconds = round(time.monotonic() - start, 2)
    return result


# ---------------------------------------------------------------- the wave process
def _install(wave: list[str], events_path: str) -> None:
    """Make the pyinfra run of this process limit itself to ``wave`` and record its events."""
    from pyinfra.api.exceptions import NoHostError
    from pyinfra.api.state import BaseStateCallback, State
    from pyinfra_cli.exceptions import CliError
    from pyinfra_cli.prints import pretty_op_name

    log = open(events_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - open for the process

    def write(**event: Any) -> None:
        log.write(json.dumps(event) + "\n")

    class Recorder(BaseStateCallback):
        def __init__(self) -> None:
            self.done: set[tuple[str, str]] = set()

        def operation_host_start(self, state, host, op_hash) -> None:
            if op_hash in state.ops[host]:
                write(event="start", host=host.name, op=pretty_op_name(state.get_op_meta(op_hash)))

        def operation_end(self, state, op_hash) -> None:
            self.flush(state, [op_hash])

        def flush(self, state, op_hashes) -> None:
            for host, ops in state.ops.items():
                for op_hash in op_hashes:
                    meta = ops[op_hash].operation_meta if op_hash in ops else None
                    if meta is None or not meta.is_complete() or (host.name, op_hash) in self.done:
                        continue
                    self.done.add((host.name, op_hash))
                    result = "failed" if not meta.did_succeed() else "changed" if meta.did_change() else "no change"
                    write(event="done", host=host.name, op=pretty_op_name(state.get_op_meta(op_hash)), result=result)

    recorder = Recorder()
    original_init = State.init

    def init(self, inventory, config=None, initial_limit=None, **kwargs):
        try:
            limit = [inventory.get_host(name) for name in wave]
        except NoHostError as exc:
            raise CliError(f"fleetforge rollout: a host of the wave is not in the inventory: {exc}") from None
        result = original_init(self, inventory, config, initial_limit=limit, **kwargs)
        self.add_callback_handler(recorder)  # State.init creates the handler list
        self._fleetforge_recorder = recorder
        write(event="recording", hosts=wave)
        return result

    State.init = init


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m fleetforge.rollout_wave WAVE_DIR -- PYINFRA_ARGS...``: pyinfra's CLI on the
    hosts of ``WAVE_DIR/hosts.json`` only; exits with pyinfra's exit code."""
    import pyinfra_cli  # noqa: F401 - gevent's monkey patching, first, as the pyinfra script does
    from pyinfra.context import ctx_state
    from pyinfra_cli.main import main as pyinfra_main

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[1] != "--":
        sys.exit("usage: python -m fleetforge.rollout_wave WAVE_DIR -- PYINFRA_ARGS...")
    wave_dir = args[0]
    with open(os.path.join(wave_dir, HOSTS_FILE), encoding="utf-8") as f:
        wave = json.load(f)
    _install(wave, os.path.join(wave_dir, EVENTS_FILE))
    facts_path = os.path.join(wave_dir, FACTS_FILE)
    if os.path.exists(facts_path):
        from fleetforge.vps import use_pre_gathered

        with open(facts_path, encoding="utf-8") as f:
            use_pre_gathered(json.load(f))
    sys.argv = ["pyinfra", *args[2:]]
    try:
        pyinfra_main()
    finally:
        # the operation that failed the last host never reaches ``operation_end``
        state = ctx_state.get() if ctx_state.isset() else None
        recorder = getattr(state, "_fleetforge_recorder", None)
        if recorder is not None:
            recorder.flush(state, list(state.op_meta))


if __name__ == "__main__":
    main()
