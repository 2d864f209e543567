"""Checks generated from a ``TuningPlan``, run with testinfra, so what was planned is what is
checked.

``checks_for(plan)`` yields ``Check`` objects; each reads one live value through a testinfra
``Host`` and compares it with the plan. ``persistence_checks`` adds what a reboot would lose:
the SHA-256 of every file the deploy writes (rendered from the same plan, so a deleted or
edited file fails naming its path) and the zram generator. Exit codes of ``fleetforge
verify``: 0 every host passes, 1 a check failed (or a host could not be checked), 2 only
warnings.

Hosts are reached through :mod:`fleetforge.sshopts` (the same SSH settings as pyinfra's).
"""

from __future__ import annotations

import hashlib
import secrets
import shlex
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import testinfra
import testinfra.host
from testinfra.backend.base import BaseBackend, CommandResult

from fleetforge import components, sshopts
from fleetforge.checks import Check as Check  # re-exported
from fleetforge.checks import CheckResult as CheckResult  # re-exported
from fleetforge.facts.probe import SCRIPT, ZRAM_GENERATOR_PATHS, HostProbe, probe_argv
from fleetforge.models import HostFacts, TuningPlan
from fleetforge.nixos.flake import host_flake
from fleetforge.nixos.modules import ensure_import, render_modules
from fleetforge.ovh.hardware import model_mismatches
from fleetforge.paths import MANAGED_FILES, NIXOS_CONFIGURATION, NIXOS_FLAKE
from fleetforge.planner import plan_host, sysctl_keys
from fleetforge.settings import HostSettings

FLAKE_REACHES = "the host's nixosConfigurations entry lists ./configuration.nix or ./fleetforge"


def checks_for(plan: TuningPlan, nixos: bool = False) -> Iterator[Check]:
    """Every live value the plan determines, as checks: each tuning component's
    (``fleetforge.components``). ``nixos``: the host is NixOS, where ``nix.conf`` is generated
    from ``nix.settings`` (no fleetforge block in it); the effective Nix settings are still checked.
    """
    return components.checks(plan, nixos)


def file_check(path: str, content: str | None, what: str = "") -> Check:
    """``path`` must hold exactly ``content`` (compared by SHA-256 of its UTF-8 bytes, as the
    deploy uploads it). ``content=None``: no content is right (``what`` says what was expected)."""
    expected = hashlib.sha256(content.encode()).hexdigest() if content is not None else what
    return Check(f"file {path} sha256", expected, f"sha256:{path}", str.strip)


def persistence_checks(
    plan: TuningPlan, facts: HostFacts, nixos_extra: dict[str, Any] | None = None, flake_host: str | None = None
) -> Iterator[Check]:
    """What a reboot would lose, as checks: every file the deploy writes for this plan (the
    same rendering: ``components.desired_files``, on NixOS ``nixos.render_modules`` with
    ``nixos_extra`` modules and ``configuration.nix`` importing them), and the zram generator
    that turns ``zram-generator.conf`` into zram0 at boot. ``facts``: the probe's, for the
    lines of ``nix.conf`` and ``configuration.nix`` that the deploy keeps; ``flake_host``: host
    data ``nixos_flake_host`` (a flake host whose entry lists ``./fleetforge`` itself keeps its
    ``configuration.nix`` as it is).
    """
    if not facts.os.is_nixos:
        for path, content in components.desired_files(plan, facts).items():
            yield file_check(path, content)
        if plan.zram.enabled.value:
            yield Check("zram-generator installed", "present", "exists:" + ":".join(ZRAM_GENERATOR_PATHS))
        return
    for path, content in render_modules(plan, facts, extra=nixos_extra).items():
        yield file_check(path, content)
    try:
        flake = host_flake(facts, flake_host)
    except ValueError as exc:  # the deploy refuses this flake host; so does verify, with the reason
        reason = str(exc)
        yield Check(f"{NIXOS_FLAKE} reaches ./fleetforge", FLAKE_REACHES, f"sha256:{NIXOS_FLAKE}", lambda _: reason)
        return
    if flake is not None and not flake.via_configuration:
        return
    current = facts.files.get(NIXOS_CONFIGURATION)
    try:
        expected = ensure_import(current.content) if current is not None else None
    except ValueError:
        expected = None
    yield file_check(NIXOS_CONFIGURATION, expected, "a configuration.nix importing ./fleetforge")


READ_FILES = r"""
set -f; n=$1; shift
for f; do
  case $f in
    sha256:*) p=${f#sha256:}; printf '@@%s %s\n' "$n" "$f"
      if [ -f "$p" ]; then sha256sum < "$p" | cut -d' ' -f1; else echo absent; fi ;;
    podman:driver) printf '@@%s %s\n' "$n" "$f"
      podman info --format '{{.Store.GraphDriverName}}' 2>&1 | tail -n 1 ;;
    exists:*) printf '@@%s %s\n' "$n" "$f"; r=absent; IFS=:
      for p in ${f#exists:}; do [ -e "$p" ] && r=present; done; unset IFS; echo "$r" ;;
    *) if [ -r "$f" ]; then printf '@@%s %s\n' "$n" "$f"; cat "$f"; echo; fi ;;
  esac
done
"""


def read_live(host, checks: list[Check]) -> dict[str, str]:
    """Every live value the checks read, in one command (plus one ``nix show-config`` when Nix
    settings are checked). ``{path: text}``; unreadable files are absent."""
    paths = sorted({c.path for c in checks if not c.path.startswith("nix:")})
    nonce = secrets.token_hex(8)
    result = host.run(shlex.join(["sh", "-c", READ_FILES, "fleetforge-verify", nonce, *paths]))
    live = parse_live(result.stdout, nonce)
    if any(c.path.startswith("nix:") for c in checks):
        live.update({f"nix:{key}": value for key, value in nix_show_config(host).items()})
    return live


def parse_live(stdout: str, nonce: str) -> dict[str, str]:
    """``{path: text}`` from ``READ_FILES`` output: each value follows its marker line
    ``@@NONCE PATH``; ``nonce`` is new for every read, so no file's content is taken for a marker."""
    marker = f"@@{nonce} "
    collected: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in stdout.splitlines():
        if line.startswith(marker):
            current = collected.setdefault(line[len(marker) :], [])
        elif current is not None:
            current.append(line)
    return {path: "\n".join(lines) for path, lines in collected.items()}


def nix_show_config(host) -> dict[str, str]:
    """Effective Nix settings (``nix show-config``; Nix >= 2.19 spells it ``nix config show``)."""
    for sub in (["config", "show"], ["show-config"]):
        result = host.run(shlex.join(["nix", "--extra-experimental-features", "nix-command", *sub]))
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


class OpenSshBackend(BaseBackend):
    """testinfra backend running each command with ``ssh`` built by :mod:`fleetforge.sshopts`
    (options ended by ``--``, secrets through askpass, never a shell on this machine), over a
    shared master connection. testinfra's own ``ssh`` backend joins its options into a shell
    line and gives ``sshpass -p PASSWORD`` the password on the command line.

    As testinfra's: ``run`` returns a ``CommandResult``; exit 255 (ssh failed) raises
    ``RuntimeError(result)``.
    """

    NAME = "ssh"

    def __init__(self, connection: sshopts.SshConnection):
        self.connection = connection
        super().__init__(connection.host, sudo=connection.sudo, sudo_user=connection.sudo_user)

    def run(self, command: str, *args: str, timeout: float | None = None, **kwargs: Any) -> CommandResult:
        """``timeout``: seconds for the whole command (``None``: no limit); raises
        ``subprocess.TimeoutExpired`` past it."""
        command = self.get_command(command, *args)
        out = self.connection.run(command, share=True, timeout=timeout)
        result = self.result(out.returncode, self.encode(command), out.stdout, out.stderr)
        if out.returncode == 255:
            raise RuntimeError(result)
        return result


def testinfra_host(name: str, data: dict[str, Any]):
    """A testinfra ``Host`` for a pyinfra inventory host: ``@local``, or SSH with the host's
    ``ssh_*`` data as pyinfra reads it (:func:`fleetforge.sshopts.connection`; sudo with ``_sudo``).

    Raises ``ValueError`` naming the host and key when a value could not be passed to ssh safely.
    """
    if name.startswith("@local"):
        return testinfra.get_host("local://", sudo=bool(data.get("_sudo")))
    backend = OpenSshBackend(sshopts.connection(name, data))
    host = testinfra.host.Host(backend)
    backend.set_host(host)
    return host


def probe_with(host, settings: HostSettings) -> HostFacts:
    """Run the ``HostProbe`` script through testinfra and parse it (same parser as pyinfra's).

    Raises ``FactProcessError`` on unparsable output, ``RuntimeError`` if the command fails.
    """
    command = shlex.join(["sh", "-c", SCRIPT, "fleetforge-probe", *probe_argv(sysctl_keys(settings), MANAGED_FILES)])
    result = host.run(command)
    if result.rc != 0:
        raise RuntimeError(f"probe exited {result.rc}: {result.stderr.strip()[:200]}")
    return HostProbe().process(result.stdout.splitlines())


def probe_and_plan(
    name: str, data: dict[str, Any], settings: HostSettings, nixos_extra: dict[str, Any] | None = None
) -> tuple[Any, TuningPlan, list[Check]]:
    """Connect with testinfra, probe and plan one host: ``(testinfra host, plan, checks)``; the
    checks are the plan's live values and what a reboot would lose (``persistence_checks``,
    ``nixos_extra``: more NixOS modules this host gets, the Nix cache's ``nix-cache.nix``).

    Raises whatever reaching or probing the host raised (SSH errors, ``ValueError`` for SSH data
    that cannot be used, ``FactProcessError``, ``PlanError``)."""
    host = testinfra_host(name, data)
    facts = probe_with(host, settings)
    return host, *plan_and_checks(name, facts, settings, nixos_extra)


def plan_and_checks(
    name: str, facts: HostFacts, settings: HostSettings, nixos_extra: dict[str, Any] | None = None
) -> tuple[TuningPlan, list[Check]]:
    """The plan for probed ``facts`` and its checks (see ``probe_and_plan``). Raises ``PlanError``."""
    plan = plan_host(name, facts, settings)
    persistent = persistence_checks(plan, facts, nixos_extra, settings.nixos_flake_host)
    return plan, [*checks_for(plan, nixos=facts.os.is_nixos), *persistent]


class Verified(NamedTuple):
    """One host's verify: ``plan`` and ``facts`` (None when the host could not be probed) and
    every check's result."""

    plan: TuningPlan | None
    results: list[CheckResult]
    facts: HostFacts | None = None


def verify_host(
    name: str,
    data: dict[str, Any],
    settings: HostSettings,
    extra: Callable[[str, Any], list[CheckResult]] | None = None,
    nixos_extra: dict[str, Any] | None = None,
) -> Verified:
    """Probe, plan and check one host. A host that cannot be reached is one failed result.

    ``extra(name, testinfra host)``: more results for this host (the Nix cache's checks);
    ``nixos_extra``: see ``probe_and_plan``."""
    try:
        host = testinfra_host(name, data)
        facts = probe_with(host, settings)
        plan, checks = plan_and_checks(name, facts, settings, nixos_extra)
    except Exception as exc:
        return Verified(None, [unreachable(name, exc)])
    results = run_checks(name, host, checks) + (extra(name, host) if extra else [])
    return Verified(plan, results + model_warnings(name, facts, settings), facts)


def model_warnings(name: str, facts: HostFacts, settings: HostSettings) -> list[CheckResult]:
    """One warning per way the detected hardware differs from the host's ``ovh_model`` (vCPUs,
    RAM, disk; ``fleetforge.ovh.hardware.model_mismatches``); none without an ``ovh_model``."""
    model = settings.ovh_model
    if model is None:
        return []
    item = f"hardware matches OVH model {model.name}"  # fleetforge.runs.commands.MODEL_ITEM
    expected = f"{model.vcores} vCores, {model.memory_mib} MiB RAM, {model.disk_gb} GB disk"
    return [CheckResult(name, item, expected, line, "warn") for line in model_mismatches(facts, model)]


def unreachable(name: str, exc: Exception) -> CheckResult:
    return CheckResult(name, "reach and probe host", "reachable", f"{type(exc).__name__}: {exc}", "fail")


def exit_code(results: list[CheckResult]) -> int:
    """1 if any failure, else 2 if any warning, else 0 (fleetforge's exit code convention)."""
    severities = {r.severity for r in results}
    return 1 if "fail" in severities else 2 if "warn" in severities else 0
