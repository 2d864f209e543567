"""The contract of a tuning component: everything about one knob in one place.

A component owns, for its knob:

- ``plan(host, facts, settings)``: its part of the ``TuningPlan`` (fields of ``TuningPlan``),
  every value a ``Planned`` with its reason and source; raises ``PlanError`` for host data the
  hardware contradicts;
- ``file(plan, facts)``: the file it writes on a Linux host (``path``), rendered from its
  template (beside its module), or ``None``;
- ``nixos_options(plan, facts)``: the same plan as NixOS option values for ``nixos_module``, or
  ``None``;
- ``checks(plan, nixos)``: every live value the plan determines, as ``Check`` objects; the one
  comparison of plan and host, used by ``fleetforge verify``, by NixOS activation, by the
  rollout's snapshots and (through ``live``) by the deploy's drift detection;
- ``live(facts)``: the same check items as the probe saw them (``None``: not probed), so the
  deploy can tell drift without another round trip;
- ``apply(plan, facts)``: the commands that make its file live on a Linux host (run when the file
  changed or the live state drifted); ``prepare(plan, facts)`` what must come first (a package);
- ``restore(pre, post, changed)``: commands that return a host to a snapshot taken before a
  deploy (``fleetforge.hoststate``), and what cannot be restored;
- ``rows(plan, secret)``: its rows of ``fleetforge plan``.

The registry (``fleetforge.components.COMPONENTS``) lists them in deploy order; the deploy, the
NixOS modules, verify, rollback and the plan table loop over it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pyinfra.api import StringCommand

from fleetforge.checks import Check
from fleetforge.facts.disks import parse_scheduler
from fleetforge.models import HostFacts, TuningPlan

if TYPE_CHECKING:
    from fleetforge.hoststate import HostSnapshot
    from fleetforge.settings import HostSettings

Row = tuple[str, str, str, str]  # item, value, reason, source
DATA = "host data"  # the source of a value set in host data


def bracketed(text: str) -> str | None:
    """The selected entry of a sysfs choice list (``[mq-deadline] none`` -> ``mq-deadline``):
    queue/scheduler, zram's comp_algorithm."""
    return parse_scheduler(text)[0]


class Component:
    """Base of the tuning components; a subclass overrides what its knob has."""

    name: ClassVar[str]
    path: ClassVar[str | None] = None  # its file on a Linux host
    file_title: ClassVar[str] = ""  # the pyinfra operation that writes it
    apply_title: ClassVar[str] = ""  # the pyinfra operation that makes it live
    nixos_module: ClassVar[str | None] = None  # its module under /etc/nixos/fleetforge

    def plan(self, host: str, facts: HostFacts, settings: HostSettings) -> dict[str, Any]:
        raise NotImplementedError

    def file(self, plan: TuningPlan, facts: HostFacts) -> str | None:
        return None

    def nixos_options(self, plan: TuningPlan, facts: HostFacts) -> dict[str, Any] | None:
        return None

    def checks(self, plan: TuningPlan, nixos: bool) -> Iterator[Check]:
        return iter(())

    def live(self, facts: HostFacts) -> dict[str, str | None] | None:
        return None

    def drift(self, plan: TuningPlan, facts: HostFacts, nixos: bool = False) -> list[str]:
        """``"item: live -> planned"`` for every check whose live value (from the probe) differs."""
        live = self.live(facts)
        if live is None:
            return []
        return [
            f"{check.item}: {live.get(check.item)} -> {check.expected}"
            for check in self.checks(plan, nixos)
            if check.item in live and live[check.item] != check.expected
        ]

    def prepare(self, plan: TuningPlan, facts: HostFacts) -> None:
        """Operations that must come before the file (e.g. a package); none by default."""

    def apply(self, plan: TuningPlan, facts: HostFacts) -> Sequence[StringCommand]:
        return ()

    def restore(self, pre: HostSnapshot, post: HostSnapshot, changed: list[str]) -> tuple[list[str], list[str]]:
        return [], []

    def rows(self, plan: TuningPlan, secret: Callable[[str], bool]) -> Iterator[Row]:
        return iter(())


def raw(commands: Sequence[StringCommand]) -> list[str]:
    """Fixed commands as shell text (for rollback, which runs over testinfra)."""
    return [str(command.get_raw_value()) for command in commands]
