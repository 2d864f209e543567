"""The checks of ``fleetforge verify`` under plain pytest with testinfra.

    FLEETFORGE_INVENTORY=inventory.py pytest fleetforge/pytest_checks.py [-n 4]

At collection, every inventory host is probed and planned (as ``fleetforge verify`` does); each
planned value becomes one test ``test_planned_value[host-item]``, which reads the live value
through testinfra and fails with host, item, expected and actual. A host that cannot be
reached is one failing test. Warnings (a Nix setting this Nix does not know) are skipped tests.
"""

from __future__ import annotations

import os

import pytest

from fleetforge.verify import checks_for, testinfra_host, verify_host


def _targets():
    from fleetforge.gather import load_inventory

    _, hosts = load_inventory(os.environ.get("FLEETFORGE_INVENTORY", "inventory.py"))
    for h in hosts:
        plan, results = verify_host(h.name, h.data, h.settings)
        if plan is None:
            yield pytest.param(h, None, results[0], id=f"{h.name}-unreachable")
            continue
        for check in checks_for(plan):
            yield pytest.param(h, check, None, id=f"{h.name}-{check.item}")


def pytest_generate_tests(metafunc):
    if "target" in metafunc.fixturenames:
        metafunc.parametrize(("target", "check", "failure"), list(_targets()))


_hosts: dict[str, object] = {}


def test_planned_value(target, check, failure):
    if check is None:
        pytest.fail(failure.line())
    host = _hosts.setdefault(target.name, testinfra_host(target.name, target.data))
    actual = check.read(host)
    if actual is None and check.severity_if_missing == "warn":
        pytest.skip(f"{target.name}: {check.item}: not reported by this host (warning)")
    assert actual == check.expected, f"{target.name}: {check.item}: expected {check.expected!r}, got {actual!r}"
