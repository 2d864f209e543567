"""``fleetforge verify`` for the shared Nix store (``fleetforge/nixcache/roles.py``).

Clients are planned with the cache in their settings (so the plan's ``nix substituters`` and
``nix trusted-public-keys`` checks require it), plus, per host:

- cache host: ``nix cache secret key mode`` is ``600``; on a non-NixOS cache host the SHA-256
  of every file ``deploys/nix_cache.py`` writes (refresh service and timer, nginx site, export);
- each client: ``nix cache answers nix-cache-info`` (over HTTP from the client, or the NFS
  mount's file), and ``nix cache canary substituted``: the canary path built on the cache host
  by ``deploys/nix_cache.py`` is deleted from the client's store if present and realised again,
  and must be *copied from the cache* (not built, signature checked by Nix); a non-NixOS NFS
  client's mount unit by SHA-256.

On NixOS hosts the cache's module ``nix-cache.nix`` is one of the host's modules:
``CacheVerification.nixos_modules(name)`` gives it to ``fleetforge.verify.verify_host``.

What the cache host answers (its public key, the canary path) goes to the clients' checks only
once it has the shape of a public key and a store path.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from fleetforge.facts.nix_cache import PUBLIC_KEY_TEXT
from fleetforge.nixcache.roles import (
    CANARY_FILE,
    NFS_MOUNT,
    PUBLIC_KEY,
    SECRET_KEY,
    CacheRoles,
    cache_host_files,
    cache_roles,
    client_settings,
    nfs_client_files,
    nixos_cache_options,
    nixos_client_options,
)
from fleetforge.settings import HostSettings
from fleetforge.verify import Check, CheckResult, evaluate, file_check, read_live

STORE_DIR_LINE = "StoreDir: /nix/store"
STORE_PATH = re.compile(r"/nix/store/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+._?=-]+")
_READ_KEY = 'cat "$1"; echo; cat "$2" 2>/dev/null'
_CANARY = 'nix-store --delete "$1" >/dev/null 2>&1; nix-store --realise "$1" --option connect-timeout 5 2>&1'
_NIXOS = Check("NixOS", "absent", "exists:/etc/NIXOS")


@dataclass
class CacheVerification:
    """What verify adds for the inventory's cache: settings per client and extra checks."""

    roles: CacheRoles | None = None
    public_key: str = ""
    canary: str = ""
    problems: list[str] = field(default_factory=list)
    server: str = "nix-serve"

    def settings(self, name: str, settings: HostSettings) -> HostSettings:
        if self.roles is None or name not in self.roles.clients or not self.public_key:
            return settings
        return client_settings(settings, self.roles, self.public_key)

    def nixos_modules(self, name: str) -> dict[str, Any]:
        """``{"nix-cache.nix": options}`` when NixOS host ``name`` is the cache or an NFS client
        (what ``deploys/vps.py`` writes there), else ``{}``; the cache's options are a function
        of its NixOS release (``nixos.render_modules`` applies it)."""
        if self.roles is None:
            return {}
        if name == self.roles.cache:
            return {"nix-cache.nix": partial(nixos_cache_options, self.roles, self.server)}
        if self.roles.nfs and name in self.roles.clients:
            return {"nix-cache.nix": nixos_client_options(self.roles)}
        return {}

    def checks(self, name: str, host) -> list[CheckResult]:
        """Extra results for host ``name`` (testinfra ``host``); never raises."""
        if self.roles is None:
            return []
        if name == self.roles.cache:
            mode = host.run(shlex.join(["stat", "-c", "%a", SECRET_KEY])).stdout.strip() or "missing"
            results = [_result(name, "nix cache secret key mode", "600", mode)]
            return results + _file_results(name, host, cache_host_files(self.roles))
        if name not in self.roles.clients:
            return []
        files = nfs_client_files(self.roles) if self.roles.nfs else {}
        return [self._cache_info(name, host), self._canary(name, host), *_file_results(name, host, files)]

    def _cache_info(self, name: str, host) -> CheckResult:
        if self.roles.nfs:
            cmd = shlex.join(["cat", f"{NFS_MOUNT}/nix-cache-info"])
        else:
            url = f"{self.roles.http_url}/nix-cache-info"
            code = f"import urllib.request as u; print(u.urlopen({url!r}, timeout=10).read().decode())"
            cmd = shlex.join(["python3", "-c", code])
        out = host.run(cmd)
        found = (
            STORE_DIR_LINE if STORE_DIR_LINE in out.stdout else (out.stderr.strip().splitlines() or ["no answer"])[-1]
        )
        return _result(name, "nix cache answers nix-cache-info", STORE_DIR_LINE, found)

    def _canary(self, name: str, host) -> CheckResult:
        source = self.roles.substituter().split("?", 1)[0]
        expected = f"copied from {source}"
        if not self.canary:
            return _result(name, "nix cache canary substituted", expected, "no canary on the cache host", "warn")
        out = host.run(shlex.join(["sh", "-c", _CANARY, "fleetforge-canary", self.canary]))
        copied = re.search(r"copying path '[^']+' from '([^']+)'", out.stdout)
        if copied and out.rc == 0:
            actual = f"copied from {copied.group(1)}"
        elif "building" in out.stdout:
            actual = "built locally"
        elif out.rc == 0:
            actual = "present, not copied (could not be deleted to test)"
        else:
            actual = (out.stdout.strip().splitlines() or [f"exit {out.rc}"])[-1]
        return _result(name, "nix cache canary substituted", expected, actual)


def _file_results(name: str, host, files: dict[str, str]) -> list[CheckResult]:
    """SHA-256 checks of ``files`` (``{path: content}``) on a non-NixOS host, one round trip
    (on NixOS these files are modules, checked by ``fleetforge.verify``)."""
    if not files:
        return []
    checks = [file_check(path, content) for path, content in files.items()]
    live = read_live(host, [_NIXOS, *checks])
    if evaluate(name, _NIXOS, live).severity != "ok":
        return []
    return [evaluate(name, check, live) for check in checks]


def _result(name: str, item: str, expected: str, actual: str, bad: str = "fail") -> CheckResult:
    return CheckResult(name, item, expected, actual, "ok" if actual == expected else bad)


def prepare(hosts, connect: Callable[[str, dict], object]) -> CacheVerification:
    """Roles from ``hosts`` (``gather.InventoryHost``), the cache's public key and canary path
    read from the cache host through ``connect(name, data)`` (a testinfra host); a key or path
    of the wrong shape is dropped (the clients' checks then fail or warn). Raises
    ``SettingsError`` for bad roles (``nixcache.cache_roles``)."""
    groups: dict[str, list[str]] = {}
    for h in hosts:
        for g in h.groups:
            groups.setdefault(g, []).append(h.name)
    roles = cache_roles(groups, {h.name: h.settings for h in hosts})
    if roles is None:
        return CacheVerification()
    cache = next(h for h in hosts if h.name == roles.cache)
    server = cache.settings.nix_cache_server
    try:
        out = connect(cache.name, cache.data).run(
            shlex.join(["sh", "-c", _READ_KEY, "fleetforge", PUBLIC_KEY, CANARY_FILE])
        )
        lines = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    except Exception as exc:  # noqa: BLE001 - reported as the checks' failures
        return CacheVerification(roles, problems=[f"{roles.cache}: {exc}"], server=server)
    public = lines[0] if lines and PUBLIC_KEY_TEXT.fullmatch(lines[0]) else ""
    canary = lines[1] if len(lines) > 1 and STORE_PATH.fullmatch(lines[1]) else ""
    return CacheVerification(roles, public, canary, server=server)
