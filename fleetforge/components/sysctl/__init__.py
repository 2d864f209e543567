"""Kernel sysctls: two profiles, the swap sysctls that follow the host's swap, and host data.

Host data: ``sysctl_profiles`` (``["vm-memory", "network"]`` by default), ``sysctl = {"key":
value}``, ``swappiness``. Linux: ``/etc/sysctl.d/60-fleetforge.conf`` (``sysctl.conf.j2``,
applied with ``sysctl -p``); NixOS: ``boot.kernel.sysctl``. Live: ``/proc/sys/<key>``; restored
by writing the recorded values back (the kernel keeps live values after their file is gone).
A key the host does not have (a module not loaded) is skipped, with the reason.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pyinfra.api import QuoteString, StringCommand

from fleetforge.checks import Check
from fleetforge.components.base import DATA, Component, Row, raw
from fleetforge.facts.sections import SYSCTL_KEY
from fleetforge.models import HostFacts, Planned, SkippedSysctl, SysctlPlan, TuningPlan
from fleetforge.paths import SYSCTL_CONF
from fleetforge.render import render
from fleetforge.textcheck import has_control

if TYPE_CHECKING:
    from fleetforge.settings import HostSettings

SYSCTL_APPLY = (StringCommand("sysctl", "-p", QuoteString(SYSCTL_CONF)),)

VM_MEMORY_PROFILE = {
    "vm.vfs_cache_pressure": (
        "50",
        "keep dentries and inodes cached longer (kernel default 100)",
        "fleetforge default; Documentation/admin-guide/sysctl/vm.rst",
    ),
    "vm.dirty_ratio": (
        "15",
        "start synchronous writeback earlier than the default 20 % on a shared virtual disk",
        "fleetforge default; Documentation/admin-guide/sysctl/vm.rst",
    ),
    "vm.dirty_background_ratio": (
        "5",
        "start background writeback earlier than the default 10 %",
        "fleetforge default; Documentation/admin-guide/sysctl/vm.rst",
    ),
}
NETWORK_PROFILE = {
    "net.core.rmem_max": (
        "134217728",
        "allow 128 MiB receive buffers for fast downloads",
        "fleetforge default; Documentation/admin-guide/sysctl/net.rst",
    ),
    "net.core.wmem_max": (
        "134217728",
        "allow 128 MiB send buffers",
        "fleetforge default; Documentation/admin-guide/sysctl/net.rst",
    ),
    "net.ipv4.tcp_rmem": (
        "4096 87380 134217728",
        "TCP receive autotuning up to 128 MiB",
        "fleetforge default; Documentation/networking/ip-sysctl.rst",
    ),
    "net.ipv4.tcp_wmem": (
        "4096 87380 134217728",
        "TCP send autotuning up to 128 MiB",
        "fleetforge default; Documentation/networking/ip-sysctl.rst",
    ),
    "net.ipv4.tcp_fastopen": (
        "3",
        "TCP Fast Open as client and server",
        "fleetforge default; Documentation/networking/ip-sysctl.rst",
    ),
    "net.netfilter.nf_conntrack_max": (
        "262144",
        "room for many concurrent connections through netfilter",
        "fleetforge default; Documentation/networking/nf_conntrack-sysctl.rst",
    ),
}
PROFILES = {"vm-memory": VM_MEMORY_PROFILE, "network": NETWORK_PROFILE}
ZRAM_SWAP_KEYS = ("vm.swappiness", "vm.page-cluster")
_INT = re.compile(r"^-?\d+$")


def sysctl_keys(settings: HostSettings) -> list[str]:
    """Every sysctl key a plan for these settings may manage (what the probe must read)."""
    keys = [key for name in settings.sysctl_profiles for key in PROFILES[name]]
    return sorted({*keys, *ZRAM_SWAP_KEYS, *settings.sysctl})


def _kernel_at_least(release: str, major: int, minor: int) -> bool:
    match = re.match(r"(\d+)\.(\d+)", release)
    return bool(match) and (int(match.group(1)), int(match.group(2))) >= (major, minor)


def plan_swap_sysctls(facts: HostFacts, zram_enabled: bool) -> dict[str, tuple[str, str, str]]:
    """``vm.swappiness`` and ``vm.page-cluster`` consistent with the swap the host will have.

    Some tuning guides set swappiness 10 (for a large host whose zram serves /tmp); Pop!_OS and the Arch
    wiki use 180 for zram. The kernel's vm.rst gives the rule instead: for in-memory swap,
    swappiness = 200 * io_cost_ratio / (1 + io_cost_ratio); with swap I/O about 2x cheaper than
    filesystem I/O that is 133. Values above 100 need Linux >= 5.8. With disk swap present the
    kernel default (60) stays, since zram only fills first (higher priority).
    """
    disk_swap = [s for s in facts.memory.swap_devices if not s.path.startswith("/dev/zram")]
    if not zram_enabled or disk_swap:
        return {}
    swappiness = "133" if _kernel_at_least(facts.kernel_release, 5, 8) else "100"
    return {
        "vm.swappiness": (
            swappiness,
            "swap is zram only: swapping to compressed RAM is cheaper than dropping page cache"
            + ("" if swappiness == "133" else "; kernel < 5.8 caps swappiness at 100"),
            "Documentation/admin-guide/sysctl/vm.rst (swappiness, in-memory swap); a fixed 10 rejected",
        ),
        "vm.page-cluster": (
            "0",
            "zram has no seek cost: read one page per swap-in, no swap readahead",
            "Documentation/admin-guide/sysctl/vm.rst (page-cluster)",
        ),
    }


def plan_sysctls(facts: HostFacts, settings, zram_enabled: bool) -> tuple[list[SysctlPlan], list[SkippedSysctl]]:
    """``(planned, skipped)``: the profiles, the swap sysctls, then host data (which wins)."""
    wanted: dict[str, tuple[str, str, str]] = {}
    for name in settings.sysctl_profiles:
        wanted.update(PROFILES[name])
    wanted.update(plan_swap_sysctls(facts, zram_enabled))
    if settings.swappiness is not None:
        wanted["vm.swappiness"] = (str(settings.swappiness), "set in host data", DATA)
    for key, value in settings.sysctl.items():
        wanted[key] = (" ".join(str(value).split()), "set in host data", DATA)

    planned, skipped = [], []
    for key in sorted(wanted):
        value, reason, source = wanted[key]
        if key not in facts.sysctl:
            missing = f"/proc/sys/{key.replace('.', '/')}"
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
            yield Check(f"sysctl {item.key}", item.value.value, f"/proc/sys/{item.key.replace('.', '/')}")

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
