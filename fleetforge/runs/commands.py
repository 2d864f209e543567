"""``HostRecord``s of ``fleetforge probe``, ``plan`` and ``verify``: what each learned about one
host, with its secrets masked (``secret_keys`` of the host's data).

``host`` arguments are inventory hosts (``fleetforge.gather.InventoryHost``: ``name``, ``data``).
"""

from __future__ import annotations

import re
from typing import Any

from fleetforge.facts.models import HostFacts
from fleetforge.runs.models import HostRecord, HostStatus
from fleetforge.runs.record import check_record, host_summary, one_line, plan_json
from fleetforge.secrets import secret_keys

#: the item of verify's hardware-against-OVH-model warnings (``fleetforge.verify.model_warnings``)
MODEL_ITEM = "hardware matches OVH model"
#: a probe result string (``fleetforge.gather``) for a host that could not be connected to
NOT_CONNECTED = "could not connect"
#: exception names in verify's "reach and probe host" result for a host that could not be reached
_UNREACHABLE = re.compile(
    r"^(HostUnreachable|ConnectionError|ConnectionRefusedError|TimeoutError|TimeoutExpired|OSError)\b"
)
_SSH_FAILED = re.compile(r"exit_status=255\b.*?_stderr=b(['\"])(?P<stderr>.*?)\1\)?$")


def probe_record(host: Any, found: HostFacts | str) -> HostRecord:
    """``fleetforge probe``: ``ok`` with hardware and facts digest, or ``unreachable`` (no
    connection) / ``failed`` (the probe's output could not be used) with the reason."""
    keys = secret_keys(host.data)
    if isinstance(found, str):
        status: HostStatus = "unreachable" if found.startswith(NOT_CONNECTED) else "failed"
        return HostRecord(host=host.name, status=status, error=one_line(found, keys))
    return HostRecord(host=host.name, status="ok", **host_summary(found, keys))


def plan_record(
    host: Any, found: HostFacts | str, plan: Any = None, error: str | None = None, warnings: list[str] | None = None
) -> HostRecord:
    """``fleetforge plan``: as ``probe_record``, plus the redacted plan; ``error`` (a
    ``PlanError``: host data that does not fit the hardware) makes the host ``failed``;
    ``warnings`` (the hardware is not what its OVH model sells) make it ``warn``."""
    record = probe_record(host, found)
    keys = secret_keys(host.data)
    if error is not None:
        return record.model_copy(update={"status": "failed", "error": one_line(error, keys)})
    update: dict[str, Any] = {"plan": plan_json(plan, keys)}
    if warnings and record.status == "ok":
        update.update(status="warn", warnings=[one_line(w, keys) for w in warnings])
    return record.model_copy(update=update)


def _unreachable_error(actual: str) -> str | None:
    """The one-line reason when verify's failed "reach and probe host" says the host could not
    be reached (ssh exited 255: its own last stderr line; a connection error), else ``None``."""
    ssh = _SSH_FAILED.search(actual)
    if ssh:
        stderr = ssh.group("stderr").replace("\\r", "").split("\\n")
        lines = [line.strip() for line in stderr if line.strip()]
        return f"ssh failed: {lines[-1]}" if lines else "ssh failed"
    return actual if _UNREACHABLE.match(actual) else None


def verify_record(host: Any, outcome: Any) -> HostRecord:
    """``fleetforge verify`` of one host (``fleetforge.verify.Verified``): every check as a
    ``CheckRecord``, the plan, hardware and facts digest; status ``failed`` (a check failed),
    ``warn`` (only warnings), ``ok``, or ``unreachable`` (not probed: no connection)."""
    keys = secret_keys(host.data)
    checks = [check_record(r, keys) for r in outcome.results]
    severities = {r.severity for r in outcome.results}
    status: HostStatus = "failed" if "fail" in severities else "warn" if "warn" in severities else "ok"
    error = None
    if outcome.facts is None and outcome.results:
        actual = str(outcome.results[0].actual or "")
        reason = _unreachable_error(actual)
        status, error = ("unreachable", reason) if reason is not None else ("failed", actual)
    elif status == "failed":
        bad = [c for c in checks if c.severity == "fail"]
        error = f"{len(bad)} check(s) failed: " + ", ".join(c.item for c in bad[:5])
    return HostRecord(
        host=host.name,
        status=status,
        error=None if error is None else one_line(error, keys),
        plan=plan_json(outcome.plan, keys),
        checks=checks,
        warnings=[f"{c.item}: {c.actual}" for c in checks if c.severity == "warn" and c.item.startswith(MODEL_ITEM)],
        **host_summary(outcome.facts, keys),
    )
