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


def _views(text: str) -> tuple[str, str]:
    """Two views of Nix ``text`` with the same offsets: comments blanked, and comments blanked
    with string contents masked (``"..."`` and ``''...''`` keep their quotes)."""
    plain, masked = list(text), list(text)
    i, n = 0, len(text)
    while i < n:
        if text[i] == "#" or text.startswith("/*", i):
            if text[i] == "#":
                end = text.find("\n", i)
            else:
                end = text.find("*/", i + 2)
                end = end + 2 if end >= 0 else -1
            end = n if end < 0 else end
            for j in range(i, end):
                if text[j] != "\n":
                    plain[j] = masked[j] = " "
            i = end
        elif text[i] == '"' or text.startswith("''", i):
            quote = '"' if text[i] == '"' else "''"
            j = i + len(quote)
            while j < n and not text.startswith(quote, j):
                if quote == '"' and text[j] == "\\" or quote == "''" and text.startswith(("'''", "''$", "''\\"), j):
                    j += 1 if quote == '"' else 2
                j += 1
            for k in range(i + len(quote), min(j, n)):
                masked[k] = "_"
            i = j + len(quote)
        else:
            i += 1
    return "".join(plain), "".join(masked)


def _value(masked: str, start: int, semicolon: bool = True) -> str:
    """The expression from ``start`` up to the ``;`` that ends it (brackets balanced), or with
    ``semicolon=False`` up to the bracket that closes the one open at ``start``."""
    depth = 0
    for i in range(start, len(masked)):
        c = masked[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth < 0:
                return masked[start:i]
        elif c == ";" and depth == 0 and semicolon:
            return masked[start:i]
    return masked[start:]


def _entry(plain: str, masked: str, attribute: str) -> str | None:
    """The expression of ``nixosConfigurations.<attribute>``, written either as a dotted path or
    as an attribute of a ``nixosConfigurations = { ... }`` set; ``None`` if neither is there."""
    name = rf'(?:{re.escape(attribute)}|"{re.escape(attribute)}")'
    for match in re.finditer(rf"nixosConfigurations\s*\.\s*{name}\s*=(?!=)", plain):
        if masked[match.start()] == "n":  # not inside a string
            return _value(masked, match.end())
    for match in re.finditer(r"nixosConfigurations\s*=\s*\{", plain):
        if masked[match.start()] != "n":
            continue
        body = _value(masked, match.end(), semicolon=False)
        depth, offset = 0, match.end()
        for inner in re.finditer(rf"[{{}}\[\]()]|(?<![\w.'-]){name}\s*=(?!=)", plain[offset : offset + len(body)]):
            token = inner.group()
            if masked[offset + inner.start()] == "_":
                continue  # inside a string
            if token in "{[(":
                depth += 1
            elif token in "}])":
                depth -= 1
            elif depth == 0:
                return _value(masked, offset + inner.end())
    return None


def flake_target(flake: str, attribute: str) -> FlakeTarget:
    """The host's entry in ``flake`` (the text of ``/etc/nixos/flake.nix``) for
    ``nixosConfigurations.<attribute>``.

    Raises ``ValueError`` naming what to add by hand when the attribute is not a plain Nix name,
    the flake has no such entry, or the entry lists neither ``./configuration.nix`` nor
    ``./fleetforge``.
    """
    if not ATTRIBUTE.fullmatch(attribute):
        raise ValueError(
            f"nixosConfigurations name {attribute!r}: expected letters, digits, _ and - "
            "(set host data nixos_flake_host to the name in /etc/nixos/flake.nix)"
        )
    plain, masked = _views(flake)
    entry = _entry(plain, masked, attribute)
    if entry is None:
        raise ValueError(
            f"/etc/nixos/flake.nix has no nixosConfigurations.{attribute} that fleetforge can read; "
            "set host data nixos_flake_host to this host's name there, or add ./fleetforge to its "
            "modules by hand"
        )
    if FLEETFORGE.search(entry):
        return FlakeTarget(attribute, via_configuration=False)
    if CONFIGURATION.search(entry):
        return FlakeTarget(attribute, via_configuration=True)
    raise ValueError(
        f"nixosConfigurations.{attribute} in /etc/nixos/flake.nix lists neither ./configuration.nix "
        "nor ./fleetforge; add ./fleetforge to its modules by hand (fleetforge does not edit flakes)"
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
