"""The planner: ``plan_host(host, facts, settings) -> TuningPlan``, a pure function.

It depends only on what a host *is* (hardware, kernel, installed software) and on validated
host data, never on the values currently applied, so a plan made after a deploy equals the plan
made before it (``fleetforge verify`` relies on this).

Each rule below says why it chose a value and where the rule comes from; the text ends up in
``fleetforge plan``. Sources are documents a user can open (kernel Documentation paths, man
pages, the Nix manual, Fedora change pages), or "fleetforge default" with the reason; where a
tuning guide's advice and a primary source disagree, the primary source wins and the reason says so.
"""

from __future__ import annotations

import re

from fleetforge.errors import PlanError as PlanError  # re-exported: callers import it from here
from fleetforge.models import (
    Disk,
    DiskPlan,
    HostFacts,
    NixPlan,
    Planned,
    SkippedSysctl,
    SysctlPlan,
    TuningPlan,
    ZramPlan,
)
from fleetforge.settings import HostSettings

DATA = "host data"


# -- I/O scheduler and read-ahead ---------------------------------------------------------

KERNEL_READ_AHEAD_KB = 128  # VM_READAHEAD_PAGES * 4 KiB (include/linux/mm.h)
VIRTUAL_READ_AHEAD_KB = 4096  # fleetforge default for virtual disks (reason in plan_disk)


def disk_class(disk: Disk, virtualization: str) -> str:
    """``virtual``, ``nvme``, ``ssd`` or ``hdd``.

    Not from ``rotational`` alone: virtio-blk reports rotational=1 inside QEMU guests
    (seen on the test VMs), so any disk of a guest on a virtio transport is ``virtual``.
    """
    if disk.transport == "nvme":
        return "nvme"
    if disk.transport in ("virtio-blk", "virtio-scsi") or virtualization not in ("none", ""):
        return "virtual"
    return "hdd" if disk.rotational else "ssd"


_SCHEDULER_RULES = {
    "virtual": (
        "none",
        "virtual disk: the host's own scheduler already orders I/O; a guest scheduler adds "
        "latency (tuning guides that prefer mq-deadline: set io_scheduler to follow them)",
        'linux-block 2023 "virtio_blk: set the default scheduler to none"; RHEL virtualization tuning guide',
    ),
    "nvme": (
        "none",
        "NVMe is multi-queue; the kernel's own default for it is none",
        "block/elevator.c default; RHEL 9 storage tuning",
    ),
    "ssd": (
        "mq-deadline",
        "single-queue SSD: kernel default, bounded latency",
        "block/elevator.c default",
    ),
    "hdd": (
        "mq-deadline",
        "rotational disk: deadline ordering limits seeks and starvation",
        "block/elevator.c default; Documentation/block/deadline-iosched.rst",
    ),
}


def plan_disk(host: str, disk: Disk, virtualization: str, settings: HostSettings) -> DiskPlan:
    cls = disk_class(disk, virtualization)
    override = settings.disks.get(disk.name)
    scheduler, reason, source = _SCHEDULER_RULES[cls]
    key = "io_scheduler"
    if override and override.scheduler:
        scheduler, reason, source, key = (
            override.scheduler,
            "set in host data",
            DATA,
            f"disks.{disk.name}.scheduler",
        )
    elif settings.io_scheduler:
        scheduler, reason, source = settings.io_scheduler, "set in host data", DATA
    if scheduler not in disk.schedulers_available:
        if source == DATA:
            raise PlanError(
                host,
                key,
                f"expected one of the schedulers {disk.name} offers "
                f"({', '.join(disk.schedulers_available)}), got {scheduler!r}",
            )
        fallback = disk.scheduler or disk.schedulers_available[0]
        reason = f"{scheduler} is not offered by this kernel; keeping {fallback}"
        scheduler, source = fallback, "detected"

    if override and override.read_ahead_kb is not None:
        ra = Planned(value=override.read_ahead_kb, reason="set in host data", source=DATA)
    elif settings.read_ahead_kb is not None:
        ra = Planned(value=settings.read_ahead_kb, reason="set in host data", source=DATA)
    elif cls == "virtual":
        ra = Planned(
            value=VIRTUAL_READ_AHEAD_KB,
            reason="larger sequential reads through the virtual disk (Nix store, images); "
            f"kernel default is {KERNEL_READ_AHEAD_KB}",
            source="fleetforge default; Documentation/ABI/stable/sysfs-block (queue/read_ahead_kb)",
        )
    else:
        ra = Planned(
            value=KERNEL_READ_AHEAD_KB,
            reason="kernel default; no evidence that more helps this disk class",
            source="include/linux/mm.h VM_READAHEAD_PAGES",
        )
    return DiskPlan(
        name=disk.name,
        path=disk.path,
        disk_class=cls,  # type: ignore[arg-type]
        scheduler=Planned(value=scheduler, reason=reason, source=source),
        read_ahead_kb=ra,
    )


# -- sysctl profiles ------------------------------------------------------------------------

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


def plan_sysctls(
    facts: HostFacts, settings: HostSettings, zram_enabled: bool
) -> tuple[list[SysctlPlan], list[SkippedSysctl]]:
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
            skipped.append(
                SkippedSysctl(
                    key=key,
                    reason=f"/proc/sys/{key.replace('.', '/')} does not exist on this host "
                    "(module not loaded or kernel without it)",
                )
            )
            continue
        planned.append(SysctlPlan(key=key, value=Planned(value=value, reason=reason, source=source)))
    return planned, skipped


# -- zram -----------------------------------------------------------------------------------

ZRAM_CAP_MIB = 8192


def plan_zram(host: str, facts: HostFacts, settings: HostSettings) -> ZramPlan:
    """zram swap sized from RAM.

    Fedora 34 (Changes/Scale_ZRAM_to_full_memory) sizes zram at min(RAM, 8 GiB): at the usual
    2:1-3:1 compression a full device holds RAM-sized data in a third to a half of RAM. NixOS'
    50 % and Fedora 33's min(RAM/2, 4 GiB) are more cautious; a fixed 16 GiB ignores RAM.
    A device above 2x RAM is pointless (kernel Documentation/admin-guide/blockdev/zram.rst) and
    is refused.
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
    algorithm = (
        Planned(value=settings.zram_algorithm, reason="set in host data", source=DATA)
        if settings.zram_algorithm
        else Planned(
            value="zstd",
            reason="best ratio of the kernel's zram compressors at acceptable speed",
            source="Fedora and NixOS zramSwap.algorithm defaults",
        )
    )
    priority = (
        Planned(value=settings.zram_priority, reason="set in host data", source=DATA)
        if settings.zram_priority is not None
        else Planned(
            value=100,
            reason="above any disk swap, so zram fills first",
            source="zram-generator default swap-priority",
        )
    )
    enabled = Planned(
        value=settings.zram,
        reason="set in host data" if not settings.zram else "compressed swap in RAM",
        source=DATA if not settings.zram else "Fedora Changes/SwapOnZRAM",
    )
    return ZramPlan(enabled=enabled, size_mib=size, algorithm=algorithm, swap_priority=priority)


# -- Nix --------------------------------------------------------------------------------------

NIXOS_CACHE = "https://cache.nixos.org"
NIXOS_CACHE_KEY = "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="
# NixOS's nix.nix (nix-daemon.nix before 23.11) defines, for every release with nix.settings:
#   substituters = mkAfter [ "https://cache.nixos.org/" ];  trusted-public-keys = [ NIXOS_CACHE_KEY ];
# Both options are lists that concatenate, so planning them again lists them twice in nix.conf.
ADDED_BY_NIXOS = "added by NixOS itself (nixos/modules/config/nix.nix: nix.settings)"


def normalise_url(url: str) -> str:
    """A substituter URL for comparison: scheme and host lowercase, trailing ``/`` of the path
    dropped, query kept (``https://Cache.NixOS.org/`` == ``https://cache.nixos.org``)."""
    base, sep, query = url.partition("?")
    scheme, colon, rest = base.partition("://")
    if not colon:
        return url
    authority, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{authority.lower()}{(slash + path).rstrip('/')}{sep}{query}"


def _unique(items: list[str], drop: set[str], key=lambda item: item) -> list[str]:
    """``items`` without repeats and without those whose ``key`` is in ``drop``, in order."""
    seen, out = set(drop), []
    for item in items:
        if key(item) not in seen:
            seen.add(key(item))
            out.append(item)
    return out


def _public_caches(settings: HostSettings) -> dict[str, tuple[str, str, str]]:
    """``substituters`` and ``trusted-public-keys``: the inventory's caches first, then
    cache.nixos.org and its key, each once (URLs compared normalised)."""
    urls = _unique([*settings.nix_substituters, NIXOS_CACHE], set(), normalise_url)
    keys = _unique([*settings.nix_trusted_public_keys, NIXOS_CACHE_KEY], set())
    return {
        "substituters": (" ".join(urls), "inventory caches first, then the public cache", "Nix manual, nix.conf"),
        "trusted-public-keys": (
            " ".join(keys),
            "verify substituted paths (binary-cache-public-keys is the old name)",
            "Nix manual, nix.conf",
        ),
    }


def _leave_to_nixos(items: dict[str, tuple[str, str, str]]) -> None:
    """On NixOS: drop cache.nixos.org and its key from ``items`` (planned or from host data),
    since NixOS lists both itself, the URL last (``mkAfter``); a list left empty is not planned."""
    for key, drop, norm in (
        ("substituters", normalise_url(NIXOS_CACHE), normalise_url),
        ("trusted-public-keys", NIXOS_CACHE_KEY, str),
    ):
        if key not in items:
            continue
        value, reason, source = items[key]
        kept = _unique(value.split(), {drop}, norm)
        if kept:
            items[key] = (" ".join(kept), f"{reason}; {drop} is {ADDED_BY_NIXOS}", source)
        else:
            del items[key]


def nix_value(value: str | int | bool | list[str]) -> str:
    """A nix.conf value: booleans ``true``/``false``, lists space-separated."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return " ".join(value)
    return str(value)


def plan_nix(facts: HostFacts, settings: HostSettings) -> NixPlan | None:
    """nix.conf settings, only where Nix is installed.

    ``max-jobs`` x ``cores`` is kept at the vCPU count so parallel builds do not oversubscribe
    the VM (cores=8 with max-jobs=4 on 8 vCPUs would run up to 32 threads;
    "reserved-build-cores" is not a Nix setting). ``fsync-metadata`` and ``use-sqlite-wal``
    keep Nix's defaults: turning both off trades durability for speed, and
    ``use-sqlite-wal = false`` is only required on shared/NFS stores (Nix manual).
    """
    if not facts.nix.installed or not settings.nix:
        return None
    cpus = facts.cpu.logical_cpus
    max_jobs = max(1, cpus // 2)
    cores = max(1, cpus // max_jobs)
    budget = f"{max_jobs} jobs x {cores} cores = {max_jobs * cores} of {cpus} vCPUs"
    manual = "Nix manual, nix.conf"
    items: dict[str, tuple[str, str, str]] = {
        "max-jobs": (str(max_jobs), f"half the vCPUs build in parallel; {budget}", manual),
        "cores": (str(cores), f"cores per build so that {budget}", manual),
        "http-connections": ("25", "parallel substituter downloads", "Nix default; Nix manual, nix.conf"),
        "connect-timeout": (
            "10",
            "give up on an unreachable cache after 10 s",
            "fleetforge default; Nix manual, nix.conf",
        ),
        "stalled-download-timeout": (
            "60",
            "retry a stalled download after 60 s",
            "fleetforge default; Nix manual, nix.conf",
        ),
        "download-attempts": ("5", "retries per download", "Nix default"),
        **_public_caches(settings),
        "builders-use-substitutes": (
            "true",
            "remote builders fetch from caches",
            "fleetforge default; Nix manual, nix.conf",
        ),
        "fsync-metadata": ("true", "keep durability (turning it off trades durability for speed)", "Nix default"),
        "use-sqlite-wal": (
            "true",
            "local store; false is only required on shared stores",
            "Nix default; Nix manual",
        ),
    }
    for key, value in settings.nix_settings.items():
        items[key] = (nix_value(value), "set in host data", DATA)
    if facts.os.is_nixos:
        _leave_to_nixos(items)
    return NixPlan(
        settings={
            key: Planned(value=value, reason=reason, source=source) for key, (value, reason, source) in items.items()
        }
    )


def plan_host(host: str, facts: HostFacts, settings: HostSettings) -> TuningPlan:
    """Turn one host's facts and validated settings into its ``TuningPlan``.

    Raises ``PlanError`` when host data asks for something the hardware cannot do (a scheduler
    the disk does not offer, zram above 2x RAM).
    """
    zram = plan_zram(host, facts, settings)
    sysctls, skipped = plan_sysctls(facts, settings, zram.enabled.value)
    return TuningPlan(
        host=host,
        disks=[plan_disk(host, disk, facts.virtualization, settings) for disk in facts.disks],
        sysctls=sysctls,
        skipped_sysctls=skipped,
        zram=zram,
        nix=plan_nix(facts, settings),
    )
