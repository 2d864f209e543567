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
import weakref
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from fleetforge.connector.choice import CONNECTOR_KEY, CONNECTORS
from fleetforge.connector.choice import connector_problems as connector_problems  # re-exported

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


class _HostList(list):
    """A group's host list whose ``in`` is a set lookup (``append`` and ``in`` only)."""

    def __init__(self) -> None:
        super().__init__()
        self._ids: set[int] = set()

    def append(self, item: Any) -> None:
        self._ids.add(id(item))
        super().append(item)

    def __contains__(self, item: object) -> bool:
        return id(item) in self._ids


def _linear_group_building() -> None:
    """Make pyinfra's inventory build linear in hosts instead of quadratic.

    pyinfra 3.10's ``Inventory.make_hosts_and_groups`` adds each host to its groups with
    ``if host not in self.groups[name]: append``: a list scan per host, n**2/2 comparisons for a
    group of n hosts, done twice per CLI run (group data inventory, then the real one). Measured
    here: 24 s of a 28 s run at 10,000 hosts in one group. During that call only, the group lists
    are ``_HostList`` (the same order and contents, ``in`` by identity through a set); plain
    lists afterwards. Skipped if pyinfra's layout differs.
    """
    try:
        from pyinfra.api.inventory import Inventory
    except ImportError:  # pragma: no cover
        return
    original = getattr(Inventory, "make_hosts_and_groups", None)
    if original is None or getattr(original, "_fleetforge_linear", False):
        return

    def make_hosts_and_groups(self: Any, names: Any, groups: Any) -> None:
        self.groups = defaultdict(_HostList, self.groups)
        try:
            original(self, names, groups)
        finally:
            self.groups = defaultdict(list, {name: list(hosts) for name, hosts in self.groups.items()})

    make_hosts_and_groups._fleetforge_linear = True  # type: ignore[attr-defined]
    Inventory.make_hosts_and_groups = make_hosts_and_groups


_linear_group_building()


def _linear_host_init() -> None:
    """Make pyinfra's ``State.init`` linear in hosts: ``Host.init`` pads each host's log prefix
    to the longest name with ``max(len(h.name) for h in inventory)``, computed again for every
    host (n**2: 22 s of a 33 s run at 10,000 hosts, measured here). The longest name is computed
    once per inventory and host count; the padding is the same. Skipped if pyinfra's layout
    differs (``Host.init`` must still set ``print_prefix_padding``)."""
    try:
        from pyinfra.api.host import Host
    except ImportError:  # pragma: no cover
        return
    original = getattr(Host, "init", None)
    if original is None or getattr(original, "_fleetforge_linear", False):
        return
    if "print_prefix_padding" not in original.__code__.co_names:  # pragma: no cover
        return
    longest: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # inventory -> (hosts, longest)

    def init(self: Any, state: Any) -> None:
        self.state = state
        self.connector = self.connector_cls(state, self)
        inventory = self.inventory
        known = longest.get(inventory)
        if known is None or known[0] != len(inventory):
            known = longest[inventory] = (len(inventory), max(len(h.name) for h in inventory))
        self.print_prefix_padding = " " * (known[1] - len(self.name))

    init._fleetforge_linear = True  # type: ignore[attr-defined]
    Host.init = init


_linear_host_init()


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
    it connects (:func:`validate_before_connect`).

    Raises:
        SettingsError: a ``fleetforge_connector`` value other than ``"ssh"`` or ``"asyncssh"``,
            naming the host (or the group's first host) and the value.
    """
    validate_before_connect()
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
