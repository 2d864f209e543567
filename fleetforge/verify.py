"""Checks generated from a ``TuningPlan``, run with testinfra, so what was planned is what is
checked.

``checks_for(plan)`` yields ``Check`` objects; each reads one live value through a testinfra
``Host`` and compares it with the plan. Exit codes of ``fleetforge verify`` follow seed 001:
0 every host passes, 1 a check failed (or a host could not be checked), 2 only warnings.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import testinfra

from facts.probe import SCRIPT, HostProbe, parse_scheduler
from fleetforge.models import HostFacts, TuningPlan
from fleetforge.paths import NIX_CONF
from fleetforge.planner import plan_host, sysctl_keys
from fleetforge.render import NIX_BEGIN
from fleetforge.settings import HostSettings

Severity = Literal["fail", "warn"]


@dataclass(frozen=True)
class Check:
    """One planned value to compare with the host: ``read(host) -> actual`` as a string."""

    item: str
    expected: str
    read: Callable[[Any], str | None]
    severity_if_missing: Severity = "fail"


@dataclass(frozen=True)
class CheckResult:
    host: str
    item: str
    expected: str
    actual: str | None
    severity: Literal["ok", "fail", "warn"]

    def line(self) -> str:
        return f"{self.severity.upper():4} {self.host}: {self.item}: expected {self.expected!r}, got {self.actual!r}"


def _read(path: str) -> Callable[[Any], str | None]:
    def read(host) -> str | None:
        f = host.file(path)
        return " ".join(f.content_string.split()) if f.exists else None

    return read


def _bracketed(path: str) -> Callable[[Any], str | None]:
    def read(host) -> str | None:
        f = host.file(path)
        return parse_scheduler(f.content_string)[0] if f.exists else None

    return read


def _zram_swap_priority(host) -> str | None:
    for line in host.file("/proc/swaps").content_string.splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == "/dev/zram0":
            return fields[4]
    return None


def nix_show_config(host) -> dict[str, str]:
    """Effective Nix settings (``nix show-config``; Nix >= 2.19 spells it ``nix config show``)."""
    flags = "--extra-experimental-features nix-command"
    for cmd in (f"nix {flags} config show", f"nix {flags} show-config"):
        result = host.run(cmd)
        if result.rc == 0:
            pairs = (line.partition(" = ") for line in result.stdout.splitlines())
            return {key.strip(): " ".join(value.split()) for key, sep, value in pairs if sep}
    return {}


def checks_for(plan: TuningPlan) -> Iterator[Check]:
    """Every live value the plan determines, as checks."""
    for disk in plan.disks:
        queue = f"/sys/block/{disk.name}/queue"
        yield Check(f"{disk.name} scheduler", disk.scheduler.value, _bracketed(f"{queue}/scheduler"))
        yield Check(f"{disk.name} read_ahead_kb", str(disk.read_ahead_kb.value), _read(f"{queue}/read_ahead_kb"))
    for item in plan.sysctls:
        yield Check(f"sysctl {item.key}", item.value.value, _read(f"/proc/sys/{item.key.replace('.', '/')}"))
    if plan.zram.enabled.value:
        yield Check("zram0 disksize", str(plan.zram.size_mib.value * 1048576), _read("/sys/block/zram0/disksize"))
        yield Check("zram0 algorithm", plan.zram.algorithm.value, _bracketed("/sys/block/zram0/comp_algorithm"))
        yield Check("zram0 swap priority", str(plan.zram.swap_priority.value), _zram_swap_priority)
    else:
        yield Check("zram0 swap", "inactive", lambda h: "active" if _zram_swap_priority(h) else "inactive")
    if plan.nix is not None:
        yield Check(
            "nix.conf managed block",
            "present",
            lambda h: "present" if NIX_BEGIN in h.file(NIX_CONF).content_string else "absent",
        )
        for key, item in plan.nix.settings.items():
            # A key unknown to an older Nix is only a warning: Nix ignores it with a warning too.
            yield Check(f"nix {key}", item.value, _nix_setting(key), severity_if_missing="warn")


def _nix_setting(key: str) -> Callable[[Any], str | None]:
    def read(host) -> str | None:
        cache = host.__dict__.setdefault("_fleetforge_nix", {})
        if "config" not in cache:
            cache["config"] = nix_show_config(host)
        value = cache["config"].get(key)
        if value is not None and key == "substituters":
            value = " ".join(url.rstrip("/") for url in value.split())
        return value

    return read


def run_checks(name: str, host, plan: TuningPlan) -> list[CheckResult]:
    """Run every check of ``plan`` on testinfra ``host``; never raises for a failed check."""
    results = []
    for check in checks_for(plan):
        try:
            actual = check.read(host)
        except Exception as exc:  # a check that cannot read is a failure, reported with why
            actual = f"error: {exc}"
        if actual == check.expected:
            severity = "ok"
        elif actual is None:
            severity = check.severity_if_missing
        else:
            severity = "fail"
        results.append(CheckResult(name, check.item, check.expected, actual, severity))  # type: ignore[arg-type]
    return results


def testinfra_host(name: str, data: dict[str, Any]):
    """A testinfra ``Host`` for a pyinfra inventory host (``@local`` or SSH data keys).

    Uses OpenSSH with ControlPersist (one handshake for all checks), key-only auth and
    known_hosts checking as configured in the host data (``ssh_known_hosts_file``,
    ``ssh_strict_host_key_checking``).
    """
    if name.startswith("@local"):
        return testinfra.get_host("local://", sudo=bool(data.get("_sudo")))
    user = data.get("ssh_user") or "root"
    hostname = data.get("ssh_hostname") or name
    port = data.get("ssh_port") or 22
    extra = ["-o", "BatchMode=yes"]
    if data.get("ssh_known_hosts_file"):
        extra += ["-o", f"UserKnownHostsFile={data['ssh_known_hosts_file']}"]
    strict = data.get("ssh_strict_host_key_checking")
    if strict is not None:
        extra += ["-o", f"StrictHostKeyChecking={strict}"]
    kwargs: dict[str, Any] = {"ssh_extra_args": shlex.join(extra), "sudo": bool(data.get("_sudo"))}
    if data.get("ssh_key"):
        kwargs["ssh_identity_file"] = data["ssh_key"]
    return testinfra.get_host(f"ssh://{user}@{hostname}:{port}", **kwargs)


def probe_with(host, settings: HostSettings) -> HostFacts:
    """Run the ``HostProbe`` script through testinfra and parse it (same parser as pyinfra's).

    Raises ``FactProcessError`` on unparsable output, ``RuntimeError`` if the command fails.
    """
    command = shlex.join(["sh", "-c", SCRIPT, "fleetforge-probe", *sysctl_keys(settings)])
    result = host.run(command)
    if result.rc != 0:
        raise RuntimeError(f"probe exited {result.rc}: {result.stderr.strip()[:200]}")
    return HostProbe().process(result.stdout.splitlines())


def verify_host(name: str, data: dict[str, Any], settings: HostSettings) -> tuple[TuningPlan | None, list[CheckResult]]:
    """Probe, plan and check one host. A host that cannot be reached is one failed result."""
    try:
        host = testinfra_host(name, data)
        plan = plan_host(name, probe_with(host, settings), settings)
    except Exception as exc:
        return None, [CheckResult(name, "reach and probe host", "reachable", f"{type(exc).__name__}: {exc}", "fail")]
    return plan, run_checks(name, host, plan)


def exit_code(results: list[CheckResult]) -> int:
    """Seed 001's convention: 1 if any failure, else 2 if any warning, else 0."""
    severities = {r.severity for r in results}
    return 1 if "fail" in severities else 2 if "warn" in severities else 0
