"""The registry: every component is reached by each loop, and each one's pieces are consistent."""

from fleetforge import components
from fleetforge.components import COMPONENTS
from fleetforge.components.base import Component
from fleetforge.facts.models import BtrfsFilesystem, PodmanInfo
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
        assert component.file_title, component.name
        has_apply = type(component).apply is not Component.apply
        assert bool(component.apply_title) == has_apply, component.name  # a title where commands run
    assert len(components.TEMPLATE_DIRS) == len(COMPONENTS)  # each template beside its module


def test_the_loops_cover_every_component():
    # a graphroot on btrfs, so that the Podman component writes its file too
    btrfs = PodmanInfo(
        version="4.3.1", conf=None, driver=None, graphroot="/var/lib/containers/storage", runroot=None,
        graphroot_fstype="btrfs", stores=[],
    )  # fmt: skip
    fs = BtrfsFilesystem(
        fsid="0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b", bdi="btrfs-1", read_ahead_kb=4096, devices=["vdb"]
    )
    f = facts(podman=btrfs, btrfs=[fs])  # and a btrfs filesystem on vdb, for the btrfs read-ahead
    p = plan_host("h", f, settings())
    assert set(components.desired_files(p, f)) == {c.path for c in COMPONENTS}
    assert set(nixos_options(p, f)) == {c.nixos_module for c in COMPONENTS}
    items = [c.item for c in components.checks(p)]
    assert {"vda scheduler", "sysctl vm.dirty_ratio", "zram0 disksize", "nix max-jobs", "podman storage driver"} <= set(
        items
    )
    assert len(items) == len(set(items))  # one check per item: verify and snapshots key on it
    table = plan_table(p)
    assert table.row_count == sum(len(list(c.rows(p, lambda key: False))) for c in COMPONENTS)
