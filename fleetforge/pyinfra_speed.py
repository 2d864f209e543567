"""pyinfra 3.10's CLI made cheaper where its own per-host or per-operation machinery was
measured to dominate a fleetforge run (``bench/connector_bench.py``). Each patch says what it
replaces, keeps pyinfra's results identical and is skipped if pyinfra's layout differs.
``apply()`` installs them all (idempotent); ``fleetforge.inventory`` calls it on import, so every
pyinfra run of a fleetforge inventory gets them. Imports nothing heavy.
"""

from __future__ import annotations

import functools
import sys
import weakref
from collections import defaultdict
from typing import Any


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


def _cheap_operation_order() -> None:
    """Make pyinfra's per-operation call-site lookup cost microseconds instead of milliseconds.

    pyinfra 3.10's CLI orders operations by the line numbers of their call sites
    (``pyinfra.api.util.get_operation_order_from_stack``, once per operation per host). It gets
    them with ``inspect.stack()`` and ``inspect.getframeinfo`` on every frame, which also read
    a line of source per frame and search ``sys.modules`` for each frame's module (``getmodule``):
    about 24 % of the controller CPU of ``pyinfra -y --dry inventory.py deploys/vps.py`` at 200
    hosts (py-spy, measured here), for two values per frame that the frame holds already. With
    this and :func:`_cached_global_argument_types`, that run's controller CPU went from 3.6 to
    2.4 s (200 hosts on ``@asyncssh``, 25 ms per direction, ``bench/connector_bench.py`` hosts).

    The replacement walks the same frames and reads ``f_code.co_filename`` and ``f_lineno``,
    with pyinfra's own logic around them: the same outermost deploy-file frame, the same frames
    under pyinfra's install directory skipped, the same list of line numbers (so the same
    operation hashes and order; ``tests/connector/test_fleet_scale.py`` compares both on real call
    sites).
    ``getframeinfo`` would name a frame's file by ``getsourcefile``, which for a frame of a
    ``.py`` file is its ``co_filename``; its line is the start line of the current instruction,
    which is ``f_lineno``. Skipped if pyinfra's function differs from the one this was measured on.
    """
    try:
        import pyinfra
        import pyinfra.api.operation
        import pyinfra.api.util
    except ImportError:  # pragma: no cover
        return
    # the modules themselves: ``pyinfra.api.operation`` as an attribute is the decorator
    operation_module, util_module = sys.modules["pyinfra.api.operation"], sys.modules["pyinfra.api.util"]
    original = getattr(util_module, "get_operation_order_from_stack", None)
    if original is None or getattr(original, "_fleetforge_cheap", False):
        return
    expected = {"stack", "getframeinfo", "current_deploy_filename", "current_op_file_number", "PYINFRA_INSTALL_DIR"}
    if not expected <= set(original.__code__.co_names):  # pragma: no cover - another pyinfra
        return
    own_file = util_module.__file__  # pyinfra's function saw its own frame last (always skipped)

    def get_operation_order_from_stack(state: Any) -> list[int]:
        frames: list[tuple[str, int]] = [(own_file, 0)]
        frame = sys._getframe(1)
        while frame is not None:
            frames.append((frame.f_code.co_filename, frame.f_lineno))
            frame = frame.f_back
        frames.reverse()  # outermost first, as pyinfra's reversed(stack())
        i = 0  # pyinfra's loop: the first deploy-file frame, else the last frame
        deploy_file = state.current_deploy_filename
        if deploy_file:
            i = next((k for k, (filename, _) in enumerate(frames) if filename == deploy_file), len(frames) - 1)
        line_numbers = []
        if pyinfra.is_cli:
            line_numbers.append(state.current_op_file_number)
        install_dir = util_module.PYINFRA_INSTALL_DIR
        for filename, lineno in frames[i:]:
            if not filename.startswith(install_dir):
                line_numbers.append(lineno)
        return line_numbers

    get_operation_order_from_stack._fleetforge_cheap = True  # type: ignore[attr-defined]
    get_operation_order_from_stack._fleetforge_original = original  # type: ignore[attr-defined]
    util_module.get_operation_order_from_stack = get_operation_order_from_stack
    if getattr(operation_module, "get_operation_order_from_stack", None) is original:
        operation_module.get_operation_order_from_stack = get_operation_order_from_stack


def _cached_global_argument_types() -> None:
    """Compute pyinfra's global-argument types once instead of once per operation and fact.

    pyinfra 3.10's ``all_global_arguments()`` is ``list(get_type_hints(AllArguments).items())``,
    evaluated again for every operation call and every fact (``pop_global_arguments``): about
    4 % of the controller CPU of a ``vps.py --dry`` run (py-spy). ``AllArguments`` is a static
    TypedDict, so the result never changes; each call still returns a new list. Skipped if
    pyinfra's layout differs.
    """
    try:
        import pyinfra.api.arguments
        import pyinfra.api.facts  # noqa: F401
    except ImportError:  # pragma: no cover
        return
    arguments_module, facts_module = sys.modules["pyinfra.api.arguments"], sys.modules["pyinfra.api.facts"]
    original = getattr(arguments_module, "all_global_arguments", None)
    if original is None or getattr(original, "_fleetforge_cached", False):
        return
    if "get_type_hints" not in original.__code__.co_names:  # pragma: no cover - another pyinfra
        return
    items = tuple(original())

    def all_global_arguments() -> list[tuple[str, type]]:
        return list(items)

    all_global_arguments._fleetforge_cached = True  # type: ignore[attr-defined]
    all_global_arguments._fleetforge_original = original  # type: ignore[attr-defined]
    arguments_module.all_global_arguments = all_global_arguments
    if getattr(facts_module, "all_global_arguments", None) is original:
        facts_module.all_global_arguments = all_global_arguments


def apply() -> None:
    """Install every patch of this module (each once)."""
    _cache_connector_lookup()
    _linear_group_building()
    _linear_host_init()
    _cheap_operation_order()
    _cached_global_argument_types()
