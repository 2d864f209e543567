"""VM fixtures for the end-to-end tests."""

from fleetforge.testbed.pytest_plugin import reset_vm, testbed, testbed_vms  # noqa: F401
