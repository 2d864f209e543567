"""Disks from the probe's ``lsblk``, ``queue`` and ``by-id`` sections (``HostProbe``): whole disks
with their transport, queue settings, stable by-id link and partitions. Host output: names must
be kernel names, text fields hold no control characters (``sections``).
"""

from __future__ import annotations

import json
import re

from pyinfra.api.exceptions import FactProcessError

from fleetforge.facts.models import (
    Disk,
    Partition,
    Transport,
)
from fleetforge.facts.sections import (
    BY_ID_LINK,
    DEV_NODE,
    NODE_NAME,
    WORD,
    host_value,
    kernel_name,
)

IGNORED_DISK_PREFIXES = ("loop", "zram", "ram", "sr", "fd", "nbd", "dm-", "md")
_DIGITS = re.compile(r"[0-9]{1,9}")


def _count(fact: str, field: str, value: str) -> str:
    """``value`` if it is a count in ASCII digits (``int()`` would take ``-1``, ``+3``, ``1_000``)."""
    return host_value(fact, field, value, _DIGITS, "a count like 1 or 4")


def parse_disks(lsblk_lines: list[str], queue_lines: list[str], byid_lines: list[str]) -> list[Disk]:
    """Whole disks from ``lsblk -J -b`` joined with their ``/sys/block/*/queue`` values.

    A disk's name must be a kernel block device name and its path ``/dev/<name>``; scheduler
    names must be plain words; partitions must be ``/dev`` nodes of udev's characters
    (``FactProcessError`` otherwise). by-id links of other characters are ignored: udev makes
    them from sanitised ID_SERIAL values, so a link of other characters is not one to name.
    """
    tree = json.loads("\n".join(lsblk_lines))
    queues: dict[str, list[str]] = {}
    for line in queue_lines:
        parts = line.split("|")
        if len(parts) not in (6, 7):  # 6: a probe from before nr_hw_queues (stored fixtures)
            raise FactProcessError(f"HostProbe: bad queue line {line!r}")
        queues[parts[0]] = parts + [""] * (7 - len(parts))
    by_id: dict[str, list[str]] = {}
    for line in byid_lines:
        link, _, target = line.partition("|")
        if BY_ID_LINK.fullmatch(link):
            by_id.setdefault(target, []).append(link)

    disks = []
    for dev in tree["blockdevices"]:
        name = dev["name"]
        if dev["type"] != "disk" or name.startswith(IGNORED_DISK_PREFIXES):
            continue
        kernel_name("HostProbe", "lsblk name", name)
        if name not in queues:
            raise FactProcessError(f"HostProbe: no queue attributes for disk {name}")
        _, sys_path, sched_line, rota, read_ahead, nr_requests, hw_queues = queues[name]
        current, available = parse_scheduler(sched_line)
        for scheduler in available:
            host_value("HostProbe", f"queue/scheduler of {name}", scheduler, WORD, "scheduler names like mq-deadline")
        path = dev.get("path") or f"/dev/{name}"
        if path != f"/dev/{name}":
            raise FactProcessError(f"HostProbe: lsblk path of {name}: expected {f'/dev/{name}'!r}, got {path!r}")
        disks.append(
            Disk(
                name=name,
                path=path,
                by_id_path=pick_by_id(by_id.get(path, [])),
                size_bytes=int(dev["size"]),
                transport=classify_transport(name, sys_path, dev.get("tran")),
                rotational=rota.strip() == "1",
                model=(dev.get("model") or "").strip() or None,
                serial=(dev.get("serial") or "").strip() or None,
                scheduler=current,
                schedulers_available=available,
                read_ahead_kb=int(read_ahead),
                nr_requests=int(nr_requests) if nr_requests.strip() else None,
                partitions=[_partition(child) for child in dev.get("children") or []],
                nr_hw_queues=int(_count("HostProbe", f"nr_hw_queues of {name}", hw_queues)) if hw_queues else None,
            )
        )
    return disks


def _partition(dev: dict) -> Partition:
    name = host_value("HostProbe", "lsblk name", dev["name"], NODE_NAME, "a device name like vda1 or vg-root")
    path = dev.get("path") or f"/dev/{name}"
    return Partition(
        name=name,
        path=host_value("HostProbe", f"lsblk path of {name}", path, DEV_NODE, "a /dev node like /dev/vda1"),
        size_bytes=int(dev["size"]),
        fstype=dev.get("fstype"),
        mountpoint=dev.get("mountpoint"),
    )


def parse_scheduler(line: str) -> tuple[str | None, list[str]]:
    """``"none [mq-deadline] kyber"`` -> ``("mq-deadline", ["none", "mq-deadline", "kyber"])``.

    A device without a request queue scheduler prints ``none`` alone: current is ``"none"``.
    """
    words = line.split()
    available = [w.strip("[]") for w in words]
    current = next((w.strip("[]") for w in words if w.startswith("[")), None)
    if current is None and available == ["none"]:
        current = "none"
    return current, available


def classify_transport(name: str, sys_path: str, tran: str | None) -> Transport:
    """Transport from the sysfs device path, device name and lsblk TRAN.

    virtio-blk disks (``vdX``) report no TRAN; virtio-scsi disks (``sdX`` behind a ``virtioN``
    host adapter) report none either or ``scsi``: the sysfs path tells them apart.
    """
    if name.startswith("nvme") or tran == "nvme":
        return "nvme"
    if "/virtio" in sys_path:
        return "virtio-scsi" if "/host" in sys_path else "virtio-blk"
    if name.startswith("vd"):
        return "virtio-blk"
    if tran in ("sata", "ata"):
        return "sata"
    if tran in ("usb", "mmc", "scsi"):
        return tran  # type: ignore[return-value]
    if name.startswith("mmcblk"):
        return "mmc"
    return "unknown"


_BY_ID_PREFERENCE = ("nvme-", "virtio-", "ata-", "scsi-0", "scsi-", "usb-", "wwn-")
# Opaque identifiers: stable, but a person cannot tell the disk from them.
_BY_ID_OPAQUE = ("nvme-eui.", "nvme-nvme.")


def pick_by_id(links: list[str]) -> str | None:
    """Most readable stable ``/dev/disk/by-id`` link for a disk.

    Model+serial names first (``nvme-``, ``virtio-``, ``ata-``, ``scsi-0``...), opaque
    ``nvme-eui.``/``nvme-nvme.`` names last; among equals the shortest (without the
    ``_<namespace>`` suffix), then alphabetical.
    """

    def rank(link: str) -> tuple[int, int, str]:
        base = link.rsplit("/", 1)[-1]
        if not base.startswith(_BY_ID_OPAQUE):
            for i, prefix in enumerate(_BY_ID_PREFERENCE):
                if base.startswith(prefix):
                    return (i, len(base), base)
        return (len(_BY_ID_PREFERENCE), len(base), base)

    return min(links, key=rank) if links else None
