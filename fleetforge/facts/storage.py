"""Filesystems and stores from the probe's ``btrfs``, ``podman`` and ``nix-settings`` sections
(``HostProbe``). Host output: every value is checked against what it claims to be
(``sections``) before it can reach a file fleetforge writes.
"""

from __future__ import annotations

import re

from pyinfra.api.exceptions import FactProcessError

from fleetforge.facts.models import BtrfsFilesystem, PodmanInfo, PodmanStore
from fleetforge.facts.sections import WORD, host_value, kernel_name

FSID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
BDI_NAME = re.compile(r"btrfs-[0-9]+")
# Store paths written back into storage.conf: absolute, of plain path characters only.
# (One way to match each string: a nested quantifier here would backtrack exponentially.)
STORE_PATH = re.compile(r"/(?:[A-Za-z0-9._+@-]+(?:/[A-Za-z0-9._+@-]+)*/?)?")
# findmnt FSTYPE: ext4, btrfs, fuse.mergerfs, fuse-overlayfs
FSTYPE = re.compile(r"[a-z0-9][a-z0-9_.-]*")
NIX_SETTING = re.compile(r"[a-z0-9][a-z0-9-]*")
_VERSION = re.compile(r"podman version (\d+(?:\.\d+){1,2}\S*)")
_STORE = re.compile(r"([a-z0-9]+)-(images|containers)")
_CONF_FILES = ("/etc/containers/storage.conf", "/usr/share/containers/storage.conf")
DEFAULT_GRAPHROOT = "/var/lib/containers/storage"


def parse_btrfs(lines: list[str]) -> list[BtrfsFilesystem]:
    """``fsid|bdi|read_ahead_kb|dev dev `` lines -> mounted btrfs filesystems."""
    filesystems: list[BtrfsFilesystem] = []
    for line in lines:
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != 4 or not parts[2].strip().isdigit():
            raise FactProcessError(f"HostProbe: bad btrfs line {line!r}")
        fsid = host_value("HostProbe", "btrfs fsid", parts[0], FSID, "a filesystem UUID")
        bdi = host_value("HostProbe", f"bdi of btrfs {fsid}", parts[1], BDI_NAME, "a bdi name like btrfs-1")
        if any(fs.fsid == fsid for fs in filesystems):
            raise FactProcessError(f"HostProbe: btrfs fsid: {fsid!r} listed twice")
        devices = [kernel_name("HostProbe", f"device of btrfs {fsid}", d) for d in parts[3].split()]
        filesystems.append(BtrfsFilesystem(fsid=fsid, bdi=bdi, read_ahead_kb=int(parts[2]), devices=devices))
    return filesystems


def parse_nix_setting_names(lines: list[str]) -> list[str] | None:
    """Setting names from ``nix config show`` (one per line); ``None`` when Nix printed none."""
    names = [line.strip() for line in lines if line.strip()]
    for name in names:
        host_value("HostProbe", "nix setting name", name, NIX_SETTING, "a nix.conf setting name like max-jobs")
    return sorted(set(names)) or None


def parse_podman(lines: list[str]) -> PodmanInfo | None:
    """The ``podman`` section -> ``PodmanInfo`` (``None`` when Podman is not installed).

    Lines: ``version podman version X``, ``conf PATH``, ``set KEY VALUE`` (the ``[storage]``
    table of that file), ``fstype TYPE`` (``findmnt -T`` of graphroot), ``store DRIVER-images N``
    / ``store DRIVER-containers N`` (directories named by 64-hex IDs). Raises
    ``FactProcessError`` for a driver that is not a word or a store path that is not a plain
    absolute path (both are written back into storage.conf).
    """
    if not any(line.strip() for line in lines):
        return None
    version = conf = fstype = None
    values: dict[str, str] = {}
    counts: dict[str, dict[str, int]] = {}
    for line in lines:
        key, _, rest = line.strip().partition(" ")
        if key == "version":
            match = _VERSION.search(rest)
            version = match.group(1) if match else None
        elif key == "conf":
            conf = host_value("HostProbe", "storage.conf path", rest, None, "a storage.conf path")
            if conf not in _CONF_FILES:
                raise FactProcessError(f"HostProbe: storage.conf path: expected one of {_CONF_FILES}, got {conf!r}")
        elif key == "set":
            name, _, value = rest.partition(" ")
            values.setdefault(name, value)
        elif key == "fstype":
            expected = "a filesystem type like btrfs"
            fstype = host_value("HostProbe", "graphroot fstype", rest, FSTYPE, expected) if rest else None
        elif key == "store":
            kind, _, number = rest.partition(" ")
            match = _STORE.fullmatch(kind)
            if not match or not number.isdigit():
                raise FactProcessError(f"HostProbe: podman store: expected 'DRIVER-images N', got {rest!r}")
            counts.setdefault(match.group(1), {})[match.group(2)] = int(number)
    driver = values.get("driver") or None
    if driver is not None:
        host_value("HostProbe", "storage driver", driver, WORD, "a driver name like overlay or btrfs")
    paths = {}
    for name in ("graphroot", "runroot"):
        if values.get(name):
            paths[name] = host_value("HostProbe", f"storage {name}", values[name], STORE_PATH, "a plain absolute path")
    return PodmanInfo(
        version=version,
        conf=conf,
        driver=driver,
        graphroot=paths.get("graphroot", DEFAULT_GRAPHROOT),
        runroot=paths.get("runroot"),
        graphroot_fstype=fstype,
        stores=[
            PodmanStore(driver=d, images=c.get("images", 0), containers=c.get("containers", 0))
            for d, c in sorted(counts.items())
        ],
    )
