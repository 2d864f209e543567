"""What a host is: the models the facts in ``fleetforge.facts`` return (``HostFacts`` and its
parts, ``ManagedFile``) and their base ``Model``.

Units are in the field names (``size_bytes``, ``read_ahead_kb``); numbers are numbers. This
module is part of the facts leaf: it imports nothing from the rest of fleetforge.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Transport = Literal["virtio-blk", "virtio-scsi", "scsi", "sata", "nvme", "usb", "mmc", "unknown"]
Firmware = Literal["efi", "bios"]


class Model(BaseModel):
    """Base: frozen, strict about unknown fields, JSON-able for pyinfra's encoders."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_json(self) -> dict[str, Any]:
        """Return the model as JSON-compatible data (used by pyinfra's ``json_encode``)."""
        return self.model_dump(mode="json")


# -- detected facts ---------------------------------------------------------------------------


class Partition(Model):
    """A partition of a whole disk, as ``lsblk`` reports it."""

    name: str
    path: str
    size_bytes: int
    fstype: str | None
    mountpoint: str | None


class Disk(Model):
    """A whole disk (``lsblk`` TYPE=disk; loop, zram, ram and optical devices excluded).

    ``rotational`` is the kernel's ``queue/rotational`` flag as reported; virtio-blk reports 1
    inside QEMU guests, so do not read it as "spinning" without the transport.
    """

    name: str
    path: str
    by_id_path: str | None
    size_bytes: int
    transport: Transport
    rotational: bool
    model: str | None
    serial: str | None
    scheduler: str | None
    schedulers_available: list[str]
    read_ahead_kb: int
    nr_requests: int | None
    partitions: list[Partition]
    #: hardware queues (directories under ``/sys/block/<name>/mq/``); the kernel picks
    #: mq-deadline for 1 and none for more (``block/elevator.c``). ``None``: not read.
    nr_hw_queues: int | None = None


class Cpu(Model):
    logical_cpus: int
    model_name: str
    hypervisor_flag: bool


class SwapDevice(Model):
    path: str
    kind: str
    size_bytes: int
    used_bytes: int
    priority: int


class Memory(Model):
    mem_total_bytes: int
    swap_devices: list[SwapDevice]


class OsRelease(Model):
    id: str
    id_like: list[str]
    version_id: str | None
    pretty_name: str | None
    hostname: str | None = None  # ``uname -n``, when it is an RFC 1123 host name
    nixos_release: str | None = None  # ``YY.MM`` from ``nixos-version`` (NixOS only)

    @property
    def is_nixos(self) -> bool:
        return self.id == "nixos"


class ZramDevice(Model):
    name: str
    disksize_bytes: int
    algorithm: str | None
    swap_active: bool


class NixInfo(Model):
    installed: bool
    version: str | None
    conf_present: bool
    daemon_unit: bool
    #: names of the settings this Nix knows (``nix config show``; values are never read, some
    #: are secrets). ``None``: not listed (no Nix, or it could not print its settings).
    setting_names: list[str] | None = None


class BtrfsFilesystem(Model):
    """A mounted btrfs filesystem (``/sys/fs/btrfs/<fsid>``).

    btrfs reads files through a backing device of its own (``btrfs-N`` under
    ``/sys/class/bdi``), whose read-ahead it sets at mount to at least 4 MiB
    (``fs/btrfs/disk-io.c``, ``open_ctree``); the disks' ``queue/read_ahead_kb`` does not govern
    file reads on it.
    """

    fsid: str  # the filesystem UUID
    bdi: str  # its backing device: btrfs-1, btrfs-2...
    read_ahead_kb: int  # /sys/fs/btrfs/<fsid>/bdi/read_ahead_kb
    devices: list[str]  # kernel names of its devices: vdb1, vdb


class PodmanStore(Model):
    """What one graph driver's part of a containers-storage store holds (``<graphroot>/<driver>-*``)."""

    driver: str  # overlay, btrfs, vfs...
    images: int
    containers: int


class PodmanInfo(Model):
    """Podman and its storage (containers-storage.conf(5)), read without starting Podman.

    ``conf``: the storage.conf read (``/etc/containers/storage.conf``, else
    ``/usr/share/containers/storage.conf``, else ``None``); ``driver``/``graphroot``/``runroot``
    as its ``[storage]`` table sets them (``None``: unset; graphroot then defaults to
    ``/var/lib/containers/storage``); ``graphroot_fstype`` the filesystem holding graphroot (or
    its nearest existing parent); ``stores`` the drivers that already hold data there.
    """

    version: str | None
    conf: str | None
    driver: str | None
    graphroot: str
    runroot: str | None
    graphroot_fstype: str | None
    stores: list[PodmanStore]


class ManagedFile(Model):
    """Current content of a file fleetforge manages (``None`` in ``HostFacts.files`` if absent)."""

    sha256: str
    content: str


class HostFacts(Model):
    """Everything one deploy needs, gathered by ``fleetforge.facts.probe.HostProbe`` in one round trip."""

    kernel_release: str
    disks: list[Disk]
    cpu: Cpu
    memory: Memory
    virtualization: str
    firmware: Firmware
    os: OsRelease
    sysctl: dict[str, str]
    zram: list[ZramDevice]
    zram_generator: bool
    package_manager: str | None
    nix: NixInfo
    files: dict[str, ManagedFile | None]
    btrfs: list[BtrfsFilesystem] = []
    podman: PodmanInfo | None = None  # None: Podman is not installed

    def disk(self, name: str) -> Disk:
        for disk in self.disks:
            if disk.name == name:
                return disk
        raise KeyError(name)
