"""Flake-based NixOS hosts: which ``nixosConfigurations`` entry is the host's, and whether
fleetforge can reach it through a file it already edits.

``nixos-generate-config --flake`` writes ``/etc/nixos/flake.nix`` with one
``nixosConfigurations.<name> = nixpkgs.lib.nixosSystem { modules = [ ./configuration.nix ]; }``
(nixpkgs ``nixos/modules/installer/tools/tools.nix``, ``defaultFlakeTemplate``). fleetforge
supports that shape and one more:

- the host's entry lists ``./configuration.nix``: fleetforge adds ``./fleetforge`` to that
  file's imports, as on a host without a flake;
- the host's entry lists ``./fleetforge`` itself (a person added it by hand): nothing to edit.

Anything else (no entry for the host, entries built by a function, a configuration elsewhere)
is refused with what to add by hand: fleetforge never edits ``flake.nix``, whose structure is
the operator's. The flake is activated with ``nixos-rebuild <action> --flake /etc/nixos#<name>``
where ``<name>`` is host data ``nixos_flake_host``, else the host's own name (``uname -n``),
which is what ``nixos-rebuild --flake /etc/nixos`` itself picks (nixos-rebuild(8), ``--flake``).

The flake text is host output: it is read, never copied into a command; the attribute name that
reaches ``nixos-rebuild`` is checked against ``ATTRIBUTE`` and passed as one quoted argument.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fleetforge.models import HostFacts
from fleetforge.nixos.nix_scan import NixScan
from fleetforge.paths import NIXOS_FLAKE
from fleetforge.settings import FLAKE_HOST_PATTERN

FLAKE_DIR = NIXOS_FLAKE.rsplit("/", 1)[0]
#: A Nix identifier that is also a safe flake fragment (no quotes, dots or '#').
ATTRIBUTE = re.compile(FLAKE_HOST_PATTERN)
_PATH = r"(?<![\w./-])\./{}(?![\w./-])"
CONFIGURATION = re.compile(_PATH.format(r"configuration\.nix"))
FLEETFORGE = re.compile(_PATH.format(r"fleetforge(?:/default\.nix)?"))


@dataclass(frozen=True)
class FlakeTarget:
    """The host's flake entry: ``attribute`` (the ``nixosConfigurations`` name) and whether its
    modules list ``./configuration.nix`` (``via_configuration``, then fleetforge edits that file)
    or ``./fleetforge`` directly."""

    attribute: str
    via_configuration: bool

    @property
    def ref(self) -> str:
        """The ``--flake`` argument: ``/etc/nixos#<attribute>``."""
        return f"{FLAKE_DIR}#{self.attribute}"


_MODULES = re.compile(r"(?<![\w.'-])modules\s*=\s*\[")
#: At most this many ``nixosConfigurations`` in one flake (more: refused, not scanned).
MAX_SETS = 16


def _at(pattern: str) -> re.Pattern[str]:
    """``pattern`` not preceded by a name character or a dot (``legacy.x``, ``oldx`` are others)."""
    return re.compile(rf"(?<![\w.'-]){pattern}")


def _set_members(scan: NixScan, opening: int, name: str) -> list[tuple[int, int]]:
    """``(start, end)`` of the value of ``name = ...`` among the attributes of the set opened at
    ``opening`` (nested brackets are skipped whole, so deeper attributes do not count)."""
    found, member = [], _at(rf"{name}\s*=(?!=)")
    i, closing = opening + 1, scan.partner[opening]
    while i < closing:
        if scan.masked[i] in "([{":
            i = scan.partner[i] + 1
            continue
        match = member.match(scan.plain, i)
        if match and scan.is_code(i):
            found.append((match.end(), scan.expression_end(match.end())))
            i = match.end()
        else:
            i += 1
    return found


def _entries(scan: NixScan, attribute: str) -> list[tuple[int, int]]:
    """Every ``(start, end)`` of the value of ``nixosConfigurations.<attribute>``, written as a
    dotted path or as an attribute of a ``nixosConfigurations = { ... }`` set.

    Raises ``ValueError`` for a set joined with ``//`` (Nix takes the later set's entry) or more
    than ``MAX_SETS`` occurrences of ``nixosConfigurations``."""
    name = rf'(?:{re.escape(attribute)}|"{re.escape(attribute)}")'
    if scan.masked.count("nixosConfigurations") > MAX_SETS:
        raise ValueError(f"/etc/nixos/flake.nix names nixosConfigurations more than {MAX_SETS} times")
    found = []
    for match in _at(rf"nixosConfigurations\s*\.\s*{name}\s*=(?!=)").finditer(scan.plain):
        if scan.is_code(match.start()):
            found.append((match.end(), scan.expression_end(match.end())))
    for match in _at(r"nixosConfigurations\s*=\s*\{").finditer(scan.plain):
        if not scan.is_code(match.start()):
            continue
        opening = match.end() - 1
        if re.match(r"\s*//", scan.masked[scan.partner[opening] + 1 :]):
            raise ValueError("/etc/nixos/flake.nix builds nixosConfigurations with //; fleetforge does not guess")
        found += _set_members(scan, opening, name)
    return found


def _modules_list(scan: NixScan, start: int, end: int) -> str | None:
    """The masked text of the ``modules = [ ... ]`` list given directly to the entry's function
    (an attribute of its ``{ ... }`` argument, not nested deeper), or ``None`` unless exactly one."""
    lists = []
    for match in _MODULES.finditer(scan.plain, start, end):
        if not scan.is_code(match.start()):
            continue
        enclosing = [o for o, c in scan.partner.items() if start <= o < match.start() < c]
        if len(enclosing) == 1 and scan.masked[enclosing[0]] == "{":
            opening = match.end() - 1
            lists.append(scan.masked[opening + 1 : scan.partner[opening]])
    return lists[0] if len(lists) == 1 else None


def flake_target(flake: str, attribute: str) -> FlakeTarget:
    """The host's entry in ``flake`` (the text of ``/etc/nixos/flake.nix``) for
    ``nixosConfigurations.<attribute>``: the ``modules`` list given to its ``nixosSystem`` must
    list ``./configuration.nix`` or ``./fleetforge``.

    Raises ``ValueError`` naming what to add by hand when the attribute is not a plain Nix name,
    the flake cannot be read exactly (``fleetforge.nixos.nix_scan``), has no such entry or has it more
    than once, or the entry's modules list neither file.
    """
    if not ATTRIBUTE.fullmatch(attribute):
        raise ValueError(
            f"nixosConfigurations name {attribute!r}: expected letters, digits, _ and - "
            "(set host data nixos_flake_host to the name in /etc/nixos/flake.nix)"
        )
    scan = NixScan(flake)
    entries = _entries(scan, attribute)
    if not entries:
        raise ValueError(
            f"/etc/nixos/flake.nix has no nixosConfigurations.{attribute} that fleetforge can read; "
            "set host data nixos_flake_host to this host's name there, or add ./fleetforge to its "
            "modules by hand"
        )
    if len(entries) > 1:
        raise ValueError(f"/etc/nixos/flake.nix defines nixosConfigurations.{attribute} more than once")
    modules = _modules_list(scan, *entries[0])
    if modules is not None and FLEETFORGE.search(modules):
        return FlakeTarget(attribute, via_configuration=False)
    if modules is not None and CONFIGURATION.search(modules):
        return FlakeTarget(attribute, via_configuration=True)
    raise ValueError(
        f"nixosConfigurations.{attribute} in /etc/nixos/flake.nix lists neither ./configuration.nix "
        "nor ./fleetforge in the modules of its nixosSystem; add ./fleetforge to its modules by hand "
        "(fleetforge does not edit flakes)"
    )


def host_flake(facts: HostFacts, nixos_flake_host: str | None) -> FlakeTarget | None:
    """The flake entry fleetforge activates on a NixOS host, or ``None`` when the host has no
    ``/etc/nixos/flake.nix``. ``nixos_flake_host``: host data naming the entry; without it, the
    host's name (``fleetforge.facts.os.hostname``, from ``uname -n``), as ``nixos-rebuild --flake`` picks.

    Raises ``ValueError`` (see ``flake_target``), also when neither name is known.
    """
    flake = facts.files.get(NIXOS_FLAKE)
    if flake is None:
        return None
    attribute = nixos_flake_host or facts.os.hostname
    if attribute is None:
        raise ValueError(
            "the host's name (uname -n) is not an RFC 1123 name; set host data nixos_flake_host to "
            "its nixosConfigurations name in /etc/nixos/flake.nix"
        )
    return flake_target(flake.content, attribute)
