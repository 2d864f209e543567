"""Planner rules, each fed explicit facts (a captured real output, varied one field at a time)."""

import pytest

from fleetforge.models import HostFacts, SwapDevice
from fleetforge.planner import PlanError, disk_class, plan_host
from fleetforge.settings import HostSettings, settings_from_data
from tests.conftest import facts_from

GIB = 1 << 30


@pytest.fixture
def base() -> HostFacts:
    return facts_from("controller-docker-vda")


def with_(facts: HostFacts, **update) -> HostFacts:
    return facts.model_copy(update=update)


def vm(facts: HostFacts, ram_gib: float, cpus: int, disk_name: str = "vda", transport="virtio-blk") -> HostFacts:
    disk = facts.disks[0].model_copy(update={"name": disk_name, "path": f"/dev/{disk_name}", "transport": transport})
    return with_(
        facts,
        virtualization="kvm",
        disks=[disk],
        cpu=facts.cpu.model_copy(update={"logical_cpus": cpus}),
        memory=facts.memory.model_copy(update={"mem_total_bytes": int(ram_gib * GIB), "swap_devices": []}),
    )


def test_virtio_blk_reporting_rotational_is_virtual_not_hdd(base):
    disk = base.disks[0]
    assert disk.rotational is True  # what virtio-blk reports in a guest
    assert disk_class(disk, "kvm") == "virtual"
    assert disk_class(disk.model_copy(update={"transport": "sata"}), "none") == "hdd"
    assert disk_class(disk.model_copy(update={"transport": "sata", "rotational": False}), "none") == "ssd"
    assert disk_class(disk.model_copy(update={"transport": "nvme", "name": "nvme0n1"}), "none") == "nvme"


def test_scheduler_and_read_ahead_by_disk_class(base):
    plan = plan_host("h", vm(base, 1, 1), HostSettings())
    assert (plan.disks[0].scheduler.value, plan.disks[0].read_ahead_kb.value) == (
        "mq-deadline",
        4096,
    )  # 1 hardware queue
    assert plan.disks[0].read_ahead_kb.source.startswith("fleetforge default: the Nix store")
    hdd = base.disks[0].model_copy(update={"transport": "sata"})
    plan = plan_host("h", with_(base, virtualization="none", disks=[hdd]), HostSettings())
    assert (plan.disks[0].scheduler.value, plan.disks[0].read_ahead_kb.value) == ("mq-deadline", 128)


def test_scheduler_override_must_be_offered_by_the_disk(base):
    only_none = base.disks[0].model_copy(update={"schedulers_available": ["none", "mq-deadline"]})
    facts = with_(base, disks=[only_none])
    plan = plan_host("h", facts, settings_from_data("h", {"io_scheduler": "mq-deadline"}))
    assert plan.disks[0].scheduler.value == "mq-deadline" and plan.disks[0].scheduler.source == "host data"
    with pytest.raises(
        PlanError, match=r"^host web1: disks\.vda\.scheduler: expected one of .*none, mq-deadline.*'bfq'"
    ):
        plan_host("web1", facts, settings_from_data("web1", {"disks": {"vda": {"scheduler": "bfq"}}}))


def test_plans_differ_by_ram_and_cpus(base):
    small = plan_host("a", vm(base, 1, 1), HostSettings())
    big = plan_host("b", vm(base, 2, 2, "sda", "virtio-scsi"), HostSettings())
    assert (small.zram.size_mib.value, big.zram.size_mib.value) == (1024, 2048)
    assert small.nix.settings["cores"].value == "1" and big.nix.settings["cores"].value == "2"
    assert big.disks[0].name == "sda" and big.disks[0].disk_class == "virtual"


def test_zram_capped_at_8_gib_and_refused_above_twice_ram(base):
    assert plan_host("h", vm(base, 32, 8), HostSettings()).zram.size_mib.value == 8192
    assert plan_host("h", vm(base, 1, 1), settings_from_data("h", {"zram_size": "2G"})).zram.size_mib.value == 2048
    with pytest.raises(PlanError, match=r"^host h: zram_size: expected at most 2x RAM \(2048 MiB"):
        plan_host("h", vm(base, 1, 1), settings_from_data("h", {"zram_size": "3G"}))


def test_swappiness_follows_the_swap_the_host_will_have(base):
    zram_only = plan_host("h", vm(base, 1, 1), HostSettings()).sysctl_values()
    assert (zram_only["vm.swappiness"], zram_only["vm.page-cluster"]) == ("180", "0")
    old_kernel = plan_host("h", with_(vm(base, 1, 1), kernel_release="5.4.0-1-amd64"), HostSettings())
    assert old_kernel.sysctl_values()["vm.swappiness"] == "100"
    disk_swap = SwapDevice(path="/swapfile", kind="file", size_bytes=GIB, used_bytes=0, priority=-2)
    facts = vm(base, 1, 1)
    facts = with_(facts, memory=facts.memory.model_copy(update={"swap_devices": [disk_swap]}))
    assert "vm.swappiness" not in plan_host("h", facts, HostSettings()).sysctl_values()
    no_zram = plan_host("h", vm(base, 1, 1), settings_from_data("h", {"zram": False}))
    assert "vm.swappiness" not in no_zram.sysctl_values()
    assert (
        plan_host("h", vm(base, 1, 1), settings_from_data("h", {"swappiness": 10})).sysctl_values()["vm.swappiness"]
        == "10"
    )


def test_missing_sysctl_key_is_skipped_with_a_reason(base):
    # the watermark keys are there (Linux >= 5.0), nf_conntrack_max is not (module not loaded)
    present = {**base.sysctl, "vm.watermark_boost_factor": "15000", "vm.watermark_scale_factor": "10"}
    facts = with_(base, sysctl={k: v for k, v in present.items() if k != "net.netfilter.nf_conntrack_max"})
    plan = plan_host("h", facts, HostSettings())
    assert "net.netfilter.nf_conntrack_max" not in plan.sysctl_values()
    (skipped,) = plan.skipped_sysctls
    assert skipped.key == "net.netfilter.nf_conntrack_max" and "does not exist" in skipped.reason


def test_nix_settings_only_with_nix_and_bounded_by_vcpus(base):
    no_nix = with_(base, nix=base.nix.model_copy(update={"installed": False}))
    assert plan_host("h", no_nix, HostSettings()).nix is None
    for cpus in (1, 2, 3, 8, 64):
        s = plan_host("h", vm(base, 4, cpus), HostSettings()).nix.settings
        assert int(s["max-jobs"].value) * int(s["cores"].value) <= cpus
    custom = settings_from_data(
        "h",
        {"nix_substituters": ["http://10.0.0.5:5000"], "nix_trusted_public_keys": ["cache-1:abc="],
         "nix_settings": {"fsync-metadata": False}},
    )  # fmt: skip
    s = plan_host("h", base, custom).nix.settings
    assert s["substituters"].value == "http://10.0.0.5:5000 https://cache.nixos.org"
    assert s["trusted-public-keys"].value.startswith("cache-1:abc= cache.nixos.org-1:")
    assert s["fsync-metadata"].value == "false" and s["fsync-metadata"].source == "host data"


def nixos(facts: HostFacts) -> HostFacts:
    return with_(facts, os=facts.os.model_copy(update={"id": "nixos", "nixos_release": "24.05"}))


def test_cache_nixos_org_listed_once_and_left_to_nixos_on_nixos(base):
    """NixOS's nix.nix adds ``https://cache.nixos.org/`` (mkAfter) and its key itself: planning
    them again lists them twice in nix.conf. Elsewhere they are planned once, whatever spelling
    host data uses."""
    data = {
        "nix_substituters": ["http://10.0.0.5:5000", "https://Cache.NixOS.org/"],
        "nix_trusted_public_keys": ["cache-1:abc=", "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="],
    }
    debian = plan_host("h", base, settings_from_data("h", data)).nix.settings
    assert debian["substituters"].value == "http://10.0.0.5:5000 https://Cache.NixOS.org/"
    assert debian["trusted-public-keys"].value.split() == data["nix_trusted_public_keys"]

    s = plan_host("h", nixos(base), settings_from_data("h", data)).nix.settings
    assert s["substituters"].value == "http://10.0.0.5:5000"
    assert s["trusted-public-keys"].value == "cache-1:abc="
    assert "added by NixOS itself" in s["substituters"].reason
    bare = plan_host("h", nixos(base), HostSettings()).nix.settings
    assert "substituters" not in bare and "trusted-public-keys" not in bare  # nothing left to add
    # host data's own nix_settings value is filtered the same way on NixOS
    own = {"nix_settings": {"substituters": ["https://cache.nixos.org", "https://nix-community.cachix.org"]}}
    s = plan_host("h", nixos(base), settings_from_data("h", own)).nix.settings
    assert s["substituters"].value == "https://nix-community.cachix.org" and s["substituters"].source == "host data"


def test_plan_does_not_depend_on_applied_values(base):
    """verify re-plans from post-deploy facts: live values must not change the plan."""
    before = plan_host("h", base, HostSettings())
    tuned_disk = base.disks[0].model_copy(update={"scheduler": "none", "read_ahead_kb": 4096})
    after = with_(base, disks=[tuned_disk], sysctl={k: "1" for k in base.sysctl}, files={})
    assert plan_host("h", after, HostSettings()) == before
