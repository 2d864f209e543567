"""The Podman storage component: driver rule, refusal of a switch that hides images, the
storage.conf it writes (kept lines, TOML escaping), NixOS option, check and rows."""

import tomllib

import pytest

from fleetforge.components.podman import Podman, split_storage_conf
from fleetforge.errors import PlanError
from fleetforge.facts.models import ManagedFile, PodmanInfo, PodmanStore
from fleetforge.paths import STORAGE_CONF
from fleetforge.planner import plan_host
from tests.components.helpers import facts, settings

PODMAN = Podman()


def podman(fstype="btrfs", driver=None, images=0, containers=0, graphroot="/var/lib/containers/storage", **kw):
    stores = [PodmanStore(driver="overlay", images=images, containers=containers)]
    return PodmanInfo(
        version="4.3.1", conf=kw.get("conf"), driver=driver, graphroot=graphroot, runroot=kw.get("runroot"),
        graphroot_fstype=fstype, stores=stores,
    )  # fmt: skip


def with_conf(content: str | None, **kw):
    files = {**facts().files, STORAGE_CONF: ManagedFile(sha256="0" * 64, content=content) if content else None}
    return facts(podman=podman(**kw), files=files)


def test_captured_debian_host_keeps_overlay_on_ext4_and_writes_nothing():
    f = facts()  # the test VM: Podman 4.3.1 from Debian, no storage.conf, graphroot on ext4
    assert f.podman is not None and f.podman.graphroot_fstype == "ext4" and f.podman.conf is None
    p = plan_host("h", f, settings())
    assert p.podman.driver.value == "overlay" and not p.podman.write
    assert "is on ext4: the btrfs driver needs btrfs; keeping Podman's default overlay" in p.podman.driver.reason
    assert PODMAN.file(p, f) is None and PODMAN.nixos_options(p, f) is None
    assert list(PODMAN.checks(p, False)) == []  # nothing fleetforge set


def test_btrfs_graphroot_gets_the_btrfs_driver_in_a_complete_storage_conf():
    f = facts(podman=podman())
    p = plan_host("h", f, settings())
    assert p.podman.driver.value == "btrfs" and p.podman.write and p.podman.driver_before == "overlay"
    assert "containers-storage.conf(5)" in p.podman.driver.source
    conf = tomllib.loads(PODMAN.file(p, f))
    # Podman 4 refuses a storage.conf without runroot ("runroot must be set"): both are written
    assert conf == {
        "storage": {"driver": "btrfs", "runroot": "/run/containers/storage", "graphroot": "/var/lib/containers/storage"}
    }
    assert [(c.item, c.expected, c.path) for c in PODMAN.checks(p, False)] == [
        ("podman storage driver", "btrfs", "podman:driver")
    ]
    storage = PODMAN.nixos_options(p, f)["virtualisation"]["containers"]["storage"]["settings"]["storage"]
    assert storage == {"driver": "btrfs"}  # graphroot/runroot stay NixOS's mkDefault values


def test_an_existing_storage_conf_keeps_its_other_lines_and_rewriting_is_stable():
    current = (
        '# site comment\n[storage]\ndriver = "overlay"\ngraphroot = "/srv/containers"\n'
        'runroot = "/run/c"\n\n[storage.options]\nadditionalimagestores = ["/ro"]\n'
    )
    f = with_conf(current, fstype="btrfs", driver="overlay", graphroot="/srv/containers", runroot="/run/c")
    p = plan_host("h", f, settings())
    text = PODMAN.file(p, f)
    conf = tomllib.loads(text)
    assert conf["storage"]["driver"] == "btrfs" and conf["storage"]["graphroot"] == "/srv/containers"
    assert conf["storage"]["options"] == {"additionalimagestores": ["/ro"]} and "# site comment" in text
    assert [line for line in text.splitlines() if line.startswith("driver")] == ['driver = "btrfs"']
    again = with_conf(text, fstype="btrfs", driver="btrfs", graphroot="/srv/containers", runroot="/run/c")
    assert PODMAN.file(plan_host("h", again, settings()), again) == text  # stable on a re-run


def test_a_file_without_a_storage_table_gets_one_after_its_other_lines():
    current = 'top = 1\n[storage.options.overlay]\nmountopt = "nodev"\n'
    before, table, after = split_storage_conf(current)
    assert (before, table, after) == (["top = 1", "[storage.options.overlay]", 'mountopt = "nodev"'], [], [])
    f = with_conf(current)
    conf = tomllib.loads(PODMAN.file(plan_host("h", f, settings()), f))
    assert conf["top"] == 1 and conf["storage"]["driver"] == "btrfs"  # top-level keys stay top-level
    assert conf["storage"]["options"]["overlay"] == {"mountopt": "nodev"}


def test_a_storage_conf_that_lines_cannot_edit_safely_is_refused_before_anything_is_written():
    tricky = '[storage]\ndriver = "overlay"\nnote = """\n[x]\n"""\n'  # a table header inside a string
    with pytest.raises(PlanError, match=r"host h: storage.conf: expected a storage.conf fleetforge can edit"):
        plan_host("h", with_conf(tricky), settings())
    with pytest.raises(PlanError, match=r"is not TOML"):
        plan_host("h", with_conf("[storage\n"), settings())
    other = "[storage]\ngraphroot = '/srv/c'\n"  # a literal string the probe's sed once missed
    with pytest.raises(PlanError, match=r"storage.conf: expected graphroot '/var/lib/containers/storage'"):
        plan_host("h", with_conf(other), settings())


def test_a_store_with_images_is_not_switched_silently():
    f = facts(podman=podman(images=3, containers=1))
    with pytest.raises(PlanError) as err:
        plan_host("vm-1", f, settings())
    message = str(err.value)
    assert message.startswith(
        "host vm-1: containers_storage_switch_with_images: store /var/lib/containers/storage holds"
    )
    assert "3 image(s) and 1 container(s) of the overlay driver" in message and "deletes nothing" in message
    allowed = plan_host("vm-1", f, settings(containers_storage_switch_with_images=True))
    assert allowed.podman.driver.value == "btrfs" and allowed.podman.write
    kept = plan_host("vm-1", f, settings(containers_storage_driver="overlay"))
    assert kept.podman.driver.value == "overlay" and kept.podman.driver.source == "host data"


def test_host_data_driver_btrfs_off_btrfs_is_refused_and_podman_false_plans_nothing():
    with pytest.raises(
        PlanError, match=r"host h: containers_storage_driver: expected overlay or vfs: graphroot .* is on xfs"
    ):
        plan_host("h", facts(podman=podman(fstype="xfs")), settings(containers_storage_driver="btrfs"))
    assert plan_host("h", facts(podman=podman()), settings(podman=False)).podman is None
    assert plan_host("h", facts(podman=None), settings()).podman is None  # Podman not installed
    with pytest.raises(ValueError, match="containers_storage_driver"):
        settings(containers_storage_driver="zfs ")


def test_a_hostile_graphroot_cannot_change_the_file_structure():
    # the parser refuses such a path (tests/facts/test_storage.py); the filter refuses it too
    f = facts(podman=podman(graphroot='/x"\ndriver = "vfs'))
    with pytest.raises(ValueError, match="TOML: refusing"):
        PODMAN.file(plan_host("h", f, settings()), f)
    quoted = facts(podman=podman(graphroot='/x"y'))
    assert tomllib.loads(PODMAN.file(plan_host("h", quoted, settings()), quoted))["storage"]["graphroot"] == '/x"y'


def test_rows_name_value_reason_and_source():
    p = plan_host("h", facts(podman=podman()), settings())
    ((item, value, reason, source),) = PODMAN.rows(p, lambda key: False)
    assert (item, value) == ("podman storage driver", "btrfs") and "is on btrfs" in reason and source


def test_nixos_without_podman_enabled_gets_no_option_it_would_never_read():
    nixos = facts().os.model_copy(update={"id": "nixos"})
    f = facts(os=nixos, podman=podman(conf=None))  # NixOS generated no storage.conf
    p = plan_host("h", f, settings())
    assert not p.podman.write and "virtualisation.podman.enable" in p.podman.driver.reason
    assert PODMAN.nixos_options(p, f) is None
    enabled = facts(os=nixos, podman=podman(conf="/etc/containers/storage.conf", driver="overlay"))
    options = PODMAN.nixos_options(plan_host("h", enabled, settings()), enabled)
    assert options["virtualisation"]["containers"]["storage"]["settings"]["storage"] == {"driver": "btrfs"}


def test_the_plan_is_the_same_after_the_deploy_so_verify_still_checks_the_driver():
    before = facts(podman=podman())
    p = plan_host("h", before, settings())
    written = PODMAN.file(p, before)
    # the host after the deploy: storage.conf is fleetforge's file, its driver btrfs
    after = with_conf(written, fstype="btrfs", driver="btrfs", runroot="/run/containers/storage")
    again = plan_host("h", after, settings())
    assert again.podman.driver == p.podman.driver and again.podman.write
    assert PODMAN.file(again, after) == written  # a second run changes nothing
    assert [c.item for c in PODMAN.checks(again, False)] == ["podman storage driver"]
