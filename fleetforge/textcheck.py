"""One way to check a string from host data: the whole value against a pattern.

Host data lands in files that other programs parse line by line (nix.conf, udev rules, fstab-like
mount options, Nix code, shell commands). A value that carries a newline or a control character
can add a line there, so every pattern-checked key goes through :func:`matching`:

- ``re.fullmatch``: the pattern must cover the whole string. ``re.match(r"^...$")`` does not: ``$``
  also matches before a trailing newline, so ``"/mnt\\n"`` passed such a check (Python ``re``
  docs, "$"). pydantic's own ``pattern=`` (Rust regex, where ``$`` is the end of the text) is safe,
  but its message shows the regex instead of what was expected, so fleetforge does not use it.
- No control characters (C0, DEL, C1) whatever the pattern says, so a loose pattern such as
  ``.+`` can never let a newline through.

The error names what was expected and the value as ``repr`` (so a newline shows as ``\\n``).
"""

from __future__ import annotations

import posixpath
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from fleetforge.facts.sections import has_control as has_control  # one definition, in the facts leaf


def check_text(value: Any, pattern: re.Pattern[str] | None, expected: str) -> str:
    """``value`` if it is a ``str`` without control characters that ``pattern`` matches whole.

    ``pattern``: compiled regex (``None``: any text without control characters).
    ``expected``: what a good value looks like, for the message.
    Raises ``ValueError("expected <expected>, got <repr>")`` otherwise.
    """
    if not isinstance(value, str) or has_control(value) or (pattern is not None and not pattern.fullmatch(value)):
        raise ValueError(f"expected {expected}, got {value!r}")
    return value


def matching(pattern: str, expected: str) -> Any:
    """A pydantic string type: the whole value matches ``pattern`` and has no control characters.

    ``pattern``: a regex without anchors (it is applied with ``fullmatch``).
    ``expected``: the error text after "expected", e.g. ``"an absolute path like /var/log"``.
    Use as a type: ``iso_dir: matching(r"/[^\\0]*", "an absolute path") = "/srv"``.
    """
    compiled = re.compile(pattern)
    return Annotated[str, BeforeValidator(lambda value: check_text(value, compiled, expected))]


_PATH = re.compile(r"/[A-Za-z0-9._/@+:-]*")


def check_abs_path(value: Any) -> str:
    """``value`` if it is an absolute, normalised path of plain characters (``/var/log``); no
    ``..``, ``//``, trailing ``/``, spaces or control characters. Raises ``ValueError``."""
    expected = "an absolute, normalised path like /var/log"
    path = check_text(value, _PATH, expected)
    if posixpath.normpath(path) != path or "//" in path:
        raise ValueError(f"expected {expected}, got {value!r}")
    return path


AbsPath = Annotated[str, BeforeValidator(check_abs_path)]


def plain_text(expected: str = "one line of text without control characters") -> Any:
    """A pydantic string type refusing control characters (newlines included), nothing else."""
    return Annotated[str, AfterValidator(lambda value: check_text(value, None, expected))]
