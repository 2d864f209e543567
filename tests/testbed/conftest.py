"""VM fixtures for the testbed's own tests (works whether or not the top-level conftest
registers ``fleetforge.testbed.pytest_plugin``)."""

from fleetforge.testbed.pytest_plugin import reset_vm, testbed, testbed_vms  # noqa: F401
