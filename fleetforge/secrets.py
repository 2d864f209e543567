"""Secrets never leave a host through fleetforge's output: masking of secret settings.

Managed files keep lines that are not fleetforge's own (``nix.conf`` outside its block, the
user's ``configuration.nix``); those may hold credentials, e.g. nix.conf(5) ``access-tokens``.
Wherever fleetforge prints or records a file's content (``fleetforge plan --json``, ``probe
--json``, the diff of ``--diff``/``--dry``) or a planned value, every line that assigns a secret
key shows ``<redacted>`` in place of its value.

A line assigns ``KEY`` when ``KEY = `` appears in it (the name bare or quoted, after a space, a
``.``, a ``{`` or the line's start; ``extra-KEY`` too, nix.conf's appending form): nix.conf(5)
``KEY = value``, a commented-out ``# KEY = value`` (still a credential), Nix attribute paths
``a.b.KEY = value`` and ``{ "KEY" = value; }``. Everything after that ``=`` is masked. In a
``.nix`` file a line that does not end with ``;`` continues: the following lines are masked up
to and including the one that ends with ``;`` (``access-tokens = [`` ... ``];``).

Secret keys: ``DEFAULT_SECRET_KEYS`` plus the host data list ``secret_keys`` (compared without
case). Masking is for display only: what is written to hosts is never masked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "<redacted>"
# nix.conf(5) credentials, and the NixOS user options that hold passwords (configuration.nix).
DEFAULT_SECRET_KEYS = frozenset(
    {"access-tokens", "netrc-file", "password", "hashedpassword", "initialpassword", "initialhashedpassword"}
)
HOST_DATA_KEY = "secret_keys"  # host data: extra keys to mask, a list of strings

# A candidate assignment anywhere in a line: a bare or quoted name, then ``=`` (not ``==``).
_ASSIGN = re.compile(r"(?<![\w'\"-])\"?(?P<key>[A-Za-z_][\w'-]*)\"?\s*=(?!=)")


def secret_keys(data: Mapping[str, Any] | None = None) -> frozenset[str]:
    """``DEFAULT_SECRET_KEYS`` plus the strings of ``data["secret_keys"]`` (lower-cased).

    ``data``: a host's data (a dict or pyinfra ``HostData``); a missing or malformed
    ``secret_keys`` adds nothing (validating it is the settings' job, not the printer's).
    """
    extra: Any = None
    if data is not None:
        try:
            extra = data.get(HOST_DATA_KEY)
        except (AttributeError, TypeError):
            extra = None
    if isinstance(extra, str) or not isinstance(extra, Iterable):
        extra = ()
    return DEFAULT_SECRET_KEYS | {k.strip().lower() for k in extra if isinstance(k, str) and k.strip()}


def is_secret_key(name: str, keys: Iterable[str] = DEFAULT_SECRET_KEYS) -> bool:
    """Whether a setting ``name`` (``extra-`` prefix allowed, any case) is one of ``keys``."""
    lowered = {k.lower() for k in keys}
    name = name.strip().lower()
    return name in lowered or (name.startswith("extra-") and name[len("extra-") :] in lowered)


def redact_text(text: str, keys: Iterable[str] = DEFAULT_SECRET_KEYS, nix: bool = False) -> str:
    """``text`` with the value of every secret assignment replaced by ``REDACTED``.

    ``nix``: the text is Nix code (a ``.nix`` file): an unterminated value masks the lines
    that follow, up to the one ending with ``;``. Line endings are kept as they are.
    """
    keys = frozenset(k.lower() for k in keys)
    out, continuing = [], False
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        ending = line[len(body) :]
        if continuing:
            continuing = not body.rstrip().endswith(";")
            out.append(REDACTED + ending)
            continue
        match = next((m for m in _ASSIGN.finditer(body) if is_secret_key(m["key"], keys)), None)
        if match is None:
            out.append(line)
            continue
        out.append(f"{body[: match.end()]} {REDACTED}{ending}")
        continuing = nix and not body.rstrip().endswith(";")
    return "".join(out)


def redact_file(path: str, content: str, keys: Iterable[str] = DEFAULT_SECRET_KEYS) -> str:
    """``redact_text`` with the syntax chosen by the file name (``.nix``: Nix code)."""
    return redact_text(content, keys, nix=path.endswith(".nix"))


def redact_facts(facts: dict[str, Any], keys: Iterable[str] = DEFAULT_SECRET_KEYS) -> dict[str, Any]:
    """A copy of ``HostFacts.to_json()`` output whose managed files' contents are masked."""
    files = {
        path: (None if item is None else {**item, "content": redact_file(path, item.get("content", ""), keys)})
        for path, item in (facts.get("files") or {}).items()
    }
    return {**facts, "files": files}


def redact_plan(plan: dict[str, Any], keys: Iterable[str] = DEFAULT_SECRET_KEYS) -> dict[str, Any]:
    """A copy of ``TuningPlan.to_json()`` output with secret Nix settings' values masked."""
    nix = plan.get("nix")
    if not nix:
        return plan
    settings = {
        key: ({**item, "value": REDACTED} if is_secret_key(key, keys) else item)
        for key, item in nix.get("settings", {}).items()
    }
    return {**plan, "nix": {**nix, "settings": settings}}
