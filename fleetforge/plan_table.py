"""The plan as a table for a person (``fleetforge plan``, ``fleetforge rollout --dry``): every
value with its reason and source; secret Nix settings show as ``<redacted>``."""

from __future__ import annotations

from rich.table import Table

from fleetforge import components
from fleetforge.models import TuningPlan
from fleetforge.secrets import DEFAULT_SECRET_KEYS, is_secret_key


def plan_table(plan: TuningPlan, keys: frozenset[str] = DEFAULT_SECRET_KEYS) -> Table:
    """The plan as a table; values of secret Nix settings (``keys``, see ``fleetforge.secrets``)
    show as ``<redacted>``."""
    table = Table(title=f"{plan.host}: plan", title_justify="left")
    for column in ("item", "value", "reason", "source"):
        table.add_column(column, overflow="fold")
    for row in components.rows(plan, lambda key: is_secret_key(key, keys)):
        table.add_row(*row)
    return table
