"""Exceptions raised by the test-host tooling.

Every error derives from :class:`TestbedError`, so callers (CLI, pytest plugin) can catch one type
and print its message: messages are written for a human and say what to do next.
"""

from __future__ import annotations


class TestbedError(RuntimeError):
    """Base class of all testbed errors."""

    __test__ = False  # not a pytest test class despite the name


class MissingPrerequisiteError(TestbedError):
    """A program the testbed needs is not installed (the message lists the Debian packages)."""


class MirrorNotFoundError(TestbedError):
    """No Debian bookworm mirror could be found in the controller's apt sources."""


class ImageBuildError(TestbedError):
    """Building the VM image failed (mmdebstrap, mke2fs, qemu-img...)."""


class VMError(TestbedError):
    """A VM could not be started, reached, snapshotted or stopped."""


class TestbedNotUpError(TestbedError):
    """The testbed (or the named VM) is not running: run ``fleetforge testbed up`` first."""
