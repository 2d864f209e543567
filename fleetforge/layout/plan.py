"""Disk layouts for disko (install-time, consumed by nixos-anywhere), planned from ``HostFacts``.

``layout_for(host, facts, settings) -> DiskLayout`` is pure: the same facts and host data always
give the same layout. ``DiskLayout.disko_config()`` is the layout's own JSON projection of the
disko file (``templates/disko.nix.j2`` must evaluate to exactly this), and the same model drives
``fleetforge.layout.apply`` (lay the disk out for real on a running Linux host) and its read-back.

What is realised how (btrfs(5) "MOUNT OPTIONS": most mount options apply to the whole
filesystem and only those of the first mounted subvolume take effect, so per-subvolume
``compress``/``nodatacow``/``nodatasum`` cannot be set by mount options):

- filesystem-wide mount options, rendered identically on every subvolume mount so that whichever
  is mounted first, the same ones apply: ``noatime`` (a VFS per-mount flag, mount(8): it does work
  per mount, we use it on all of them), ``compress=zstd:2`` (the default level asked for ``/``,
  ``/home`` and ``~/dev``), ``space_cache=v2`` (free space tree; the default of mkfs.btrfs since
  btrfs-progs 5.15, explicit here so an older mkfs also gets it; persistent once used).
- per-subvolume compression: ``btrfs property set <subvolume> compression <algorithm>`` on the
  empty subvolume; new files and directories inherit it. The property takes an algorithm only
  (btrfs-property(8): "it's not possible to set the compression level this way"; btrfs-progs
  ch-compression: "setting level that way is not yet implemented"); writes use the level of the
  ``compress=`` mount option. So per-subvolume levels (``@nix`` zstd:3,
  ``@containers`` zstd:1) are dropped: every zstd subvolume compresses at the one filesystem level.
- ``@var-cache`` without compression (the default layout asks no ``compress`` there): ``compression none``
  (sets the inode's NOCOMPRESS flag, inherited by new files; the ``compress`` mount option
  respects it).
- nodatacow on ``@var-log``: ``chattr +C`` on the empty subvolume directory (new files inherit
  it; it also turns off checksums and compression for them, btrfs(5) "FILE ATTRIBUTES").
- dropped: ``autodefrag`` on ``@dev`` (a filesystem-wide option: it would apply to ``/nix`` and
  the containers too); ``ssd`` on ``/`` (btrfs autodetects it from ``queue/rotational``; since
  Linux 4.14 it no longer changes data allocation, btrfs(5) "ssd"; a virtual disk's backing
  storage is unknown); ``nodatacow`` as a mount option (filesystem-wide if ``/var/log`` were
  mounted first: no checksums or compression anywhere).
- ``@dev``: a user's ``~/dev``. fleetforge does not know the user, so it is mounted at
  ``/home/dev`` (inside ``@home``); set ``disk_layout.subvolumes["@dev"].mountpoint`` to
  ``/home/<user>/dev`` for a real user's ``~/dev``.

Sizes are MiB (``size_mib``), disk sizes bytes (``size_bytes``).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from fleetforge.errors import PlanError
from fleetforge.layout.settings import (
    BIOS_BOOT_SIZE_MIB,
    BTRFS5,
    CONTAINER_VIRT,
    DEFAULT,
    DEFAULT_SUBVOLUMES,
    DISKO_DISK_NAME,
    ESP_MOUNT_OPTIONS,
    ESP_SIZE_MIB,
    MIN_BTRFS_MIB,
    PROPERTY8,
    SWAP_MOUNTPOINT,
    SWAP_SUBVOLUME,
    SWAPFILE,
    BootMode,
    Compression,
    LayoutSettings,
)
from fleetforge.models import Disk, HostFacts, Model

# -- the layout ------------------------------------------------------------------------------


class PartitionPlan(Model):
    """One GPT partition, in creation order (``number`` = sgdisk's partition number)."""

    name: str  # disko's attribute name: boot, ESP, root
    number: int
    label: str  # GPT partition name; disko's default "disk-<disk>-<partition>"
    type_code: Literal["EF02", "EF00", "8300"]
    size_mib: int | None  # None: the rest of the disk
    format: Literal["vfat", "btrfs"] | None
    mountpoint: str | None
    mount_options: list[str]
    reason: str


class SubvolumePlan(Model):
    name: str  # "@nix" (disko: "/@nix")
    mountpoint: str
    compression: Compression | None  # btrfs property; None: only the mount option applies
    nodatacow: bool  # chattr +C on the empty subvolume
    swapfile_size_mib: int | None
    reason: str


class OptionNote(Model):
    """How one asked-for btrfs option is realised (or why it is dropped)."""

    subvolume: str
    seed_option: str
    realised_as: str  # "mount option (filesystem-wide)", "btrfs property", "chattr +C", "dropped"
    detail: str
    source: str


class DiskLayout(Model):
    host: str
    disk: str  # kernel name
    device: str  # what disko and the apply step address: by-id path when present
    kernel_path: str
    by_id_path: str | None
    serial: str | None
    model: str | None
    size_bytes: int
    transport: str
    firmware: str
    virtualization: str
    disk_reason: str
    boot_mode: BootMode
    boot_reason: str
    partitions: list[PartitionPlan]
    btrfs_mount_options: list[str]  # filesystem-wide, on every subvolume mount
    subvolumes: list[SubvolumePlan]
    notes: list[OptionNote]
    mount_root: str

    def partition(self, name: str) -> PartitionPlan:
        return next(p for p in self.partitions if p.name == name)

    def partition_device(self, number: int) -> str:
        """The device of partition ``number`` (disko's ``deviceNumbering``)."""
        return partition_device(self.device, number)

    def tuning_steps(self) -> list[tuple[str, str, str]]:
        """Per-subvolume steps after ``btrfs subvolume create``: ``(kind, subvolume, value)`` with
        kind ``property`` (compression), ``nocow`` or ``swapfile`` (size in MiB)."""
        steps = []
        for sub in self.subvolumes:
            if sub.compression is not None:
                steps.append(("property", sub.name, sub.compression))
            if sub.nodatacow:
                steps.append(("nocow", sub.name, "+C"))
            if sub.swapfile_size_mib:
                steps.append(("swapfile", sub.name, str(sub.swapfile_size_mib)))
        return steps

    def post_create_hook(self) -> list[str]:
        """Shell lines of the btrfs ``postCreateHook`` in disko.nix: disko has created the
        filesystem and subvolumes (and the swap file); this sets what mount options cannot.
        ``$device`` is the btrfs partition (disko defines a hook's options as shell variables)."""
        lines = ["MNTPOINT=$(mktemp -d)", 'mount "$device" "$MNTPOINT" -o subvolid=5']
        for kind, name, value in self.tuning_steps():
            if kind == "property":
                lines.append(f'btrfs property set "$MNTPOINT/{name}" compression {value}')
            elif kind == "nocow":
                lines.append(f'chattr +C "$MNTPOINT/{name}"')
        lines += ['umount "$MNTPOINT"', 'rmdir "$MNTPOINT"']
        return lines

    def disko_config(self) -> dict[str, Any]:
        """The JSON that ``nix-instantiate --eval --strict --json disko.nix`` must print."""
        partitions: dict[str, Any] = {}
        for part in self.partitions:
            entry: dict[str, Any] = {
                "priority": part.number * 100,
                "size": "100%" if part.size_mib is None else f"{part.size_mib}M",
                "type": part.type_code,
            }
            if part.format == "vfat":
                entry["content"] = {
                    "type": "filesystem",
                    "format": "vfat",
                    "mountpoint": part.mountpoint,
                    "mountOptions": list(part.mount_options),
                }
            elif part.format == "btrfs":
                subvolumes: dict[str, Any] = {}
                for sub in self.subvolumes:
                    options = list(self.btrfs_mount_options)
                    item: dict[str, Any] = {"mountpoint": sub.mountpoint, "mountOptions": options}
                    if sub.swapfile_size_mib:
                        item["swap"] = {SWAPFILE: {"size": f"{sub.swapfile_size_mib}M"}}
                    subvolumes[f"/{sub.name}"] = item
                entry["content"] = {
                    "type": "btrfs",
                    "extraArgs": ["-f"],
                    "subvolumes": subvolumes,
                    "postCreateHook": "\n".join(self.post_create_hook()),
                }
            partitions[part.name] = entry
        disk = {"type": "disk", "device": self.device, "content": {"type": "gpt", "partitions": partitions}}
        return {"disko": {"devices": {"disk": {DISKO_DISK_NAME: disk}}}}

    def hardware_note(self) -> dict[str, Any]:
        """What was detected and chosen, for the person running nixos-anywhere."""
        return {
            "host": self.host,
            "disk": self.disk,
            "device": self.device,
            "kernel_path": self.kernel_path,
            "by_id_path": self.by_id_path,
            "serial": self.serial,
            "model": self.model,
            "size_bytes": self.size_bytes,
            "transport": self.transport,
            "firmware": self.firmware,
            "virtualization": self.virtualization,
            "disk_reason": self.disk_reason,
            "boot_mode": self.boot_mode,
            "boot_reason": self.boot_reason,
        }


def _plan_error(host: str, key: str, message: str) -> Exception:
    """A ``fleetforge.errors.PlanError`` (also importable as ``fleetforge.planner.PlanError``)."""
    return PlanError(host, key, message)


def partition_device(device: str, number: int) -> str:
    """``/dev/disk/by-id/x`` -> ``x-partN``; ``/dev/nvme0n1`` -> ``p N``; ``/dev/vdb`` -> ``vdbN``
    (disko's ``deviceNumbering``, lib/default.nix)."""
    if device.startswith("/dev/disk/"):
        return f"{device}-part{number}"
    if re.match(r"^/dev/(nvme|mmcblk|loop)", device):
        return f"{device}p{number}"
    return f"{device}{number}"


def _pick_disk(host: str, facts: HostFacts, wanted: str | None) -> tuple[Disk, str]:
    known = ", ".join(f"{d.name} ({d.by_id_path or d.path})" for d in facts.disks) or "none"
    if wanted:
        for disk in facts.disks:
            if wanted in (disk.name, disk.path, disk.by_id_path):
                return disk, "set in host data (disk_layout.disk)"
        raise _plan_error(host, "disk_layout.disk", f"expected one of the detected disks ({known}), got {wanted!r}")
    for disk in facts.disks:
        if any(p.mountpoint == "/" for p in disk.partitions):
            return disk, "the root disk: it holds the partition mounted at /"
    if len(facts.disks) == 1:
        return facts.disks[0], "the only disk (no partition is mounted at /)"
    raise _plan_error(
        host,
        "disk_layout.disk",
        f"expected a disk: no partition is mounted at / and there are several disks ({known})",
    )


def _boot_mode(facts: HostFacts, boot: str) -> tuple[BootMode, str]:
    if boot != "auto":
        return boot, "set in host data (disk_layout.boot)"  # type: ignore[return-value]
    if facts.virtualization in CONTAINER_VIRT:
        return "hybrid", (
            f"firmware cannot be told inside a {facts.virtualization} container: BIOS boot and ESP "
            "partitions both (disko example/hybrid.nix)"
        )
    if facts.firmware == "efi":
        return "efi", "booted by UEFI (/sys/firmware/efi exists): an ESP"
    return "bios", "booted by legacy BIOS (no /sys/firmware/efi): a BIOS boot partition for GRUB on GPT"


def layout_for(host: str, facts: HostFacts, settings: LayoutSettings | None) -> DiskLayout:
    """Plan the disko layout of ``host``'s disk from its facts and ``disk_layout`` host data.

    Raises ``PlanError`` when host data contradicts the hardware: an unknown disk, no way to
    tell the root disk, sizes that do not fit, a subvolume on the ESP's ``/boot``.
    """
    settings = settings or LayoutSettings()
    disk, disk_reason = _pick_disk(host, facts, settings.disk)
    boot_mode, boot_reason = _boot_mode(facts, settings.boot)
    subvolume_settings = settings.subvolume_settings()

    partitions: list[PartitionPlan] = []

    def add(name: str, **fields: Any) -> None:
        label = f"disk-{DISKO_DISK_NAME}-{name}"
        partitions.append(PartitionPlan(name=name, number=len(partitions) + 1, label=label, **fields))

    if boot_mode in ("bios", "hybrid"):
        add("boot", type_code="EF02", size_mib=BIOS_BOOT_SIZE_MIB, format=None, mountpoint=None, mount_options=[],
            reason="BIOS boot partition: GRUB's core image on a GPT disk booted by legacy BIOS")  # fmt: skip
    if boot_mode in ("efi", "hybrid"):
        if "/boot" in {s.mountpoint for s in subvolume_settings.values()}:
            message = "expected no subvolume at /boot: the ESP is mounted there"
            raise _plan_error(host, "disk_layout.subvolumes", message)
        add("ESP", type_code="EF00", size_mib=ESP_SIZE_MIB, format="vfat", mountpoint="/boot",
            mount_options=list(ESP_MOUNT_OPTIONS),
            reason="EFI system partition at /boot, readable by root only (umask=0077)")  # fmt: skip
    add("root", type_code="8300", size_mib=None, format="btrfs", mountpoint=None, mount_options=[],
        reason="btrfs on the rest of the disk, with subvolumes")  # fmt: skip

    fixed_mib = sum(p.size_mib or 0 for p in partitions) + 2  # + GPT headers and alignment
    disk_mib = disk.size_bytes // 1048576
    need = fixed_mib + (settings.swap_size or 0) + MIN_BTRFS_MIB
    if need > disk_mib:
        what = f"swap_size {settings.swap_size} MiB + " if settings.swap_size else ""
        raise _plan_error(
            host,
            "disk_layout.swap_size" if settings.swap_size else "disk_layout.disk",
            f"expected a layout that fits {disk.name} ({disk_mib} MiB): {what}boot partitions {fixed_mib} MiB + "
            f"at least {MIN_BTRFS_MIB} MiB of btrfs = {need} MiB",
        )

    level = settings.compress_level
    mount_options = ["noatime", f"compress=zstd:{level}", "space_cache=v2", *settings.extra_mount_options]
    subvolumes = []
    for name, sub in subvolume_settings.items():
        default = DEFAULT_SUBVOLUMES.get(name)
        same = default is not None and (sub.mountpoint, sub.compression, sub.nodatacow) == default[:3]
        subvolumes.append(
            SubvolumePlan(
                name=name, mountpoint=sub.mountpoint, compression=sub.compression, nodatacow=sub.nodatacow,
                swapfile_size_mib=None, reason=DEFAULT if same else "set in host data",
            )
        )  # fmt: skip
    if settings.swap_size:
        subvolumes.append(
            SubvolumePlan(
                name=SWAP_SUBVOLUME, mountpoint=SWAP_MOUNTPOINT, compression=None, nodatacow=False,
                swapfile_size_mib=settings.swap_size,
                reason="swap file (btrfs filesystem mkswapfile: NOCOW, uncompressed), disko example",
            )
        )  # fmt: skip
    subvolumes.sort(key=lambda s: (s.mountpoint.count("/") if s.mountpoint != "/" else 0, s.mountpoint))

    return DiskLayout(
        host=host,
        disk=disk.name,
        device=disk.by_id_path or disk.path,
        kernel_path=disk.path,
        by_id_path=disk.by_id_path,
        serial=disk.serial,
        model=disk.model,
        size_bytes=disk.size_bytes,
        transport=disk.transport,
        firmware=facts.firmware,
        virtualization=facts.virtualization,
        disk_reason=disk_reason,
        boot_mode=boot_mode,
        boot_reason=boot_reason,
        partitions=partitions,
        btrfs_mount_options=mount_options,
        subvolumes=subvolumes,
        notes=[
            note
            for note in seed_notes(level, settings.extra_mount_options)
            if not note.subvolume.startswith("@") or "," in note.subvolume or note.subvolume in subvolume_settings
        ],
        mount_root=settings.mount_root,
    )


def seed_notes(level: int, extra: list[str]) -> list[OptionNote]:
    """How each btrfs option of the default layout is realised, or why it is dropped."""
    fs_wide = "mount option (filesystem-wide)"
    notes = [
        OptionNote(subvolume="all", seed_option="noatime", realised_as="mount option (every mount)",
                   detail="a VFS per-mount flag (mount(8)); rendered on every subvolume", source="mount(8)"),
        OptionNote(subvolume="all", seed_option="space_cache=v2", realised_as=fs_wide,
                   detail="free space tree; mkfs.btrfs default since btrfs-progs 5.15, persistent once used",
                   source=BTRFS5),
        OptionNote(subvolume="@, @home, @dev", seed_option="compress=zstd:2", realised_as=fs_wide,
                   detail=f"compress=zstd:{level} on every mount (only the first mount's options take effect) "
                   "+ btrfs property compression zstd on the subvolume", source=f"{BTRFS5}; {PROPERTY8}"),
        OptionNote(subvolume="@nix", seed_option="compress=zstd:3", realised_as="btrfs property (level dropped)",
                   detail=f"property compression zstd; the level is the filesystem's ({level}): a property "
                   "takes no level", source=PROPERTY8),
        OptionNote(subvolume="@containers", seed_option="compress=zstd:1", realised_as="btrfs property (level dropped)",
                   detail=f"property compression zstd; the level is the filesystem's ({level}): a property "
                   "takes no level", source=PROPERTY8),
        OptionNote(subvolume="@var-cache", seed_option="(no compress)", realised_as="btrfs property",
                   detail="property compression none (NOCOMPRESS, inherited): otherwise the filesystem-wide "
                   "compress option would apply", source=PROPERTY8),
        OptionNote(subvolume="@var-log", seed_option="nodatacow", realised_as="chattr +C",
                   detail="on the empty subvolume directory, inherited by new files (also no checksums and no "
                   "compression there); as a mount option it would be filesystem-wide or ignored",
                   source="btrfs(5) MOUNT OPTIONS, FILE ATTRIBUTES; chattr(1)"),
        OptionNote(subvolume="@dev", seed_option="autodefrag", realised_as="dropped",
                   detail="filesystem-wide only: it would defragment /nix and the containers too; "
                   "add it to extra_mount_options to have it everywhere", source=BTRFS5),
        OptionNote(subvolume="@", seed_option="ssd", realised_as="dropped",
                   detail="autodetected from queue/rotational; since Linux 4.14 it no longer changes data "
                   "allocation, and a virtual disk's backing storage is unknown", source="btrfs(5) ssd"),
    ]  # fmt: skip
    for option in extra:
        notes.append(OptionNote(subvolume="all", seed_option=option, realised_as=fs_wide,
                                detail="from host data (extra_mount_options)", source="host data"))  # fmt: skip
    return notes
