"""Render a ``DiskLayout`` as a disko file (``templates/disko.nix.j2``) and its hardware note,
and push both to a host (``push_disko``, called by ``deploys/disko.py``).

The disko file is a plain Nix expression (``let ... in { disko.devices = ...; }``): disko and
nixos-anywhere import it as a module, and ``nix-instantiate --eval --strict --json FILE`` prints
exactly ``DiskLayout.disko_config()`` (tests/test_disko.py checks that with the real evaluator).
"""

from __future__ import annotations

import json

from pyinfra import host, logger
from pyinfra.api import deploy

from fleetforge.facts.layout import FileContents
from fleetforge.facts.probe import HostProbe
from fleetforge.layout.plan import DiskLayout, layout_for
from fleetforge.layout.settings import DISKO_DISK_NAME, SWAPFILE, LayoutSettings
from fleetforge.models import HostFacts
from fleetforge.nixos.modules import to_nix
from fleetforge.operations import managed_file
from fleetforge.paths import MANAGED_FILES
from fleetforge.render import render
from fleetforge.settings import inventory_settings


def render_disko(layout: DiskLayout) -> str:
    """The disko file for ``layout``; raises ``jinja2.UndefinedError`` on a missing variable."""
    return render(
        "disko.nix.j2",
        layout=layout,
        disk_name=DISKO_DISK_NAME,
        swapfile=SWAPFILE,
        hook=layout.post_create_hook(),
        nix=to_nix,
    )


def hardware_json(layout: DiskLayout) -> str:
    """What was detected and chosen (disk, by-id, size, firmware, transport), as JSON text."""
    return json.dumps(layout.hardware_note(), indent=2, sort_keys=True) + "\n"


def summary(layout: DiskLayout) -> str:
    """One line for the run log: disk, boot mode, partitions, subvolumes."""
    parts = ", ".join(f"{p.name} {p.size_mib}M" if p.size_mib else f"{p.name} rest" for p in layout.partitions)
    subvolumes = ", ".join(f"{s.name}->{s.mountpoint}" for s in layout.subvolumes)
    return f"disk layout: {layout.disk} {layout.device} ({layout.boot_mode}): {parts}; {subvolumes}"


@deploy("fleetforge: disko layout")
def push_disko() -> None:
    """Write the host's ``disko.nix`` and hardware note (``disk_layout.disko_file``,
    ``disk_layout.hardware_file``) for nixos-anywhere. Changes no disk.

    Raises ``SettingsError`` (any host's data invalid) or ``PlanError`` (the layout does not fit
    this host's hardware) while pyinfra prepares, before any operation runs.
    """
    settings = inventory_settings(host.inventory)[host.name].disk_layout or LayoutSettings()
    facts: HostFacts | None = host.get_fact(HostProbe, sysctl_keys=(), files=MANAGED_FILES)
    if facts is None:  # the probe failed: pyinfra has already marked this host failed
        return
    layout = layout_for(host.name, facts, settings)
    host.log(summary(layout), logger.info)
    current = host.get_fact(FileContents, paths=[settings.disko_file, settings.hardware_file])
    managed_file(
        name="disko layout", dest=settings.disko_file, content=render_disko(layout),
        current=current.get(settings.disko_file),
    )  # fmt: skip
    managed_file(
        name="disko hardware note", dest=settings.hardware_file, content=hardware_json(layout),
        current=current.get(settings.hardware_file),
    )  # fmt: skip
