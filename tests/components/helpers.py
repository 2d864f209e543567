"""Inputs for the component tests: captured facts (``tests/facts/probe.HostProbe``), validated
settings and rollout snapshots, each spelled out by the test that uses it."""

from fleetforge.hoststate import HostSnapshot
from fleetforge.models import HostFacts
from fleetforge.paths import MANAGED_FILES
from fleetforge.settings import HostSettings, settings_from_data
from tests.conftest import facts_from


def facts(name: str = "qemu-virtio-blk-vda-bios", **updates) -> HostFacts:
    """A captured probe's facts, with top-level fields replaced (``os=``, ``sysctl=``, ...)."""
    return facts_from(name).model_copy(update=updates)


def settings(**data) -> HostSettings:
    return settings_from_data("h", data)


def snap(**kw) -> HostSnapshot:
    base = dict(
        host="h", files=dict.fromkeys(MANAGED_FILES), backups=[], dirs=[], checks={}, sysctl={}, disks={},
        zram_device=False, generation=None, is_nixos=False,
    )  # fmt: skip
    return HostSnapshot(**{**base, **kw})
