"""Health checks declared in host data (``health_checks``), run by ``fleetforge rollout`` after a
wave's deploy and verification.

Each check is one of:

- ``{"command": "systemctl is-active nginx"}``: run on the host in a new SSH session (OpenSSH,
  no connection sharing), must exit 0;
- ``{"http": "http://203.0.113.10/health"}``: fetched from the machine running fleetforge, must
  answer 2xx;
- ``{"ssh_reconnect": true}``: a fresh SSH login must succeed (the host still accepts logins
  after the deploy).

Each is tried ``1 + retries`` times, ``delay_s`` apart, and each attempt may take at most
``timeout_s`` seconds (a hung command or URL counts as a timeout).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any

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
    """An ``ssh`` command line for an inventory host (``ssh_*`` data keys, as pyinfra's @ssh
    connector reads them), key-only, never sharing a master connection."""
    user = data.get("ssh_user") or "root"
    argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, int(connect_timeout))}"]
    argv += ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
    argv += ["-p", str(data.get("ssh_port") or 22)]
    if data.get("ssh_key"):
        argv += ["-i", os.path.expanduser(str(data["ssh_key"])), "-o", "IdentitiesOnly=yes"]
    if data.get("ssh_known_hosts_file"):
        argv += ["-o", f"UserKnownHostsFile={os.path.expanduser(str(data['ssh_known_hosts_file']))}"]
    strict = data.get("ssh_strict_host_key_checking")
    if strict is not None:
        argv += ["-o", f"StrictHostKeyChecking={strict}"]
    argv += [f"{user}@{data.get('ssh_hostname') or name}", command]
    return argv


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
    command = check.command or "true"
    if data.get("_sudo") and check.command:
        command = "sudo -n sh -c " + shlex.quote(command)
    argv = ssh_argv(name, data, command, connect_timeout=timeout)
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:g} s"
    if out.returncode == 0:
        return True, "exit 0"
    detail = (out.stderr.strip() or out.stdout.strip()).splitlines()
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
