"""The planner: ``plan_host(host, facts, settings) -> TuningPlan``, a pure function, made of the
rules of the tuning components (``fleetforge.components``: one module per knob).

It depends only on what a host *is* (hardware, kernel, installed software), on validated host
data and on the host's stored measurement (``fleetforge tune --measure``), never on the values
currently applied, so a plan made after a deploy equals the plan
made before it (``fleetforge verify`` relies on this).

Each rule below says why it chose a value and where the rule comes from; the text ends up in
``fleetforge plan``. Sources are documents a user can open (kernel Documentation paths, man
pages, the Nix manual, Fedora change pages), or "fleetforge default" with the reason; where a
tuning guide's advice and a primary source disagree, the primary source wins and the reason says so.
"""

from __future__ import annotations

from fleetforge.components import plan_fields
from fleetforge.components.io_scheduler import (  # noqa: F401 - the rules, importable from here
    KERNEL_READ_AHEAD_KB,
    VIRTUAL_READ_AHEAD_KB,
    disk_class,
    plan_disk,
)
from fleetforge.components.nix_settings import (  # noqa: F401
    ADDED_BY_NIXOS,
    NIXOS_CACHE,
    NIXOS_CACHE_KEY,
    nix_value,
    normalise_url,
    plan_nix,
)
from fleetforge.components.sysctl import PROFILES, plan_swap_sysctls, plan_sysctls, sysctl_keys  # noqa: F401
from fleetforge.components.zram import ZRAM_CAP_MIB, plan_zram  # noqa: F401
from fleetforge.errors import PlanError as PlanError  # re-exported: callers import it from here
from fleetforge.measure.apply import apply_measured
from fleetforge.measure.results import HostMeasurement
from fleetforge.measure.results import load as load_measurement
from fleetforge.models import HostFacts, TuningPlan
from fleetforge.settings import HostSettings


def plan_host(
    host: str, facts: HostFacts, settings: HostSettings, measured: HostMeasurement | None | bool = True
) -> TuningPlan:
    """Turn one host's facts and validated settings into its ``TuningPlan``.

    ``measured``: the host's measured tuning (``fleetforge tune --measure``) to apply over the
    rules (``fleetforge.measure.apply``): ``True`` (default) reads it from the host's
    ``measurements_dir`` when a file is there, ``False`` or ``None`` plans by the rules alone.

    Raises ``PlanError`` when host data asks for something the hardware cannot do (a scheduler
    the disk does not offer, zram above 2x RAM), ``MeasurementError`` for a stored measurement
    that cannot be read.
    """
    plan = TuningPlan(host=host, **plan_fields(host, facts, settings))
    if measured is True:
        measured = load_measurement(settings.measurements_dir, host)
    return apply_measured(plan, measured or None, facts)
