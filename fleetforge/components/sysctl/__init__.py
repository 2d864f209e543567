"""Kernel sysctls: two profiles, the swap sysctls that follow the host's swap, and host data.

Host data: ``sysctl_profiles`` (``["vm-memory", "network"]`` by default), ``sysctl = {"key":
value}``, ``swappiness``, ``swap_io_cost_ratio``. Linux: ``/etc/sysctl.d/60-fleetforge.conf``
(``sysctl.conf.j2``, applied with ``sysctl -p``); NixOS: ``boot.kernel.sysctl``. Live: ``/proc/sys/<key>``; restored
by writing the recorded values back (the kernel keeps live values after their file is gone).
A key the host does not have (a module not loaded) is skipped, with the reason.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pyinfra.api import QuoteString, StringCommand

from fleetforge.checks import Check
from fleetforge.components.base import DATA, Component, Row, raw
from fleetforge.facts.sections import SYSCTL_KEY, sysctl_path
from fleetforge.models import HostFacts, Planned, SkippedSysctl, SysctlPlan, TuningPlan
from fleetforge.paths import SYSCTL_CONF
from fleetforge.render import render
from fleetforge.textcheck import has_control

if TYPE_CHECKING:
    from fleetforge.settings import HostSettings

SYSCTL_APPLY = (StringCommand("sysctl", "-p", QuoteString(SYSCTL_CONF)),)

VM_DOC = "Documentation/admin-guide/sysctl/vm.rst"
NET_DOC = "Documentation/admin-guide/sysctl/net.rst"
IP_DOC = "Documentation/networking/ip-sysctl.rst"
_BUFFERS = "fleetforge default: 128 MiB is about the bandwidth-delay product of 10 Gbit/s at 100 ms RTT"
VM_MEMORY_PROFILE = {
    "vm.vfs_cache_pressure": (
        "50",
        "keep dentries and inodes cached longer (kernel default 100)",
        f"fleetforge default: Nix builds and package managers walk the same directory trees again; {VM_DOC}",
    ),
    "vm.dirty_ratio": (
        "15",
        "start synchronous writeback earlier than the default 20 % on a shared virtual disk",
        f"fleetforge default: less dirty data to flush at once to a disk shared with other guests; {VM_DOC}",
    ),
    "vm.dirty_background_ratio": (
        "5",
        "start background writeback earlier than the default 10 %",
        f"fleetforge default: flushing starts well before writers are throttled at dirty_ratio 15; {VM_DOC}",
    ),
}
NETWORK_PROFILE = {
    "net.core.rmem_max": ("134217728", "allow 128 MiB receive buffers for fast downloads", f"{_BUFFERS}; {NET_DOC}"),
    "net.core.wmem_max": ("134217728", "allow 128 MiB send buffers", f"{_BUFFERS}; {NET_DOC}"),
    "net.ipv4.tcp_rmem": ("4096 87380 134217728", "TCP receive autotuning up to 128 MiB", f"{_BUFFERS}; {IP_DOC}"),
    "net.ipv4.tcp_wmem": ("4096 87380 134217728", "TCP send autotuning up to 128 MiB", f"{_BUFFERS}; {IP_DOC}"),
    "net.ipv4.tcp_fastopen": (
        "3",
        "TCP Fast Open as client and server",
        f"fleetforge default: saves a round trip when a client connects again; {IP_DOC}",
    ),
    "net.netfilter.nf_conntrack_max": (
        "262144",
        "room for many concurrent connections through netfilter",
        "fleetforge default: the kernel sizes the table from RAM, small on a small VM; "
        "Documentation/networking/nf_conntrack-sysctl.rst",
    ),
}
PROFILES = {"vm-memory": VM_MEMORY_PROFILE, "network": NETWORK_PROFILE}
# fleetforge default: how many times cheaper swap I/O to zram is than filesystem I/O (vm.rst's
# r). A zstd decompression of a 4 KiB page takes microseconds, a random 4 KiB read from a virtual
# disk hundreds of microseconds; 9 is conservative and gives swappiness 180, the value of the
# ArchWiki (Zram, Optimizing swap on zram) and Pop!_OS.
ZRAM_IO_COST_RATIO = 9
MAX_SWAPPINESS = 200  # Linux >= 5.8; before it the kernel caps swappiness at 100
SWAPPINESS_SOURCE = f"{VM_DOC} (swappiness)"
# r itself is fleetforge's estimate until measured per host (host data swap_io_cost_ratio)
R_DEFAULT = (
    "fleetforge default: r = 9, a zstd page decompresses in microseconds where a virtual disk reads "
    "4 KiB in hundreds (ArchWiki's 180 is r = 9)"
)
# planned when zram is the only swap, next to vm.swappiness
ZRAM_ONLY_SYSCTLS = {
    "vm.page-cluster": (
        "0",
        "zram has no seek cost: read one page per swap-in, no swap readahead",
        f"{VM_DOC} (page-cluster)",
    ),
    "vm.watermark_boost_factor": (
        "0",
        "boosting reclaims extra memory after fragmentation events; with swap on zram that reclaim "
        "is extra compress/swap churn for no gain",
        f"{VM_DOC} (watermark_boost_factor); ArchWiki Zram (Optimizing swap on zram)",
    ),
    "vm.watermark_scale_factor": (
        "125",
        "kswapd starts reclaiming when free memory is 1.25 % of RAM above the min watermark instead "
        "of 0.1 %, so reclaim into zram happens in the background instead of as direct-reclaim stalls",
        f"{VM_DOC} (watermark_scale_factor); ArchWiki Zram",
    ),
}
ZRAM_SWAP_KEYS = ("vm.swappiness", *ZRAM_ONLY_SYSCTLS)
_INT = re.compile(r"^-?\d+$")


def sysctl_keys(settings: HostSettings) -> list[str]:
    """Every sysctl key a plan for these settings may manage (what the probe must read)."""
    keys = [key for name in settings.sysctl_profiles for key in PROFILES[name]]
    return sorted({*keys, *ZRAM_SWAP_KEYS, *settings.sysctl})


def _kernel_at_least(release: str, major: int, minor: int) -> bool:
    match = re.match(r"(\d+)\.(\d+)", release)
    return bool(match) and (int(match.group(1)), int(match.group(2))) >= (major, minor)


def swappiness_for_ratio(r: float) -> int:
    """``vm.swappiness`` for swap I/O ``r`` times cheaper (faster) than filesystem I/O.

    ``r``: a ratio without unit (the cost of a filesystem page I/O divided by the cost of a swap
    page I/O; 1 = equal, 2 = swap twice as fast). Returns ``round(200 * r / (1 + r))``, an int in
    0..200, capped at 200 (Linux >= 5.8; callers cap at 100 for older kernels). Source: the
    kernel's Documentation/admin-guide/sysctl/vm.rst, "swappiness" (r = 2 gives 133, its example).
    Raises ``ValueError`` for a bool, a non-number, NaN, infinity or ``r <= 0``.
    """
    if isinstance(r, bool) or not isinstance(r, int | float) or not math.isfinite(r) or r <= 0:
        raise ValueError(f"expected a swap I/O cost ratio, a finite number > 0, got {r!r}")
    return min(MAX_SWAPPINESS, round(200 / (1 + 1 / r)))  # = 200*r/(1+r), without overflow for huge r


def _swappiness(facts: HostFacts, r: float, from_data: bool) -> tuple[str, str, str]:
    value = swappiness_for_ratio(r)
    if from_data:
        reason = f"swap_io_cost_ratio r = {r:g} set in host data: swappiness = 200*r/(1+r) = {value}"
        source = f"{DATA}; {SWAPPINESS_SOURCE}"
    else:
        reason = (
            f"swap is zram only: swappiness = 200*r/(1+r) with r = {r:g} (swap I/O to compressed RAM "
            f"about {r:g}x cheaper than filesystem I/O on the disk) = {value}"
        )
        source = f"{R_DEFAULT}; {SWAPPINESS_SOURCE}; ArchWiki Zram (Optimizing swap on zram)"
    if value > 100 and not _kernel_at_least(facts.kernel_release, 5, 8):
        value, reason = 100, f"{reason}; kernel < 5.8 caps swappiness at 100"
    return str(value), reason, source


def plan_swap_sysctls(
    facts: HostFacts, zram_enabled: bool, io_cost_ratio: float | None = None
) -> dict[str, tuple[str, str, str]]:
    """The swap sysctls consistent with the swap the host will have: ``{key: (value, reason, source)}``.

    ``io_cost_ratio`` (host data ``swap_io_cost_ratio``): when given, ``vm.swappiness`` comes from
    vm.rst's formula with it, whatever the swap. Otherwise, when zram is the only swap, from the
    formula with ``ZRAM_IO_COST_RATIO`` (9: 180; 100 before Linux 5.8). When zram is the only swap
    also ``vm.page-cluster`` 0 and the watermark knobs of ArchWiki's Zram page. With disk swap
    present the kernel defaults (swappiness 60) stay, since zram only fills first (higher priority).
    """
    disk_swap = [s for s in facts.memory.swap_devices if not s.path.startswith("/dev/zram")]
    planned = {}
    if io_cost_ratio is not None:
        planned["vm.swappiness"] = _swappiness(facts, io_cost_ratio, from_data=True)
    if zram_enabled and not disk_swap:
        planned.setdefault("vm.swappiness", _swappiness(facts, ZRAM_IO_COST_RATIO, from_data=False))
        planned.update(ZRAM_ONLY_SYSCTLS)
    return planned


def plan_sysctls(facts: HostFacts, settings, zram_enabled: bool) -> tuple[list[SysctlPlan], list[SkippedSysctl]]:
    """``(planned, skipped)``: the profiles, the swap sysctls, then host data (which wins)."""
    wanted: dict[str, tuple[str, str, str]] = {}
    for name in settings.sysctl_profiles:
        wanted.update(PROFILES[name])
    wanted.update(plan_swap_sysctls(facts, zram_enabled, settings.swap_io_cost_ratio))
    if settings.swappiness is not None:
        wanted["vm.swappiness"] = (str(settings.swappiness), "set in host data", DATA)
    for key, value in settings.sysctl.items():
        wanted[key] = (" ".join(str(value).split()), "set in host data", DATA)

    planned, skipped = [], []
    for key in sorted(wanted):
        value, reason, source = wanted[key]
        if key not in facts.sysctl:
            missing = sysctl_path(key)
            reason = f"{missing} does not exist on this host (module not loaded or kernel without it)"
            skipped.append(SkippedSysctl(key=key, reason=reason))
            continue
        planned.append(SysctlPlan(key=key, value=Planned(value=value, reason=reason, source=source)))
    return planned, skipped


def _typed(value: str) -> int | str:
    """NixOS's sysctl option takes ints as ints (``net.core.rmem_max`` refuses strings)."""
    return int(value) if _INT.match(value) else value


class Sysctl(Component):
    name = "sysctl"
    path = SYSCTL_CONF
    file_title = "sysctl settings"
    apply_title = "Apply sysctl settings"
    nixos_module = "sysctl.nix"

    def plan(self, host: str, facts: HostFacts, settings: HostSettings) -> dict[str, Any]:
        # zram's own rule enables it exactly when host data's ``zram`` is true
        sysctls, skipped = plan_sysctls(facts, settings, settings.zram)
        return {"sysctls": sysctls, "skipped_sysctls": skipped}

    def file(self, plan: TuningPlan, facts: HostFacts) -> str:
        return render("sysctl.conf.j2", path=SYSCTL_CONF, sysctls=plan.sysctls, skipped=plan.skipped_sysctls)

    def nixos_options(self, plan: TuningPlan, facts: HostFacts) -> dict[str, Any]:
        return {"boot": {"kernel": {"sysctl": {k: _typed(v) for k, v in plan.sysctl_values().items()}}}}

    def checks(self, plan: TuningPlan, nixos: bool) -> Iterator[Check]:
        for item in plan.sysctls:
            yield Check(f"sysctl {item.key}", item.value.value, sysctl_path(item.key))

    def live(self, facts: HostFacts) -> dict[str, str | None]:
        return {f"sysctl {key}": value for key, value in facts.sysctl.items()}

    def apply(self, plan: TuningPlan, facts: HostFacts) -> Sequence[StringCommand]:
        return SYSCTL_APPLY

    def restore(self, pre, post, changed: list[str]) -> tuple[list[str], list[str]]:
        """``sysctl -p`` of a restored file, then every recorded value that differs written back;
        a key or value of other characters is reported, never written."""
        restored = SYSCTL_CONF in changed and pre.files.get(SYSCTL_CONF) is not None
        cmds = raw(SYSCTL_APPLY) if restored and not pre.is_nixos else []
        problems = []
        for key, value in pre.sysctl.items():
            if post.sysctl.get(key) == value:
                continue
            if SYSCTL_KEY.fullmatch(key) and not has_control(value):
                cmds.append(shlex.join(["sysctl", "-q", "-w", f"{key}={value}"]))
            else:
                problems.append(f"sysctl {key!r} = {value!r} is not restored: not a sysctl key and value")
        return cmds, problems

    def rows(self, plan: TuningPlan, secret: Callable[[str], bool]) -> Iterator[Row]:
        for s in plan.sysctls:
            yield s.key, s.value.value, s.value.reason, s.value.source
        for s in plan.skipped_sysctls:
            yield s.key, "(skipped)", s.reason, "detected"
