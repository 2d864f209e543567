"""What a check is: one planned value compared with the host (``Check``) and its outcome
(``CheckResult``). Components yield checks (``fleetforge.components``); ``fleetforge.verify``
reads the live values through testinfra and compares.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Severity = Literal["fail", "warn"]


def normalise_space(text: str) -> str:
    """``text`` with runs of whitespace as one space, ends trimmed (the default parse)."""
    return " ".join(text.split())


@dataclass(frozen=True)
class Check:
    """One planned value to compare with the host.

    ``path``: the file whose content holds the live value; or ``nix:KEY`` (an effective Nix
    setting), ``sha256:PATH`` (the file's SHA-256, ``absent`` if none), ``exists:PATH[:PATH...]``
    (``present`` if any exists, else ``absent``), ``podman:driver`` (``podman info``'s graph driver,
    or its error's last line). ``parse`` turns that into the string compared
    with ``expected``.
    """

    item: str
    expected: str
    path: str
    parse: Callable[[str], str | None] = normalise_space
    severity_if_missing: Severity = "fail"


@dataclass(frozen=True)
class CheckResult:
    host: str
    item: str
    expected: str
    actual: str | None
    severity: Literal["ok", "fail", "warn"]

    def line(self) -> str:
        return f"{self.severity.upper():4} {self.host}: {self.item}: expected {self.expected!r}, got {self.actual!r}"
