"""Every planned value names a source a user can open, or says why it is fleetforge's own default.

The rule (the project's issue): "Every planned value names a source a user can open (kernel doc
path, man page, Fedora change page, Nix manual section, nixpkgs file path, ArchWiki page, RHEL doc
title) or says 'fleetforge default: <why>'." A value set in host data has the source ``host data``
(``fleetforge.components.base.DATA``), possibly followed by ``; <document>``; a row the host
decides (a skipped value, or the host's own value kept as a fallback) has ``detected``.

``source_problem`` is the checker; it is run over every row of ``fleetforge plan`` (the
components' ``rows``, what ``fleetforge.plan_table`` prints) for plans made from every captured
probe in ``tests/facts/probe.HostProbe`` and from variants that reach each rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from fleetforge import components
from fleetforge.components.base import DATA
from fleetforge.facts.models import BtrfsFilesystem, PodmanInfo, PodmanStore, SwapDevice
from fleetforge.models import HostFacts, TuningPlan
from fleetforge.planner import plan_host
from fleetforge.settings import HostSettings
from tests.components.helpers import facts, settings
from tests.conftest import FIXTURES

SKIPPED = "(skipped)"  # the value of a skipped row (sysctl, nix-settings)
DETECTED = "detected"  # the source of a skipped row or of the host's own value kept
DEFAULT = "fleetforge default:"
MIN_WHY_WORDS = 4  # "fleetforge default: tuned" says no why
# A fallback row keeps what the host has and says so: "none is not offered by this kernel; keeping mq-deadline".
KEPT = re.compile(r"\bkeeping \S+")
#: Documents a user can open, by the way fleetforge names them.
DOCUMENTS = {
    "kernel documentation": r"(?<![\w/])Documentation/[\w.-]+(?:/[\w.-]+)+",
    "kernel source file": r"(?<![\w/])(?:block|fs|include|mm)/[\w-]+(?:/[\w.-]+)*\.[ch]\b",
    "man page": r"\b[a-z][\w.-]*\([1-9][a-z]*\)",
    "Fedora change page": r"\bFedora Changes/\w+",
    "Nix manual section": r"\bNix manual, \S",
    "nixpkgs file": r"(?<![\w/])nixos/modules/[\w.-]+(?:/[\w.-]+)*\.nix\b",
    "ArchWiki page": r"\bArchWiki \w",
    "RHEL document": r"\bRHEL \d+ \w",
    "SQLite documentation": r"\bSQLite documentation\b",
}
DOCUMENT = re.compile("|".join(f"(?:{pattern})" for pattern in DOCUMENTS.values()))


def parts(source: str) -> list[str]:
    """``source`` split at its top-level ``;`` (not inside parentheses), each part stripped."""
    out, depth, start = [], 0, 0
    for i, char in enumerate(source):
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif char == ";" and depth == 0:
            out.append(source[start:i].strip())
            start = i + 1
    out.append(source[start:].strip())
    return out


def source_problem(value: str, reason: str, source: str) -> str | None:
    """What is wrong with a row's source under the rule, or ``None`` when it meets it.

    A source is ``host data`` or ``host data; <parts>``, ``detected`` (only for a skipped value
    or a fallback whose reason says what it keeps), or parts separated by ``;``. Each part either
    names a document a user can open (``DOCUMENTS``) or is ``fleetforge default: <why>`` with at
    least ``MIN_WHY_WORDS`` words of why.
    """
    if source == DETECTED:
        if value == SKIPPED or KEPT.search(reason):
            return None
        return f'"{DETECTED}" is only for a skipped value or the host\'s own value kept (reason says "keeping ...")'
    items = parts(source)
    if items[0] == DATA:
        if len(items) == 1:
            return None
        items = items[1:]
    for part in items:
        if part.startswith(DEFAULT):
            why = part.removeprefix(DEFAULT)
            if len(re.findall(r"[A-Za-z0-9]{2,}", why)) < MIN_WHY_WORDS:
                return f"{part!r} says no why (expected {DEFAULT} <at least {MIN_WHY_WORDS} words of why>)"
        elif not DOCUMENT.search(part):
            return (
                f"{part!r} names no document a user can open (expected one of: {', '.join(DOCUMENTS)}; "
                f'or "{DEFAULT} <why>"; or "{DATA}")'
            )
    return None


def _disks(f: HostFacts, **updates) -> list:
    return [d.model_copy(update=updates) for d in f.disks]


def _zram_and_disk_swap() -> HostFacts:
    f = facts("qemu-nvme-efi-zram-swap")
    disk_swap = SwapDevice(path="/dev/vda2", kind="partition", size_bytes=1 << 30, used_bytes=0, priority=-2)
    return f.model_copy(
        update={"memory": f.memory.model_copy(update={"swap_devices": [*f.memory.swap_devices, disk_swap]})}
    )


def _bare_metal_sata() -> HostFacts:
    f = facts()
    hdd, ssd = f.disks
    return f.model_copy(
        update={
            "virtualization": "none",
            "disks": [
                hdd.model_copy(update={"transport": "sata", "rotational": True, "nr_hw_queues": 1}),
                ssd.model_copy(update={"transport": "sata", "rotational": False, "nr_hw_queues": 1}),
            ],
        }
    )


def _nix_lacking(*names: str) -> HostFacts:
    f = facts()
    known = [n for n in f.nix.setting_names or [] if n not in names]
    return f.model_copy(update={"nix": f.nix.model_copy(update={"setting_names": known})})


BTRFS = BtrfsFilesystem(fsid="0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b", bdi="btrfs-1", read_ahead_kb=4096, devices=["vdb"])
PODMAN_ON_BTRFS = PodmanInfo(
    version="4.3.1", conf=None, driver=None, graphroot="/var/lib/containers/storage", runroot=None,
    graphroot_fstype="btrfs", stores=[],
)  # fmt: skip
PODMAN_WITH_IMAGES = PODMAN_ON_BTRFS.model_copy(
    update={"stores": [PodmanStore(driver="overlay", images=3, containers=1)]}
)
NIXOS = facts().os.model_copy(update={"id": "nixos", "nixos_release": "24.05"})

Case = Callable[[], tuple[HostFacts, HostSettings]]
CASES: dict[str, Case] = {
    **{f"fixture {p.stem}": (lambda name=p.stem: (facts(name), settings())) for p in sorted(FIXTURES.glob("*.json"))},
    "zram off": lambda: (facts(), settings(zram=False)),
    "zram with disk swap": lambda: (_zram_and_disk_swap(), settings()),
    "kernel before 5.8": lambda: (facts(kernel_release="5.4.0-150-generic"), settings()),
    "btrfs filesystem": lambda: (facts(btrfs=[BTRFS]), settings()),
    "btrfs read-ahead from host data": lambda: (facts(btrfs=[BTRFS]), settings(disks={"vdb": {"read_ahead_kb": 8192}})),
    "podman on btrfs": lambda: (facts(podman=PODMAN_ON_BTRFS), settings()),
    "podman on btrfs switching with images": lambda: (
        facts(podman=PODMAN_WITH_IMAGES),
        settings(containers_storage_switch_with_images=True),
    ),
    "podman driver from host data": lambda: (facts(podman=PODMAN_ON_BTRFS), settings(containers_storage_driver="vfs")),
    "bare-metal sata disks": lambda: (_bare_metal_sata(), settings()),
    "single-queue disk without mq-deadline": lambda: (
        facts(disks=_disks(facts(), nr_hw_queues=1, schedulers_available=["none", "bfq"], scheduler="none")),
        settings(),
    ),
    "multi-queue virtual disk": lambda: (facts(disks=_disks(facts(), nr_hw_queues=4)), settings()),
    "nixos": lambda: (facts(os=NIXOS), settings()),
    "nix lacking some defaults": lambda: (_nix_lacking("use-sqlite-wal", "download-attempts"), settings()),
    "host data overrides": lambda: (
        facts(),
        settings(
            io_scheduler="none",
            read_ahead_kb=1024,
            disks={"vdb": {"scheduler": "mq-deadline", "read_ahead_kb": 256}},
            sysctl={"vm.swappiness": 10, "vm.min_free_kbytes": 65536},
            zram_size=512,
            zram_algorithm="lz4",
            zram_priority=5,
            nix_settings={"max-jobs": 2, "keep-outputs": True},
            nix_substituters=["https://cache.example.org"],
            nix_trusted_public_keys=["cache.example.org-1:AAAA"],
        ),
    ),
    "host data swap_io_cost_ratio": lambda: (facts(), settings(swap_io_cost_ratio=2)),
    "host data swappiness": lambda: (facts(), settings(swappiness=100)),
}


def _plan(case: str) -> TuningPlan:
    f, s = CASES[case]()
    return plan_host("h", f, s)


def _rows(plan: TuningPlan) -> list[tuple[str, str, str, str]]:
    return list(components.rows(plan, lambda key: False))


@pytest.mark.parametrize("case", list(CASES))
def test_every_planned_value_names_a_source_a_user_can_open(case):
    rows = _rows(_plan(case))
    assert rows
    bad = [
        f"  {item} = {value!r}: source {source!r}: {problem}"
        for item, value, reason, source in rows
        if (problem := source_problem(value, reason, source)) is not None
    ]
    assert not bad, f"{case}: rows whose source breaks the rule:\n" + "\n".join(bad)


def test_the_cases_reach_every_component_and_every_kind_of_source():
    """The variants above stay meaningful: each component has rows, and each branch of the rule
    (host data alone and with a document, skipped, fallback, fleetforge default) is walked."""
    seen: set[str] = set()
    by_component: set[str] = set()
    for case in CASES:
        plan = _plan(case)
        for component in components.COMPONENTS:
            for _item, value, _reason, source in component.rows(plan, lambda key: False):
                by_component.add(component.name)
                if source == DATA:
                    seen.add("host data")
                elif source.startswith(f"{DATA}; "):
                    seen.add("host data; document")
                elif source == DETECTED:
                    seen.add("skipped" if value == SKIPPED else "fallback")
                elif DEFAULT in source:
                    seen.add("fleetforge default")
                else:
                    seen.add("document")
    assert by_component == {c.name for c in components.COMPONENTS}
    assert seen == {"host data", "host data; document", "skipped", "fallback", "fleetforge default", "document"}


@pytest.mark.parametrize(
    "source",
    [
        "tuning guide",
        "common practice",
        "OVH tuning guide",
        "kernel docs",
        "vm.rst",
        "the Nix manual",
        "Fedora and NixOS zramSwap.algorithm defaults",
        "zram-generator default swap-priority",
        "fleetforge default",
        "fleetforge default:",
        "fleetforge default: tuned",
        "fleetforge default: see docs",
        "",
        "host data; tuning guide",
        "host data; ",
        "Documentation/admin-guide/sysctl/vm.rst; common practice",
        "common practice; fleetforge default: less dirty data to flush at once",
        "detected",
    ],
)
def test_the_checker_rejects_made_up_sources(source):
    assert source_problem("1", "because", source) is not None


@pytest.mark.parametrize(
    "source",
    [
        "host data",
        "host data; Documentation/admin-guide/sysctl/vm.rst (swappiness)",
        "Documentation/ABI/stable/sysfs-block (queue/read_ahead_kb)",
        "include/linux/mm.h VM_READAHEAD_PAGES",
        "block/elevator.c (elevator_get_default)",
        "fs/btrfs/disk-io.c (open_ctree)",
        "mm/vmscan.c",
        "zram-generator.conf(5) (swap-priority)",
        "Fedora Changes/SwapOnZRAM",
        "Nix manual, nix.conf (max-jobs)",
        "nixos/modules/config/zram.nix (zramSwap.algorithm default)",
        "ArchWiki Zram (Optimizing swap on zram)",
        "RHEL 9 Monitoring and managing system status and performance, Setting the disk scheduler (a; b)",
        "SQLite documentation, Write-Ahead Logging (wal.html)",
        "fleetforge default: the Nix store is read in large sequential runs",
        "containers-storage.conf(5) (driver); fleetforge default: native snapshots, measured in docs/podman.md",
    ],
)
def test_the_checker_accepts_openable_documents_and_reasoned_defaults(source):
    assert source_problem("1", "because", source) is None


def test_detected_is_only_for_skipped_and_kept_values():
    assert source_problem(SKIPPED, "/proc/sys/x does not exist on this host", DETECTED) is None
    assert source_problem("mq-deadline", "none is not offered by this kernel; keeping mq-deadline", DETECTED) is None
    assert source_problem("none", "the kernel's own default", DETECTED) is not None
