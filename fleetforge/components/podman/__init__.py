"""Podman's storage driver: the native ``btrfs`` driver where the store is on btrfs.

Host data: ``podman``, ``containers_storage_driver``, ``containers_storage_switch_with_images``
(``settings.py``). Linux: ``/etc/containers/storage.conf`` (``storage.conf.j2``;
containers-storage.conf(5)), written only where the driver changes; nothing to restart (Podman
has no daemon; each command reads the file). NixOS:
``virtualisation.containers.storage.settings.storage.driver`` (nixpkgs
``nixos/modules/virtualisation/containers.nix`` sets it with ``mkDefault "overlay"``). Live:
``podman info --format '{{.Store.GraphDriverName}}'`` (``fleetforge verify``).

Why btrfs there: on btrfs the ``btrfs`` driver keeps each layer as a subvolume and each
container's layer as a snapshot, instead of overlay mounts whose upper directories sit on top of
btrfs. The OVH tuning guide the project started from claims 30-50 % faster builds;
``bench/podman_build_bench.py`` measured no difference on the test VMs (``docs/podman.md``).

Why refuse a switch: containers-storage keeps each driver's images and containers apart
(``<graphroot>/<driver>-images``); after a switch Podman no longer shows the old driver's
images, and ``podman system reset`` (what Podman's docs offer) deletes them. fleetforge never
deletes them and switches a store that holds any only when host data says
``containers_storage_switch_with_images = true`` (switching back shows them again).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from fleetforge.checks import Check
from fleetforge.components.base import DATA, Component, Row
from fleetforge.errors import PlanError
from fleetforge.models import HostFacts, Planned, PodmanInfo, PodmanPlan, TuningPlan
from fleetforge.paths import STORAGE_CONF
from fleetforge.render import render, toml_string

if TYPE_CHECKING:
    from fleetforge.settings import HostSettings

MAN = "containers-storage.conf(5) (driver)"
NIXOS_CONTAINERS = "nixos/modules/virtualisation/containers.nix (config = mkIf cfg.enable)"
DEFAULT_DRIVER = "overlay"  # what Podman picks on an unset driver where the kernel has overlay
DEFAULT_RUNROOT = "/run/containers/storage"
HEADER = "# Managed by fleetforge (podman component)"
_STORAGE_TABLE = re.compile(r"""\s*\[\s*(?:storage|"storage"|'storage')\s*\]\s*(?:#.*)?""")
_TABLE = re.compile(r"\s*\[")


def _key(name: str) -> re.Pattern[str]:
    """A ``name = ...`` line, the key bare or quoted (TOML v1.0.0, "Keys")."""
    return re.compile(rf"""\s*(?:{name}|"{name}"|'{name}')\s*=""")


def driver_in_use(info: PodmanInfo) -> str:
    """The driver Podman uses now: the configured one, else the one whose store holds data
    (containers-storage prefers a driver with a prior store), else overlay."""
    if info.driver:
        return info.driver
    used = [s.driver for s in info.stores if s.images or s.containers]
    return used[0] if used else DEFAULT_DRIVER


def _planned_driver(host: str, info: PodmanInfo, settings: HostSettings) -> tuple[Planned[str], bool]:
    """``(driver, managed)``: the planned driver, and whether fleetforge sets it (host data or the
    btrfs rule) rather than keeping what the host has. ``managed`` does not depend on what an
    earlier deploy wrote, so a re-run plans (and verify checks) the same."""
    where = f"graphroot {info.graphroot} is on {info.graphroot_fstype or 'an unknown filesystem'}"
    if settings.containers_storage_driver:
        if settings.containers_storage_driver == "btrfs" and info.graphroot_fstype != "btrfs":
            needs = "the btrfs driver needs btrfs"
            raise PlanError(host, "containers_storage_driver", f"expected overlay or vfs: {where}, and {needs}")
        return Planned(value=settings.containers_storage_driver, reason="set in host data", source=DATA), True
    if info.graphroot_fstype == "btrfs":
        planned = Planned(
            value="btrfs",
            reason=f"{where}: layers become btrfs subvolumes and snapshots instead of overlay mounts on btrfs",
            source=f"{MAN}; fleetforge default: layers as btrfs snapshots, not overlay mounts on btrfs "
            "(no build speed-up measured: docs/podman.md)",
        )
        return planned, True
    kept = driver_in_use(info)
    which = "the configured" if info.driver else "Podman's default"
    reason = f"{where}: the btrfs driver needs btrfs; keeping {which} {kept}"
    return Planned(value=kept, reason=reason, source=MAN), False


def _refuse_hidden_data(host: str, info: PodmanInfo, driver: str, settings: HostSettings) -> None:
    """``PlanError`` naming the store and what it holds if switching to ``driver`` hides images
    or containers and host data did not allow it."""
    hidden = [s for s in info.stores if s.driver != driver and (s.images or s.containers)]
    if not hidden or settings.containers_storage_switch_with_images:
        return
    held = "; ".join(f"{s.images} image(s) and {s.containers} container(s) of the {s.driver} driver" for s in hidden)
    raise PlanError(
        host,
        "containers_storage_switch_with_images",
        f"store {info.graphroot} holds {held}; switching to the {driver} driver hides them from Podman "
        f"(podman system reset would delete them). Expected containers_storage_switch_with_images = true to switch "
        f"anyway (fleetforge deletes nothing; the old driver shows them again) or containers_storage_driver = "
        f'"{hidden[0].driver}" to keep it',
    )


def plan_podman(host: str, facts: HostFacts, settings: HostSettings) -> PodmanPlan | None:
    """Podman's storage driver, where Podman is installed (``None`` otherwise or with host data
    ``podman = false``). Raises ``PlanError`` for ``containers_storage_driver = "btrfs"`` off btrfs and for a
    switch that would hide a non-empty store (see the module docstring)."""
    info = facts.podman
    if info is None or not settings.podman:
        return None
    current = driver_in_use(info)
    if facts.os.is_nixos and info.conf is None and not settings.containers_storage_driver:
        # NixOS generates storage.conf only with virtualisation.podman.enable (or .containers.enable):
        # without it the option fleetforge would set is never read
        reason = "NixOS without virtualisation.podman.enable: storage.conf is not generated, Podman's default stays"
        driver, managed = Planned(value=current, reason=reason, source=NIXOS_CONTAINERS), False
    else:
        driver, managed = _planned_driver(host, info, settings)
    if driver.value != current:
        _refuse_hidden_data(host, info, driver.value, settings)
    plan = PodmanPlan(
        driver=driver,
        driver_before=current,
        graphroot=info.graphroot,
        runroot=info.runroot or DEFAULT_RUNROOT,
        write=managed,
    )
    if managed and not facts.os.is_nixos:
        _check_storage_conf(host, plan, facts)
    return plan


def _check_storage_conf(host: str, plan: PodmanPlan, facts: HostFacts) -> None:
    """``PlanError`` (key ``storage.conf``) before anything is written when the host's
    storage.conf cannot be rewritten or sets another graphroot than the one the plan is for."""
    current = facts.files.get(STORAGE_CONF)
    try:
        storage_conf(plan, current.content if current else None)
        graphroot = tomllib.loads(current.content).get("storage", {}).get("graphroot") if current else None
    except ValueError as exc:
        raise PlanError(host, "storage.conf", f"expected a storage.conf fleetforge can edit: {exc}") from None
    if graphroot is not None and graphroot != plan.graphroot:
        raise PlanError(
            host, "storage.conf", f"expected graphroot {plan.graphroot!r} (what the probe read), got {graphroot!r}"
        )


def split_storage_conf(current: str | None) -> tuple[list[str], list[str], list[str]]:
    """``(before, table, after)``: the lines of an existing storage.conf before its ``[storage]``
    table, that table's lines except ``driver`` and the header, and the rest (other tables).
    Without a ``[storage]`` table every line stays before it (TOML allows a super-table after its
    sub-tables); fleetforge's own header lines are dropped. Lines end at ``\n`` only, as in TOML
    (``str.splitlines`` would also split at U+2028 inside a comment)."""
    lines = [line.removesuffix("\r") for line in (current or "").split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    if lines and lines[0].startswith(HEADER):
        lines = lines[2:] if len(lines) > 1 and lines[1].startswith("# driver ") else lines[1:]
    start = next((i for i, line in enumerate(lines) if _STORAGE_TABLE.fullmatch(line)), None)
    if start is None:
        return lines, [], []
    end = next((i for i in range(start + 1, len(lines)) if _TABLE.match(lines[i])), len(lines))
    driver = _key("driver")
    table = [line for line in lines[start + 1 : end] if not driver.match(line)]
    return lines[:start], table, lines[end:]


def storage_conf(podman: PodmanPlan, current: str | None) -> str:
    """storage.conf with the planned driver: the host's other lines kept, ``runroot`` and
    ``graphroot`` added if it has none (Podman 4 refuses a storage.conf without runroot).

    The result is checked as TOML: it must mean the host's file with only ``storage.driver``
    set (and the two paths added). Raises ``ValueError`` when the host's file is not TOML or a
    line edit cannot keep its meaning (a multi-line string, a table header inside an array).
    """
    try:
        expected = tomllib.loads(current or "")
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{STORAGE_CONF} is not TOML ({exc}); fix or remove it") from None
    storage = expected.setdefault("storage", {})
    if not isinstance(storage, dict):
        raise ValueError(f"{STORAGE_CONF}: storage is not a table")
    storage["driver"] = podman.driver.value
    before, table, after = split_storage_conf(current)
    for key, value in (("runroot", podman.runroot), ("graphroot", podman.graphroot)):
        if key not in storage:
            storage[key] = value
            table.append(f"{key} = {toml_string(value)}")
    text = render("storage.conf.j2", driver=podman.driver, before=before, table=table, after=after)
    try:
        same = tomllib.loads(text) == expected
    except tomllib.TOMLDecodeError:
        same = False
    if not same:
        raise ValueError(
            f"{STORAGE_CONF} cannot be edited line by line without changing its meaning; "
            "write its [storage] table as plain key = value lines"
        )
    return text


class Podman(Component):
    name = "podman"
    path = STORAGE_CONF
    file_title = "Podman storage.conf"
    nixos_module = "podman.nix"

    def plan(self, host: str, facts: HostFacts, settings: HostSettings) -> dict[str, Any]:
        return {"podman": plan_podman(host, facts, settings)}

    def file(self, plan: TuningPlan, facts: HostFacts) -> str | None:
        """``storage_conf`` of the plan, where fleetforge sets the driver."""
        podman = plan.podman
        if podman is None or not podman.write:
            return None
        current = facts.files.get(STORAGE_CONF)
        return storage_conf(podman, current.content if current else None)

    def nixos_options(self, plan: TuningPlan, facts: HostFacts) -> dict[str, Any] | None:
        if plan.podman is None or not plan.podman.write:
            return None
        storage = {"storage": {"driver": plan.podman.driver.value}}
        return {"virtualisation": {"containers": {"storage": {"settings": storage}}}}

    def checks(self, plan: TuningPlan, nixos: bool) -> Iterator[Check]:
        """Where fleetforge sets the driver: ``podman info``'s graph driver is the planned one (a
        kept distribution default is not fleetforge's to check, and ``podman info`` costs a
        second of CPU on a small VM)."""
        if plan.podman is not None and plan.podman.write:
            yield Check("podman storage driver", plan.podman.driver.value, "podman:driver")

    def rows(self, plan: TuningPlan, secret: Callable[[str], bool]) -> Iterator[Row]:
        if plan.podman is not None:
            d = plan.podman.driver
            yield "podman storage driver", d.value, d.reason, d.source
