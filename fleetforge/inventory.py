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
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fleetforge.settings import SettingsError

CONNECTOR_KEY = "fleetforge_connector"
CONNECTORS = ("ssh", "asyncssh")

HostEntry = str | tuple[str, dict[str, Any]]


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
