"""Render a ``TuningPlan`` into the files fleetforge owns on a (non-NixOS) host.

Templates live in the top-level ``templates/`` folder and are rendered by jinja2 with
``StrictUndefined``: a variable missing from the context raises ``jinja2.UndefinedError``
instead of writing an empty value into a host's configuration.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from fleetforge.models import HostFacts, TuningPlan
from fleetforge.paths import NIX_CONF, SYSCTL_CONF, UDEV_RULES, ZRAM_GENERATOR_CONF

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
NIX_BEGIN = "# BEGIN fleetforge: the settings below are managed; edit host data instead"
NIX_END = "# END fleetforge"


@cache
def environment() -> Environment:
    """The jinja2 environment for ``templates/`` (StrictUndefined, block whitespace trimmed)."""
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render(template: str, **context: Any) -> str:
    """Render ``templates/<template>``; raises ``jinja2.UndefinedError`` on a missing variable."""
    return environment().get_template(template).render(**context)


def nix_kept_lines(current: str | None, managed_keys: set[str]) -> list[str]:
    """Lines of an existing ``nix.conf`` that fleetforge keeps: everything outside its own
    block except settings it now manages (each key is written once, in its block)."""
    kept, inside = [], False
    for line in (current or "").splitlines():
        stripped = line.strip()
        if stripped == NIX_BEGIN:
            inside = True
        elif stripped == NIX_END:
            inside = False
        elif not inside and stripped.partition("=")[0].strip() not in managed_keys:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    return kept


def desired_files(plan: TuningPlan, facts: HostFacts) -> dict[str, str]:
    """``{remote path: content}`` for every file the plan owns on this host.

    ``nix.conf`` is only included when the plan has Nix settings; its lines outside
    fleetforge's block are kept as found (``facts.files``).
    """
    files = {
        UDEV_RULES: render("udev-io.rules.j2", disks=plan.disks),
        SYSCTL_CONF: render("sysctl.conf.j2", path=SYSCTL_CONF, sysctls=plan.sysctls, skipped=plan.skipped_sysctls),
        ZRAM_GENERATOR_CONF: render("zram-generator.conf.j2", zram=plan.zram),
    }
    if plan.nix is not None:
        current = facts.files.get(NIX_CONF)
        files[NIX_CONF] = render(
            "nix.conf.j2",
            kept_lines=nix_kept_lines(current.content if current else None, set(plan.nix.settings)),
            settings=plan.nix.settings,
            begin_marker=NIX_BEGIN,
            end_marker=NIX_END,
        )
    return files
