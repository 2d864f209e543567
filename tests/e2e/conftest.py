"""VM fixtures for the end-to-end tests, and the heavy-I/O lock.

``scripts/test.sh`` runs two pytest processes at once (``tests/side-modules.txt``). The
measured-tuning tests drive fio at queue depth 16 on TCG guests; run beside another process's
VMs, one such guest once lost its timer ticks ("rcu_preempt kthread timer wakeup didn't
happen") and then its disk I/O for good. So every VM test holds a shared lock on
``<testbed>/run/heavy-io.lock`` while it runs, and a test that asks for ``io_alone`` holds it
exclusively: it waits for the other process's current test and runs with no other VM test.
To make that wait rare, ``scripts/test.sh`` sets ``FLEETFORGE_IO_ALONE_ORDER``: ``first`` in the
side process (its fio test runs while the other process is still in its unit tests) and
``last`` in the main process (its fio tests run after the shorter side process has finished).
"""

import fcntl
import os
from collections.abc import Iterator

import pytest

from fleetforge.testbed.paths import Layout
from fleetforge.testbed.pytest_plugin import reset_vm, testbed, testbed_vms  # noqa: F401


def _lock(mode: int) -> Iterator[None]:
    run = Layout.at().run
    run.mkdir(parents=True, exist_ok=True)
    fd = os.open(run / "heavy-io.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Move the ``io_alone`` tests first or last (``FLEETFORGE_IO_ALONE_ORDER``), keeping the
    order within each part; unset: pytest's order."""
    order = os.environ.get("FLEETFORGE_IO_ALONE_ORDER")
    if order not in ("first", "last"):
        return
    alone = [i for i in items if "io_alone" in getattr(i, "fixturenames", ())]
    rest = [i for i in items if "io_alone" not in getattr(i, "fixturenames", ())]
    items[:] = alone + rest if order == "first" else rest + alone


@pytest.fixture
def io_alone() -> Iterator[None]:
    """This test runs with no VM test of the other pytest process beside it."""
    yield from _lock(fcntl.LOCK_EX)


@pytest.fixture(autouse=True)
def _shared_io(request: pytest.FixtureRequest) -> Iterator[None]:
    if "io_alone" in request.fixturenames:
        yield
        return
    yield from _lock(fcntl.LOCK_SH)
