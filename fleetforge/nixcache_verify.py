"""``fleetforge verify`` for the shared Nix store (``fleetforge/nixcache.py``).

Clients are planned with the cache in their settings (so the plan's ``nix substituters`` and
``nix trusted-public-keys`` checks require it), plus, per host:

- cache host: ``nix cache secret key mode`` is ``600``;
- each client: ``nix cache answers nix-cache-info`` (over HTTP from the client, or the NFS
  mount's file), and ``nix cache canary substituted``: the canary path built on the cache host
  by ``deploys/nix_cache.py`` is deleted from the client's store if present and realised again,
  and must be *copied from the cache* (not built, signature checked by Nix).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

from fleetforge.nixcache import CANARY_FILE, NFS_MOUNT, PUBLIC_KEY, SECRET_KEY, CacheRoles, cache_roles, client_settings
from fleetforge.settings import HostSettings
from fleetforge.verify import CheckResult

STORE_DIR_LINE = "StoreDir: /nix/store"


@dataclass
class CacheVerification:
    """What verify adds for the inventory's cache: settings per client and extra checks."""

    roles: CacheRoles | None = None
    public_key: str = ""
    canary: str = ""
    problems: list[str] = field(default_factory=list)

    def settings(self, name: str, settings: HostSettings) -> HostSettings:
        if self.roles is None or name not in self.roles.clients or not self.public_key:
            return settings
        return client_settings(settings, self.roles, self.public_key)

    def checks(self, name: str, host) -> list[CheckResult]:
        """Extra results for host ``name`` (testinfra ``host``); never raises."""
        if self.roles is None:
            return []
        if name == self.roles.cache:
            mode = host.run(f"stat -c %a {shlex.quote(SECRET_KEY)}").stdout.strip() or "missing"
            return [_result(name, "nix cache secret key mode", "600", mode)]
        if name not in self.roles.clients:
            return []
        return [self._cache_info(name, host), self._canary(name, host)]

    def _cache_info(self, name: str, host) -> CheckResult:
        if self.roles.nfs:
            cmd = f"cat {NFS_MOUNT}/nix-cache-info"
        else:
            url = f"{self.roles.http_url}/nix-cache-info"
            code = f"import urllib.request as u; print(u.urlopen({url!r}, timeout=10).read().decode())"
            cmd = f"python3 -c {shlex.quote(code)}"
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
        path = shlex.quote(self.canary)
        out = host.run(
            f"nix-store --delete {path} >/dev/null 2>&1; nix-store --realise {path} --option connect-timeout 5 2>&1"
        )
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


def _result(name: str, item: str, expected: str, actual: str, bad: str = "fail") -> CheckResult:
    return CheckResult(name, item, expected, actual, "ok" if actual == expected else bad)


def prepare(hosts, connect: Callable[[str, dict], object]) -> CacheVerification:
    """Roles from ``hosts`` (``gather.InventoryHost``), the cache's public key and canary path
    read from the cache host through ``connect(name, data)`` (a testinfra host)."""
    groups: dict[str, list[str]] = {}
    for h in hosts:
        for g in h.groups:
            groups.setdefault(g, []).append(h.name)
    roles = cache_roles(groups, {h.name: h.settings for h in hosts})
    if roles is None:
        return CacheVerification()
    cache = next(h for h in hosts if h.name == roles.cache)
    try:
        out = connect(cache.name, cache.data).run(f"cat {PUBLIC_KEY}; echo; cat {CANARY_FILE} 2>/dev/null")
        lines = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    except Exception as exc:  # noqa: BLE001 - reported as the checks' failures
        return CacheVerification(roles, problems=[f"{roles.cache}: {exc}"])
    public = lines[0] if lines and ":" in lines[0] else ""
    canary = lines[1] if len(lines) > 1 else ""
    return CacheVerification(roles, public, canary)
