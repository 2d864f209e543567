"""Which connector a host asked for (host data ``fleetforge_connector``) and whether it got it.

A leaf below ``fleetforge.settings`` (which validates the choice) and ``fleetforge.inventory``
(which builds groups with it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

CONNECTOR_KEY = "fleetforge_connector"
CONNECTORS = ("ssh", "asyncssh")


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
