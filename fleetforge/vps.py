"""The main job: detect, plan, push (``deploys/vps.py`` calls it). Linux VPS get files in
``/etc`` and live follow-ups; NixOS hosts get modules and ``nixos-rebuild`` (``tune_nixos``).

Per host, while pyinfra prepares: look up the host's validated settings (the whole inventory is
validated once, before pyinfra connects, so a typo on any host stops the run before one is
contacted), run ``HostProbe`` once (in a rollout: take the pre-deploy snapshot's facts), plan,
render, and queue the operations: on a Linux host one ``managed_files`` operation, so a first
deploy is the probe plus one command. Follow-ups (udev trigger, ``sysctl -p``, zram restart,
nix-daemon restart) run only when their file changed or the live state drifted from the plan,
so a second run changes nothing.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from pyinfra import host, logger
from pyinfra.api import deploy

from fleetforge import components
from fleetforge.components import COMPONENTS
from fleetforge.facts.probe import HostProbe
from fleetforge.models import HostFacts, TuningPlan
from fleetforge.nixos.activate import nixos_activate
from fleetforge.nixos.flake import host_flake
from fleetforge.nixos.modules import ensure_import, render_modules
from fleetforge.operations import FileStep, backup_path, managed_files
from fleetforge.paths import (
    MANAGED_FILES,
    NIXOS_CONFIGURATION,
)
from fleetforge.planner import PlanError, plan_host, sysctl_keys
from fleetforge.runs.pyinfra_hook import note_files, note_plan
from fleetforge.settings import HostSettings
from fleetforge.settings import inventory_settings as validated_inventory
from fleetforge.verify import checks_for

#: The operation that writes the plan's files and makes them live (its name in pyinfra's output
#: and in rollout records).
TUNING_FILES_OP = "Tuning files and follow-ups"


def inventory_settings() -> dict[str, HostSettings]:
    """Every inventory host's validated settings (``fleetforge.settings.inventory_settings``:
    validated once per inventory, before pyinfra connects when the inventory uses
    ``fleetforge.inventory.group``). Raises ``SettingsError`` listing every problem."""
    return validated_inventory(host.inventory)


def with_nix_cache(settings: HostSettings) -> HostSettings:
    """For a client of the fleet's Nix cache: the cache first in ``substituters`` and its public
    key (read from the cache host) in ``trusted-public-keys``; other hosts: unchanged."""
    from fleetforge.nixcache.deploy import cache_public_key, inventory_roles
    from fleetforge.nixcache.roles import client_settings

    roles = inventory_roles()
    if roles is None or host.name not in roles.clients:
        return settings
    key = cache_public_key(roles)
    if key is None or not key.public_key:
        host.log(
            f"nix cache: {roles.cache} has no signing key yet (run deploys/nix_cache.py first); not trusted here",
            logger.warning,
        )
        return settings
    return client_settings(settings, roles, key.public_key)


def nix_cache_module() -> dict:
    """``{"nix-cache.nix": options}`` when this NixOS host is the fleet's Nix cache (the server)
    or a client of its NFS export (the mount), else ``{}``."""
    from fleetforge.nixcache.deploy import inventory_roles
    from fleetforge.nixcache.roles import nixos_cache_options, nixos_client_options

    roles = inventory_roles()
    if roles is None:
        return {}
    if host.name == roles.cache:
        server = inventory_settings()[host.name].nix_cache_server
        return {"nix-cache.nix": partial(nixos_cache_options, roles, server)}  # of the host's release
    if roles.nfs and host.name in roles.clients:
        return {"nix-cache.nix": nixos_client_options(roles)}
    return {}


def mount_nix_cache() -> None:
    """On a (non-NixOS) client of an NFS cache: the export's systemd mount unit."""
    from fleetforge.nixcache.deploy import inventory_roles, nfs_client

    roles = inventory_roles()
    if roles is not None and roles.nfs and host.name in roles.clients:
        nfs_client(roles)


def summary(plan: TuningPlan) -> str:
    """One line per host for the run log: what the plan sets."""
    disks = ", ".join(f"{d.name} {d.scheduler.value}/ra {d.read_ahead_kb.value}" for d in plan.disks)
    zram = f"zram {plan.zram.size_mib.value} MiB {plan.zram.algorithm.value}" if plan.zram.enabled.value else "zram off"
    nix = ""
    if plan.nix:
        nix = f"; nix max-jobs {plan.nix.settings['max-jobs'].value} cores {plan.nix.settings['cores'].value}"
    return f"plan: {disks}; {zram}; {len(plan.sysctls)} sysctls{nix}"


#: ``{host: HostFacts}`` gathered by the rollout's pre-deploy snapshot moments before this run
#: (``fleetforge.rollout_wave``): each host's deploy uses them instead of probing again. Empty
#: in a plain ``pyinfra`` run.
_PRE_GATHERED: dict[str, HostFacts] = {}


def use_pre_gathered(facts: dict[str, Any]) -> None:
    """Take ``{host: HostFacts JSON}`` (a rollout's snapshot) as this process's facts for those
    hosts. Raises pydantic's ``ValidationError`` for JSON that is not ``HostFacts``."""
    _PRE_GATHERED.update({name: HostFacts.model_validate(value) for name, value in facts.items()})


def gather(settings: HostSettings) -> HostFacts | None:
    """The current host's facts: the rollout's pre-deploy probe when there is one, else one
    ``HostProbe`` round trip (``None`` when it failed: pyinfra has marked the host failed)."""
    facts = _PRE_GATHERED.pop(host.name, None)
    if facts is not None:
        host.log("facts: the rollout's pre-deploy snapshot (no second probe)", logger.info)
        return facts
    return host.get_fact(HostProbe, sysctl_keys=sysctl_keys(settings), files=MANAGED_FILES)


@deploy("fleetforge: tune VPS")
def tune_host() -> None:
    """Detect, plan and push the tuning plan for the current host.

    Raises ``SettingsError`` (any host's data invalid) or ``PlanError`` (this host's data
    contradicts its hardware) during pyinfra's prepare phase, before any operation runs.
    """
    settings = with_nix_cache(inventory_settings()[host.name])
    facts = gather(settings)
    if facts is None:  # the probe failed: pyinfra has already marked this host failed
        return
    note_plan(facts, None)  # the run record (fleetforge.runs): hardware even if planning fails
    plan = plan_host(host.name, facts, settings)
    note_plan(facts, plan)
    host.log(summary(plan), logger.info)
    if facts.os.is_nixos:
        tune_nixos(plan, facts, settings)
        return
    mount_nix_cache()
    tune_linux(plan, facts)


def tune_linux(plan: TuningPlan, facts: HostFacts) -> None:
    """A Linux host: what components need first (a package), then one operation that writes
    every component's file (backed up, atomically) and runs the commands that make it live,
    only when the file changed or the live state drifted: one command for the whole plan."""
    steps = []
    for component in COMPONENTS:
        content = component.file(plan, facts)
        if content is None or component.path is None:
            continue
        component.prepare(plan, facts)
        steps.append(
            FileStep(
                title=component.file_title,
                dest=component.path,
                content=content,
                current=facts.files.get(component.path),
                follow_up=tuple(component.apply(plan, facts)),
                follow_up_title=component.apply_title,
                drift=tuple(component.drift(plan, facts)),
            )
        )
    note_files(TUNING_FILES_OP, steps)
    managed_files(name=TUNING_FILES_OP, steps=steps)


def tune_nixos(plan: TuningPlan, facts: HostFacts, settings: HostSettings) -> None:
    """NixOS: write the plan as modules under /etc/nixos/fleetforge, import them from
    configuration.nix, then activate with verification (``fleetforge.nixos.activate``).

    A flake host (``/etc/nixos/flake.nix``) is activated with ``--flake /etc/nixos#<name>`` when
    its entry lists ``./configuration.nix`` (then that file gets the import) or ``./fleetforge``;
    anything else is a ``PlanError`` saying what to add by hand (``fleetforge.nixos.flake``).
    """
    files = render_modules(plan, facts, extra=nix_cache_module())
    try:
        flake = host_flake(facts, settings.nixos_flake_host)
    except ValueError as exc:
        raise PlanError(host.name, "nixos_flake_host", str(exc)) from None
    if flake is None or flake.via_configuration:  # else the flake entry imports ./fleetforge itself
        configuration = facts.files.get(NIXOS_CONFIGURATION)
        if configuration is None:
            raise PlanError(host.name, "nixos", f"no {NIXOS_CONFIGURATION}: nothing would import the modules")
        try:
            files[NIXOS_CONFIGURATION] = ensure_import(configuration.content)
        except ValueError as exc:
            raise PlanError(
                host.name, "nixos", f"{NIXOS_CONFIGURATION}: {exc}; add ./fleetforge to its imports"
            ) from None

    steps = [
        FileStep(title=f"NixOS module {path}", dest=path, content=content, current=facts.files.get(path))
        for path, content in sorted(files.items())
    ]
    written = [(s.dest, backup_path(s.dest) if s.current is not None else None) for s in steps if s.changed]
    note_files("NixOS modules", steps)
    modules = managed_files(name="NixOS modules", steps=steps)
    # Live drift matters only where activation changes the live system: a boot-only host differs
    # from its plan by design until it reboots, and must not get a new generation on every run.
    live = any(action in ("test", "switch") for action in settings.nixos_activation)
    drift = components.drift(plan, facts, nixos=True) if live else []
    if drift:
        host.log(f"NixOS: live state differs from the plan: {'; '.join(drift)}", logger.info)
    nixos_activate(
        name=f"nixos-rebuild {' then '.join(settings.nixos_activation)} with verification",
        actions=settings.nixos_activation,
        checks=list(checks_for(plan, nixos=True)),
        written=written,
        flake=flake.ref if flake else None,
        flake_files=sorted(files) if flake else [],
        _if=lambda: bool(drift) or modules.did_change(),
    )
