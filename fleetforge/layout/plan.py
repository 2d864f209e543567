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
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from fleetforge.errors import PlanError
from fleetforge.models import Disk, HostFacts, Model
from fleetforge.textcheck import AbsPath, check_abs_path, check_text, has_control, matching

DISKO_DISK_NAME = "main"
BIOS_BOOT_SIZE_MIB = 1
ESP_SIZE_MIB = 512
ESP_MOUNT_OPTIONS = ("umask=0077",)
SWAP_SUBVOLUME = "@swap"
SWAP_MOUNTPOINT = "/.swapvol"  # disko's btrfs example
SWAPFILE = "swapfile"  # disko's default swap file name inside the subvolume
MIN_BTRFS_MIB = 1024  # below this a btrfs root is not worth installing (mkfs.btrfs needs ~114 MiB)
CONTAINER_VIRT = ("docker", "podman", "lxc", "lxc-libvirt", "systemd-nspawn", "openvz", "rkt", "wsl", "proot", "pouch")
# GPT type codes (sgdisk -L) and their GUIDs (lsblk PARTTYPE), for the read-back.
TYPE_GUIDS = {
    "EF02": "21686148-6449-6e6f-744e-656564454649",
    "EF00": "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
    "8300": "0fc63daf-8483-4772-8e79-3d69d8477de4",
}

BTRFS5 = "btrfs(5) MOUNT OPTIONS"
PROPERTY8 = "btrfs-property(8); btrfs-progs Documentation/ch-compression.rst"
DEFAULT = "fleetforge default"  # the btrfs layout an OVH VPS gets unless host data says otherwise

Compression = Literal["zstd", "lzo", "zlib", "none"]
BootMode = Literal["bios", "efi", "hybrid"]
# Whole-value patterns (fleetforge.textcheck: fullmatch, no control characters).
_NAME_RE = re.compile(r"@|@?[A-Za-z0-9][A-Za-z0-9._-]*")
_MOUNT_OPTION_RE = re.compile(r"[a-z_]+(=[A-Za-z0-9:._-]+)?")
# Mount options the layout sets itself, or that must never be filesystem-wide.
_RESERVED_OPTIONS = ("subvol", "subvolid", "compress", "compress-force", "noatime", "space_cache")
_REFUSED_OPTIONS = {
    "nodatacow": "it would turn off checksums and compression for the whole filesystem (btrfs(5)); "
    "use a subvolume's nodatacow (chattr +C)",
    "nodatasum": "it would turn off checksums for the whole filesystem (btrfs(5))",
}


# -- host data -------------------------------------------------------------------------------


def _size_mib(value: Any) -> int:
    """``512`` (MiB), ``"512M"``, ``"2G"``, ``"1.5GiB"`` -> MiB (same forms as fleetforge.settings)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?)?\s*", str(value), re.IGNORECASE)
    if isinstance(value, bool) or not match:
        raise ValueError(f'expected a size like "2G", "512M" or a number of MiB, got {value!r}')
    factor = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1048576}[(match.group(2) or "").upper()[:1]]
    mib = int(float(match.group(1)) * factor)
    if mib <= 0:
        raise ValueError(f"expected a size above 0, got {value!r}")
    return mib


def _disk_ref(value: Any) -> str:
    """``vda``, ``/dev/vda`` or ``/dev/disk/by-id/...``: a kernel name or a normalised /dev path."""
    expected = "a disk like vda, /dev/vda or /dev/disk/by-id/..."
    if isinstance(value, str) and value.startswith("/"):
        try:
            path = check_abs_path(value)
        except ValueError:
            path = ""
        if path.startswith("/dev/"):
            return path
        raise ValueError(f"expected {expected}, got {value!r}")
    return check_text(value, _KERNEL_NAME, expected)


_KERNEL_NAME = re.compile(r"[a-z][a-z0-9]*(?:-[0-9]+)?")
SizeMiB = Annotated[int, BeforeValidator(_size_mib)]
DiskRef = Annotated[str, BeforeValidator(_disk_ref)]


def _known_keys(model: type[BaseModel], data: Any) -> Any:
    """Name the keys ``model`` accepts when it gets an unknown one (fleetforge.settings' generic
    message would list HostSettings' keys instead)."""
    if isinstance(data, dict):
        unknown = sorted(set(data) - set(model.model_fields))
        if unknown:
            raise ValueError(f"expected keys among ({', '.join(sorted(model.model_fields))}), got unknown {unknown}")
    return data


class SubvolumeSettings(BaseModel):
    """One btrfs subvolume in host data, merged field by field over the default of the same name:
    ``{"@dev": {"mountpoint": "/home/alice/dev"}}`` keeps ``@dev``'s compression. A new subvolume
    needs a ``mountpoint``. ``compression``: an algorithm (``zstd``, ``lzo``, ``zlib``) or
    ``none``; ``null`` leaves only the filesystem-wide mount option."""

    model_config = ConfigDict(extra="forbid")

    mountpoint: AbsPath | None = None
    compression: Compression | None = None
    nodatacow: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "size_mib" in data:
            raise ValueError(
                "expected no size_mib: a btrfs subvolume has no size (all share the partition); "
                "limits would need btrfs quota groups, which disko does not set"
            )
        return _known_keys(cls, data)

    @field_validator("compression", mode="before")
    @classmethod
    def _no_level(cls, value: Any) -> Any:
        if isinstance(value, str) and ":" in value:
            raise ValueError(
                f"expected an algorithm without a level (zstd, lzo, zlib, none), got {value!r}: "
                "btrfs sets a compression level only per filesystem (btrfs-property(8)); "
                "set disk_layout.compress_level"
            )
        return value


class Subvolume(NamedTuple):
    """A subvolume after merging host data over the defaults."""

    mountpoint: str
    compression: Compression | None
    nodatacow: bool


def merge_subvolumes(overrides: dict[str, SubvolumeSettings | None], swap: bool) -> dict[str, Subvolume]:
    """The default subvolumes with ``overrides`` merged over them (``None`` drops one).

    Raises ``ValueError`` for a new subvolume without a mountpoint, nodatacow with compression,
    two subvolumes on one mountpoint (the swap subvolume's ``/.swapvol`` included), no ``/``.
    """
    merged = {name: Subvolume(mp, comp, cow) for name, (mp, comp, cow, _) in DEFAULT_SUBVOLUMES.items()}
    for name, override in overrides.items():
        if override is None:
            merged.pop(name, None)
            continue
        given = override.model_dump(include=override.model_fields_set)
        if name in merged:
            merged[name] = merged[name]._replace(**given)
        elif override.mountpoint is None:
            raise ValueError(f"expected a mountpoint for the new subvolume {name}")
        else:
            merged[name] = Subvolume(override.mountpoint, override.compression, bool(override.nodatacow))
    seen: dict[str, str] = {SWAP_MOUNTPOINT: SWAP_SUBVOLUME} if swap else {}
    for name, sub in merged.items():
        if sub.nodatacow and sub.compression not in (None, "none"):
            raise ValueError(
                f"expected compression none or null with nodatacow on {name} (nodatacow files are never "
                f"compressed, btrfs(5)), got {sub.compression!r}"
            )
        if sub.mountpoint in seen:
            raise ValueError(
                f"expected one subvolume per mountpoint, got {seen[sub.mountpoint]} and {name} on {sub.mountpoint}"
            )
        seen[sub.mountpoint] = name
    if "/" not in seen:
        raise ValueError("expected a subvolume mounted at / (the layout is a root filesystem)")
    return merged


class LayoutSettings(BaseModel):
    """``disk_layout`` in host data. Every key is optional.

    ``disk``: kernel name (``vda``), ``/dev/vda`` or a ``/dev/disk/by-id/...`` path; default the
    root disk (the disk holding the partition mounted at ``/``).
    ``boot``: ``auto`` (from the detected firmware), ``bios``, ``efi`` or ``hybrid`` (both).
    ``swap_size``: a swap file in subvolume ``@swap`` at ``/.swapvol`` (disko's swap example).
    ``subvolumes``: merged over the default subvolumes, see ``SubvolumeSettings``;
    ``{"@containers": None}`` drops one.
    ``compress_level``: the zstd level of the filesystem-wide ``compress=zstd:N`` mount option.
    ``extra_mount_options``: more filesystem-wide btrfs mount options (e.g. ``autodefrag``).
    ``confirm_wipe_serial``: the serial of a disk that is not blank and may be wiped.
    ``mount_root``, ``disko_file``, ``hardware_file``: where the layout is mounted when applied to
    a running host, and where ``deploys/disko.py`` writes its two files.
    """

    model_config = ConfigDict(extra="forbid")

    disk: DiskRef | None = None
    boot: Literal["auto", "bios", "efi", "hybrid"] = "auto"
    swap_size: SizeMiB | None = None  # before subvolumes: their check needs it
    subvolumes: dict[str, SubvolumeSettings | None] = {}
    compress_level: Annotated[int, Field(ge=1, le=15)] = 2
    extra_mount_options: list[str] = []
    confirm_wipe_serial: matching(r"\S(?:.*\S)?", "the disk's serial as lsblk shows it") | None = None
    mount_root: AbsPath = "/mnt/fleetforge"
    disko_file: AbsPath = "/etc/fleetforge/disko.nix"
    hardware_file: AbsPath = "/etc/fleetforge/disko-hardware.json"

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, data: Any) -> Any:
        return _known_keys(cls, data)

    @field_validator("extra_mount_options")
    @classmethod
    def _options(cls, options: list[str]) -> list[str]:
        for option in options:
            key = option.split("=", 1)[0]
            if not isinstance(option, str) or has_control(option) or not _MOUNT_OPTION_RE.fullmatch(option):
                raise ValueError(f"expected mount options like autodefrag or commit=120, got {option!r}")
            if key in _REFUSED_OPTIONS:
                raise ValueError(f"expected no {key}: {_REFUSED_OPTIONS[key]}")
            if key in _RESERVED_OPTIONS:
                raise ValueError(f"expected no {key}: the layout sets it (compress_level, subvolumes)")
        return options

    @field_validator("subvolumes")
    @classmethod
    def _subvolumes(cls, subvolumes: dict[str, SubvolumeSettings | None], info: ValidationInfo):
        for name in subvolumes:
            if has_control(name) or not _NAME_RE.fullmatch(name):
                raise ValueError(f"expected subvolume names like @nix (no '/'), got {name!r}")
            if name == SWAP_SUBVOLUME:
                raise ValueError(f"expected no {SWAP_SUBVOLUME}: it is made by swap_size")
        merge_subvolumes(subvolumes, info.data.get("swap_size") is not None)
        return subvolumes

    def subvolume_settings(self) -> dict[str, Subvolume]:
        """The default subvolumes with host data merged over them."""
        return merge_subvolumes(self.subvolumes, self.swap_size is not None)


# Default subvolumes: name -> (mountpoint, compression property, nodatacow, options asked for).
DEFAULT_SUBVOLUMES: dict[str, tuple[str, Compression | None, bool, str]] = {
    "@": ("/", "zstd", False, "compress=zstd:2,noatime,space_cache=v2,ssd"),
    "@nix": ("/nix", "zstd", False, "compress=zstd:3,noatime,space_cache=v2"),
    "@var-log": ("/var/log", None, True, "noatime,nodatacow"),
    "@var-cache": ("/var/cache", "none", False, "noatime,space_cache=v2"),
    "@home": ("/home", "zstd", False, "compress=zstd:2,noatime,space_cache=v2"),
    "@dev": ("/home/dev", "zstd", False, "compress=zstd:2,noatime,space_cache=v2,autodefrag"),
    "@containers": ("/var/lib/containers", "zstd", False, "compress=zstd:1,noatime,space_cache=v2"),
}


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
