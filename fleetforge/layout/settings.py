"""Disk layouts, host data: ``disk_layout`` (``LayoutSettings``) with its subvolume overrides,
and the constants of fleetforge's default layout (the btrfs layout an OVH VPS gets unless host
data says otherwise). The layout itself is planned in ``fleetforge.layout.plan``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator

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
