"""The TEST STAND-IN module system (``fleetforge/testbed/standin/eval.nix``) refuses what NixOS
refuses and merges what NixOS merges, with NixOS's messages, for the options fleetforge writes:
one test per case of issue 12, each evaluated by the real ``nix-instantiate`` (no VM).
"""

import json
import subprocess
import tomllib
from pathlib import Path

import pytest

from fleetforge.facts.models import BtrfsFilesystem, PodmanInfo
from fleetforge.nixos.modules import render_modules
from fleetforge.planner import plan_host
from fleetforge.testbed.nixos_standin import STANDIN
from tests.components.helpers import facts, settings
from tests.test_nixos_standin_flake import rebuild_module

NIXOS_KEY = "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="


def run_eval(tmp_path: Path, config: str, release: str = "24.05", extra: str = "") -> subprocess.CompletedProcess:
    """Evaluate ``configuration.nix`` = ``{ config, lib, ... }: { <config> }`` importing
    ``./extra.nix`` = ``{ lib, ... }: { <extra> }`` (a second module, as fleetforge's modules are)."""
    (tmp_path / "extra.nix").write_text(f"{{ lib, ... }}:\n{{\n{extra}\n}}\n")
    (tmp_path / "configuration.nix").write_text(
        f"{{ config, lib, ... }}:\n{{\n  imports = [ ./extra.nix ];\n{config}\n}}\n"
    )
    return eval_file(tmp_path / "configuration.nix", release)


def eval_file(configuration: Path, release: str) -> subprocess.CompletedProcess:
    argv = ["nix-instantiate", "--eval", "--strict", "--json", str(STANDIN / "eval.nix"), "--argstr", "release"]
    return subprocess.run(
        [*argv, release, "--arg", "configuration", str(configuration)], capture_output=True, text=True
    )


def evaluated(tmp_path: Path, config: str, release: str = "24.05", extra: str = "") -> dict:
    out = run_eval(tmp_path, config, release, extra)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def refused(tmp_path: Path, config: str, release: str = "24.05", extra: str = "") -> str:
    out = run_eval(tmp_path, config, release, extra)
    assert out.returncode != 0, out.stdout
    return out.stderr


def test_misspelt_option_does_not_exist(tmp_path):
    err = refused(tmp_path, "  zramSwap.memorypercent = 50;")
    assert "The option `zramSwap.memorypercent' does not exist. Definition values:" in err
    assert f"- In `{tmp_path}/configuration.nix': 50" in err


@pytest.mark.parametrize(
    "option",
    [
        "services.udev.extrarules",
        "services.nix-serve.bindaddress",
        "services.nfs.server.export",
        "networking.firewall.extraInputRule",
        "networking.nftables.enabled",
        "systemd.tmpfiles.rule",
        "virtualisation.containers.storage.driver",
        "virtualisation.containers.registries.searches",
    ],
)
def test_unknown_option_under_each_strict_namespace_does_not_exist(tmp_path, option):
    assert f"The option `{option}' does not exist." in refused(tmp_path, f'  {option} = "x";')


def test_unknown_option_inside_a_submodule_does_not_exist(tmp_path):
    err = refused(tmp_path, '  fileSystems."/mnt".fstype = "nfs";')
    assert 'The option `fileSystems."/mnt".fstype\' does not exist.' in err
    err = refused(tmp_path, '  systemd.services.x.scripts = "true";')
    assert "The option `systemd.services.x.scripts' does not exist." in err


def test_two_different_zram_algorithms_conflict(tmp_path):
    err = refused(tmp_path, '  zramSwap.algorithm = "zstd";', extra='  zramSwap.algorithm = "lz4";')
    assert "The option `zramSwap.algorithm' has conflicting definition values:" in err
    assert "- In `" + str(tmp_path) + '/configuration.nix\': "zstd"' in err
    assert "- In `" + str(tmp_path) + '/extra.nix\': "lz4"' in err


def test_users_mkforce_beats_a_plain_sysctl_definition(tmp_path):
    out = evaluated(
        tmp_path,
        '  boot.kernel.sysctl."vm.swappiness" = lib.mkForce 10;',
        extra='  boot.kernel.sysctl."vm.swappiness" = 60;',
    )
    assert out["config"]["boot"]["kernel"]["sysctl"]["vm.swappiness"] == 10


def test_two_plain_sysctl_definitions_are_refused_even_when_equal(tmp_path):
    err = refused(
        tmp_path, '  boot.kernel.sysctl."vm.swappiness" = 60;', extra='  boot.kernel.sysctl."vm.swappiness" = 60;'
    )
    assert (
        "The option `boot.kernel.sysctl.\"vm.swappiness\"' is defined multiple times while it's expected to be unique."
        in err
    )


@pytest.mark.parametrize("value", ['"134217728"', "-1"])
def test_rmem_max_refuses_a_string_and_a_negative_number(tmp_path, value):
    err = refused(tmp_path, f'  boot.kernel.sysctl."net.core.rmem_max" = {value};')
    assert (
        'A definition for option `boot.kernel.sysctl."net.core.rmem_max"\' is not of type '
        "`null or (unsigned integer, meaning >=0)'. Definition values:"
    ) in err
    assert f"configuration.nix': {value}" in err


def test_rmem_max_takes_the_largest_definition(tmp_path):
    out = evaluated(
        tmp_path,
        '  boot.kernel.sysctl."net.core.rmem_max" = 4194304;',
        extra='  boot.kernel.sysctl."net.core.rmem_max" = 16777216;',
    )
    assert out["config"]["boot"]["kernel"]["sysctl"]["net.core.rmem_max"] == 16777216


def test_a_string_for_substituters_is_refused(tmp_path):
    err = refused(tmp_path, '  nix.settings.substituters = "http://10.0.0.1:5000";')
    assert "A definition for option `nix.settings.substituters' is not of type `list of string'." in err


def test_port_70000_is_refused(tmp_path):
    err = refused(tmp_path, "  services.nix-serve.port = 70000;")
    assert (
        "A definition for option `services.nix-serve.port' is not of type "
        "`16 bit unsigned integer; between 0 and 65535 (both inclusive)'."
    ) in err


@pytest.mark.parametrize(("release", "description"), [("24.11", "path"), ("25.11", "absolute path")])
def test_a_relative_harmonia_sign_key_path_is_refused(tmp_path, release, description):
    err = refused(tmp_path, '  services.harmonia.signKeyPaths = [ "secret-key" ];', release)
    assert (
        'A definition for option `services.harmonia.signKeyPaths."[definition 1-entry 1]"\' '
        f"is not of type `{description}'."
    ) in err


def test_harmonia_sign_key_paths_does_not_exist_in_24_05(tmp_path):
    err = refused(tmp_path, '  services.harmonia.signKeyPaths = [ "/var/lib/key" ];', "24.05")
    assert "The option `services.harmonia.signKeyPaths' does not exist." in err


def test_harmonia_does_not_exist_before_23_05(tmp_path):
    assert "The option `services.harmonia.enable' does not exist." in refused(
        tmp_path, "  services.harmonia.enable = true;", "22.11"
    )


def test_harmonia_24_11_warns_about_the_deprecated_sign_key_path(tmp_path):
    out = evaluated(tmp_path, '  services.harmonia = { enable = true; signKeyPath = "/k"; };', "24.11")
    assert out["warnings"] == [
        "`services.harmonia.signKeyPath` is deprecated, use `services.harmonia.signKeyPaths` instead"
    ]
    assert out["config"]["nix"]["settings"]["extra-allowed-users"] == ["harmonia"]


def test_harmonia_26_05_has_cache_options_and_renames_the_flat_ones_with_warnings(tmp_path):
    flat = '  services.harmonia = { enable = true; signKeyPaths = [ "/k" ]; settings.bind = "10.0.0.1:5000"; };'
    out = evaluated(tmp_path, flat, "26.05")
    cache = out["config"]["services"]["harmonia"]["cache"]
    assert cache["enable"] is True and cache["signKeyPaths"] == ["/k"]
    assert cache["settings"] == {"bind": "10.0.0.1:5000", "workers": 4, "max_connection_rate": 256, "priority": 50}
    assert out["warnings"] == [
        f"The option `services.harmonia.{name}' defined in `{tmp_path}/configuration.nix' has been renamed to "
        f"`services.harmonia.cache.{name}'."
        for name in ("enable", "signKeyPaths", "settings")
    ]
    direct = evaluated(tmp_path, '  services.harmonia.cache = { enable = true; signKeyPaths = [ "/k" ]; };', "26.05")
    assert (
        direct["warnings"] == []
        and direct["config"]["services"]["harmonia"]["cache"]["settings"]["bind"] == "[::]:5000"
    )


@pytest.mark.parametrize("release", ["24.05", "25.11"])
def test_nftables_firewall_refuses_extra_commands_with_the_assertion_text(tmp_path, release):
    config = '  networking.nftables.enable = true;\n  networking.firewall.extraCommands = "iptables -A nixos-fw -j x";'
    err = refused(tmp_path, config, release)
    assert "Failed assertions:\n" in err
    assert "- extraCommands is incompatible with the nftables based firewall: iptables -A nixos-fw -j x" in err


def test_firewall_backend_exists_from_25_11_only(tmp_path):
    assert (
        evaluated(tmp_path, "  networking.nftables.enable = true;", "25.11")["config"]["networking"]["firewall"][
            "backend"
        ]
        == "nftables"
    )
    assert "backend" not in evaluated(tmp_path, "", "25.05")["config"]["networking"]["firewall"]
    err = refused(tmp_path, '  networking.firewall.backend = "iptables";', "25.05")
    assert "The option `networking.firewall.backend' does not exist." in err


@pytest.mark.parametrize("release", ["24.05", "25.11"])
def test_a_module_may_read_config_inside_mkif_without_recursion(tmp_path, release):
    """fleetforge's cache module chooses its firewall rules from the host's own config (the
    backend option where the release has it, else networking.nftables.enable)."""
    backend = (
        '(config.networking.firewall.backend or (if config.networking.nftables.enable then "nftables" else "iptables"))'
    )
    choose = (
        f'  networking.firewall.extraCommands = lib.mkIf ({backend} == "iptables") "iptables -A x";\n'
        f'  networking.firewall.extraInputRules = lib.mkIf ({backend} == "nftables") "ip saddr 10.0.0.1 accept";'
    )
    cfg = evaluated(tmp_path, choose, release, extra="  networking.nftables.enable = true;")["config"]
    firewall = cfg["networking"]["firewall"]
    assert firewall["extraCommands"] == "" and firewall["extraInputRules"] == "ip saddr 10.0.0.1 accept"
    firewall = evaluated(tmp_path, choose, release)["config"]["networking"]["firewall"]
    assert firewall["extraCommands"] == "iptables -A x" and firewall["extraInputRules"] == ""


def test_mkif_false_drops_the_definition(tmp_path):
    out = evaluated(
        tmp_path,
        '  boot.kernel.sysctl."vm.swappiness" = lib.mkIf false 10;\n  zramSwap = lib.mkIf false { enable = true; };',
    )
    assert "vm.swappiness" not in out["config"]["boot"]["kernel"]["sysctl"]
    assert out["config"]["zramSwap"]["enable"] is False


def test_mkafter_puts_cache_nixos_org_last_and_each_entry_once(tmp_path):
    config = '  nix.settings.substituters = [ "http://10.0.0.1:5000?priority=30" ];\n'
    config += '  nix.settings.trusted-public-keys = [ "fleet-1:abc=" ];'
    settings = evaluated(tmp_path, config, extra='  nix.settings.substituters = lib.mkBefore [ "http://first" ];')[
        "config"
    ]["nix"]["settings"]
    assert settings["substituters"] == ["http://first", "http://10.0.0.1:5000?priority=30", "https://cache.nixos.org/"]
    assert sorted(settings["trusted-public-keys"]) == sorted(["fleet-1:abc=", NIXOS_KEY])
    assert settings["trusted-users"] == ["root"]


def test_mkdefault_loses_to_a_plain_definition(tmp_path):
    out = evaluated(
        tmp_path,
        '  boot.kernel.sysctl."kernel.kptr_restrict" = 2;\n  zramSwap.priority = lib.mkDefault 1;',
        extra="  zramSwap.priority = 7;",
    )
    assert out["config"]["boot"]["kernel"]["sysctl"]["kernel.kptr_restrict"] == 2  # NixOS's own is mkDefault 1
    assert out["config"]["zramSwap"]["priority"] == 7


def test_defined_both_null_and_not_null(tmp_path):
    err = refused(tmp_path, "  zramSwap.memoryMax = null;", extra="  zramSwap.memoryMax = 1024;")
    assert "The option `zramSwap.memoryMax' is defined both null and not null" in err


def test_ordinary_configuration_still_evaluates(tmp_path):
    """Options the stand-in does not model (hostName, boot.loader, users, hardware scan) are
    accepted; nixpkgs' own modules imported from modulesPath are empty here."""
    config = """\
  imports = [ (modulesPath + "/installer/scan/not-detected.nix") ];
  networking.hostName = "web-1";
  boot.loader.grub.enable = true;
  boot.loader.grub.device = "/dev/vda";
  users.users.alice = { isNormalUser = true; extraGroups = [ "wheel" ]; };
  fileSystems."/" = { device = "/dev/disk/by-uuid/1234"; fsType = "ext4"; };
  systemd.services.hello = { wantedBy = [ "multi-user.target" ]; script = "echo hi"; serviceConfig.Type = "oneshot"; };
  networking.firewall.allowedTCPPorts = [ 443 22 22 ];
  system.stateVersion = "24.05";"""
    (tmp_path / "configuration.nix").write_text(f"{{ config, lib, pkgs, modulesPath, ... }}:\n{{\n{config}\n}}\n")
    out = eval_file(tmp_path / "configuration.nix", "24.05")
    assert out.returncode == 0, out.stderr
    cfg = json.loads(out.stdout)["config"]
    assert cfg["fileSystems"]["/"]["options"] == ["defaults"] and cfg["fileSystems"]["/"]["mountPoint"] == "/"
    assert cfg["systemd"]["services"]["hello"]["startAt"] == []
    assert cfg["networking"]["firewall"]["allowedTCPPorts"] == [22, 443]


def test_removed_zram_num_devices_fails_an_assertion(tmp_path):
    err = refused(tmp_path, "  zramSwap.numDevices = 2;")
    assert "- The option definition `zramSwap.numDevices' in `" in err and "no longer has any effect" in err


def test_a_value_cannot_change_the_structure_of_the_evaluated_nix(tmp_path):
    """Hostile text in a string option stays one string value (nothing evaluated, nothing run)."""
    marker = tmp_path / "marker"
    value = f'"; }} builtins.readFile {marker}; ${{builtins.abort "x"}}'
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    out = evaluated(tmp_path, f'  services.udev.extraRules = "{escaped}";')
    assert out["config"]["services"]["udev"]["extraRules"] == value and not marker.exists()


# -- Podman's storage driver and btrfs read-ahead: the modules fleetforge renders ---------------

FSID = "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
READ_AHEAD_RULE = f"w /sys/fs/btrfs/{FSID}/bdi/read_ahead_kb - - - - 4096"
NIXOS_STORAGE = {"graphroot": "/var/lib/containers/storage", "runroot": "/run/containers/storage"}


def btrfs_host_modules(tmp_path: Path) -> None:
    """fleetforge's modules for a host whose Podman store and a second disk (vdb) are btrfs,
    written to ``tmp_path/fleetforge`` (podman.nix and btrfs-read-ahead.nix among them)."""
    podman = PodmanInfo(
        version="4.3.1", conf=None, driver=None, graphroot="/var/lib/containers/storage", runroot=None,
        graphroot_fstype="btrfs", stores=[],
    )  # fmt: skip
    btrfs = BtrfsFilesystem(fsid=FSID, bdi="btrfs-1", read_ahead_kb=4096, devices=["vdb"])
    host = facts(podman=podman, btrfs=[btrfs])
    files = render_modules(plan_host("h", host, settings()), host)
    assert {"/etc/nixos/fleetforge/podman.nix", "/etc/nixos/fleetforge/btrfs-read-ahead.nix"} <= set(files)
    for path, text in files.items():
        target = tmp_path / Path(path).relative_to("/etc/nixos")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def with_fleetforge(tmp_path: Path, config: str = "", extra: str = "", ok: bool = True):
    """The host's configuration.nix (``config``) importing ``./extra.nix`` (``extra``), which
    imports fleetforge's modules: the evaluated JSON, or Nix's error text when ``ok`` is false."""
    btrfs_host_modules(tmp_path)
    extra = f"  imports = [ ./fleetforge ];\n{extra}"
    return evaluated(tmp_path, config, extra=extra) if ok else refused(tmp_path, config, extra=extra)


@pytest.mark.parametrize("enable", ["virtualisation.podman.enable", "virtualisation.containers.enable"])
def test_fleetforge_driver_beats_nixos_mkdefault_and_keeps_its_other_defaults(tmp_path, enable):
    """containers.nix: `storage.settings.storage = { driver = mkDefault "overlay"; graphroot =
    mkDefault ...; runroot = mkDefault ...; }` under `mkIf cfg.enable` (podman.enable sets it)."""
    containers = with_fleetforge(tmp_path, f"  {enable} = true;")["config"]["virtualisation"]["containers"]
    assert containers["enable"] is True
    assert containers["storage"]["settings"] == {"storage": {"driver": "btrfs", **NIXOS_STORAGE}}


def test_without_containers_enabled_storage_settings_are_not_read(tmp_path):
    """NixOS generates storage.conf only under virtualisation.containers.enable: the module still
    evaluates, and the stand-in prints no storage settings (nixos-rebuild writes no file)."""
    containers = with_fleetforge(tmp_path)["config"]["virtualisation"]["containers"]
    assert containers["enable"] is False and "settings" not in containers["storage"]


def test_a_hosts_own_plain_driver_conflicts_and_its_mkforce_wins(tmp_path):
    enable = "  virtualisation.containers.enable = true;\n"
    err = with_fleetforge(
        tmp_path, enable + '  virtualisation.containers.storage.settings.storage.driver = "overlay";', ok=False
    )
    assert "The option `virtualisation.containers.storage.settings.storage.driver' has conflicting definition" in err
    forced = enable + '  virtualisation.containers.storage.settings.storage.driver = lib.mkForce "overlay";'
    storage = with_fleetforge(tmp_path, forced)["config"]["virtualisation"]["containers"]["storage"]
    assert storage["settings"]["storage"]["driver"] == "overlay"


def test_storage_options_outside_settings_do_not_exist_and_null_is_no_toml_value(tmp_path):
    err = with_fleetforge(tmp_path, '  virtualisation.containers.storage.driver = "btrfs";', ok=False)
    assert "The option `virtualisation.containers.storage.driver' does not exist. Definition values:" in err
    config = "  virtualisation.containers.enable = true;\n  virtualisation.containers.storage.settings.storage.runroot = null;"
    err = with_fleetforge(tmp_path, config, ok=False)
    assert (
        "A definition for option `virtualisation.containers.storage.settings.storage.runroot' is not of type "
        "`TOML value'."
    ) in err


def test_read_ahead_rules_concatenate_with_the_hosts_own(tmp_path):
    own = "d /var/lib/builds 0755 root root -"
    tmpfiles = with_fleetforge(tmp_path, f'  systemd.tmpfiles.rules = [ "{own}" ];')["config"]["systemd"]["tmpfiles"]
    assert sorted(tmpfiles["rules"]) == sorted([own, READ_AHEAD_RULE]) and tmpfiles["settings"] == {}
    err = with_fleetforge(tmp_path, f'  systemd.tmpfiles.rules = "{own}";', ok=False)
    assert "A definition for option `systemd.tmpfiles.rules' is not of type `list of string'." in err
    err = with_fleetforge(tmp_path, f'  systemd.tmpfiles.rule = [ "{own}" ];', ok=False)
    assert "The option `systemd.tmpfiles.rule' does not exist." in err


def test_tmpfiles_settings_entries_take_their_type_from_the_name(tmp_path):
    cfg = evaluated(tmp_path, '  systemd.tmpfiles.settings."10-x"."/var/lib/x".d.mode = "0755";')["config"]
    entry = cfg["systemd"]["tmpfiles"]["settings"]["10-x"]["/var/lib/x"]["d"]
    assert entry == {"type": "d", "mode": "0755", "user": "-", "group": "-", "age": "-", "argument": ""}


# -- nixos-rebuild's activation of them (files under a temporary /etc, commands recorded) ------


def activation(tmp_path: Path, returncode: int = 0):
    """The stand-in nixos-rebuild with /etc at ``tmp_path/etc`` and commands recorded, not run."""
    nixos = rebuild_module(tmp_path)
    nixos.ETC, nixos.NIXOS, ran = tmp_path / "etc", tmp_path, []

    def sh(*argv, check=True):
        ran.append(list(argv))
        return subprocess.CompletedProcess(argv, returncode, "", "bad line" if returncode else "")

    nixos.sh = sh
    return nixos, ran


def test_rebuild_writes_storage_conf_as_toml_only_where_containers_are_enabled(tmp_path):
    nixos, _ = activation(tmp_path)
    btrfs_host_modules(tmp_path)
    (tmp_path / "configuration.nix").write_text(
        "{ ... }: { imports = [ ./fleetforge ]; virtualisation.podman.enable = true; }\n"
    )
    nixos.activate_containers(nixos.evaluate(None)["virtualisation"]["containers"])
    conf = tmp_path / "etc/containers/storage.conf"
    assert conf.is_symlink() and conf.resolve() == tmp_path / "etc/static/containers/storage.conf"
    assert tomllib.loads(conf.read_text()) == {"storage": {"driver": "btrfs", **NIXOS_STORAGE}}
    nixos.activate_containers({"enable": False})  # a generation without it: NixOS's link removed
    assert not conf.exists() and not conf.is_symlink()
    conf.write_text('[storage]\ndriver = "overlay"\n')  # a file NixOS did not make stays
    nixos.activate_containers({"enable": False})
    assert conf.read_text() == '[storage]\ndriver = "overlay"\n'


def test_toml_writer_round_trips_what_the_toml_type_holds(tmp_path):
    nixos, _ = activation(tmp_path)
    value = {
        "top": 1,
        "storage": {"driver": "overlay", "options": {"stores": ["/ro", 'q"x'], "overlay": {"mount opt": "nodev"}}},
        "engine": {"flag": True, "ratio": 1.5, "hooks": [{"a": 1}], "text": "é\n\t\\", "empty": {}},
    }
    assert tomllib.loads(nixos.toml(value)) == value


def test_rebuild_writes_00_nixos_conf_and_applies_it(tmp_path):
    nixos, ran = activation(tmp_path)
    nixos.activate_tmpfiles({"rules": [READ_AHEAD_RULE, "d /var/lib/builds 0755 root root -"]})
    conf = tmp_path / "etc/tmpfiles.d/00-nixos.conf"
    assert conf.is_symlink() and conf.read_text().splitlines() == [
        "# This file is created automatically and should not be modified.",
        "# Please change the option \u2018systemd.tmpfiles.rules\u2019 instead.",
        "",
        READ_AHEAD_RULE,
        "d /var/lib/builds 0755 root root -",
    ]
    assert ran == [["systemd-tmpfiles", "--create", str(conf)]]
    nixos.activate_tmpfiles({})  # a generation from before the option: NixOS's file, no rules
    assert conf.read_text().endswith("instead.\n\n\n")


@pytest.mark.parametrize(("returncode", "fails"), [(65, False), (73, False), (1, True)])
def test_tmpfiles_errors_fail_a_switch_only_where_nixos_resetup_fails(tmp_path, returncode, fails):
    """systemd-tmpfiles-resetup.service: SuccessExitStatus = "DATAERR CANTCREAT" (65, 73)."""
    nixos, _ = activation(tmp_path, returncode)
    if fails:
        with pytest.raises(nixos.Fail, match="bad line"):
            nixos.activate_tmpfiles({"rules": [READ_AHEAD_RULE]})
    else:
        nixos.activate_tmpfiles({"rules": [READ_AHEAD_RULE]})
