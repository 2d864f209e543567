"""pytest fixtures for the light SSH hosts (:mod:`fleetforge.testbed.sshd_hosts`).

Enable in a ``conftest.py``::

    pytest_plugins = ["fleetforge.testbed.sshd_fixtures"]

Fixtures:
    sshd_fleet (session): a started :class:`~fleetforge.testbed.sshd_hosts.SshdFleet` of
        :data:`FIXTURE_HOSTS` hosts, no added latency, files in a session tmp dir, prefix
        :data:`FIXTURE_PREFIX` on :data:`FIXTURE_SUBNET` (distinct from the defaults used by
        benchmarks). Stopped at the end of the session. Needs root, ``ip``, ``sshd`` and
        ``ssh-keygen``: if they are missing the test *errors* with the ``apt-get install`` line
        (never skipped silently). Tests must leave the hosts as they found them (resume a
        stalled host, restart a killed one).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .sshd_hosts import SshdFleet

FIXTURE_HOSTS = 3
FIXTURE_PREFIX = "ffs"
FIXTURE_SUBNET = "10.98.9.0/24"


@pytest.fixture(scope="session")
def sshd_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdFleet]:
    """A session-wide fleet of 3 light SSH hosts (see the module docstring)."""
    fleet = SshdFleet(
        tmp_path_factory.mktemp("sshd_fleet"), FIXTURE_HOSTS, prefix=FIXTURE_PREFIX, subnet=FIXTURE_SUBNET
    )
    with fleet:
        yield fleet
