"""Inventory helpers: pick the connector of a whole group (or one host) through its data.

pyinfra chooses a host's connector from its name only (``@asyncssh/vps-1``; a bare name is
``@ssh``). ``group`` lets the data decide instead, so switching a fleet is one key::

    from fleetforge.inventory import group

    ovh = group(
        [("vps-1", {"ssh_hostname": "203.0.113.10"}), "vps-2"],
        {"fleetforge_connector": "asyncssh", "ssh_user": "debian", "_sudo": True},
    )

Host data overrides group data, so one host can stay on ``"ssh"``. The host keeps its plain
name (``vps-1``: ``--limit vps-1`` and ``fleetforge verify`` see the same name either way).

This module imports nothing heavy: ``inventory.py`` files import it, and pyinfra loads the
inventory before anything else (it cost 0.2 s per run when it pulled in the settings models).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

CONNECTOR_KEY = "fleetforge_connector"
CONNECTORS = ("ssh", "asyncssh")

HostEntry = str | tuple[str, dict[str, Any]]


def _cache_connector_lookup() -> None:
    """Look pyinfra's connectors up once per process instead of twice per ``@connector`` host.

    pyinfra 3.10 builds each ``@name/...`` host by calling ``get_all_connectors()``, which scans
    every installed distribution's entry points (about 2.5 ms each time): 0.25 s of a 50-host
    run, all of the difference between ``@asyncssh`` and ``@ssh`` there. Entry points do not
    change during a run, so the lookup is cached. Skipped if pyinfra's layout differs.
    """
    try:
        import pyinfra.api.connectors as connectors
        import pyinfra.api.inventory as inventory_module
    except ImportError:  # pragma: no cover
        return
    lookup = getattr(connectors, "get_all_connectors", None)
    if lookup is None or getattr(lookup, "_fleetforge_cached", False):
        return
    cached = functools.cache(lookup)
    cached._fleetforge_cached = True  # type: ignore[attr-defined]
    connectors.get_all_connectors = cached
    if getattr(inventory_module, "get_all_connectors", None) is lookup:
        inventory_module.get_all_connectors = cached


_cache_connector_lookup()


def _name_data(entry: HostEntry) -> tuple[str, dict[str, Any]]:
    if isinstance(entry, str):
        return entry, {}
    name, data = entry
    return name, dict(data)


def group(hosts: Iterable[HostEntry], data: dict[str, Any] | None = None) -> tuple[list[HostEntry], dict[str, Any]]:
    """A pyinfra group ``(hosts, data)`` whose hosts use the connector their data names.

    Args:
        hosts: entries as in an ``inventory.py``: ``"name"`` or ``("name", {host data})``.
        data: the group's data; ``fleetforge_connector`` here applies to every host that does
            not set its own.

    Returns:
        ``(entries, data)``, where each entry whose connector is ``"asyncssh"`` is renamed
        ``@asyncssh/name`` (its data unchanged). Names that already start with ``@`` are kept.

    Raises:
        SettingsError: a ``fleetforge_connector`` value other than ``"ssh"`` or ``"asyncssh"``,
            naming the host (or the group's first host) and the value.
    """
    data = dict(data or {})
    out: list[HostEntry] = []
    problems = []
    for entry in hosts:
        name, host_data = _name_data(entry)
        connector = host_data.get(CONNECTOR_KEY, data.get(CONNECTOR_KEY, "ssh"))
        if connector not in CONNECTORS:
            problems.append((name, CONNECTOR_KEY, f"expected one of {', '.join(CONNECTORS)}, got {connector!r}"))
            continue
        if connector == "asyncssh" and not name.startswith("@"):
            name = f"@asyncssh/{name}"
        out.append((name, host_data) if host_data else name)
    if problems:
        from fleetforge.settings import SettingsError  # pydantic models: only loaded when needed

        raise SettingsError(problems)
    return out, data


def connector_problems(hosts: Iterable[Any]) -> list[tuple[str, str, str]]:
    """Hosts whose data asks for ``asyncssh`` but that pyinfra connects with another connector.

    ``hosts``: pyinfra ``Host`` objects. Returns ``(host, key, message)`` triples for
    ``SettingsError``: the data key only takes effect through :func:`group`.
    """
    from fleetforge.connector.asyncssh_connector import AsyncSSHConnector

    problems = []
    for host in hosts:
        wanted = host.data.get(CONNECTOR_KEY)
        if wanted == "asyncssh" and not issubclass(host.connector_cls, AsyncSSHConnector):
            problems.append(
                (
                    host.name,
                    CONNECTOR_KEY,
                    "'asyncssh' is set but the host runs over @ssh: build its group with "
                    "fleetforge.inventory.group(...) or name it @asyncssh/NAME",
                )
            )
    return problems
