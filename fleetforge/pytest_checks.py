"""The checks of ``fleetforge verify`` under plain pytest with testinfra.

    FLEETFORGE_INVENTORY=inventory.py pytest fleetforge/pytest_checks.py

At collection, every inventory host is probed and planned (as ``fleetforge verify`` does, the
fleet's Nix cache included); each planned value and each file the deploy writes becomes one test
``test_planned_value[host-item]``, which compares the live value (read through testinfra, one
batched read per host) with the plan and fails with host, item, expected and actual. A host that
cannot be reached is one failing test. Warnings (a Nix setting this Nix does not report) are
skipped tests. The Nix cache's own checks (key mode, nix-cache-info, canary) are one test per
cache host and client, ``test_nix_cache[host]``.
"""

from __future__ import annotations

import os

import pytest

from fleetforge import verify
from fleetforge.nixcache import verify as nixcache_verify

_targets: dict[str, tuple] = {}  # host name -> (testinfra host, plan, checks)
_live: dict[str, dict[str, str]] = {}  # host name -> live values
_cache: list[nixcache_verify.CacheVerification] = []


def _params():
    from fleetforge.gather import load_inventory

    _, hosts = load_inventory(os.environ.get("FLEETFORGE_INVENTORY", "inventory.py"))
    cache = nixcache_verify.prepare(hosts, verify.testinfra_host)
    _cache.append(cache)
    for h in hosts:
        settings = cache.settings(h.name, h.settings)
        try:
            _targets[h.name] = verify.probe_and_plan(h.name, h.data, settings, cache.nixos_modules(h.name))
        except Exception as exc:
            yield pytest.param(h.name, None, verify.unreachable(h.name, exc), id=f"{h.name}-unreachable")
            continue
        for check in _targets[h.name][2]:
            yield pytest.param(h.name, check, None, id=f"{h.name}-{check.item}")


def pytest_generate_tests(metafunc):
    if "check" in metafunc.fixturenames:
        metafunc.parametrize(("name", "check", "failure"), list(_params()))
    elif "cache_host" in metafunc.fixturenames:
        roles = _cache[0].roles if _cache else None
        names = [roles.cache, *roles.clients] if roles else []
        metafunc.parametrize("cache_host", [n for n in names if n in _targets])


def test_planned_value(name, check, failure):
    if check is None:
        pytest.fail(failure.line())
    if name not in _live:
        host, _, checks = _targets[name]
        _live[name] = verify.read_live(host, checks)
    result = verify.evaluate(name, check, _live[name])
    if result.severity == "warn":
        pytest.skip(f"{name}: {check.item}: not reported by this host (warning)")
    assert result.severity == "ok", result.line()


def test_nix_cache(cache_host):
    host = _targets[cache_host][0]
    bad = [r.line() for r in _cache[0].checks(cache_host, host) if r.severity == "fail"]
    assert not bad, "\n".join(bad)
