"""Parallelism for ``@asyncssh`` inventories: a pyinfra run connects all of them at once unless
the user set ``--parallel`` (or ``PARALLEL`` in ``config.py``). Called by
``fleetforge.inventory.group`` and the ``@asyncssh`` connector; imports nothing heavy.
"""

from __future__ import annotations

import os
from typing import Any

#: pyinfra's estimate of open files per host in a run (``pyinfra.api.state.MAX_PARALLEL``), plus
#: the files the process opens anyway; fleetforge bounds its own parallelism the same way.
FILES_PER_HOST, FILES_RESERVED = 3, 10


def parallel_for_asyncssh() -> None:
    """Make the pyinfra run that is loading this inventory run its ``@asyncssh`` hosts all at once.

    pyinfra's default parallelism (``config.PARALLEL`` 0: 20 hosts per CPU, 40 on 2 cores) is
    sized for ``@ssh``, where each host is a paramiko transport with its own reader greenlet
    and sockets. On fleetforge's ``@asyncssh`` every connection is a coroutine on the one asyncio
    loop of ``fleetforge.connector.bridge`` and costs one socket, so a batch limit only adds
    rounds: 500 hosts in 13 rounds of 40, each round waiting for its slowest host (measured in
    ``bench/connector_bench.py``). So, when the user set no parallelism (no ``--parallel``, no
    ``PARALLEL`` in ``config.py``: pyinfra's CLI applies both before it loads the inventory),
    this run's ``State.init`` (the instance's, nothing global) sets ``config.PARALLEL`` to the
    number of ``@asyncssh`` hosts plus pyinfra's own default for the other hosts, before pyinfra
    sizes its pools from it (:func:`fit_parallel`). An explicit value is kept as it is.

    ``fleetforge.inventory.group`` calls this, and so does the connector for each ``@asyncssh/NAME`` host it
    names, so any inventory with ``@asyncssh`` hosts gets it. Outside a pyinfra run (no current
    state, or one already initialised) it does nothing. Idempotent.
    """
    try:
        from pyinfra.context import ctx_state
    except ImportError:  # pragma: no cover
        return
    state = ctx_state.get()
    if state is None or getattr(state, "initialised", False) or getattr(state, "_fleetforge_parallel", False):
        return
    original = state.init

    def init(inventory: Any, config: Any = None, **kwargs: Any) -> Any:
        return original(inventory, fit_parallel(inventory, config), **kwargs)

    state.init = init
    state._fleetforge_parallel = True


def fit_parallel(inventory: Any, config: Any = None) -> Any:
    """Return ``config`` (a new pyinfra ``Config`` if ``None``) with ``PARALLEL`` set for
    ``inventory`` when it is unset (0) and the inventory has ``@asyncssh`` hosts: their count
    plus pyinfra's default for the rest (``min(20 x CPUs, other hosts)``), never below pyinfra's
    own default, at most what the open-files limit allows by pyinfra's estimate
    (``(RLIMIT_NOFILE - 10) / 3``). If the soft limit is too low for that and the hard limit
    allows more, the soft limit is raised to what is needed (as far as the hard limit goes), and
    pyinfra's ``MAX_PARALLEL`` is updated to match, so pyinfra does not warn about a limit
    that no longer applies. A ``PARALLEL`` already set is returned unchanged.
    """
    if config is None:
        from pyinfra.api import Config

        config = Config()
    if getattr(config, "PARALLEL", 0):
        return config
    hosts = list(inventory)
    fast = sum(1 for h in hosts if getattr(h.connector_cls, "one_loop", False) is True)  # @asyncssh
    if not fast:
        return config
    per_cpu = 20 * (os.cpu_count() or 1)  # pyinfra's default for hosts on other connectors
    wanted = fast + min(per_cpu, len(hosts) - fast)
    config.PARALLEL = max(1, min(wanted, _max_parallel(wanted)))
    return config


def _max_parallel(wanted: int) -> int:
    """Hosts at once that the open-files limit allows (pyinfra's estimate), after raising the
    soft limit towards what ``wanted`` hosts need if the hard limit permits."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows: pyinfra has no limit there either
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = FILES_PER_HOST * wanted + FILES_RESERVED
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        if target > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (OSError, ValueError):  # a sandbox that refuses: keep the current limit
                pass
            else:
                _tell_pyinfra_nofile(soft)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, round((soft - FILES_RESERVED) / FILES_PER_HOST))


def _tell_pyinfra_nofile(soft: int) -> None:
    """pyinfra reads the limit once, at import (``pyinfra.api.state``), for its warning."""
    try:
        import pyinfra.api.state as state_module
    except ImportError:  # pragma: no cover
        return
    if hasattr(state_module, "MAX_PARALLEL") and hasattr(state_module, "nofile_limit"):
        state_module.nofile_limit = soft
        state_module.MAX_PARALLEL = round((soft - FILES_RESERVED) / FILES_PER_HOST)
