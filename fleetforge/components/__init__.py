"""The tuning components, one module (and its templates) each, and the loops over them.

``COMPONENTS`` is the registry, in deploy order. Adding a component: a folder here with its
module (a ``fleetforge.components.base.Component`` subclass) and template, its field in
``TuningPlan`` (``fleetforge.models``), its host-data keys (``fleetforge.settings``), its file in
``fleetforge.paths.MANAGED_FILES`` and its NixOS module in ``NIXOS_MODULES``, and one line below
(``docs/architecture.md``, step by step).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fleetforge.checks import Check
from fleetforge.components.base import Component, Row
from fleetforge.components.btrfs_read_ahead import BtrfsReadAhead
from fleetforge.components.io_scheduler import IoScheduler
from fleetforge.components.nix_settings import NixSettings
from fleetforge.components.podman import Podman
from fleetforge.components.sysctl import Sysctl
from fleetforge.components.zram import Zram
from fleetforge.models import HostFacts, TuningPlan

COMPONENTS: tuple[Component, ...] = (IoScheduler(), BtrfsReadAhead(), Sysctl(), Zram(), NixSettings(), Podman())
#: Where the components' templates are (each beside its module).
TEMPLATE_DIRS: tuple[Path, ...] = tuple(sorted(p.parent for p in Path(__file__).parent.glob("*/*.j2")))


def plan_fields(host: str, facts: HostFacts, settings) -> dict[str, Any]:
    """Every component's part of the ``TuningPlan`` (``PlanError`` from the first that refuses)."""
    fields: dict[str, Any] = {}
    for component in COMPONENTS:
        fields.update(component.plan(host, facts, settings))
    return fields


def _each(plan: TuningPlan, facts: HostFacts, method: str, key: str) -> dict[str, Any]:
    """``{component.<key>: component.<method>(plan, facts)}`` where both are set."""
    out = {}
    for component in COMPONENTS:
        value, name = getattr(component, method)(plan, facts), getattr(component, key)
        if value is not None and name is not None:
            out[name] = value
    return out


def desired_files(plan: TuningPlan, facts: HostFacts) -> dict[str, str]:
    """``{remote path: content}`` of every file the plan owns on a Linux host."""
    return _each(plan, facts, "file", "path")


def nixos_options(plan: TuningPlan, facts: HostFacts) -> dict[str, dict[str, Any]]:
    """``{module file: option values}`` of every component that has some."""
    return _each(plan, facts, "nixos_options", "nixos_module")


def checks(plan: TuningPlan, nixos: bool = False) -> Iterator[Check]:
    for component in COMPONENTS:
        yield from component.checks(plan, nixos)


def drift(plan: TuningPlan, facts: HostFacts, nixos: bool = False) -> list[str]:
    return [line for component in COMPONENTS for line in component.drift(plan, facts, nixos)]


def restore(pre, post, changed: list[str]) -> tuple[list[str], list[str]]:
    cmds: list[str] = []
    problems: list[str] = []
    for component in COMPONENTS:
        more, issues = component.restore(pre, post, changed)
        cmds += more
        problems += issues
    return cmds, problems


def rows(plan: TuningPlan, secret: Callable[[str], bool]) -> Iterator[Row]:
    for component in COMPONENTS:
        yield from component.rows(plan, secret)
