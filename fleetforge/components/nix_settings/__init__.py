"""Nix settings (nix.conf), only where Nix is installed.

Host data: ``nix`` (bool), ``nix_settings = {"key": value}``, ``nix_substituters``,
``nix_trusted_public_keys``. Linux: fleetforge's block in ``/etc/nix/nix.conf``
(``nix.conf.j2``; the file's other lines are kept, except settings fleetforge now manages),
applied by restarting nix-daemon; NixOS: ``nix.settings``. Live: the effective settings
(``nix config show``). cache.nixos.org and its key are planned once (URLs compared normalised),
and not at all on NixOS, which adds both itself. Only settings the host's Nix lists
(``facts.nix.setting_names``) are written: a default it lacks is skipped with the reason, a host
data key it lacks is a ``PlanError``; deprecated names (``binary-caches``) are refused with the
host data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pyinfra.api import StringCommand

from fleetforge.checks import Check, normalise_space
from fleetforge.components.base import DATA, Component, Row
from fleetforge.components.nix_settings.settings import EXTRA, current_name
from fleetforge.errors import PlanError
from fleetforge.models import HostFacts, NixPlan, Planned, TuningPlan
from fleetforge.paths import NIX_CONF
from fleetforge.render import render
from fleetforge.secrets import REDACTED

if TYPE_CHECKING:
    from fleetforge.settings import HostSettings

_INT = re.compile(r"-?[0-9]+")
MANUAL = "Nix manual, nix.conf"
CONNECT_TIMEOUT_SOURCE = (
    "fleetforge default: Nix's 0 sets no connect limit of its own, so an unreachable cache holds up "
    "substitution until curl gives up; Nix manual, nix.conf (connect-timeout)"
)
STALLED_SOURCE = (
    "fleetforge default: a download that stalls is retried after 60 s instead of Nix's 300 s; "
    "Nix manual, nix.conf (stalled-download-timeout)"
)
BUILDERS_SOURCE = (
    "fleetforge default: remote builders fetch dependencies from their own caches instead of waiting for "
    "this host to upload them (Nix's default is false); Nix manual, nix.conf (builders-use-substitutes)"
)
NIX_BEGIN = "# BEGIN fleetforge: the settings below are managed; edit host data instead"
NIX_END = "# END fleetforge"
NIX_DAEMON_RESTART = (StringCommand("systemctl", "try-restart", "nix-daemon.service"),)
NIXOS_CACHE = "https://cache.nixos.org"
NIXOS_CACHE_KEY = "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="
# NixOS's nix.nix (nix-daemon.nix before 23.11) defines, for every release with nix.settings:
#   substituters = mkAfter [ "https://cache.nixos.org/" ];  trusted-public-keys = [ NIXOS_CACHE_KEY ];
# Both options are lists that concatenate, so planning them again lists them twice in nix.conf.
ADDED_BY_NIXOS = "added by NixOS itself (nixos/modules/config/nix.nix: nix.settings)"
# nix.conf keys whose NixOS option type is a list (nixos/modules/config/nix.nix).
NIX_LIST_KEYS = frozenset(
    {"substituters", "trusted-substituters", "trusted-public-keys", "trusted-users", "allowed-users",
     "extra-substituters", "extra-trusted-public-keys", "system-features", "experimental-features"}
)  # fmt: skip


def manual(key: str) -> str:
    """The Nix manual's entry for nix.conf setting ``key``: ``Nix manual, nix.conf (max-jobs)``."""
    return f"{MANUAL} ({key})"


def normalise_url(url: str) -> str:
    """A substituter URL for comparison: scheme and host lowercase, trailing ``/`` of the path
    dropped, query kept (``https://Cache.NixOS.org/`` == ``https://cache.nixos.org``)."""
    base, sep, query = url.partition("?")
    scheme, colon, rest = base.partition("://")
    if not colon:
        return url
    authority, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{authority.lower()}{(slash + path).rstrip('/')}{sep}{query}"


def _unique(items: list[str], drop: set[str], key=lambda item: item) -> list[str]:
    """``items`` without repeats and without those whose ``key`` is in ``drop``, in order."""
    seen, out = set(drop), []
    for item in items:
        if key(item) not in seen:
            seen.add(key(item))
            out.append(item)
    return out


def _public_caches(settings: HostSettings) -> dict[str, tuple[str, str, str]]:
    """``substituters`` and ``trusted-public-keys``: the inventory's caches first, then
    cache.nixos.org and its key, each once (URLs compared normalised)."""
    urls = _unique([*settings.nix_substituters, NIXOS_CACHE], set(), normalise_url)
    keys = _unique([*settings.nix_trusted_public_keys, NIXOS_CACHE_KEY], set())
    return {
        "substituters": (" ".join(urls), "inventory caches first, then the public cache", manual("substituters")),
        "trusted-public-keys": (
            " ".join(keys),
            "verify substituted paths (binary-cache-public-keys is the old name)",
            manual("trusted-public-keys"),
        ),
    }


def _leave_to_nixos(items: dict[str, tuple[str, str, str]]) -> None:
    """On NixOS: drop cache.nixos.org and its key from ``items`` (planned or from host data),
    since NixOS lists both itself, the URL last (``mkAfter``); a list left empty is not planned."""
    for key, drop, norm in (
        ("substituters", normalise_url(NIXOS_CACHE), normalise_url),
        ("trusted-public-keys", NIXOS_CACHE_KEY, str),
    ):
        if key not in items:
            continue
        value, reason, source = items[key]
        kept = _unique(value.split(), {drop}, norm)
        if kept:
            items[key] = (" ".join(kept), f"{reason}; {drop} is {ADDED_BY_NIXOS}", source)
        else:
            del items[key]


def nix_value(value: str | int | bool | list[str]) -> str:
    """A nix.conf value: booleans ``true``/``false``, lists space-separated."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return " ".join(value)
    return str(value)


def _defaults(facts: HostFacts, settings: HostSettings) -> dict[str, tuple[str, str, str]]:
    """fleetforge's nix.conf settings: ``{key: (value, reason, source)}``.

    ``max-jobs`` x ``cores`` is kept at the vCPU count so parallel builds do not oversubscribe
    the VM (cores=8 with max-jobs=4 on 8 vCPUs would run up to 32 threads;
    "reserved-build-cores" is not a Nix setting). ``fsync-metadata`` and ``use-sqlite-wal``
    keep Nix's defaults: turning both off trades durability for speed, and SQLite's WAL mode
    only fails on a network filesystem (SQLite's "Write-Ahead Logging").
    """
    cpus = facts.cpu.logical_cpus
    max_jobs = max(1, cpus // 2)
    cores = max(1, cpus // max_jobs)
    budget = f"{max_jobs} jobs x {cores} cores = {max_jobs * cores} of {cpus} vCPUs"
    vcpus = "fleetforge default: jobs x cores stays within the vCPUs, so parallel builds do not oversubscribe the VM"
    return {
        "max-jobs": (str(max_jobs), f"half the vCPUs build in parallel; {budget}", f"{vcpus}; {manual('max-jobs')}"),
        "cores": (str(cores), f"cores per build so that {budget}", f"{vcpus}; {manual('cores')}"),
        "http-connections": ("25", "parallel substituter downloads (Nix's default, kept)", manual("http-connections")),
        "connect-timeout": ("10", "give up on an unreachable cache after 10 s", CONNECT_TIMEOUT_SOURCE),
        "stalled-download-timeout": ("60", "retry a stalled download after 60 s", STALLED_SOURCE),
        "download-attempts": ("5", "retries per download (Nix's default, kept)", manual("download-attempts")),
        **_public_caches(settings),
        "builders-use-substitutes": ("true", "remote builders fetch from caches", BUILDERS_SOURCE),
        "fsync-metadata": (
            "true",
            "keep durability (Nix's default; turning it off trades durability for speed)",
            manual("fsync-metadata"),
        ),
        "use-sqlite-wal": (
            "true",
            "WAL mode on a local store (Nix's default); false is only needed for a store on a network filesystem",
            f"{manual('use-sqlite-wal')}; SQLite documentation, Write-Ahead Logging (wal.html)",
        ),
    }


def _nix_name(facts: HostFacts) -> str:
    return f"Nix {facts.nix.version}" if facts.nix.version else "the host's Nix"


def known_setting(name: str, names: Collection[str]) -> bool:
    """Whether a Nix whose ``nix config show`` lists ``names`` takes ``name``: a listed setting,
    or ``extra-`` before one (nix.conf(5): appends to that list setting)."""
    return name in names or (name.startswith(EXTRA) and name.removeprefix(EXTRA) in names)


def unknown_setting_error(host: str, key: str, facts: HostFacts) -> PlanError:
    """The error for host data naming ``key``, a setting the host's Nix does not know."""
    got = f"got {key!r}"
    current = current_name(key)
    if current is not None:
        got += f" (the deprecated name of {current}: write {current})"
    expected = f"expected a setting of {_nix_name(facts)} (nix config show lists them), {got}"
    return PlanError(host, f"nix_settings.{key}", expected)


def _skip_unknown(items: dict[str, tuple[str, str, str]], facts: HostFacts) -> dict[str, str]:
    """Drop from ``items`` the settings the host's Nix does not list; ``{key: reason}`` of those
    dropped (none when the probe could not list the names)."""
    names = facts.nix.setting_names
    if names is None:
        return {}
    reason = f"not a setting of {_nix_name(facts)} (nix config show)"
    skipped = {key: reason for key in items if not known_setting(key, names)}
    for key in skipped:
        del items[key]
    return skipped


def plan_nix(facts: HostFacts, settings: HostSettings, host: str = "this host") -> NixPlan | None:
    """nix.conf settings, only where Nix is installed, and only those the host's Nix knows.

    A default the host's Nix does not list (``facts.nix.setting_names``) is skipped with the
    reason; a host data key it does not list raises ``PlanError`` naming ``host`` and the key.
    When the names are unknown (``None``), nothing is checked: Nix itself only warns.
    """
    if not facts.nix.installed or not settings.nix:
        return None
    names = facts.nix.setting_names
    for key in settings.nix_settings:
        if names is not None and not known_setting(key, names):
            raise unknown_setting_error(host, key, facts)
    items = _defaults(facts, settings)
    skipped = _skip_unknown(items, facts)
    for key, value in settings.nix_settings.items():
        items[key] = (nix_value(value), "set in host data", DATA)
    if facts.os.is_nixos:
        _leave_to_nixos(items)
    planned = {key: Planned(value=v, reason=r, source=s) for key, (v, r, s) in items.items()}
    return NixPlan(settings=planned, skipped=skipped)


def nix_kept_lines(current: str | None, managed_keys: set[str]) -> list[str]:
    """Lines of an existing ``nix.conf`` that fleetforge keeps: everything outside its own
    block except settings it now manages (each key is written once, in its block)."""
    kept, inside = [], False
    for line in (current or "").splitlines():
        stripped = line.strip()
        if stripped == NIX_BEGIN:
            inside = True
        elif stripped == NIX_END:
            inside = False
        elif not inside and stripped.partition("=")[0].strip() not in managed_keys:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    return kept


def _nix_setting(key: str, value: str) -> int | bool | str | list[str]:
    if key in NIX_LIST_KEYS:
        return value.split()
    if value in ("true", "false"):
        return value == "true"
    return int(value) if _INT.fullmatch(value) else value


def _nix_conf_block(text: str) -> str:
    return "present" if NIX_BEGIN in text else "absent"


def _substituters(text: str) -> str:
    return " ".join(url.rstrip("/") for url in text.split())


def _sorted_words(text: str) -> str:
    return " ".join(sorted(text.split()))


class NixSettings(Component):
    name = "nix-settings"
    path = NIX_CONF
    file_title = "Nix settings"
    apply_title = "Restart nix-daemon"
    nixos_module = "nix-settings.nix"

    def plan(self, host: str, facts: HostFacts, settings: HostSettings) -> dict[str, Any]:
        return {"nix": plan_nix(facts, settings, host)}

    def file(self, plan: TuningPlan, facts: HostFacts) -> str | None:
        if plan.nix is None:
            return None
        current = facts.files.get(NIX_CONF)
        return render(
            "nix.conf.j2",
            kept_lines=nix_kept_lines(current.content if current else None, set(plan.nix.settings)),
            settings=plan.nix.settings,
            skipped=plan.nix.skipped,
            begin_marker=NIX_BEGIN,
            end_marker=NIX_END,
        )

    def nixos_options(self, plan: TuningPlan, facts: HostFacts) -> dict[str, Any] | None:
        if plan.nix is None:
            return None
        return {"nix": {"settings": {key: _nix_setting(key, item.value) for key, item in plan.nix.settings.items()}}}

    def checks(self, plan: TuningPlan, nixos: bool) -> Iterator[Check]:
        """The effective settings (on NixOS, where nix.conf is generated, with NixOS's own
        cache.nixos.org entry and key); a key unknown to an older Nix is only a warning, as Nix
        itself only warns about it."""
        if plan.nix is None:
            return
        if not nixos:
            yield Check("nix.conf managed block", "present", NIX_CONF, _nix_conf_block)
        for key, item in plan.nix.settings.items():
            parse, expected = (_substituters if key == "substituters" else normalise_space), item.value
            if nixos and key == "substituters":  # NixOS appends its own entry (mkAfter)
                expected = _substituters(f"{expected} {NIXOS_CACHE}")
            elif nixos and key == "trusted-public-keys":  # NixOS's key: a plain definition, any order
                parse, expected = _sorted_words, _sorted_words(f"{expected} {NIXOS_CACHE_KEY}")
            yield Check(f"nix {key}", expected, f"nix:{key}", parse, severity_if_missing="warn")

    def apply(self, plan: TuningPlan, facts: HostFacts) -> Sequence[StringCommand]:
        return NIX_DAEMON_RESTART if facts.nix.daemon_unit else ()

    def restore(self, pre, post, changed: list[str]) -> tuple[list[str], list[str]]:
        if pre.is_nixos or NIX_CONF not in changed:
            return [], []
        restart = " ".join(str(c.get_raw_value()) for c in NIX_DAEMON_RESTART)
        return [f"if systemctl cat nix-daemon.service >/dev/null 2>&1; then {restart}; fi"], []

    def rows(self, plan: TuningPlan, secret: Callable[[str], bool]) -> Iterator[Row]:
        for key, item in plan.nix.settings.items() if plan.nix else ():
            yield f"nix {key}", REDACTED if secret(key) else item.value, item.reason, item.source
        for key, reason in plan.nix.skipped.items() if plan.nix else ():
            yield f"nix {key}", "(skipped)", reason, "detected"
