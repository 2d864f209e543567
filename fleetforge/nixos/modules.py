"""A ``TuningPlan`` as NixOS modules: on NixOS ``/etc`` is generated, so instead of writing
``/etc/sysctl.d`` the plan becomes option values in ``/etc/nixos/fleetforge/*.nix``, imported by
``configuration.nix``.

Each option with its nixpkgs type and the NixOS releases it has that type in (evidence, merge
rules and NixOS's own definitions: ``docs/nixos-options.md``; the cache host's options, which do
change between releases, are in ``fleetforge.nixcache``):

- sysctls: ``boot.kernel.sysctl."key"`` (config/sysctl.nix): bool, str, int or null, one
  definition per priority, all releases; ``"net.core.rmem_max"``/``"wmem_max"``: null or
  unsigned int, the largest definition wins (23.05+ / 24.05+; before, like any key).
- disk rules: ``services.udev.extraRules`` (services/hardware/udev.nix): lines, all releases.
- zram: ``zramSwap.{enable, memoryPercent, algorithm, priority}`` (config/zram.nix): bool, int
  (positive since nixpkgs PR #444426), str, int, all releases; ``zramSwap.memoryMax`` (bytes):
  null or int, 21.05+.
- Nix settings: ``nix.settings.<key>`` (config/nix.nix; services/misc/nix-daemon.nix before
  23.11): freeform, lists for list-valued keys, 22.05+.

fleetforge writes plain definitions (priority 100): a host's own plain definition of the same
sysctl or zram option is a NixOS evaluation error that names both files, and a host's
``lib.mkForce`` wins over fleetforge (verify then reports the difference). Ints stay ints
(``net.core.rmem_max`` refuses strings). cache.nixos.org and its key are not planned on NixOS:
NixOS adds them itself (``planner.ADDED_BY_NIXOS``).

``nixos_options(plan)`` builds the option values as plain data; ``render_modules`` writes them
with jinja2 and ``to_nix``. Rendered modules take no arguments but ``...`` so that the real
evaluator can check them standalone: ``nix-instantiate --eval --strict --json -E
'import ./sysctl.nix {}'`` must give back ``nixos_options`` (tests do exactly that).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fleetforge import components
from fleetforge.models import HostFacts, TuningPlan
from fleetforge.paths import NIXOS_MODULE_DIR, NIXOS_MODULES
from fleetforge.render import render
from fleetforge.render import to_nix as to_nix  # re-exported: the Nix writer every template uses


def nixos_options(plan: TuningPlan, facts: HostFacts) -> dict[str, dict[str, Any]]:
    """``{module file: option values}`` for the plan (nested dicts, as NixOS reads them): each
    tuning component's options (``fleetforge.components``)."""
    return components.nixos_options(plan, facts)


ModuleOptions = dict[str, Any] | Callable[[str | None], dict[str, Any]]


def render_modules(plan: TuningPlan, facts: HostFacts, extra: dict[str, ModuleOptions] | None = None) -> dict[str, str]:
    """``{remote path: content}`` of every module under ``/etc/nixos/fleetforge``.

    ``extra``: more ``{module file: option values}`` (the Nix cache host's ``nix-cache.nix``);
    a value may be a function of the host's NixOS release (``fleetforge.facts.os.nixos_release``, ``"YY.MM"``
    or ``None``) for options that differ between releases. ``default.nix`` imports the others;
    ``configuration.nix`` imports ``./fleetforge``. Raises what such a function raises
    (``PlanError`` for a release it does not support).
    """
    release = facts.os.nixos_release
    more = {name: opts(release) if callable(opts) else opts for name, opts in (extra or {}).items()}
    options = {**nixos_options(plan, facts), **more}
    files = {
        f"{NIXOS_MODULE_DIR}/{name}": render("nixos-module.nix.j2", host=plan.host, name=name, options=opts)
        for name, opts in options.items()
    }
    files[f"{NIXOS_MODULE_DIR}/default.nix"] = render(
        "nixos-default.nix.j2", imports=[name for name in NIXOS_MODULES if name in options]
    )
    return files


_IMPORTS = re.compile(r"\bimports\s*=\s*\[")
_HEADER = re.compile(r"^\s*(?:#[^\n]*\n|\s)*\{[^{}]*\}\s*:\s*\{", re.S)
IMPORT_ENTRY = "./fleetforge"


def ensure_import(configuration: str) -> str:
    """``configuration.nix`` text that imports ``./fleetforge``; unchanged if it already does.

    Adds the entry to an existing ``imports = [ ... ]`` list, or an ``imports`` line right after
    the module's opening brace. Raises ``ValueError`` when the file has neither shape (then a
    person must add the import: fleetforge does not guess).
    """
    if re.search(r"(^|[\s\[])\./fleetforge(/default\.nix)?([\s\]]|$)", configuration):
        return configuration
    match = _IMPORTS.search(configuration)
    if match:
        return f"{configuration[: match.end()]} {IMPORT_ENTRY}{configuration[match.end() :]}"
    match = _HEADER.match(configuration)
    if match:
        line = f"\n  imports = [ {IMPORT_ENTRY} ]; # added by fleetforge\n"
        return configuration[: match.end()] + line + configuration[match.end() :]
    raise ValueError("configuration.nix is not a '{ ... }: { ... }' module with an imports list")
