"""zram swap: one compressed swap device in RAM, sized from RAM.

Host data: ``zram`` (bool), ``zram_size`` (MiB or ``"2G"``), ``zram_algorithm``,
``zram_priority``. Linux: ``/etc/systemd/zram-generator.conf`` (``zram-generator.conf.j2``; the
package is installed when missing), applied by restarting the generated units; NixOS:
``zramSwap.*``. Live: ``/sys/block/zram0/{disksize,comp_algorithm}`` and ``/proc/swaps``.

Why this file: zram-generator reads exactly it; writing it *owns* the distribution's default
instead of stacking a second device next to it (zram-generator.conf(5): it replaces the
packaged ``/usr/lib/systemd/zram-generator.conf``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pyinfra.api import StringCommand
from pyinfra.operations import server

from fleetforge.checks import Check
from fleetforge.components.base import DATA, Component, Row, bracketed, raw
from fleetforge.errors import PlanError
from fleetforge.models import HostFacts, Planned, TuningPlan, ZramPlan
from fleetforge.paths import ZRAM_GENERATOR_CONF
from fleetforge.render import render

if TYPE_CHECKING:
    from fleetforge.settings import HostSettings

ZRAM_CAP_MIB = 8192
# Package that provides zram-generator, by the package manager the probe found.
ZRAM_GENERATOR_PACKAGE = {"apt-get": "systemd-zram-generator", "dnf": "zram-generator", "yum": "zram-generator"}

# zram-generator makes systemd-zram-setup@zram0.service (creates the device) and
# dev-zram0.swap (swapon). A resize needs the swap off and the device reset first.
ZRAM_APPLY = (
    StringCommand("systemctl", "daemon-reload"),
    StringCommand("systemctl", "stop", "dev-zram0.swap", "systemd-zram-setup@zram0.service", "||", "true"),
    StringCommand("systemctl", "start", "systemd-zram-setup@zram0.service"),
    StringCommand("systemctl", "start", "dev-zram0.swap"),
)
ZRAM_REMOVE = (
    StringCommand("systemctl", "stop", "dev-zram0.swap", "systemd-zram-setup@zram0.service", "||", "true"),
    StringCommand("systemctl", "daemon-reload"),
)
UNLOAD = "{ swapoff /dev/zram0; echo 1 > /sys/block/zram0/reset; modprobe -r zram; } 2>/dev/null"


def plan_zram(host: str, facts: HostFacts, settings: HostSettings) -> ZramPlan:
    """zram swap sized from RAM.

    Fedora 34 (Changes/Scale_ZRAM_to_full_memory) sizes zram at min(RAM, 8 GiB): at the usual
    2:1-3:1 compression a full device holds RAM-sized data in a third to a half of RAM. NixOS'
    50 % and Fedora 33's min(RAM/2, 4 GiB) are more cautious; a fixed 16 GiB ignores RAM.
    A device above 2x RAM is pointless (kernel Documentation/admin-guide/blockdev/zram.rst) and
    is refused (``PlanError``).
    """
    ram_mib = facts.memory.mem_total_bytes // 1048576
    if settings.zram_size is not None:
        if settings.zram_size > 2 * ram_mib:
            raise PlanError(
                host,
                "zram_size",
                f"expected at most 2x RAM ({2 * ram_mib} MiB; larger zram is pointless per "
                f"the kernel's zram docs), got {settings.zram_size} MiB",
            )
        size = Planned(value=settings.zram_size, reason="set in host data", source=DATA)
    else:
        size = Planned(
            value=min(ram_mib, ZRAM_CAP_MIB),
            reason=f"min(RAM = {ram_mib} MiB, {ZRAM_CAP_MIB} MiB)",
            source="Fedora Changes/Scale_ZRAM_to_full_memory",
        )
    if settings.zram_algorithm:
        algorithm = Planned(value=settings.zram_algorithm, reason="set in host data", source=DATA)
    else:
        algorithm = Planned(
            value="zstd",
            reason="good compression and fast (NixOS's zramSwap.algorithm default, as its description says)",
            source="nixos/modules/config/zram.nix (zramSwap.algorithm default)",
        )
    if settings.zram_priority is not None:
        priority = Planned(value=settings.zram_priority, reason="set in host data", source=DATA)
    else:
        priority = Planned(
            value=100,
            reason="above any disk swap, so zram fills first (zram-generator's own default)",
            source="zram-generator.conf(5) (swap-priority)",
        )
    enabled = Planned(
        value=settings.zram,
        reason="set in host data" if not settings.zram else "compressed swap in RAM",
        source=DATA if not settings.zram else "Fedora Changes/SwapOnZRAM",
    )
    return ZramPlan(enabled=enabled, size_mib=size, algorithm=algorithm, swap_priority=priority)


def _zram_swap_priority(text: str) -> str | None:
    for line in text.splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == "/dev/zram0":
            return fields[4]
    return None


def _zram_swap_state(text: str) -> str:
    return "active" if _zram_swap_priority(text) else "inactive"


class Zram(Component):
    name = "zram"
    path = ZRAM_GENERATOR_CONF
    file_title = "zram-generator config"
    apply_title = "Apply zram swap"
    nixos_module = "zram.nix"

    def plan(self, host: str, facts: HostFacts, settings: HostSettings) -> dict[str, Any]:
        return {"zram": plan_zram(host, facts, settings)}

    def file(self, plan: TuningPlan, facts: HostFacts) -> str:
        return render("zram-generator.conf.j2", zram=plan.zram)

    def nixos_options(self, plan: TuningPlan, facts: HostFacts) -> dict[str, Any]:
        """NixOS sizes the device as ``min(memoryPercent% of RAM, memoryMax)``; with ``memoryMax``
        the planned size in bytes and ``memoryPercent`` the smallest percent of RAM that reaches
        it, the device gets exactly the planned size."""
        zram = plan.zram
        if not zram.enabled.value:
            return {"zramSwap": {"enable": False}}
        ram_mib = facts.memory.mem_total_bytes // 1048576
        return {
            "zramSwap": {
                "enable": True,
                "memoryPercent": max(1, math.ceil(zram.size_mib.value * 100 / ram_mib)),
                "memoryMax": zram.size_mib.value * 1048576,
                "algorithm": zram.algorithm.value,
                "priority": zram.swap_priority.value,
            }
        }

    def checks(self, plan: TuningPlan, nixos: bool) -> Iterator[Check]:
        zram = plan.zram
        if not zram.enabled.value:
            yield Check("zram0 swap", "inactive", "/proc/swaps", _zram_swap_state)
            return
        yield Check("zram0 disksize", str(zram.size_mib.value * 1048576), "/sys/block/zram0/disksize")
        yield Check("zram0 algorithm", zram.algorithm.value, "/sys/block/zram0/comp_algorithm", bracketed)
        yield Check("zram0 swap priority", str(zram.swap_priority.value), "/proc/swaps", _zram_swap_priority)

    def live(self, facts: HostFacts) -> dict[str, str | None]:
        zram0 = next((z for z in facts.zram if z.name == "zram0"), None)
        swap = next((s for s in facts.memory.swap_devices if s.path == "/dev/zram0"), None)
        active = zram0 is not None and zram0.swap_active
        return {
            "zram0 swap": "active" if active else "inactive",
            "zram0 disksize": str(zram0.disksize_bytes) if zram0 else None,
            "zram0 algorithm": zram0.algorithm if zram0 else None,
            "zram0 swap priority": str(swap.priority) if swap and active else None,
        }

    def prepare(self, plan: TuningPlan, facts: HostFacts) -> None:
        if not facts.zram_generator and plan.zram.enabled.value:
            package = ZRAM_GENERATOR_PACKAGE.get(facts.package_manager or "", "zram-generator")
            server.packages(name="Install zram-generator", packages=[package])

    def apply(self, plan: TuningPlan, facts: HostFacts) -> Sequence[StringCommand]:
        return ZRAM_APPLY if plan.zram.enabled.value else ZRAM_REMOVE

    def restore(self, pre, post, changed: list[str]) -> tuple[list[str], list[str]]:
        """The recorded swap state again: zram0 restarted from the restored file if it was an
        active swap, else stopped (and, if zram0 did not exist, reset and the module unloaded)."""
        if pre.is_nixos or (ZRAM_GENERATOR_CONF not in changed and pre.zram_device == post.zram_device):
            return [], []
        if pre.checks.get("zram0 swap priority") is not None or pre.checks.get("zram0 swap") == "active":
            return raw(ZRAM_APPLY), []
        return raw(ZRAM_REMOVE) + ([] if pre.zram_device else [UNLOAD]), []

    def rows(self, plan: TuningPlan, secret: Callable[[str], bool]) -> Iterator[Row]:
        z = plan.zram
        for label, item in (
            ("zram", z.enabled),
            ("zram-size MiB", z.size_mib),
            ("zram algorithm", z.algorithm),
            ("zram swap-priority", z.swap_priority),
        ):
            yield label, str(item.value), item.reason, item.source
