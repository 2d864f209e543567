"""Shared parsing for fleetforge's batched facts: one command prints ``@@name`` sections.

A fact's ``process()`` should turn any parse problem into ``FactProcessError`` so pyinfra fails
that host only (any other exception would abort the whole run): ``parse_or_fail`` does that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from pydantic import ValidationError
from pyinfra.api.exceptions import FactProcessError

T = TypeVar("T")


def split_sections(
    output: list[str], fact: str, required: Iterable[str], markers: Iterable[str] = ()
) -> dict[str, list[str]]:
    """``{section: lines}`` of output whose sections start with ``@@name`` lines.

    ``markers``: ``@@`` lines that are content, not section headers (e.g. ``@@end-file``).
    Raises ``FactProcessError`` naming ``fact`` when a ``required`` section is missing
    (``done``, printed last, tells truncated output).
    """
    skip = set(markers)
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output:
        if line.startswith("@@") and line not in skip:
            current = sections.setdefault(line[2:].strip(), [])
        elif current is not None:
            current.append(line)
    missing = [name for name in required if name not in sections]
    if missing:
        raise FactProcessError(f"{fact}: output is missing sections {missing}")
    return sections


def parse_or_fail(fact: str, parse: Callable[[list[str]], T], output: list[str]) -> T:
    """``parse(output)``, with any parse error raised as ``FactProcessError`` naming ``fact``."""
    try:
        return parse(output)
    except FactProcessError:
        raise
    except (ValueError, KeyError, IndexError, TypeError, ValidationError) as exc:
        raise FactProcessError(f"{fact}: cannot parse output: {exc}") from exc
