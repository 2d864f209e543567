"""Host data of the sysctl component (``HostSettings`` inherits it)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field

from fleetforge.textcheck import check_text, matching

_PRINTABLE = re.compile(r"[ -~]+")


def _sysctl_value(value: Any) -> str | int:
    """A sysctl value: a number or one line of printable text (sysctl.conf(5): ``key = value``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return check_text(value, _PRINTABLE, "a sysctl value on one line (a number or printable text)")


def _not_bool(value: Any) -> Any:
    """``true`` is no ratio (pydantic would read it as 1.0)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number > 0 and <= 1000, got {value!r}")
    return value


SysctlKey = matching(r"[a-z0-9_][a-z0-9_.\-/]*", "a sysctl key like vm.swappiness")
SysctlValue = Annotated[str | int, BeforeValidator(_sysctl_value)]


class SysctlSettings(BaseModel):
    """``sysctl_profiles``, extra or overriding ``sysctl`` values, ``swappiness``, ``swap_io_cost_ratio``."""

    sysctl_profiles: list[Literal["vm-memory", "network"]] = ["vm-memory", "network"]
    sysctl: dict[SysctlKey, SysctlValue] = {}
    swappiness: Annotated[int, Field(ge=0, le=200)] | None = None
    # how many times cheaper swap I/O is than filesystem I/O on this host (measured or estimated);
    # vm.swappiness then is 200*r/(1+r) (Documentation/admin-guide/sysctl/vm.rst, swappiness) unless
    # ``swappiness`` is set; unset: 9 when zram is the only swap, the kernel's 60 otherwise
    swap_io_cost_ratio: (
        Annotated[float, BeforeValidator(_not_bool), Field(gt=0, le=1000, allow_inf_nan=False)] | None
    ) = None
