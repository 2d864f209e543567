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

Importing it also makes pyinfra's CLI cheaper where pyinfra's own per-host or per-operation
machinery was measured to dominate a run (``fleetforge.pyinfra_speed``: each patch says what it replaces, keeps
pyinfra's results identical and is skipped if pyinfra's layout differs), and a run of an
inventory on ``@asyncssh`` connects every host at once unless the user asked otherwise
(``fleetforge.parallel.parallel_for_asyncssh``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fleetforge.connector.choice import CONNECTOR_KEY, CONNECTORS
from fleetforge.connector.choice import connector_problems as connector_problems  # re-exported
from fleetforge.parallel import fit_parallel as fit_parallel  # re-exported
from fleetforge.parallel import parallel_for_asyncssh
from fleetforge.pyinfra_speed import apply as _apply_speedups

HostEntry = str | tuple[str, dict[str, Any]]

_apply_speedups()


def validate_before_connect() -> None:
    """Make the pyinfra run that is loading this inventory check every host's data before it
    opens a single connection.

    pyinfra's CLI loads ``inventory.py``, then initialises its ``State`` with the finished
    inventory (``--data``, ``group_data/`` and ``--limit`` applied), then connects. This wraps
    that run's ``State.init`` (the instance's, nothing global) so that
    ``fleetforge.settings.inventory_settings`` validates the whole inventory first; a problem
    stops the run with one line per host and key, exit code 1, no host contacted. The result is
    cached for the inventory, so the deploy files' own per-host lookups cost nothing more.

    :func:`group` calls this, so an ``inventory.py`` built with it needs nothing else; an
    inventory of plain lists can call it once anywhere in the file. Outside a pyinfra run (no
    current state, or a state already initialised) it does nothing. Idempotent.
    """
    try:
        from pyinfra.context import ctx_state
    except ImportError:  # pragma: no cover
        return
    state = ctx_state.get()
    if state is None or getattr(state, "initialised", False) or getattr(state, "_fleetforge_validates", False):
        return
    original = state.init

    def init(inventory: Any, config: Any = None, **kwargs: Any) -> Any:
        _refuse_bad_data(inventory)
        return original(inventory, config, **kwargs)

    state.init = init
    state._fleetforge_validates = True


def _refuse_bad_data(inventory: Any) -> None:
    from fleetforge.settings import SettingsError, inventory_settings

    try:
        inventory_settings(inventory)
    except SettingsError as exc:
        try:
            from pyinfra_cli.exceptions import CliError
        except ImportError:  # pragma: no cover - pyinfra used as a library
            raise exc from None
        count = len({host for host, _, _ in exc.problems})
        raise CliError(f"invalid host data on {count} host(s), no host was contacted:\n{exc}") from None


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

    Also arranges for the pyinfra run loading the inventory to validate every host's data before
    it connects (:func:`validate_before_connect`) and, unless the user set a parallelism, to
    connect all its ``@asyncssh`` hosts at once (:func:`parallel_for_asyncssh`).

    Raises:
        SettingsError: a ``fleetforge_connector`` value other than ``"ssh"`` or ``"asyncssh"``,
            naming the host (or the group's first host) and the value.
    """
    parallel_for_asyncssh()
    validate_before_connect()  # wraps last, so runs first: bad data stops the run before anything else
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
