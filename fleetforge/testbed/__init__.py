"""Local test hosts for fleetforge: disposable OVH-like QEMU VMs built from Debian packages.

Public API::

    Testbed(root=None).up(specs=None) -> list[VMInfo]   # start / reuse VMs
    Testbed.down(names=None), .status(), .reset(name), .stop(name), .ssh(name, command)
    inventory_hosts(root=None, running_only=False) -> list[(name, pyinfra host data)]

CLI: ``fleetforge testbed up|down|status|reset|stop|ssh|build`` or
``python -m fleetforge.testbed ...``. See README.md in this directory.
"""

from .errors import (
    ImageBuildError,
    MirrorNotFoundError,
    MissingPrerequisiteError,
    TestbedError,
    TestbedNotUpError,
    VMError,
)
from .flavours import DEFAULT_SPECS, FLAVOURS, Flavour
from .image import Recipe
from .prereq import APT_PACKAGES, check_prerequisites, missing_packages
from .vm import Testbed, VMInfo, inventory_hosts

__all__ = [
    "APT_PACKAGES",
    "DEFAULT_SPECS",
    "FLAVOURS",
    "Flavour",
    "ImageBuildError",
    "MirrorNotFoundError",
    "MissingPrerequisiteError",
    "Recipe",
    "Testbed",
    "TestbedError",
    "TestbedNotUpError",
    "VMError",
    "VMInfo",
    "check_prerequisites",
    "inventory_hosts",
    "missing_packages",
]
