"""Typed data that flows through fleetforge: what a host is (``HostFacts``, defined with the
facts in ``fleetforge.facts.models`` and re-exported here) and what it should become
(``TuningPlan``).

Units are in the field names (``size_bytes``, ``read_ahead_kb``, ``size_mib``); numbers are
numbers. Every planned value is a ``Planned`` carrying the reason it was chosen and the source
(a document a user can open, ``fleetforge default`` with its reason, or ``host data``) so
``fleetforge plan`` explains itself.
"""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

from fleetforge.facts.models import (  # re-exported: the plan's inputs
    Cpu as Cpu,
)
from fleetforge.facts.models import (
    Disk as Disk,
)
from fleetforge.facts.models import (
    Firmware as Firmware,
)
from fleetforge.facts.models import (
    HostFacts as HostFacts,
)
from fleetforge.facts.models import (
    ManagedFile as ManagedFile,
)
from fleetforge.facts.models import (
    Memory as Memory,
)
from fleetforge.facts.models import (
    Model as Model,
)
from fleetforge.facts.models import (
    NixInfo as NixInfo,
)
from fleetforge.facts.models import (
    OsRelease as OsRelease,
)
from fleetforge.facts.models import (
    Partition as Partition,
)
from fleetforge.facts.models import (
    PodmanInfo as PodmanInfo,
)
from fleetforge.facts.models import (
    SwapDevice as SwapDevice,
)
from fleetforge.facts.models import (
    Transport as Transport,
)
from fleetforge.facts.models import (
    ZramDevice as ZramDevice,
)

# -- the plan ---------------------------------------------------------------------------------

T = TypeVar("T")


class Planned(Model, Generic[T]):
    """One planned value with the reason it was chosen and where the rule comes from."""

    value: T
    reason: str
    source: str


class DiskPlan(Model):
    name: str
    path: str
    disk_class: Literal["virtual", "nvme", "ssd", "hdd"]
    scheduler: Planned[str]
    read_ahead_kb: Planned[int]


class SysctlPlan(Model):
    key: str
    value: Planned[str]


class SkippedSysctl(Model):
    key: str
    reason: str


class ZramPlan(Model):
    """zram swap as systemd's zram-generator sets it up (``[zram0]``)."""

    enabled: Planned[bool]
    size_mib: Planned[int]
    algorithm: Planned[str]
    swap_priority: Planned[int]


class NixPlan(Model):
    """Nix settings (``nix.conf`` keys) when Nix is installed; ``settings`` keys are nix.conf keys."""

    settings: dict[str, Planned[str]]
    #: planned defaults left out, with the reason (a setting the host's Nix does not know)
    skipped: dict[str, str] = {}


class BtrfsReadAheadPlan(Model):
    """The read-ahead of one btrfs filesystem's own bdi (``/sys/fs/btrfs/<fsid>/bdi``), in KiB."""

    fsid: str
    bdi: str
    disks: list[str]  # the whole disks holding it
    read_ahead_kb: Planned[int]


class PodmanPlan(Model):
    """Podman's storage driver (containers-storage.conf(5)) where Podman is installed.

    ``driver_before``: the driver Podman used before; ``write``: fleetforge sets the driver
    (host data or the btrfs rule), so storage.conf (NixOS: the option) is written and verified.
    """

    driver: Planned[str]
    driver_before: str
    graphroot: str
    runroot: str
    write: bool


class TuningPlan(Model):
    host: str
    disks: list[DiskPlan]
    sysctls: list[SysctlPlan]
    skipped_sysctls: list[SkippedSysctl]
    zram: ZramPlan
    nix: NixPlan | None
    podman: PodmanPlan | None = None
    btrfs_read_ahead: list[BtrfsReadAheadPlan] = []

    def sysctl_values(self) -> dict[str, str]:
        """Planned sysctl values as ``{key: value}`` strings (whitespace-normalised)."""
        return {item.key: item.value.value for item in self.sysctls}
