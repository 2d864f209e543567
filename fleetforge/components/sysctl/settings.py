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


SysctlKey = matching(r"[a-z0-9_][a-z0-9_.\-/]*", "a sysctl key like vm.swappiness")
SysctlValue = Annotated[str | int, BeforeValidator(_sysctl_value)]


class SysctlSettings(BaseModel):
    """``sysctl_profiles``, extra or overriding ``sysctl`` values, ``swappiness``."""

    sysctl_profiles: list[Literal["vm-memory", "network"]] = ["vm-memory", "network"]
    sysctl: dict[SysctlKey, SysctlValue] = {}
    swappiness: Annotated[int, Field(ge=0, le=200)] | None = None
