"""VM flavours: the hardware shapes the test hosts take (like OVH VPS models).

The two flavours differ in disk transport, RAM and vCPUs so that fleetforge's planner produces
different plans for them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Transport = Literal["virtio-blk", "virtio-scsi"]


@dataclass(frozen=True)
class Flavour:
    """One VM shape.

    Attributes:
        name: flavour name (``blk``, ``scsi``).
        transport: disk bus of both disks.
        memory_mib: guest RAM in MiB.
        vcpus: guest vCPU count.
        root_disk: kernel name of the root disk inside the guest (``vda``/``sda``).
        data_disk: kernel name of the second, empty disk (``vdb``/``sdb``).
        data_disk_gib: size of the second disk in GiB.
    """

    name: str
    transport: Transport
    memory_mib: int
    vcpus: int
    root_disk: str
    data_disk: str
    data_disk_gib: int = 4

    def as_dict(self) -> dict[str, object]:
        """Plain-data view (used in the recipe hash)."""
        return asdict(self)


FLAVOURS: dict[str, Flavour] = {
    "blk": Flavour("blk", "virtio-blk", 1024, 1, "vda", "vdb"),
    "scsi": Flavour("scsi", "virtio-scsi", 2048, 2, "sda", "sdb"),
}

#: The default testbed: ``(vm name, flavour name)``.
DEFAULT_SPECS: tuple[tuple[str, str], ...] = (("vm-blk-1", "blk"), ("vm-scsi-1", "scsi"))


def get_flavour(name: str) -> Flavour:
    """Return the flavour called ``name``; ``KeyError`` with the known names otherwise."""
    try:
        return FLAVOURS[name]
    except KeyError:
        raise KeyError(f"unknown flavour {name!r} (known: {', '.join(sorted(FLAVOURS))})") from None


def flavour_for_name(vm_name: str) -> str:
    """Guess a flavour from a VM name such as ``vm-blk-2`` or ``vm-scsi-3``.

    Raises:
        ValueError: the name contains no flavour name.
    """
    parts = vm_name.split("-")
    for flavour in FLAVOURS:
        if flavour in parts:
            return flavour
    raise ValueError(
        f"cannot tell the flavour of {vm_name!r}: write NAME:FLAVOUR (flavours: {', '.join(sorted(FLAVOURS))})"
    )
