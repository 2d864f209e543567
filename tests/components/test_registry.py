"""The registry: every component is reached by each loop, and each one's pieces are consistent."""

from fleetforge import components
from fleetforge.components import COMPONENTS
from fleetforge.nixos.modules import nixos_options
from fleetforge.paths import MANAGED_FILES, NIXOS_MODULES
from fleetforge.plan_table import plan_table
from fleetforge.planner import plan_host
from tests.components.helpers import facts, settings


def test_every_component_has_its_file_module_and_template_registered():
    assert len({c.name for c in COMPONENTS}) == len(COMPONENTS)
    for component in COMPONENTS:
        assert component.path in MANAGED_FILES, component.name  # the probe reads it, rollback knows it
        assert component.nixos_module in NIXOS_MODULES, component.name
        assert component.file_title and component.apply_title, component.name
    assert len(components.TEMPLATE_DIRS) == len(COMPONENTS)  # each template beside its module


def test_the_loops_cover_every_component():
    f = facts()
    p = plan_host("h", f, settings())
    assert set(components.desired_files(p, f)) == {c.path for c in COMPONENTS}
    assert set(nixos_options(p, f)) == {c.nixos_module for c in COMPONENTS}
    items = [c.item for c in components.checks(p)]
    assert {"vda scheduler", "sysctl vm.dirty_ratio", "zram0 disksize", "nix max-jobs"} <= set(items)
    assert len(items) == len(set(items))  # one check per item: verify and snapshots key on it
    table = plan_table(p)
    assert table.row_count == sum(len(list(c.rows(p, lambda key: False))) for c in COMPONENTS)
