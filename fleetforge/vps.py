"""The main job for a non-NixOS Linux VPS: detect, plan, push (``deploys/vps.py`` calls it).

Per host, while pyinfra prepares: validate every host's data (so a typo on any host stops the
run before one is touched), run ``HostProbe`` once, plan, render, and queue the operations.
Follow-ups (udev trigger, ``sysctl -p``, zram restart, nix-daemon restart) run only when their
file changed or the live state drifted from the plan, so a second run changes nothing.
"""

from __future__ import annotations

from pyinfra import host, inventory, logger
from pyinfra.api import deploy
from pyinfra.operations import server

from facts.probe import HostProbe
from fleetforge.models import HostFacts, TuningPlan
from fleetforge.operations import (
    NIX_DAEMON_RESTART,
    SYSCTL_APPLY,
    UDEV_APPLY,
    ZRAM_APPLY,
    ZRAM_REMOVE,
    io_drift,
    managed_file,
    sysctl_drift,
    zram_drift,
)
from fleetforge.paths import NIX_CONF, SYSCTL_CONF, UDEV_RULES, ZRAM_GENERATOR_CONF
from fleetforge.planner import plan_host, sysctl_keys
from fleetforge.render import desired_files
from fleetforge.settings import HostSettings, validate_hosts

# Package that provides zram-generator, by the package manager the probe found.
ZRAM_GENERATOR_PACKAGE = {
    "apt-get": "systemd-zram-generator",
    "dnf": "zram-generator",
    "yum": "zram-generator",
}


def inventory_settings() -> dict[str, HostSettings]:
    """Validate the data of every inventory host; raises ``SettingsError`` listing all problems."""
    return validate_hosts({h.name: h.data.dict() for h in inventory})


def summary(plan: TuningPlan) -> str:
    """One line per host for the run log: what the plan sets."""
    disks = ", ".join(f"{d.name} {d.scheduler.value}/ra {d.read_ahead_kb.value}" for d in plan.disks)
    zram = f"zram {plan.zram.size_mib.value} MiB {plan.zram.algorithm.value}" if plan.zram.enabled.value else "zram off"
    nix = ""
    if plan.nix:
        nix = f"; nix max-jobs {plan.nix.settings['max-jobs'].value} cores {plan.nix.settings['cores'].value}"
    return f"plan: {disks}; {zram}; {len(plan.sysctls)} sysctls{nix}"


def _follow_up(name: str, commands, changed, drift: list[str]) -> None:
    """Run ``commands`` if the file operation changed, or anyway if the live state drifted."""
    if drift:
        host.log(f"{name}: live state differs from the plan: {'; '.join(drift)}", logger.info)
    server.shell(name=name, commands=list(commands), _if=lambda: bool(drift) or changed.did_change())


@deploy("fleetforge: tune VPS")
def tune_host() -> None:
    """Detect, plan and push the tuning plan for the current host.

    Raises ``SettingsError`` (any host's data invalid) or ``PlanError`` (this host's data
    contradicts its hardware) during pyinfra's prepare phase, before any operation runs.
    """
    settings = inventory_settings()[host.name]
    facts: HostFacts | None = host.get_fact(HostProbe, sysctl_keys=sysctl_keys(settings))
    if facts is None:  # the probe failed: pyinfra has already marked this host failed
        return
    if facts.os.is_nixos:
        logger.warning(f"[{host.name}] NixOS host: the /etc path does not apply; skipped")
        return
    plan = plan_host(host.name, facts, settings)
    host.log(summary(plan), logger.info)
    files = desired_files(plan, facts)

    rules = managed_file(
        name="I/O scheduler udev rules", dest=UDEV_RULES, content=files[UDEV_RULES],
        current=facts.files.get(UDEV_RULES),
    )  # fmt: skip
    _follow_up("Apply udev rules to disks", UDEV_APPLY, rules, io_drift(plan, facts))

    sysctl = managed_file(
        name="sysctl settings", dest=SYSCTL_CONF, content=files[SYSCTL_CONF],
        current=facts.files.get(SYSCTL_CONF),
    )  # fmt: skip
    _follow_up("Apply sysctl settings", SYSCTL_APPLY, sysctl, sysctl_drift(plan, facts))

    if not facts.zram_generator and plan.zram.enabled.value:
        package = ZRAM_GENERATOR_PACKAGE.get(facts.package_manager or "", "zram-generator")
        server.packages(name="Install zram-generator", packages=[package])
    zram = managed_file(
        name="zram-generator config", dest=ZRAM_GENERATOR_CONF, content=files[ZRAM_GENERATOR_CONF],
        current=facts.files.get(ZRAM_GENERATOR_CONF),
    )  # fmt: skip
    apply = ZRAM_APPLY if plan.zram.enabled.value else ZRAM_REMOVE
    _follow_up("Apply zram swap", apply, zram, zram_drift(plan, facts))

    if NIX_CONF in files:
        nix = managed_file(
            name="Nix settings", dest=NIX_CONF, content=files[NIX_CONF],
            current=facts.files.get(NIX_CONF),
        )  # fmt: skip
        if facts.nix.daemon_unit:
            server.shell(
                name="Restart nix-daemon",
                commands=list(NIX_DAEMON_RESTART),
                _if=nix.did_change,
            )
