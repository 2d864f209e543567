"""Load a pyinfra inventory and gather ``HostProbe`` facts through pyinfra's own connectors.

Used by ``fleetforge plan``. The caller must have gevent's ``monkey.patch_all()`` applied
before importing this module (``fleetforge.cli`` does), as pyinfra's CLI does.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
from pyinfra.api import Config, State
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.facts import get_fact
from pyinfra.api.state import BaseStateCallback
from pyinfra.context import ctx_state
from pyinfra_cli.inventory import make_inventory

from fleetforge.facts.probe import HostProbe
from fleetforge.models import HostFacts
from fleetforge.paths import MANAGED_FILES
from fleetforge.planner import sysctl_keys
from fleetforge.settings import HostSettings, inventory_settings

PROBE_TIMEOUT_S = 120  # a host that stops answering mid-probe fails instead of hanging the run


@dataclass
class InventoryHost:
    """One host of the inventory: its name, merged data, groups and validated settings."""

    name: str
    data: dict[str, Any]
    groups: list[str]
    settings: HostSettings


def load_inventory(
    path: str, limit: list[str] | None = None, parallel: int | None = None
) -> tuple[State, list[InventoryHost]]:
    """Load ``path`` (an ``inventory.py``) the way ``pyinfra`` does, then validate host data.

    ``limit``: host names or group names to keep (like ``pyinfra --limit``).
    ``parallel``: at most this many hosts connect and run at once (pyinfra's ``--parallel``;
    default: pyinfra's, all hosts up to the open-files limit).
    Returns the initialised pyinfra ``State`` and the hosts in inventory order.
    Raises ``SettingsError`` (every bad key of every host of the inventory, limited or not, or a
    ``fleetforge_connector`` that did not take effect) before anything connects.
    """
    state = State(check_for_changes=False)
    ctx_state.set(state)
    inventory = make_inventory(path, cwd=os.path.dirname(os.path.abspath(path)) or ".")
    settings = inventory_settings(inventory)  # every host, as the pyinfra CLI path does
    hosts = list(inventory)
    if limit:
        wanted = set(limit)
        hosts = [h for h in hosts if h.name in wanted or wanted & {g for g in h.groups}]
    config = Config(FAIL_PERCENT=100, CONNECT_TIMEOUT=10, PARALLEL=parallel)
    state.init(inventory, config, initial_limit=hosts)
    return state, [
        InventoryHost(name=h.name, data=h.data.dict(), groups=list(h.groups), settings=settings[h.name]) for h in hosts
    ]


def gather(state: State, hosts: list[InventoryHost], fact: type, kwargs_for: Callable[[InventoryHost], dict]) -> dict:
    """Connect to ``hosts`` in parallel (pyinfra's pool) and read ``fact`` on each.

    ``kwargs_for(host)``: the fact's arguments for that host. Returns ``{host name: value}``,
    or ``{host name: "reason"}`` for a host that could not be reached or whose output could not
    be parsed; one bad host never stops the others.
    """
    by_name = {h.name: h for h in hosts}
    results: dict[str, Any] = {h.name: "could not connect" for h in state.inventory if h.name in by_name}
    state.add_callback_handler(_ConnectErrors(results))
    connect_all(state)

    def one(host) -> None:
        kwargs = {**kwargs_for(by_name[host.name]), "_timeout": PROBE_TIMEOUT_S}
        value = get_fact(state, host, fact, kwargs=kwargs, apply_failed_hosts=False)
        results[host.name] = value if value is not None else f"{fact.__name__} failed (see log)"

    active = [h for h in state.activated_hosts if h.name in by_name]
    gevent.joinall([state.pool.spawn(one, h) for h in active], raise_error=True)
    disconnect_all(state)
    return results


def probe(state: State, hosts: list[InventoryHost]) -> dict[str, HostFacts | str]:
    """``gather`` of ``HostProbe`` with each host's sysctl keys: ``{name: HostFacts | "reason"}``."""
    return gather(state, hosts, HostProbe, lambda h: {"sysctl_keys": sysctl_keys(h.settings), "files": MANAGED_FILES})


class _ConnectErrors(BaseStateCallback):
    """Keeps each host's connect error (the connector's one-line reason) as its probe result."""

    def __init__(self, results: dict[str, HostFacts | str]) -> None:
        self.results = results

    def host_connect_error(self, state: State, host, error) -> None:  # type: ignore[override]
        if host.name in self.results:
            self.results[host.name] = f"could not connect: {error.args[0] if error.args else error}"
