"""The plan as a table for a person (``fleetforge plan``, ``fleetforge rollout --dry``): every
value with its reason and source; secret Nix settings show as ``<redacted>``."""

from __future__ import annotations

from rich.table import Table

from fleetforge.models import TuningPlan
from fleetforge.secrets import DEFAULT_SECRET_KEYS, REDACTED, is_secret_key


def plan_table(plan: TuningPlan, keys: frozenset[str] = DEFAULT_SECRET_KEYS) -> Table:
    """The plan as a table; values of secret Nix settings (``keys``, see ``fleetforge.secrets``)
    show as ``<redacted>``."""
    table = Table(title=f"{plan.host}: plan", title_justify="left")
    for column in ("item", "value", "reason", "source"):
        table.add_column(column, overflow="fold")
    for d in plan.disks:
        table.add_row(f"{d.name} scheduler ({d.disk_class})", d.scheduler.value, d.scheduler.reason, d.scheduler.source)
        ra = d.read_ahead_kb
        table.add_row(f"{d.name} read_ahead_kb", str(ra.value), ra.reason, ra.source)
    for s in plan.sysctls:
        table.add_row(s.key, s.value.value, s.value.reason, s.value.source)
    for s in plan.skipped_sysctls:
        table.add_row(s.key, "(skipped)", s.reason, "detected")
    z = plan.zram
    for label, item in (("zram", z.enabled), ("zram-size MiB", z.size_mib), ("zram algorithm", z.algorithm),
                        ("zram swap-priority", z.swap_priority)):  # fmt: skip
        table.add_row(label, str(item.value), item.reason, item.source)
    if plan.nix:
        for key, item in plan.nix.settings.items():
            value = REDACTED if is_secret_key(key, keys) else item.value
            table.add_row(f"nix {key}", value, item.reason, item.source)
    return table
