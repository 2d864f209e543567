"""Health checks declared in host data (``health_checks``), run by ``fleetforge rollout`` after a
wave's deploy and verification.

Each check is one of:

- ``{"command": "systemctl is-active nginx"}``: run on the host in a new SSH session (OpenSSH,
  no connection sharing, the host's SSH data as pyinfra reads it: ``fleetforge.sshopts``),
  must exit 0 (under ``sudo -n`` with ``_sudo``);
- ``{"http": "http://203.0.113.10/health"}``: fetched from the machine running fleetforge, must
  answer 2xx;
- ``{"ssh_reconnect": true}``: a fresh SSH login must succeed (the host still accepts logins
  after the deploy).

Each is tried ``1 + retries`` times, ``delay_s`` apart, and each attempt may take at most
``timeout_s`` seconds (a hung command or URL counts as a timeout).
"""

from __future__ import annotations

import shlex
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any

from fleetforge import sshopts
from fleetforge.settings import HealthCheck


@dataclass(frozen=True)
class HealthResult:
    host: str
    check: str
    ok: bool
    attempts: int
    elapsed_s: float
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def ssh_argv(name: str, data: dict[str, Any], command: str, *, connect_timeout: float = 10) -> list[str]:
    """The ``ssh`` argv running ``command`` on inventory host ``name`` (its ``ssh_*`` data as
    pyinfra reads it, :mod:`fleetforge.sshopts`), never sharing a master connection: a health
    check is a fresh login. Raises ``ValueError`` naming the host and key of an unusable value."""
    return sshopts.connection(name, data).argv(command, connect_timeout=connect_timeout)


def _attempt(name: str, data: dict[str, Any], check: HealthCheck) -> tuple[bool, str]:
    """One attempt: ``(ok, reason)``."""
    timeout = check.timeout_s
    if check.http:
        try:
            with urllib.request.urlopen(check.http, timeout=timeout) as response:  # noqa: S310 - user's URL
                status = response.status
        except urllib.error.HTTPError as exc:
            return False, f"HTTP {exc.code}"
        except TimeoutError:
            return False, f"timed out after {timeout:g} s"
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError) or "timed out" in str(reason):
                return False, f"timed out after {timeout:g} s"
            return False, f"{reason}"
        return (200 <= status < 300), f"HTTP {status}"
    try:
        connection = sshopts.connection(name, data)
    except ValueError as exc:
        return False, str(exc)
    command = check.command or "true"
    if connection.sudo and check.command:
        user = ["-u", connection.sudo_user] if connection.sudo_user else []
        command = shlex.join(["sudo", "-n", *user, "sh", "-c", command])
    try:
        out = connection.run(command, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:g} s"
    if out.returncode == 0:
        return True, "exit 0"
    stderr, stdout = out.stderr.decode(errors="replace"), out.stdout.decode(errors="replace")
    detail = (stderr.strip() or stdout.strip()).splitlines()
    tail = f": {detail[-1][:200]}" if detail else ""
    if out.returncode == 255:
        return False, f"ssh failed{tail}"
    return False, f"exit {out.returncode}{tail}"


def run_health_check(name: str, data: dict[str, Any], check: HealthCheck, sleep=time.sleep) -> HealthResult:
    """Run ``check`` against host ``name`` with its retries; never raises."""
    start = time.monotonic()
    attempts, reason = 0, ""
    for attempt in range(check.retries + 1):
        if attempt:
            sleep(check.delay_s)
        attempts += 1
        ok, reason = _attempt(name, data, check)
        if ok:
            return HealthResult(name, check.describe(), True, attempts, round(time.monotonic() - start, 2), reason)
    return HealthResult(name, check.describe(), False, attempts, round(time.monotonic() - start, 2), reason)


def run_health_checks(name: str, data: dict[str, Any], checks: list[HealthCheck]) -> list[HealthResult]:
    """All of a host's checks, in order."""
    return [run_health_check(name, data, check) for check in checks]
