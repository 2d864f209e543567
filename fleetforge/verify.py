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
    """One planned value to compare with the host.

    ``path``: the file whose content holds the live value (``nix:KEY`` for an effective Nix
    setting); ``parse`` turns that content into the string compared with ``expected``.
    """

    item: str
    expected: str
    path: str
    parse: Callable[[str], str | None] = lambda text: " ".join(text.split())
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


def _bracketed(text: str) -> str | None:
    return parse_scheduler(text)[0]


def _zram_swap_priority(text: str) -> str | None:
    for line in text.splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == "/dev/zram0":
            return fields[4]
    return None


def _zram_swap_state(text: str) -> str:
    return "active" if _zram_swap_priority(text) else "inactive"


def _nix_conf_block(text: str) -> str:
    return "present" if NIX_BEGIN in text else "absent"


def _substituters(text: str) -> str:
    return " ".join(url.rstrip("/") for url in text.split())


def checks_for(plan: TuningPlan, nixos: bool = False) -> Iterator[Check]:
    """Every live value the plan determines, as checks.

    ``nixos``: the host is NixOS, where ``nix.conf`` is generated from ``nix.settings`` (no
    fleetforge block in it); the effective Nix settings are still checked.
    """
    for disk in plan.disks:
        queue = f"/sys/block/{disk.name}/queue"
        yield Check(f"{disk.name} scheduler", disk.scheduler.value, f"{queue}/scheduler", _bracketed)
        yield Check(f"{disk.name} read_ahead_kb", str(disk.read_ahead_kb.value), f"{queue}/read_ahead_kb")
    for item in plan.sysctls:
        yield Check(f"sysctl {item.key}", item.value.value, f"/proc/sys/{item.key.replace('.', '/')}")
    zram = plan.zram
    if zram.enabled.value:
        yield Check("zram0 disksize", str(zram.size_mib.value * 1048576), "/sys/block/zram0/disksize")
        yield Check("zram0 algorithm", zram.algorithm.value, "/sys/block/zram0/comp_algorithm", _bracketed)
        yield Check("zram0 swap priority", str(zram.swap_priority.value), "/proc/swaps", _zram_swap_priority)
    else:
        yield Check("zram0 swap", "inactive", "/proc/swaps", _zram_swap_state)
    if plan.nix is not None and not nixos:
        yield Check("nix.conf managed block", "present", NIX_CONF, _nix_conf_block)
    if plan.nix is not None:
        for key, item in plan.nix.settings.items():
            # A key unknown to an older Nix is only a warning: Nix itself only warns about it.
            parse = _substituters if key == "substituters" else Check.parse
            yield Check(f"nix {key}", item.value, f"nix:{key}", parse, severity_if_missing="warn")


READ_FILES = r'for f; do if [ -r "$f" ]; then printf "@@%s\n" "$f"; cat "$f"; echo; fi; done'


def read_live(host, checks: list[Check]) -> dict[str, str]:
    """Content of every file the checks read, in one command (plus one ``nix show-config``
    when Nix settings are checked). ``{path: text}``; unreadable files are absent."""
    paths = sorted({c.path for c in checks if not c.path.startswith("nix:")})
    result = host.run(shlex.join(["sh", "-c", READ_FILES, "fleetforge-verify", *paths]))
    live: dict[str, str] = {}
    current: list[str] | None = None
    for line in result.stdout.splitlines():
        if line.startswith("@@/"):
            current = []
            live[line[2:]] = current  # type: ignore[assignment]
        elif current is not None:
            current.append(line)
    live = {path: "\n".join(lines) for path, lines in live.items()}  # type: ignore[misc]
    if any(c.path.startswith("nix:") for c in checks):
        live.update({f"nix:{key}": value for key, value in nix_show_config(host).items()})
    return live


def nix_show_config(host) -> dict[str, str]:
    """Effective Nix settings (``nix show-config``; Nix >= 2.19 spells it ``nix config show``)."""
    flags = "--extra-experimental-features nix-command"
    for cmd in (f"nix {flags} config show", f"nix {flags} show-config"):
        result = host.run(cmd)
        if result.rc == 0:
            pairs = (line.partition(" = ") for line in result.stdout.splitlines())
            return {key.strip(): " ".join(value.split()) for key, sep, value in pairs if sep}
    return {}


def evaluate(name: str, check: Check, live: dict[str, str]) -> CheckResult:
    """Compare one check with the live values read by ``read_live``."""
    text = live.get(check.path)
    actual = check.parse(text) if text is not None else None
    if actual == check.expected:
        severity = "ok"
    elif actual is None:
        severity = check.severity_if_missing
    else:
        severity = "fail"
    return CheckResult(name, check.item, check.expected, actual, severity)  # type: ignore[arg-type]


def run_checks(name: str, host, checks: list[Check]) -> list[CheckResult]:
    """Run ``checks`` on ``host`` (testinfra, or anything with ``run(cmd) -> .rc/.stdout``);
    never raises for a failed check."""
    live = read_live(host, checks)
    return [evaluate(name, check, live) for check in checks]


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


def probe_and_plan(name: str, data: dict[str, Any], settings: HostSettings) -> tuple[Any, TuningPlan, list[Check]]:
    """Connect with testinfra, probe and plan one host: ``(testinfra host, plan, checks)``.

    Raises whatever reaching or probing the host raised (SSH errors, ``FactProcessError``,
    ``PlanError``)."""
    host = testinfra_host(name, data)
    facts = probe_with(host, settings)
    plan = plan_host(name, facts, settings)
    return host, plan, list(checks_for(plan, nixos=facts.os.is_nixos))


def verify_host(
    name: str,
    data: dict[str, Any],
    settings: HostSettings,
    extra: Callable[[str, Any], list[CheckResult]] | None = None,
) -> tuple[TuningPlan | None, list[CheckResult]]:
    """Probe, plan and check one host. A host that cannot be reached is one failed result.

    ``extra(name, testinfra host)``: more results for this host (the Nix cache's checks)."""
    try:
        host, plan, checks = probe_and_plan(name, data, settings)
    except Exception as exc:
        return None, [unreachable(name, exc)]
    return plan, run_checks(name, host, checks) + (extra(name, host) if extra else [])


def unreachable(name: str, exc: Exception) -> CheckResult:
    return CheckResult(name, "reach and probe host", "reachable", f"{type(exc).__name__}: {exc}", "fail")


def exit_code(results: list[CheckResult]) -> int:
    """Seed 001's convention: 1 if any failure, else 2 if any warning, else 0."""
    severities = {r.severity for r in results}
    return 1 if "fail" in severities else 2 if "warn" in severities else 0
