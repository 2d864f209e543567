"""Rendering: jinja2 templates and the one escaping filter per target syntax.

Templates live in ``fleetforge/templates/`` and, for a tuning component, beside its module
(``fleetforge/components/<name>/``); they are rendered by jinja2 with
``StrictUndefined``: a variable missing from the context raises ``jinja2.UndefinedError``
instead of writing an empty value into a host's configuration.

A value never changes the structure of the file it lands in. One filter per target syntax,
used by every template (values from hosts are also checked by the fact parsers, see
``fleetforge.facts.sections``; these filters are the renderer's own guarantee):

- ``comment``: text in a ``#`` comment (udev rules, sysctl.conf, nix.conf, Nix, nginx,
  systemd units, exports): anything not printable, and a backslash, is written as a Python
  escape (``\\n``, ``\\\\``), so a comment stays one line and never ends early.
- ``udev``: a value inside ``"..."`` of a udev rule; refused unless letters, digits and
  ``_.:+@/-`` (udev(7): ``"`` ends the value, ``$``/``%`` are substituted in assignments,
  ``*?[]|`` are patterns in matches).
- ``unit``: a systemd unit setting value: one printable line without backslashes, ``%``
  written ``%%`` (systemd.unit(5) "Specifiers").
- ``word``: one bare token of nginx config or exports(5): letters, digits and ``_.:/[]@-``.
- ``nix`` (``to_nix``): a Nix value, strings escaped (disko.nix, NixOS modules).

Why the udev rules match ``KERNEL=="<name>"`` rather than ``ENV{ID_SERIAL}``/``ID_PATH``: each
rule holds values planned from what the probe read under that kernel name (its queue, rotational
flag and transport), and verify and rollback read and write the same ``/sys/block/<name>``; the
rules file (``60-fleetforge-io.rules``) sorts before ``60-persistent-storage.rules``, which
imports ``ID_SERIAL``/``ID_PATH`` and makes the by-id links, so on ``add`` those are not set yet
when the rule runs. The name is a validated kernel name (``fleetforge.facts.sections.KERNEL_NAME``: no glob
characters), so a rule matches one device; each rule also requires ``SUBSYSTEM=="block"`` and
``ENV{DEVTYPE}=="disk"``. A name that moves to another disk between boots (``sdX`` order) gets
that name's values until the next deploy re-probes; ``fleetforge verify`` reports the drift.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
# each tuning component's template lives beside its module (fleetforge/components/<name>/)
COMPONENT_TEMPLATE_DIRS = sorted({p.parent for p in (TEMPLATES_DIR.parent / "components").glob("*/*.j2")})


_UDEV_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+@/-]*")
_WORD = re.compile(r"[A-Za-z0-9_.:/\[\]@-]+")


def comment(value: object) -> str:
    """``value`` as text for one ``#`` comment line: every character that is not printable
    (newline, CR, tab, other controls, U+2028, bidi and other format characters) is written as
    its Python escape (``\\n``, ``\\u2028``) and a backslash as two, so the comment cannot end
    early, add a line or end in a line continuation (systemd.syntax(7), udev(7))."""
    return "".join(ch if ch.isprintable() and ch != "\\" else ascii(ch)[1:-1] for ch in str(value))


def udev_value(value: object) -> str:
    """``value`` for a quoted udev rule value (match or assignment); raises ``ValueError`` unless
    it is letters, digits and ``_.:+@/-`` starting with a letter or digit (see module docstring)."""
    text = str(value)
    if not _UDEV_VALUE.fullmatch(text):
        raise ValueError(f"udev rules: refusing value {text!r}: expected letters, digits and _.:+@/- only")
    return text


def unit_value(value: object) -> str:
    """``value`` for a systemd unit setting: ``%`` doubled; raises ``ValueError`` for an empty
    value, surrounding whitespace, a backslash or anything not printable (a line break)."""
    text = str(value)
    if not text or not text.isprintable() or "\\" in text or text != text.strip():
        raise ValueError(f"systemd unit: refusing value {text!r}: expected one printable line without backslashes")
    return text.replace("%", "%%")


def word(value: object) -> str:
    """``value`` as one bare nginx/exports(5) token; raises ``ValueError`` unless it is letters,
    digits and ``_.:/[]@-`` (no whitespace, ``;``, ``{``, ``#``, quotes, ``$`` or parentheses)."""
    text = str(value)
    if not _WORD.fullmatch(text):
        raise ValueError(f"config: refusing value {text!r}: expected letters, digits and _.:/[]@- only")
    return text


def toml_string(value: object) -> str:
    """``value`` as a TOML basic string with its quotes (``"..."``): backslash and quote escaped
    (TOML v1.0.0, "String"); raises ``ValueError`` for a control character, which TOML would
    need escaped and no path or driver name fleetforge writes may hold."""
    text = str(value)
    if not text.isprintable():
        raise ValueError(f"TOML: refusing value {text!r}: expected printable text on one line")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_'-]*")
_NIX_KEYWORDS = frozenset({"assert", "else", "if", "in", "inherit", "let", "or", "rec", "then", "with"})


def _nix_string(value: str) -> str:
    """``value`` as a double-quoted Nix string (also valid as an attribute name)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'


@dataclass(frozen=True)
class MkIf:
    """A NixOS option value defined only when ``condition`` holds on the host: written as
    ``lib.mkIf (condition) value`` (the module then takes ``{ config, lib, ... }``).

    ``condition`` is Nix code and must be a constant of fleetforge's own source (a module-level
    string such as ``nixcache.IPTABLES_BACKEND``), never built from host data or host output;
    ``value`` goes through ``to_nix`` like any other value.
    """

    condition: str
    value: Any


def reads_config(value: Any) -> bool:
    """Whether ``value`` holds an ``MkIf`` anywhere (its module needs ``config`` and ``lib``)."""
    if isinstance(value, MkIf):
        return True
    if isinstance(value, dict):
        return any(reads_config(v) for v in value.values())
    if isinstance(value, list):
        return any(reads_config(v) for v in value)
    return False


def to_nix(value: Any, indent: int = 0) -> str:
    """A Python value as a Nix expression: dicts as attrsets (keys quoted when needed), lists,
    strings (``\\``, ``"`` and ``${`` escaped), ints, bools, ``None`` as ``null``, ``MkIf``
    as ``lib.mkIf (condition) value``.

    Raises ``TypeError`` for anything else (floats included: NixOS options here take none).
    """
    pad = "  " * indent
    if isinstance(value, MkIf):
        return f"lib.mkIf ({value.condition}) {to_nix(value.value, indent)}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, str) and value.endswith("\n") and "\t" not in value and "\r" not in value:
        # Multi-line text as an indented string ('' ... ''): '' is written ''' and ${ is ''${.
        body = value.replace("''", "'''").replace("${", "''${")
        lines = "".join(f"{pad}  {line}\n" if line else "\n" for line in body[:-1].split("\n"))
        return f"''\n{lines}{pad}''"
    if isinstance(value, str):
        return _nix_string(value)
    if isinstance(value, list):
        if not value:
            return "[ ]"
        return "[\n" + "".join(f"{pad}  {to_nix(v, indent + 1)}\n" for v in value) + f"{pad}]"
    if isinstance(value, dict):
        if not value:
            return "{ }"
        lines = []
        for key, item in value.items():
            name = key if _IDENT.fullmatch(key) and key not in _NIX_KEYWORDS else _nix_string(key)
            lines.append(f"{pad}  {name} = {to_nix(item, indent + 1)};\n")
        return "{\n" + "".join(lines) + f"{pad}}}"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as Nix")


@cache
def environment() -> Environment:
    """The jinja2 environment for ``templates/`` (StrictUndefined, block whitespace trimmed) with
    the filters ``comment``, ``udev``, ``unit``, ``word``, ``nix`` and ``toml``."""
    env = Environment(
        loader=FileSystemLoader([TEMPLATES_DIR, *COMPONENT_TEMPLATE_DIRS]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(
        comment=comment,
        udev=udev_value,
        unit=unit_value,
        word=word,
        nix=to_nix,
        toml=toml_string,
        reads_config=reads_config,
    )
    return env


def render(template: str, **context: Any) -> str:
    """Render ``templates/<template>``; raises ``jinja2.UndefinedError`` on a missing variable."""
    return environment().get_template(template).render(**context)
