"""Host data of the Podman storage component (``HostSettings`` inherits it)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

#: Graph drivers fleetforge plans (containers-storage.conf(5), "driver").
PodmanDriver = Literal["overlay", "btrfs", "vfs"]


# Not "podman_*": pyinfra's podman connector owns that prefix (fleetforge.settings.CONNECTOR_PREFIXES).
class PodmanSettings(BaseModel):
    """``podman`` (bool: manage Podman's storage driver where Podman is installed),
    ``containers_storage_driver`` (force a driver), ``containers_storage_switch_with_images`` (bool: switch even
    though the store holds images or containers, which Podman then no longer shows; fleetforge
    deletes nothing)."""

    podman: bool = True
    containers_storage_driver: PodmanDriver | None = None
    containers_storage_switch_with_images: bool = False
