"""What a run record holds: one fleetforge or pyinfra run, its hosts and its phases.

A record is what the run store (``fleetforge.runs.store``) keeps and what the fleet report
(``fleetforge report``) draws. It never holds a secret or a file's content that is not
fleetforge's own: facts and plans are stored as ``fleetforge.secrets.redact_facts`` /
``redact_plan`` give them, and commands' output is never stored.

Times are timezone-aware UTC datetimes; durations are derived from them (seconds).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

#: what recorded the run
Command = Literal["deploy", "verify", "rollout", "tune", "probe", "plan"]
#: a host's outcome in one run: ``ok`` nothing to change or every check passed, ``changed`` the
#: deploy changed something, ``warn`` only warnings, ``failed`` an operation or check failed,
#: ``unreachable`` no connection, ``skipped`` not run (an earlier wave failed, ``--limit``...)
HostStatus = Literal["ok", "changed", "warn", "failed", "unreachable", "skipped"]
PhaseStatus = Literal["ok", "failed", "skipped", "unfinished"]
Severity = Literal["ok", "warn", "fail"]


#: the earliest and latest time a record may hold: a day's margin inside ``datetime``'s years 1 to
#: 9999, so moving it to UTC or adding the report's hour to it cannot overflow
FIRST_TIME = dt.datetime(1, 1, 2, tzinfo=dt.UTC)
LAST_TIME = dt.datetime(9999, 12, 30, tzinfo=dt.UTC)


def _in_range(value: dt.datetime) -> dt.datetime:
    """``value`` unchanged if it lies between ``FIRST_TIME`` and ``LAST_TIME`` (a naive one taken as
    UTC); raises ``ValueError`` otherwise."""
    try:
        at = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    except OverflowError:
        at = None
    if at is None or not FIRST_TIME <= at <= LAST_TIME:
        raise ValueError(f"expected a time between {FIRST_TIME:%Y-%m-%d} and {LAST_TIME:%Y-%m-%d} UTC")
    return value


#: a time of a record (``_in_range``)
Time = Annotated[dt.datetime, AfterValidator(_in_range)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DiskSummary(_Model):
    """One whole disk as the probe saw it."""

    name: str
    size_bytes: int
    transport: str
    rotational: bool


class Hardware(_Model):
    """What the probe detected, the part a person reads first (full facts are digested, not kept)."""

    logical_cpus: int
    mem_total_bytes: int
    virtualization: str | None = None
    firmware: str | None = None
    os: str | None = None
    kernel: str | None = None
    disks: list[DiskSummary] = []


class CheckRecord(_Model):
    """One verify check: the planned value against the live one."""

    item: str
    expected: str
    actual: str | None
    severity: Severity


class HostRecord(_Model):
    """One host in one run.

    ``facts_digest``: SHA-256 (hex) of the machine's identity (``fleetforge.runs.record.facts_digest``:
    CPU, RAM, disks, virtualization, firmware, OS, kernel), so two runs can tell whether the
    hardware or OS changed without storing the facts; ``plan``: the redacted ``TuningPlan`` JSON
    (values, reasons, sources); ``changed``: titles of what the run changed (files, follow-ups,
    NixOS generation; in a dry run: what would change); ``checks``: verify's results;
    ``warnings``: findings that do not fail the run (a hardware/model mismatch, a rollback done);
    ``error``: why the host failed, one line, no command output; ``wave``: the rollout wave the
    host was in (``Phase.wave``'s numbering), None outside a rollout.
    """

    host: str
    status: HostStatus
    error: str | None = None
    facts_digest: str | None = None
    hardware: Hardware | None = None
    plan: dict[str, Any] | None = None
    changed: list[str] = []
    checks: list[CheckRecord] = []
    warnings: list[str] = []
    wave: int | None = None


class Phase(_Model):
    """A timed step: of the whole run (``host`` None) or of one host; ``wave``: the rollout wave
    (0 the first: the canary when there is one; ``RunRecord.waves`` names them), None outside a
    rollout. Names: ``connect``, ``probe``, ``plan``, ``deploy``,
    ``verify``, ``health``, ``rollback``, ``measure``, ``snapshot``."""

    name: str
    host: str | None = None
    wave: int | None = None
    started_at: Time
    ended_at: Time | None = None
    status: PhaseStatus = "ok"

    @property
    def seconds(self) -> float | None:
        return None if self.ended_at is None else (self.ended_at - self.started_at).total_seconds()


class RunRecord(_Model):
    """One run. ``id``: the store's row id (None before it is stored); ``user``: the local
    user who ran it; ``inventory``: the inventory file's absolute path; ``target``: the deploy
    file or subcommand detail (``deploys/vps.py``, ``--measure``); ``exit_code``: None while
    the run has not ended (or was killed); ``dry``: nothing was changed on purpose (``--dry``,
    ``rollout --dry``); ``waves``: a rollout's wave names in order (``waves[i]`` is wave ``i`` of
    ``Phase.wave`` and ``HostRecord.wave``), empty outside a rollout."""

    id: int | None = None
    command: Command
    started_at: Time
    ended_at: Time | None = None
    user: str
    inventory: str
    target: str = ""
    exit_code: int | None = None
    dry: bool = False
    waves: list[str] = []
    hosts: list[HostRecord] = []
    phases: list[Phase] = Field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        return None if self.ended_at is None else (self.ended_at - self.started_at).total_seconds()
