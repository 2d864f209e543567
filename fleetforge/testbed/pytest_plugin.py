"""pytest fixtures for tests that need the local QEMU test hosts.

Enable in the top-level ``conftest.py``::

    pytest_plugins = ["fleetforge.testbed.pytest_plugin"]

(or import the fixtures into a ``conftest.py``: ``from fleetforge.testbed.pytest_plugin import
testbed, testbed_vms, reset_vm``).

Fixtures:
    testbed (session): a :class:`~fleetforge.testbed.Testbed` whose VMs are up. The first use in
        a session builds the image (1-3 min, cached) and golden states (about 1 min, cached)
        if needed and starts the VMs (seconds); VMs already running and reachable are reused
        as they are (not reset). If QEMU or another tool is missing the test *fails* with the
        ``apt-get install`` line: VM tests are never skipped silently.
    testbed_vms (session): ``{name: VMInfo}`` of those VMs.
    reset_vm (function): ``reset_vm(name) -> seconds``: restore a VM to its ``clean`` snapshot.

Environment:
    FLEETFORGE_TESTBED_VMS: VMs to start, e.g. ``"vm-blk-1:blk vm-scsi-1:scsi vm-blk-2:blk"``
        (default: the two default VMs).
    FLEETFORGE_TESTBED_KEEP: ``1`` (default) leaves the VMs running after the session so the
        next run starts in seconds; ``0`` stops the VMs this session started (VMs that were
        already running before the session are left alone).
    FLEETFORGE_TESTBED_DIR: testbed directory (default ``~/.cache/fleetforge/testbed``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator

import pytest

from .errors import MissingPrerequisiteError, TestbedError
from .prereq import missing_packages
from .vm import Testbed, VMInfo, normalize_specs

ENV_VMS = "FLEETFORGE_TESTBED_VMS"
ENV_KEEP = "FLEETFORGE_TESTBED_KEEP"


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``vm`` marker (tests that need the QEMU test hosts)."""
    config.addinivalue_line("markers", "vm: needs the local QEMU test hosts (slow)")


def _specs() -> list[str] | None:
    raw = os.environ.get(ENV_VMS, "").replace(",", " ").split()
    return raw or None


def _keep() -> bool:
    return os.environ.get(ENV_KEEP, "1").strip().lower() not in ("0", "no", "false", "off")


@pytest.fixture(scope="session")
def testbed(request: pytest.FixtureRequest) -> Iterator[Testbed]:
    """A :class:`Testbed` with the session's VMs up (see the module docstring)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")

    def log(msg: str) -> None:
        line = f"[testbed] {msg}"
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line, file=sys.stderr)

    tb = Testbed(log=log)
    missing = missing_packages(build=tb.image() is None)
    if missing:
        pytest.fail(
            "the VM tests need QEMU and image tools that are not installed: "
            f"apt-get install -y --no-install-recommends {' '.join(missing)}",
            pytrace=False,
        )
    before = {vm.name: vm.pid for vm in tb.status(check_ssh=False) if vm.running}
    try:
        vms = tb.up(_specs())
    except MissingPrerequisiteError as e:
        pytest.fail(str(e), pytrace=False)
    except TestbedError as e:
        pytest.fail(f"the test VMs did not start: {e}", pytrace=False)
    started = [vm.name for vm in vms if before.get(vm.name) != vm.pid]
    yield tb
    if not _keep() and started:
        tb.down(started)


@pytest.fixture(scope="session")
def testbed_vms(testbed: Testbed) -> dict[str, VMInfo]:
    """``{name: VMInfo}`` of the session's VMs."""
    names = {name for name, _ in normalize_specs(_specs())}
    return {vm.name: vm for vm in testbed.status(check_ssh=False) if vm.name in names}


@pytest.fixture
def reset_vm(testbed: Testbed) -> Callable[[str], float]:
    """A function ``reset_vm(name) -> seconds`` restoring a VM to its ``clean`` snapshot."""
    return testbed.reset
