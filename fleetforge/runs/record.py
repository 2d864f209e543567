"""Making run records: host summaries from facts (``hardware_of``, ``facts_digest``), verify's
results as ``CheckRecord``s with secrets masked, and ``RunRecorder``, which the commands use to
time phases, collect ``HostRecord``s and write the run to the store.

Recording never changes a command's outcome: a store that cannot be opened or written costs
one warning line on stderr (``fleetforge: run record not written: <why>``) and nothing else.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import getpass
import hashlib
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from fleetforge.errors import FleetforgeError
from fleetforge.facts.models import HostFacts
from fleetforge.runs.models import CheckRecord, Command, DiskSummary, Hardware, HostRecord, Phase, RunRecord
from fleetforge.runs.store import RunStore, open_store
from fleetforge.secrets import DEFAULT_SECRET_KEYS, REDACTED, is_secret_key, redact_plan, redact_text

T = TypeVar("T")
EXIT_BAD_INPUT = 3  # fleetforge's exit code for a FleetforgeError (fleetforge.cli)
ERROR_CHARS = 300  # the longest ``HostRecord.error`` kept


def now() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


def hardware_of(facts: HostFacts) -> Hardware:
    """The part of the probe's facts a person reads first: CPUs, memory, virtualization,
    firmware, OS (its pretty name, else ``id version``), kernel, and each whole disk."""
    os_name = facts.os.pretty_name or " ".join(p for p in (facts.os.id, facts.os.version_id) if p)
    return Hardware(
        logical_cpus=facts.cpu.logical_cpus,
        mem_total_bytes=facts.memory.mem_total_bytes,
        virtualization=facts.virtualization,
        firmware=facts.firmware,
        os=os_name or None,
        kernel=facts.kernel_release,
        disks=[
            DiskSummary(name=d.name, size_bytes=d.size_bytes, transport=d.transport, rotational=d.rotational)
            for d in facts.disks
        ],
    )


def facts_digest(facts: HostFacts) -> str:
    """SHA-256 (64 hex digits) of what identifies the machine and its OS: the CPU (count, model,
    hypervisor flag), RAM, each whole disk (name, size, transport, rotational, model, serial),
    virtualization, firmware, OS (id, version, NixOS release) and kernel release, as JSON with
    sorted keys. What a deploy or the load changes (schedulers, read-ahead, sysctls, swap and zram
    use, managed files, Nix settings) is left out, so a new digest means the hardware or the OS
    changed, never that fleetforge ran. None of these fields holds a secret."""
    identity = {
        "cpu": facts.cpu.model_dump(),
        "mem_total_bytes": facts.memory.mem_total_bytes,
        "disks": [
            d.model_dump(include={"name", "size_bytes", "transport", "rotational", "model", "serial"})
            for d in facts.disks
        ],
        "virtualization": facts.virtualization,
        "firmware": facts.firmware,
        "os": facts.os.model_dump(include={"id", "version_id", "nixos_release"}),
        "kernel_release": facts.kernel_release,
    }
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def plan_json(plan: Any, keys: Iterable[str]) -> dict[str, Any] | None:
    """A ``TuningPlan`` as stored: its JSON with secret Nix settings masked (``redact_plan``)."""
    return None if plan is None else redact_plan(plan.to_json(), keys)


def one_line(text: object, keys: Iterable[str] = (), limit: int = ERROR_CHARS) -> str:
    """``text`` as one line for ``HostRecord.error``: its first non-empty line, assignments of
    ``keys`` and the default secret keys masked (``redact_text``), cut to ``limit`` characters."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = redact_text(lines[0], DEFAULT_SECRET_KEYS | frozenset(keys)) if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def error_of(exc: BaseException, keys: Iterable[str] = ()) -> str:
    """``Type: message`` of an exception, one line (``one_line``). A ``SettingsError``'s problem
    with a secret key (``nix_settings.access-tokens``; ``keys`` and the default secret keys) keeps
    what was expected, never the value given (its message quotes that value)."""
    message = (_settings_message(exc, keys) or str(exc)).strip()
    return one_line(f"{type(exc).__name__}: {message}" if message else type(exc).__name__, keys)


_GOT = re.compile(r",? \(?got ")


def _settings_message(exc: BaseException, keys: Iterable[str]) -> str | None:
    """A ``SettingsError``'s lines (``host H: KEY: message``, its ``problems``) with the message of
    each secret key cut before the value it quotes; ``None`` for any other exception."""
    problems = getattr(exc, "problems", None)
    if not isinstance(problems, list) or not all(isinstance(p, tuple) and len(p) == 3 for p in problems):
        return None
    keys = DEFAULT_SECRET_KEYS | frozenset(keys)
    lines = []
    for host, key, message in problems:
        if any(is_secret_key(part, keys) for part in str(key).split(".")):
            message = _GOT.split(str(message), maxsplit=1)[0] + f" (the value is not shown: {key} is secret)"
        lines.append(f"host {host}: {key}: {message}")
    return "\n".join(lines)


def host_summary(facts: HostFacts | None, keys: Iterable[str]) -> dict[str, Any]:
    """``HostRecord`` fields from the probe's facts: ``hardware`` and ``facts_digest`` (none
    without facts, or when the facts cannot be summed up: a host's number too long for JSON).
    Raises nothing: the commands build their records outside the store's guard."""
    if facts is None:
        return {}
    try:
        return {"hardware": hardware_of(facts), "facts_digest": facts_digest(facts)}
    except Exception:  # noqa: BLE001 - recording must never fail the command
        return {}


def check_record(result: Any, keys: Iterable[str]) -> CheckRecord:
    """A verify ``CheckResult`` as stored. The planned and live values of a check of a secret
    Nix setting (``nix access-tokens``) are masked, and any ``KEY = value`` of a secret key in
    them too."""
    keys = DEFAULT_SECRET_KEYS | frozenset(keys)
    item = str(result.item)
    if item.startswith("nix ") and is_secret_key(item[4:], keys):
        expected, actual = REDACTED, (None if result.actual is None else REDACTED)
    else:
        expected = redact_text(str(result.expected), keys)
        actual = None if result.actual is None else redact_text(str(result.actual), keys)
    return CheckRecord(item=item, expected=expected, actual=actual, severity=result.severity)


def add_record_arguments(parser: argparse.ArgumentParser, flag: str = "--record", off: str = "--no-record") -> None:
    """``--record [PATH]`` and ``--no-record`` (dest ``record``/``no_record``): where this run's
    record goes (a bare ``--record``: recorded even if ``FLEETFORGE_RUN_STORE=off``)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        flag, dest="record", nargs="?", const="", default=None, metavar="PATH",
        help="run store to record this run in (default: $FLEETFORGE_RUN_STORE, else fleetforge-runs.sqlite "
        "next to the inventory)",
    )  # fmt: skip
    group.add_argument(off, dest="no_record", action="store_true", help="do not record this run")


def warn(message: str) -> None:
    """The one warning line of a record that could not be written (stderr)."""
    print(f"fleetforge: run record not written: {message}", file=sys.stderr, flush=True)


def local_user() -> str:
    """Who runs fleetforge here: the login name, else the uid."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no name for this uid: its number
        return str(os.getuid())


class RunRecorder:
    """One run's record: ``begin`` when the run starts (a row with exit code NULL), phases and
    hosts collected as it goes (thread-safe), ``finish`` with the exit code.

    ``store`` None: nothing is written (recording is off). Every store error becomes one
    warning line on stderr, then recording stops for this run; no method raises.
    """

    def __init__(
        self,
        store: RunStore | None,
        command: Command,
        inventory: str | os.PathLike,
        target: str = "",
        dry: bool = False,
        waves: list[str] | None = None,
        started_at: dt.datetime | None = None,
    ) -> None:
        self.store = store
        self.run_id: int | None = None
        self.started_at = started_at or now()
        inventory = os.fspath(inventory)
        self.record = RunRecord(
            command=command,
            started_at=self.started_at,
            user=local_user(),
            inventory=os.path.abspath(inventory) if os.path.exists(inventory) else inventory,
            target=target,
            dry=dry,
            waves=waves or [],
        )
        self.hosts: dict[str, HostRecord] = {}
        self.phases: list[Phase] = []
        self.finished = False
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls, command: Command, inventory: str | os.PathLike, *, record: str | None = None, disabled: bool = False,
        **kwargs: Any,
    ) -> RunRecorder:  # fmt: skip
        """A recorder on the store ``open_store`` picks (``record``/``disabled``: the command's
        ``--record``/``--no-record``); a store that cannot be opened: one warning, no record."""
        try:
            store = open_store(inventory, record, disabled)
        except Exception as exc:  # noqa: BLE001 - recording must never fail the command
            warn(error_of(exc))
            store = None
        return cls(store, command, inventory, **kwargs)

    @classmethod
    def for_args(cls, command: Command, args: argparse.Namespace, **kwargs: Any) -> RunRecorder:
        """``open`` with a parsed command line's ``inventory``, ``record`` and ``no_record``."""
        return cls.open(
            command, args.inventory, record=getattr(args, "record", None),
            disabled=bool(getattr(args, "no_record", False)), **kwargs,
        )  # fmt: skip

    def _store_call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        if self.store is None:
            return None
        try:
            return func(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - recording must never fail the command
            warn(f"{self.store.path}: {error_of(exc)}")
            self.store = None
            return None

    def begin(self) -> RunRecorder:
        """Store the run as started (exit code NULL until ``finish``)."""
        if self.run_id is None:
            self.run_id = self._store_call(lambda s: s.begin(self.record), self.store)
        return self

    def __enter__(self) -> RunRecorder:
        return self.begin()

    def __exit__(self, exc_type, exc, tb) -> None:
        """An exception that ends the command finishes the run with the exit code fleetforge
        gives it (3 for bad input, else 1); an interrupt (``KeyboardInterrupt``) leaves it
        unfinished."""
        if not self.finished and isinstance(exc, Exception):
            self.finish(EXIT_BAD_INPUT if isinstance(exc, FleetforgeError) else 1)

    def add_phase(
        self, name: str, started_at: dt.datetime, ended_at: dt.datetime | None, *, host: str | None = None,
        wave: int | None = None, status: str = "ok",
    ) -> None:  # fmt: skip
        phase = Phase(name=name, host=host, wave=wave, started_at=started_at, ended_at=ended_at, status=status)
        with self._lock:
            self.phases.append(phase)

    @contextlib.contextmanager
    def phase(self, name: str, host: str | None = None, wave: int | None = None) -> Iterator[None]:
        """Time the ``with`` body as phase ``name``; ``failed`` if it raises."""
        start, status = now(), "ok"
        try:
            yield
        except BaseException:
            status = "failed"
            raise
        finally:
            self.add_phase(name, start, now(), host=host, wave=wave, status=status)

    def call(
        self, name: str, host: str, func: Callable[..., T], *args: Any, wave: int | None = None,
        failed: Callable[[T], bool] = lambda _result: False,
    ) -> T:  # fmt: skip
        """``func(*args)``, timed as ``host``'s phase ``name``: ``failed`` when it raises or
        ``failed(result)`` says so."""
        start = now()
        try:
            result = func(*args)
        except BaseException:
            self.add_phase(name, start, now(), host=host, wave=wave, status="failed")
            raise
        self.add_phase(name, start, now(), host=host, wave=wave, status="failed" if failed(result) else "ok")
        return result

    def set_host(self, record: HostRecord) -> None:
        """Add or replace the record of ``record.host``."""
        with self._lock:
            self.hosts[record.host] = record

    def finish(self, exit_code: int) -> int:
        """Store the run's end, ``exit_code``, hosts and phases (beginning it first if that was
        not done); returns ``exit_code``."""
        if not self.finished:
            self.begin()
            self.finished = True
            if self.run_id is not None:
                with self._lock:
                    hosts, phases = list(self.hosts.values()), sorted(self.phases, key=lambda p: p.started_at)
                self._store_call(
                    lambda s: s.finish(self.run_id, ended_at=now(), exit_code=exit_code, hosts=hosts, phases=phases),
                    self.store,
                )
        return exit_code
