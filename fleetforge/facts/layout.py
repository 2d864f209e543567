"""Facts for disk layouts: what is on one disk now (``DiskState``) and the current content of
files outside ``HostProbe``'s fixed list (``FileContents``). Each is one round trip.

``DiskState`` tells whether a disk is blank (``wipefs -n`` on the disk and every partition and
``sfdisk -J``: both read the device itself, not udev's cache), in use (mounted or swap), and
reads back a layout mounted under ``mount_root``: ``findmnt``, ``btrfs subvolume list``,
``btrfs property get ... compression``, ``lsattr -d`` and the swap file's size.

Parse problems raise ``FactProcessError`` so that only the host with the odd output fails. Host
output is untrusted (``fleetforge.facts.sections``): no text of a ``DiskState`` holds a control character,
device and partition nodes are ``/dev`` nodes of udev's characters (they land in ``wipefs`` and
``sgdisk`` commands, quoted), and ``btrfs subvolume list`` lines must have its exact shape.
"""

from __future__ import annotations

import json
import re

from pyinfra.api import FactBase, QuoteString, StringCommand

from fleetforge.facts.models import ManagedFile, Model
from fleetforge.facts.sections import DEV_NODE, host_value, parse_files, parse_or_fail, refuse_control, split_sections

DISK_SCRIPT = r"""
export LC_ALL=C
dev=$(readlink -f "$1"); root=$2; swapfile=$3; shift 3
echo @@device; [ -b "$dev" ] && echo "$dev"
echo @@lsblk; [ -b "$dev" ] && lsblk -J -b -o NAME,PATH,TYPE,SIZE,SERIAL,MOUNTPOINT "$dev"
echo @@sfdisk; [ -b "$dev" ] && sfdisk -J "$dev" 2>/dev/null
echo @@wipefs
if [ -b "$dev" ]; then
  lsblk -lnpo NAME "$dev" | while IFS= read -r p; do wipefs -n --noheadings -O DEVICE,TYPE,OFFSET "$p" 2>&1; done
fi
echo @@swaps; tail -n +2 /proc/swaps | while read -r f _; do readlink -f "$f"; done
echo @@findmnt; findmnt -J -R -o TARGET,SOURCE,FSTYPE,OPTIONS "$root" 2>/dev/null
if mountpoint -q "$root" && [ "$(findmnt -no FSTYPE "$root")" = btrfs ]; then
  echo @@subvolumes; btrfs subvolume list "$root"
  echo @@subvol
  for mp in "$@"; do
    p="$root$mp"
    [ -d "$p" ] && printf '%s|%s|%s\n' "$mp" "$(btrfs property get "$p" compression 2>/dev/null)" \
      "$(lsattr -d "$p" 2>/dev/null | cut -d' ' -f1)"
  done
  echo @@swapfile; [ "$swapfile" != - ] && [ -f "$root$swapfile" ] && stat -c %s "$root$swapfile"
fi
echo @@done
"""
_SUBVOLUME_LINE = re.compile(r"ID \d+ gen \d+ top level \d+ path (.+)")
# Signatures of partition tables, not filesystems (wipefs TYPE).
PARTITION_TABLE_TYPES = ("gpt", "PMBR", "dos", "atari", "bsd", "mac", "sgi", "sun")


class DiskPartition(Model):
    path: str
    number: int
    label: str | None
    type_guid: str | None
    fstype: str | None
    size_bytes: int
    mountpoint: str | None


class Mount(Model):
    target: str
    source: str
    fstype: str
    options: list[str]


class SubvolumeAttrs(Model):
    compression: str | None  # btrfs property; None when unset
    attrs: str  # lsattr -d flags, e.g. "---------------C------"


class DiskState(Model):
    """One disk now: signatures, partitions, use, and a layout mounted under ``mount_root``."""

    device: str | None  # resolved /dev/... path; None: no such block device
    serial: str | None
    size_bytes: int | None
    pttype: str | None  # partition table type (sfdisk label: gpt, dos)
    mountpoint: str | None  # of the whole disk (a filesystem without partition table)
    partitions: list[DiskPartition]
    signatures: list[str]  # "DEVICE TYPE OFFSET" from wipefs -n
    swaps: list[str]  # active swap devices (resolved paths)
    mounts: list[Mount]  # findmnt -R mount_root, flattened
    subvolume_names: list[str]  # btrfs subvolume list mount_root
    subvolume_attrs: dict[str, SubvolumeAttrs]  # by planned mountpoint
    swapfile_bytes: int | None

    @property
    def blank(self) -> bool:
        return not self.signatures and not self.partitions and self.pttype is None

    def in_use(self) -> list[str]:
        """Where the disk or one of its partitions is mounted or used as swap."""
        used = [f"{self.device} mounted at {self.mountpoint}"] if self.mountpoint else []
        used += [f"{p.path} mounted at {p.mountpoint}" for p in self.partitions if p.mountpoint]
        paths = {self.device, *(p.path for p in self.partitions)}
        used += [f"{path} is active swap" for path in self.swaps if path in paths]
        return used


class DiskStateFact(FactBase[DiskState]):
    """``DiskState`` of ``device`` (any path to it), reading back a layout under ``mount_root``:
    ``mountpoints`` are the planned subvolume mountpoints, ``swapfile`` the swap file's path
    relative to ``mount_root`` (``-`` for none)."""

    def command(self, device: str, mount_root: str, mountpoints: list[str], swapfile: str = "-") -> StringCommand:
        return StringCommand(
            "sh",
            "-c",
            QuoteString(DISK_SCRIPT),
            "fleetforge-disk-state",
            QuoteString(device),
            QuoteString(mount_root),
            QuoteString(swapfile),
            *[QuoteString(mp) for mp in mountpoints],
        )

    def process(self, output: list[str]) -> DiskState:
        return parse_or_fail("DiskStateFact", parse_disk_state, output)


def _flatten(mounts: list[dict]) -> list[Mount]:
    flat = []
    for item in mounts:
        flat.append(
            Mount(
                target=item["target"],
                source=item["source"],
                fstype=item["fstype"],
                options=item["options"].split(","),
            )
        )
        flat.extend(_flatten(item.get("children") or []))
    return flat


def parse_disk_state(output: list[str]) -> DiskState:
    """Pure parser: ``DISK_SCRIPT`` stdout lines -> ``DiskState``.

    The partition table comes from ``sfdisk -J`` and filesystem types from ``wipefs``: both read
    the device itself. lsblk's PARTLABEL/FSTYPE come from udev's database, which lags behind a
    fresh ``mkfs`` (seen on the test VMs), so lsblk is only used for serial, size and mountpoints.
    """
    s = split_sections(output, "DiskStateFact", ("done",))
    device = next((line.strip() for line in s.get("device", []) if line.strip()), None)
    if device is not None:
        host_value("DiskStateFact", "device", device, DEV_NODE, "a /dev node like /dev/vdb")
    lsblk_text = "\n".join(s.get("lsblk", [])).strip()
    disk: dict = json.loads(lsblk_text)["blockdevices"][0] if lsblk_text else {}
    mountpoints = {child["path"]: child.get("mountpoint") for child in disk.get("children") or []}
    signatures = [" ".join(line.split()) for line in s.get("wipefs", []) if line.strip()]
    fstypes: dict[str, str] = {}
    for line in signatures:
        name, kind = (line.split() + ["", ""])[:2]
        if kind not in PARTITION_TABLE_TYPES:
            fstypes.setdefault(name, kind)
    sfdisk_text = "\n".join(s.get("sfdisk", [])).strip()
    table: dict = json.loads(sfdisk_text)["partitiontable"] if sfdisk_text else {}
    partitions = []
    for part in table.get("partitions", []):
        node = host_value("DiskStateFact", "sfdisk node", part["node"], DEV_NODE, "a /dev node like /dev/vdb1")
        number = re.search(r"(\d+)$", node)
        partitions.append(
            DiskPartition(
                path=node,
                number=int(number.group(1)) if number else 0,
                label=part.get("name") or None,
                type_guid=(part.get("type") or "").lower() or None,
                fstype=fstypes.get(node.rsplit("/", 1)[-1]),
                size_bytes=int(part["size"]) * int(table.get("sectorsize", 512)),
                mountpoint=mountpoints.get(node),
            )
        )
    findmnt_text = "\n".join(s.get("findmnt", [])).strip()
    mounts = _flatten(json.loads(findmnt_text)["filesystems"]) if findmnt_text else []
    names = []
    for line in s.get("subvolumes", []):
        match = _SUBVOLUME_LINE.fullmatch(line)
        if not match:
            raise ValueError(f"btrfs subvolume list: expected 'ID N gen N top level N path NAME', got {line!r}")
        names.append(match.group(1))
    attrs = {}
    for line in s.get("subvol", []):
        mountpoint, prop, flags = line.split("|", 2)
        value = prop.partition("=")[2].strip() or None
        attrs[mountpoint] = SubvolumeAttrs(compression=value, attrs=flags.strip())
    swapfile = [line.strip() for line in s.get("swapfile", []) if line.strip()]
    state = DiskState(
        device=device,
        serial=(disk.get("serial") or "").strip() or None,
        size_bytes=int(disk["size"]) if disk else None,
        pttype=table.get("label") or None,
        mountpoint=disk.get("mountpoint"),
        partitions=partitions,
        signatures=signatures,
        swaps=[line.strip() for line in s.get("swaps", []) if line.strip()],
        mounts=mounts,
        subvolume_names=names,
        subvolume_attrs=attrs,
        swapfile_bytes=int(swapfile[0]) if swapfile else None,
    )
    refuse_control("DiskStateFact", state.model_dump())
    return state


FILES_SCRIPT = r"""
for f in "$@"; do
  if [ -f "$f" ]; then
    echo "file $f $(sha256sum < "$f" | cut -d' ' -f1)"; base64 < "$f"; echo @@end-file
  else echo "absent $f"; fi
done
"""


class FileContents(FactBase[dict]):
    """``{path: ManagedFile | None}`` for ``paths`` (the probe's format, one round trip), so
    ``fleetforge.operations.managed_file`` can diff and back up files the probe does not read."""

    def command(self, paths: list[str]) -> StringCommand:
        quoted = [QuoteString(path) for path in paths]
        return StringCommand("sh", "-c", QuoteString(FILES_SCRIPT), "fleetforge-files", *quoted)

    def process(self, output: list[str]) -> dict[str, ManagedFile | None]:
        return parse_or_fail("FileContents", parse_files, output)

    @staticmethod
    def default() -> dict:
        return {}
