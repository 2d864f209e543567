"""Lay a ``DiskLayout`` out on a blank disk of a running Linux host, and read it back.

``deploys/disk_layout.py`` calls ``lay_out_disk``: while pyinfra prepares, it looks up the
host's validated settings (once per inventory), probes (``HostProbe``), plans the layout of the disk named in
``disk_layout.disk`` (never picked by itself), reads that disk's state (``DiskStateFact``) and
decides:

- already laid out as planned and mounted under ``mount_root``: nothing to do;
- in use (mounted, swap): refused, whatever the host data says;
- not blank (a partition table or any filesystem signature, ``wipefs -n``): refused with
  ``PlanError`` naming host and disk, before any operation runs, so the disk is not touched;
  unless ``disk_layout.confirm_wipe_serial`` equals the disk's serial;
- otherwise the ``apply_disk_layout`` operation: ``sgdisk`` partitions (disko's numbering and
  labels), ``mkfs.vfat``/``mkfs.btrfs -f``, subvolumes, ``btrfs property set ... compression``,
  ``chattr +C``, the swap file, mounts under ``mount_root``. Its first command checks again on
  the host that the disk is still blank (or still has the confirmed serial) and unused.

The swap file is created, not activated. Read-back: ``expected_state(layout)`` and
``read_state(layout, DiskState)`` are the same model, compared with ``==``.
"""

from __future__ import annotations

import posixpath

from pyinfra import host, logger
from pyinfra.api import QuoteString, StringCommand, deploy, operation

from fleetforge.facts.layout import DiskState, DiskStateFact
from fleetforge.facts.probe import HostProbe
from fleetforge.layout.plan import DiskLayout, layout_for
from fleetforge.layout.settings import SWAP_MOUNTPOINT, SWAPFILE, TYPE_GUIDS
from fleetforge.models import HostFacts, Model
from fleetforge.paths import MANAGED_FILES
from fleetforge.planner import PlanError
from fleetforge.settings import inventory_settings

TOP_MOUNT = "/run/fleetforge-btrfs-top"  # subvolid=5 while subvolumes are made

# Checked on the host right before anything is written: the prepare-time facts may be stale.
GUARD_SCRIPT = r"""
dev=$(readlink -f "$1"); serial=$2; mode=$3
[ -b "$dev" ] || { echo "fleetforge: $1 is not a block device" >&2; exit 1; }
if [ -n "$serial" ] && [ "$(lsblk -dno SERIAL "$dev" | tr -d ' ')" != "$serial" ]; then
  echo "fleetforge: $dev does not have serial $serial" >&2; exit 1
fi
if lsblk -lnpo MOUNTPOINT "$dev" | grep -q . || tail -n +2 /proc/swaps | grep -q "^$dev"; then
  echo "fleetforge: $dev is in use" >&2; exit 1
fi
if [ "$mode" = blank ]; then
  sigs=$(for p in $(lsblk -lnpo NAME "$dev"); do wipefs -n --noheadings -O DEVICE,TYPE "$p" 2>&1; done)
  [ -z "$sigs" ] || { echo "fleetforge: $dev is no longer blank: $sigs" >&2; exit 1; }
fi
"""


# -- read-back --------------------------------------------------------------------------------


class PartitionState(Model):
    number: int
    label: str | None
    type_code: str | None  # "EF02"..., or the GUID when not one of ours
    fstype: str | None


class MountState(Model):
    fstype: str
    subvolume: str | None  # "@nix" for btrfs subvolume mounts
    noatime: bool
    compress: str | None  # "zstd:2"
    space_cache: str | None  # "v2"
    umask: str | None  # vfat: fmask == dmask


class SubvolumeState(Model):
    mountpoint: str | None
    compression: str | None  # btrfs property
    nodatacow: bool  # lsattr C


class LayoutState(Model):
    """What can be read back from a laid-out disk; planned and live values use this same model."""

    partitions: list[PartitionState]
    mounts: dict[str, MountState]  # by mountpoint inside the layout ("/", "/nix", "/boot")
    subvolumes: dict[str, SubvolumeState]
    swapfile_size_mib: int | None


def _option(options: list[str], key: str) -> str | None:
    return next((o.split("=", 1)[1] for o in options if o.startswith(f"{key}=")), None)


def expected_state(layout: DiskLayout) -> LayoutState:
    """The ``LayoutState`` the plan promises."""
    fs_options = layout.btrfs_mount_options
    mounts = {
        sub.mountpoint: MountState(
            fstype="btrfs", subvolume=sub.name, noatime="noatime" in fs_options,
            compress=_option(fs_options, "compress"), space_cache=_option(fs_options, "space_cache"), umask=None,
        )
        for sub in layout.subvolumes
    }  # fmt: skip
    for part in layout.partitions:
        if part.format == "vfat" and part.mountpoint:
            mounts[part.mountpoint] = MountState(
                fstype="vfat", subvolume=None, noatime=False, compress=None, space_cache=None,
                umask=_option(part.mount_options, "umask"),
            )  # fmt: skip
    swap = next((s.swapfile_size_mib for s in layout.subvolumes if s.swapfile_size_mib), None)
    return LayoutState(
        partitions=[PartitionState(number=p.number, label=p.label, type_code=p.type_code, fstype=p.format)
                    for p in layout.partitions],
        mounts=dict(sorted(mounts.items())),
        subvolumes={s.name: SubvolumeState(mountpoint=s.mountpoint, compression=s.compression, nodatacow=s.nodatacow)
                    for s in layout.subvolumes},
        swapfile_size_mib=swap,
    )  # fmt: skip


def read_state(layout: DiskLayout, disk: DiskState) -> LayoutState:
    """The ``LayoutState`` found on the host (``DiskStateFact`` with the layout's mountpoints)."""
    guid_codes = {guid: code for code, guid in TYPE_GUIDS.items()}
    root = layout.mount_root
    mounts: dict[str, MountState] = {}
    subvolume_at: dict[str, str] = {}
    for mount in disk.mounts:
        inside = "/" if mount.target == root else mount.target.removeprefix(root)
        if not (mount.target == root or mount.target.startswith(root + "/")):
            continue
        subvolume = _option(mount.options, "subvol")
        subvolume = subvolume.lstrip("/") if subvolume else None
        fmask, dmask = _option(mount.options, "fmask"), _option(mount.options, "dmask")
        mounts[inside] = MountState(
            fstype=mount.fstype, subvolume=subvolume, noatime="noatime" in mount.options,
            compress=_option(mount.options, "compress"), space_cache=_option(mount.options, "space_cache"),
            umask=fmask if fmask is not None and fmask == dmask else None,
        )  # fmt: skip
        if subvolume:
            subvolume_at[subvolume] = inside
    subvolumes = {}
    for name in disk.subvolume_names:
        mountpoint = subvolume_at.get(name)
        attrs = disk.subvolume_attrs.get(mountpoint) if mountpoint else None
        subvolumes[name] = SubvolumeState(
            mountpoint=mountpoint,
            compression=attrs.compression if attrs else None,
            nodatacow="C" in attrs.attrs if attrs else False,
        )
    return LayoutState(
        partitions=[
            PartitionState(number=p.number, label=p.label, type_code=guid_codes.get(p.type_guid or "", p.type_guid),
                           fstype=p.fstype)
            for p in sorted(disk.partitions, key=lambda p: p.number)
        ],
        mounts=dict(sorted(mounts.items())),
        subvolumes=subvolumes,
        swapfile_size_mib=disk.swapfile_bytes // 1048576 if disk.swapfile_bytes is not None else None,
    )  # fmt: skip


def differences(expected: LayoutState, found: LayoutState) -> list[str]:
    """Human-readable differences between two states (empty when equal)."""
    out = []
    for field in LayoutState.model_fields:
        want, got = getattr(expected, field), getattr(found, field)
        if isinstance(want, dict):
            for key in sorted(set(want) | set(got)):
                if want.get(key) != got.get(key):
                    out.append(f"{field} {key}: planned {want.get(key)}, found {got.get(key)}")
        elif want != got:
            out.append(f"{field}: planned {want}, found {got}")
    return out


def state_args(layout: DiskLayout) -> dict:
    """Arguments of ``DiskStateFact`` that read back ``layout``."""
    swap = any(s.swapfile_size_mib for s in layout.subvolumes)
    return {
        "device": layout.device,
        "mount_root": layout.mount_root,
        "mountpoints": [s.mountpoint for s in layout.subvolumes],
        "swapfile": posixpath.join(SWAP_MOUNTPOINT, SWAPFILE) if swap else "-",
    }


# -- the decision -----------------------------------------------------------------------------


def decide(host_name: str, layout: DiskLayout, disk: DiskState, confirm_serial: str | None) -> str:
    """``"noop"`` (already laid out), ``"blank"`` (apply) or ``"wipe"`` (apply over old data,
    confirmed by serial). Raises ``PlanError`` naming host and disk for every refusal."""
    what = f"{layout.disk} ({layout.device}, serial {layout.serial or 'none'})"
    key = "disk_layout.confirm_wipe_serial"
    if disk.device is None:
        raise PlanError(host_name, "disk_layout.disk", f"expected {layout.device} on the host: it is not there")
    drift = differences(expected_state(layout), read_state(layout, disk)) if disk.mounts else []
    if disk.mounts and not drift:
        return "noop"
    used = disk.in_use()
    if used:
        message = f"refusing to lay out disk {what}: it is in use ({'; '.join(used)})"
        if drift:
            message += f"; what is mounted at {layout.mount_root} differs from the plan: {'; '.join(drift)}"
        raise PlanError(host_name, "disk_layout.disk", message)
    if disk.blank:
        return "blank"
    found = "; ".join(disk.signatures) or f"partition table {disk.pttype}"
    if confirm_serial is not None and layout.serial is not None and confirm_serial == layout.serial == disk.serial:
        return "wipe"
    hint = (
        f"set disk_layout.confirm_wipe_serial = {layout.serial!r} to wipe it"
        if layout.serial
        else "it has no serial to confirm: wipe it by hand (wipefs -a) if it really is to be reused"
    )
    if confirm_serial is not None and confirm_serial != layout.serial:
        hint = f"confirm_wipe_serial {confirm_serial!r} is not this disk's serial; {hint}"
    raise PlanError(
        host_name, key, f"refusing to wipe disk {what}: it is not blank ({found}); nothing was written; {hint}"
    )


# -- commands ---------------------------------------------------------------------------------


def _q(*parts: str) -> list[QuoteString]:
    return [QuoteString(p) for p in parts]


def _at(root: str, mountpoint: str) -> str:
    return root if mountpoint == "/" else root + mountpoint


def apply_steps(layout: DiskLayout, mode: str, old_partitions: list[str] = ()) -> list[tuple[str, list[StringCommand]]]:
    """The commands that lay ``layout`` out, in order, grouped in steps ``(what, commands)``.

    ``mode``: ``blank`` or ``wipe``; ``old_partitions``: the partitions to wipe first (``wipe``).
    No f-string shell: every value is a ``QuoteString``. The first step checks the disk again.
    """
    dev = layout.device
    root_part = layout.partition_device(layout.partition("root").number)
    guard = StringCommand(
        "sh", "-c", QuoteString(GUARD_SCRIPT), "fleetforge-guard",
        *_q(dev, layout.serial or "", "wipe" if mode == "wipe" else "blank"),
    )  # fmt: skip

    partition = []
    if mode == "wipe":
        partition += [StringCommand("wipefs", "-a", QuoteString(path)) for path in old_partitions]
        partition += [
            StringCommand("sgdisk", "--zap-all", QuoteString(dev)),
            StringCommand("wipefs", "-a", QuoteString(dev)),
        ]
    new = []  # disko's gpt.nix: --new/--change-name/--typecode per partition (here in one sgdisk call)
    for part in layout.partitions:
        end = f"+{part.size_mib}M" if part.size_mib else "-0"
        new += [QuoteString(f"--new={part.number}:0:{end}"), QuoteString(f"--change-name={part.number}:{part.label}"),
                QuoteString(f"--typecode={part.number}:{part.type_code}")]  # fmt: skip
    partition += [
        StringCommand("sgdisk", "--align-end", *new, QuoteString(dev)),
        StringCommand("partprobe", QuoteString(dev)),
        StringCommand("udevadm", "trigger", "--subsystem-match=block"),
        StringCommand("udevadm", "settle"),
    ]
    # stale signatures of an older layout inside the new partitions
    partition += [
        StringCommand("wipefs", "-a", QuoteString(layout.partition_device(p.number))) for p in layout.partitions
    ]

    fmt = [
        StringCommand("mkfs.vfat", QuoteString(layout.partition_device(part.number)))
        for part in layout.partitions
        if part.format == "vfat"
    ]
    fmt += [
        StringCommand("mkfs.btrfs", "-f", QuoteString(root_part)),
        StringCommand("mkdir", "-p", QuoteString(TOP_MOUNT)),
        StringCommand("mount", "-o", "subvolid=5", QuoteString(root_part), QuoteString(TOP_MOUNT)),
    ]
    fmt += [
        StringCommand("btrfs", "subvolume", "create", QuoteString(f"{TOP_MOUNT}/{s.name}")) for s in layout.subvolumes
    ]
    for kind, name, value in layout.tuning_steps():
        path = f"{TOP_MOUNT}/{name}"
        if kind == "property":
            fmt.append(StringCommand("btrfs", "property", "set", QuoteString(path), "compression", QuoteString(value)))
        elif kind == "nocow":
            fmt.append(StringCommand("chattr", "+C", QuoteString(path)))
        elif kind == "swapfile":
            fmt.append(StringCommand("btrfs", "filesystem", "mkswapfile", "--size", QuoteString(f"{value}M"),
                                     QuoteString(f"{path}/{SWAPFILE}")))  # fmt: skip
    fmt += [StringCommand("umount", QuoteString(TOP_MOUNT)), StringCommand("rmdir", QuoteString(TOP_MOUNT))]

    mounts = [(sub.mountpoint, ",".join([*layout.btrfs_mount_options, f"subvol={sub.name}"]), root_part)
              for sub in layout.subvolumes]  # fmt: skip
    mounts += [
        (part.mountpoint, ",".join(part.mount_options), layout.partition_device(part.number))
        for part in layout.partitions
        if part.format == "vfat" and part.mountpoint
    ]
    mount = []
    for mountpoint, options, source in sorted(mounts, key=lambda m: (m[0] != "/", m[0].count("/"), m[0])):
        target = _at(layout.mount_root, mountpoint)
        mount.append(StringCommand("mkdir", "-p", QuoteString(target)))
        mount.append(StringCommand("mount", "-o", QuoteString(options), QuoteString(source), QuoteString(target)))
    return [
        ("check the disk again", [guard]),
        ("partition", partition),
        ("make filesystems, subvolumes, properties", fmt),
        (f"mount under {layout.mount_root}", mount),
    ]


def joined(commands: list[StringCommand]) -> StringCommand:
    """One command running ``commands`` in order, stopping at the first failure (``&&``): one
    SSH round trip per step instead of one per command."""
    bits: list = []
    for command in commands:
        bits += [*(["&&"] if bits else []), *command.bits]
    return StringCommand(*bits)


@operation()
def apply_disk_layout(layout: DiskLayout, mode: str, old_partitions: list[str] | None = None):
    """Partition, format and mount ``layout`` (see ``apply_steps``): one command per step.

    + layout: the planned ``DiskLayout``
    + mode: ``blank`` or ``wipe`` (from ``decide``)
    + old_partitions: partitions of the old layout to wipe first (mode ``wipe``)
    """
    for _what, commands in apply_steps(layout, mode, old_partitions or []):
        yield joined(commands)


# -- the deploy -------------------------------------------------------------------------------


def summary(layout: DiskLayout) -> str:
    parts = ", ".join(f"{p.name} {p.size_mib or 'rest'}{'M' if p.size_mib else ''}" for p in layout.partitions)
    subs = ", ".join(f"{s.name}->{s.mountpoint}" for s in layout.subvolumes)
    return f"disk layout: {layout.disk} {layout.device} ({layout.boot_mode}): {parts}; {subs}"


@deploy("fleetforge: lay out a disk")
def lay_out_disk() -> None:
    """Lay out the disk named in ``disk_layout.disk`` (see the module docstring).

    Raises ``SettingsError`` (any host's data invalid) or ``PlanError`` (no disk named, disk
    unknown, in use or not blank without confirmation) while pyinfra prepares: nothing runs.
    """
    settings = inventory_settings(host.inventory)[host.name].disk_layout
    if settings is None or settings.disk is None:
        raise PlanError(
            host.name,
            "disk_layout.disk",
            "expected the disk to lay out (kernel name or /dev/disk/by-id path): this deploy never picks one itself",
        )
    facts: HostFacts | None = host.get_fact(HostProbe, sysctl_keys=(), files=MANAGED_FILES)
    if facts is None:
        return
    layout = layout_for(host.name, facts, settings)
    host.log(summary(layout), logger.info)
    disk: DiskState | None = host.get_fact(DiskStateFact, **state_args(layout))
    if disk is None:
        return
    mode = decide(host.name, layout, disk, settings.confirm_wipe_serial)
    if mode == "noop":
        host.log(f"{layout.device} is laid out as planned and mounted at {layout.mount_root}", logger.info)
        return
    apply_disk_layout(
        name=f"Lay out {layout.disk} ({mode})",
        layout=layout,
        mode=mode,
        old_partitions=[p.path for p in disk.partitions] if mode == "wipe" else [],
    )
