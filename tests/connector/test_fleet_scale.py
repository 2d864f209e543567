"""A fleet on ``@asyncssh`` as a user runs it: every host at once unless the user set a
parallelism (``fleetforge.inventory.parallel_for_asyncssh``), and fleetforge's replacements for
pyinfra's per-operation hot spots giving pyinfra's own results (``fleetforge.inventory``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pyinfra
import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.context import ctx_state

import fleetforge.connector.asyncssh_connector  # noqa: F401 - asyncssh imported with its warning filter
import fleetforge.inventory as ff_inventory
from fleetforge.inventory import fit_parallel, group

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# more hosts than pyinfra's own default would run at once on this machine (20 per CPU)
MANY = 20 * (os.cpu_count() or 1) + 10


def names(count: int, prefix: str = "vps") -> list[str]:
    return [f"{prefix}-{i}" for i in range(count)]


def init_like_the_cli(make_inventory, config: Config) -> State:
    """pyinfra's CLI order: State, then config (``--parallel``), then the inventory is loaded
    with the state current, then ``state.init``."""
    state = State(check_for_changes=False)
    with ctx_state.use(state):
        inventory = make_inventory()
        state.init(inventory, config)
    return state


def test_an_asyncssh_group_runs_every_host_at_once():
    state = init_like_the_cli(lambda: Inventory(group(names(MANY), {"fleetforge_connector": "asyncssh"})), Config())
    assert state.config.PARALLEL == MANY
    assert state.pool.size == MANY and state.fact_pool.size == MANY


def test_an_explicit_parallel_is_kept():
    config = Config(PARALLEL=7)
    state = init_like_the_cli(lambda: Inventory(group(names(MANY), {"fleetforge_connector": "asyncssh"})), config)
    assert state.config.PARALLEL == 7 and state.pool.size == 7


def test_ssh_hosts_keep_pyinfras_default():
    state = init_like_the_cli(lambda: Inventory(group(names(MANY))), Config())
    assert state.config.PARALLEL == 20 * (os.cpu_count() or 1)


def test_mixed_inventory_adds_pyinfras_default_for_the_ssh_hosts():
    fast, slow = group(names(30, "a"), {"fleetforge_connector": "asyncssh"}), group(names(MANY, "s"))
    state = init_like_the_cli(lambda: Inventory((fast[0] + slow[0], {})), Config())
    assert state.config.PARALLEL == 30 + 20 * (os.cpu_count() or 1)


def test_at_asyncssh_names_without_group_get_it_too(tmp_path):
    from pyinfra_cli.inventory import make_inventory

    path = tmp_path / "inventory.py"
    path.write_text(f"hosts = [f'@asyncssh/vps-{{i}}' for i in range({MANY})]\n")
    state = init_like_the_cli(lambda: make_inventory(str(path), cwd=str(tmp_path)), Config())
    assert state.config.PARALLEL == MANY


def test_outside_a_pyinfra_run_nothing_is_wrapped():
    with ctx_state.use(None):
        ff_inventory.parallel_for_asyncssh()  # no current state: nothing to do, no error
    state = State(Inventory((["a"], {})), Config())  # initialised already
    with ctx_state.use(state):
        ff_inventory.parallel_for_asyncssh()
    assert "init" not in vars(state)


CLI_PROBE = textwrap.dedent(
    """
    import sys
    import pyinfra_cli  # gevent's patching first, as the pyinfra script does
    from pyinfra.api.state import State
    from pyinfra_cli.main import main

    init = State.init

    def reporting(self, inventory, config=None, **kwargs):
        init(self, inventory, config, **kwargs)
        print("PARALLEL", self.config.PARALLEL, self.pool.size, flush=True)

    State.init = reporting
    sys.argv = ["pyinfra", *sys.argv[1:]]
    main()
    """
)


@pytest.mark.parametrize(("extra", "expected"), [([], MANY), (["--parallel", "5"], 5)], ids=["as-typed", "explicit"])
def test_pyinfra_cli_as_typed(tmp_path, extra, expected):
    """``pyinfra INVENTORY debug-inventory``: the real CLI, which loads config and ``--parallel``
    before the inventory and initialises the state after it; no host is contacted."""
    inventory = tmp_path / "inventory.py"
    inventory.write_text(
        "from fleetforge.inventory import group\n"
        f"hosts = group([(f'vps-{{i}}', {{'ssh_hostname': '192.0.2.1'}}) for i in range({MANY})],"
        " {'fleetforge_connector': 'asyncssh'})\n"
    )
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-c", CLI_PROBE, *extra, str(inventory), "debug-inventory"]
    out = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"PARALLEL {expected} {expected}" in out.stdout


RLIMIT_PROBE = textwrap.dedent(
    """
    import resource, sys
    from pyinfra.api import Inventory
    import pyinfra.api.state as state_module
    from fleetforge.inventory import fit_parallel, group

    soft, hard = (int(v) for v in sys.argv[1:3])
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    inventory = Inventory(group([f"h{i}" for i in range(100)], {"fleetforge_connector": "asyncssh"}))
    config = fit_parallel(inventory)
    print(config.PARALLEL, resource.getrlimit(resource.RLIMIT_NOFILE)[0], state_module.MAX_PARALLEL)
    """
)


def rlimit_probe(soft: int, hard: int) -> list[int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", RLIMIT_PROBE, str(soft), str(hard)], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return [int(v) for v in out.stdout.split()]


def test_a_low_soft_open_files_limit_is_raised_as_far_as_needed():
    hard = os.sysconf("SC_OPEN_MAX")  # this process's soft limit: a hard limit a child may keep
    if hard < 400:
        pytest.skip(f"open-files limit {hard} is too low to raise to 310")
    parallel, soft, max_parallel = rlimit_probe(64, hard)
    assert parallel == 100
    assert soft == 3 * 100 + 10  # what 100 hosts need by pyinfra's estimate, not the hard limit
    assert max_parallel == 100  # pyinfra's warning threshold follows the new limit


def test_a_low_hard_open_files_limit_bounds_the_parallelism():
    parallel, soft, _ = rlimit_probe(64, 64)
    assert (parallel, soft) == (round((64 - 10) / 3), 64)


def test_fit_parallel_without_config_makes_one():
    inventory = Inventory(group(names(3), {"fleetforge_connector": "asyncssh"}))
    assert fit_parallel(inventory).PARALLEL == 3


# ---------------------------------------------------------------- pyinfra's hot spots, replaced

DEPLOY = """\
def operation(state):
    return compare(
        state,
    )


def nested(state):
    return operation(state)


results = [
    operation(STATE),
    nested(
        STATE,
    ),
]
for _ in range(2):
    results.append(operation(STATE))
results.append(
    [operation(STATE) for _ in range(1)][0]
)
"""


@pytest.mark.parametrize("deploy_file", ["same", "absent", None])
def test_operation_order_matches_pyinfras(tmp_path, monkeypatch, deploy_file):
    """The cheap call-site lookup returns pyinfra's line numbers, call site for call site."""
    import pyinfra.api.util as util_module

    cheap = util_module.get_operation_order_from_stack
    original = cheap._fleetforge_original
    monkeypatch.setattr(pyinfra, "is_cli", True)
    path = tmp_path / "deploy.py"
    path.write_text(DEPLOY)
    filename = {"same": str(path), "absent": str(tmp_path / "other.py"), None: None}[deploy_file]
    state = SimpleNamespace(current_deploy_filename=filename, current_op_file_number=3)

    def compare(state):
        return original(state), cheap(state)

    scope = {"STATE": state, "compare": compare}
    exec(compile(DEPLOY, str(path), "exec"), scope)
    pairs = scope["results"]
    assert len(pairs) == 5
    for theirs, ours in pairs:
        assert ours == theirs
    if deploy_file == "same":  # from the deploy file's outermost frame on: [file number, lines...]
        assert [ours[:2] for _, ours in pairs] == [[3, 12], [3, 13], [3, 18], [3, 18], [3, 20]]
        assert pairs[1][1][:4] == [3, 13, 8, 2]  # nested(...) -> operation(state) -> compare(


def test_pyinfra_uses_the_cheap_operation_order():
    import sys

    for module in ("pyinfra.api.util", "pyinfra.api.operation"):
        assert sys.modules[module].get_operation_order_from_stack._fleetforge_cheap


def test_cached_global_arguments_equal_pyinfras():
    import sys

    arguments = sys.modules["pyinfra.api.arguments"]
    cached = arguments.all_global_arguments
    assert cached._fleetforge_cached and sys.modules["pyinfra.api.facts"].all_global_arguments is cached
    first, second = cached(), cached()
    assert first == cached._fleetforge_original() and first is not second
