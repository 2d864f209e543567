"""The Nix settings component in one place: rule, file, NixOS options, checks, restore, rows."""

from pathlib import Path

import pytest

from fleetforge.components.nix_settings import NIX_BEGIN, NIX_DAEMON_RESTART, NIXOS_CACHE_KEY, NixSettings
from fleetforge.errors import PlanError
from fleetforge.models import ManagedFile
from fleetforge.paths import NIX_CONF
from fleetforge.planner import plan_host
from fleetforge.settings import SettingsError
from tests.components.helpers import facts, settings, snap

NIX = NixSettings()
# ``nix show-config`` of Debian bookworm's nix-bin 2.8.0, names only (the probe's sed)
NIX_28_NAMES = Path(__file__).with_name("data").joinpath("nix-2.8.0-setting-names.txt").read_text().split()


def nix_facts(names: list[str] | None):
    """A captured probe's facts (Nix 2.8.0) with ``names`` as the settings its Nix lists."""
    f = facts()
    return f.model_copy(update={"nix": f.nix.model_copy(update={"setting_names": names, "version": "2.8.0"})})


def test_the_names_list_is_nix_2_8s():
    """What the tests below rely on: names Nix 2.8 has, and the guide's names it does not."""
    for name in ("max-jobs", "cores", "substituters", "trusted-public-keys", "http-connections", "connect-timeout",
                 "stalled-download-timeout", "download-attempts", "builders-use-substitutes", "fsync-metadata",
                 "use-sqlite-wal", "access-tokens"):  # fmt: skip
        assert name in NIX_28_NAMES
    assert "reserved-build-cores" not in NIX_28_NAMES and "binary-cache-public-keys" not in NIX_28_NAMES


def test_every_default_is_a_nix_2_8_setting_with_a_source_to_open():
    s = plan_host("h", nix_facts(NIX_28_NAMES), settings()).nix
    assert s.skipped == {} and s.settings == plan_host("h", nix_facts(None), settings()).nix.settings
    for item in s.settings.values():
        assert "Nix manual, nix.conf (" in item.source or item.source.startswith("fleetforge default: ")


def test_a_default_the_hosts_nix_lacks_is_skipped_with_the_reason():
    # Nix 2.8's list without connect-timeout stands for a Nix that lacks it
    f = nix_facts([name for name in NIX_28_NAMES if name != "connect-timeout"])
    p = plan_host("h", f, settings())
    assert "connect-timeout" not in p.nix.settings and "max-jobs" in p.nix.settings
    assert p.nix.skipped == {"connect-timeout": "not a setting of Nix 2.8.0 (nix config show)"}
    rows = {row[0]: row for row in NIX.rows(p, lambda key: False)}
    assert rows["nix connect-timeout"] == (
        "nix connect-timeout",
        "(skipped)",
        "not a setting of Nix 2.8.0 (nix config show)",
        "detected",
    )
    text = NIX.file(p, f)
    assert "connect-timeout =" not in text and "# skipped connect-timeout: not a setting of Nix 2.8.0" in text
    nixos = f.model_copy(update={"os": f.os.model_copy(update={"id": "nixos"})})
    options = NIX.nixos_options(plan_host("h", nixos, settings()), nixos)["nix"]["settings"]
    assert "connect-timeout" not in options and options["max-jobs"] == 1
    assert "nix connect-timeout" not in {c.item for c in NIX.checks(p, nixos=False)}


@pytest.mark.parametrize("key", ["reserved-build-cores", "not-a-setting"])
def test_a_host_data_key_the_hosts_nix_lacks_is_an_error(key):
    with pytest.raises(PlanError) as err:
        plan_host("web-1", nix_facts(NIX_28_NAMES), settings(nix_settings={key: 2}))
    assert (err.value.host, err.value.key) == ("web-1", f"nix_settings.{key}")
    assert str(err.value) == (
        f"host web-1: nix_settings.{key}: expected a setting of Nix 2.8.0 (nix config show lists them), got {key!r}"
    )


def test_a_deprecated_name_is_refused_with_the_current_one():
    with pytest.raises(SettingsError, match="binary-cache-public-keys.*trusted-public-keys"):
        settings(nix_settings={"binary-cache-public-keys": "k:AAAA"})  # before any host is touched
    with pytest.raises(SettingsError, match="extra-substituters, got 'extra-binary-caches'"):
        settings(nix_settings={"extra-binary-caches": ["https://c.example.org"]})
    # data that skipped validation is refused at plan time all the same, naming the current name
    unchecked = settings().model_copy(update={"nix_settings": {"binary-cache-public-keys": "k:AAAA"}})
    with pytest.raises(PlanError, match="the deprecated name of trusted-public-keys: write trusted-public-keys"):
        plan_host("web-1", nix_facts(NIX_28_NAMES), unchecked)


def test_known_host_data_keys_pass_and_unknown_names_check_nothing():
    data = {"max-jobs": 3, "http-connections": 50, "extra-substituters": ["https://c.example.org"]}
    s = plan_host("h", nix_facts(NIX_28_NAMES), settings(nix_settings=data)).nix.settings
    assert (s["max-jobs"].value, s["http-connections"].value) == ("3", "50")
    assert s["extra-substituters"].value == "https://c.example.org"
    p = plan_host("h", nix_facts(None), settings(nix_settings={"reserved-build-cores": 2})).nix
    assert p.settings["reserved-build-cores"].value == "2" and p.skipped == {}


def test_jobs_times_cores_is_the_vcpu_count_and_caches_come_first():
    f = facts("qemu-virtio-scsi-sda-bios")  # 2 vCPUs
    p = plan_host("h", f, settings(nix_substituters=["https://c.example.org"]))
    s = {k: v.value for k, v in p.nix.settings.items()}
    assert (s["max-jobs"], s["cores"]) == ("1", "2")
    assert s["substituters"] == "https://c.example.org https://cache.nixos.org"
    assert plan_host("h", f, settings(nix=False)).nix is None


def test_on_nixos_cache_nixos_org_is_left_to_nixos():
    f = facts()
    nixos = f.model_copy(update={"os": f.os.model_copy(update={"id": "nixos"})})
    s = plan_host("h", nixos, settings()).nix.settings
    assert "substituters" not in s and "trusted-public-keys" not in s
    checks = {
        c.item: c for c in NIX.checks(plan_host("h", nixos, settings(nix_trusted_public_keys=["k:AAAA"])), nixos=True)
    }
    assert checks["nix trusted-public-keys"].expected == " ".join(sorted(["k:AAAA", NIXOS_CACHE_KEY]))
    assert "nix.conf managed block" not in checks  # NixOS generates nix.conf


def test_file_keeps_the_hosts_own_lines_and_nixos_gets_typed_values():
    f = facts()
    f = f.model_copy(
        update={"files": {**f.files, NIX_CONF: ManagedFile(sha256="0" * 64, content="sandbox = false\ncores = 9\n")}}
    )
    p = plan_host("h", f, settings())
    text = NIX.file(p, f)
    assert text.startswith("sandbox = false\n" + NIX_BEGIN) and [
        line for line in text.splitlines() if line.startswith("cores =")
    ] == ["cores = 1"]
    nix = NIX.nixos_options(p, f)["nix"]["settings"]
    assert nix["max-jobs"] == 1 and nix["fsync-metadata"] is True and nix["substituters"] == ["https://cache.nixos.org"]


def test_restart_and_restore_only_with_a_daemon_and_a_changed_file():
    f = facts()
    p = plan_host("h", f, settings())
    with_daemon = f.model_copy(update={"nix": f.nix.model_copy(update={"daemon_unit": True})})
    without = f.model_copy(update={"nix": f.nix.model_copy(update={"daemon_unit": False})})
    assert NIX.apply(p, with_daemon) == NIX_DAEMON_RESTART and NIX.apply(p, without) == ()
    cmds, _ = NIX.restore(snap(), snap(), [NIX_CONF])
    assert cmds == [
        "if systemctl cat nix-daemon.service >/dev/null 2>&1; then systemctl try-restart nix-daemon.service; fi"
    ]
    assert NIX.restore(snap(), snap(), []) == ([], [])


def test_rows_mask_secret_settings():
    p = plan_host("h", facts(), settings(nix_settings={"access-tokens": "github.com=ghp_x"}))
    rows = {row[0]: row[1] for row in NIX.rows(p, lambda key: key == "access-tokens")}
    assert rows["nix access-tokens"] == "<redacted>" and rows["nix max-jobs"] == "1"
