"""The NixOS modules of the shared Nix cache and of a NixOS host's nix.conf, evaluated the way
NixOS evaluates them, by the TEST STAND-IN module system (``fleetforge/testbed/standin/eval.nix``,
real ``nix-instantiate``; NixOS itself cannot be built here): option types, priorities, NixOS's
own definitions (cache.nixos.org, its key) and the nftables firewall's assertion as nixpkgs
declares them.

The issue-12 bugs, each checked here: cache.nixos.org listed twice in a NixOS host's nix.conf;
the cache module refused on hosts with the nftables firewall (and IPv6 clients); harmonia's
options differing between NixOS releases.
"""

import json
import subprocess
from pathlib import Path

import pytest

from fleetforge.nixcache.roles import (
    CACHE_DIR,
    NFS_MOUNT,
    SECRET_KEY,
    cache_roles,
    client_settings,
    nixos_cache_options,
    nixos_client_options,
)
from fleetforge.nixos.modules import render_modules
from fleetforge.planner import NIXOS_CACHE_KEY, PlanError, plan_host
from fleetforge.settings import settings_from_data
from fleetforge.testbed.nixos_standin import STANDIN
from tests.conftest import facts_from

DATA = {
    "cache": {"lan_address": "10.77.0.10"},
    "web": {"lan_address": "10.77.0.11"},
    "v6": {"lan_address": "fd00:77::12"},
}
PUBLIC_KEY = "fleetforge-cache-1:T2ZJk5cGRy3WtdX0vQ1LpIIbTLDq9Fo5kqv6rYh2eEY="


def roles(data=DATA, **cache):
    data = {**data, "cache": {**data["cache"], **cache}}
    settings = {name: settings_from_data(name, d) for name, d in data.items()}
    return cache_roles({"nix_cache": ["cache"]}, settings)


def standin_eval(tmp_path: Path, modules: dict[str, str], release: str, config: str = "") -> dict:
    """Write ``modules`` (``{path under /etc/nixos: text}``) and a configuration.nix importing
    ``./fleetforge`` with ``config`` (Nix attribute definitions) into ``tmp_path``; evaluate it
    with the stand-in for NixOS ``release``. Returns ``{"config": ..., "warnings": [...]}``;
    raises ``AssertionError`` with Nix's message when evaluation fails."""
    result = try_standin_eval(tmp_path, modules, release, config)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def try_standin_eval(tmp_path: Path, modules: dict[str, str], release: str, config: str = ""):
    for path, text in modules.items():
        target = tmp_path / Path(path).relative_to("/etc/nixos")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    configuration = tmp_path / "configuration.nix"
    configuration.write_text(
        f'{{ ... }}:\n{{\n  imports = [ ./fleetforge ];\n  networking.hostName = "h";\n{config}}}\n'
    )
    argv = ["nix-instantiate", "--eval", "--strict", "--json", str(STANDIN / "eval.nix")]
    argv += ["--argstr", "release", release, "--arg", "configuration", str(configuration)]
    return subprocess.run(argv, capture_output=True, text=True)


def nixos_facts(release: str):
    facts = facts_from("qemu-virtio-blk-vda-bios")
    return facts.model_copy(update={"os": facts.os.model_copy(update={"id": "nixos", "nixos_release": release})})


def cache_host_modules(server: str, release: str, **cache) -> dict[str, str]:
    facts = nixos_facts(release)
    plan = plan_host("cache", facts, settings_from_data("cache", {"nix": False}))
    return render_modules(
        plan, facts, extra={"nix-cache.nix": lambda r: nixos_cache_options(roles(**cache), server, r)}
    )


@pytest.mark.parametrize("release", ["24.05", "25.11"])
@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_cache_port_is_opened_per_client_under_both_firewall_backends(tmp_path, backend, release):
    """One module for both firewalls, chosen by Nix on the host: iptables commands (ip6tables for
    an IPv6 client) under iptables, nftables rules under nftables, never both, never a subnet.
    Before 25.11 ``networking.nftables.enable`` decides; from 25.11 ``networking.firewall.backend``."""
    config = "  networking.nftables.enable = true;\n" if backend == "nftables" else ""
    firewall = standin_eval(tmp_path, cache_host_modules("nix-serve", release), release, config)["config"][
        "networking"
    ]["firewall"]
    if backend == "iptables":
        assert firewall["extraInputRules"] == ""
        assert firewall["extraCommands"].splitlines() == [
            "iptables -A nixos-fw -p tcp -s 10.77.0.11 --dport 5000 -j nixos-fw-accept",
            "ip6tables -A nixos-fw -p tcp -s fd00:77::12 --dport 5000 -j nixos-fw-accept",
        ]
    else:
        assert firewall["extraCommands"] == ""
        assert firewall["extraInputRules"].splitlines() == [
            "ip saddr 10.77.0.11 tcp dport 5000 accept",
            "ip6 saddr fd00:77::12 tcp dport 5000 accept",
        ]


def test_the_old_iptables_module_is_refused_under_nftables_by_the_stand_in(tmp_path):
    """What real NixOS said about the first round's module (extraCommands under nftables): the
    stand-in must say it too, or the test above proves nothing."""
    module = '{ ... }: { networking.firewall.extraCommands = "iptables -A nixos-fw -s 10.0.0.1 -j nixos-fw-accept"; }\n'
    out = try_standin_eval(
        tmp_path, {"/etc/nixos/fleetforge/default.nix": module}, "24.05", "  networking.nftables.enable = true;\n"
    )
    assert out.returncode != 0 and "extraCommands is incompatible with the nftables based firewall" in out.stderr


def test_a_firewalld_host_is_refused_with_an_assertion_naming_the_module(tmp_path):
    out = try_standin_eval(
        tmp_path, cache_host_modules("nix-serve", "25.11"), "25.11", '  networking.firewall.backend = "firewalld";\n'
    )
    assert out.returncode != 0 and "Failed assertions" in out.stderr
    assert "nix-cache.nix opens the cache port with the iptables or nftables firewall only" in out.stderr


@pytest.mark.parametrize(
    ("release", "expected"),
    [
        ("23.05", {"signKeyPath": SECRET_KEY}),
        ("24.05", {"signKeyPath": SECRET_KEY}),
        ("24.11", {"signKeyPaths": [SECRET_KEY]}),
        ("25.11", {"signKeyPaths": [SECRET_KEY]}),
        ("26.05", {"cache": {"signKeyPaths": [SECRET_KEY]}}),
    ],
)
def test_harmonia_is_written_for_the_hosts_release_and_evaluates_without_warnings(tmp_path, release, expected):
    out = standin_eval(tmp_path, cache_host_modules("harmonia", release), release)
    harmonia = out["config"]["services"]["harmonia"]
    settings = harmonia["cache"]["settings"] if "cache" in expected else harmonia["settings"]
    assert settings["bind"] == "10.77.0.10:5000"  # fleetforge's plain value beats 26.05's mkDefault
    for key, value in expected.items():
        got = harmonia[key]["signKeyPaths"] if key == "cache" else harmonia[key]
        assert got == (value["signKeyPaths"] if key == "cache" else value), harmonia
    assert out["warnings"] == []  # no deprecated or renamed option used


@pytest.mark.parametrize("release", [None, "22.11", "garbage"])
def test_an_unknown_or_too_old_release_is_refused_naming_host_and_range(release):
    with pytest.raises(PlanError, match=r"host cache: nixos release: expected NixOS 23\.05 or later"):
        nixos_cache_options(roles(), "harmonia", release)


def test_nix_serve_binds_an_ipv6_cache_address_in_brackets(tmp_path):
    v6 = {**DATA, "cache": {"lan_address": "fd00:77::10"}}
    options = nixos_cache_options(roles(v6), "nix-serve", "24.05")
    assert options["services"]["nix-serve"]["bindAddress"] == "[fd00:77::10]"


@pytest.mark.parametrize("release", ["24.05", "26.05"])
def test_nix_conf_lists_each_substituter_and_key_once_as_nixos_renders_it(tmp_path, release):
    """Bug 1: NixOS adds https://cache.nixos.org/ (mkAfter) and its key itself; a NixOS client
    of the fleet's cache ends with its substituter first, cache.nixos.org last, each once."""
    facts = nixos_facts(release)
    settings = client_settings(settings_from_data("web", {}), roles(), PUBLIC_KEY)
    modules = render_modules(plan_host("web", facts, settings), facts)
    nix = standin_eval(tmp_path, modules, release)["config"]["nix"]["settings"]
    assert nix["substituters"] == ["http://10.77.0.10:5000?priority=30", "https://cache.nixos.org/"]
    assert sorted(nix["trusted-public-keys"]) == sorted([PUBLIC_KEY, NIXOS_CACHE_KEY])


def test_nfs_client_module_mounts_the_export_read_only(tmp_path):
    """NixOS clients of an NFS cache get ``fileSystems`` (no unit file in the generated /etc)."""
    facts = nixos_facts("24.05")
    plan = plan_host("web", facts, settings_from_data("web", {"nix": False}))
    modules = render_modules(plan, facts, extra={"nix-cache.nix": nixos_client_options(roles(nix_cache_nfs=True))})
    mount = standin_eval(tmp_path, modules, "24.05")["config"]["fileSystems"][NFS_MOUNT]
    assert mount["device"] == f"10.77.0.10:{CACHE_DIR}" and mount["fsType"] == "nfs"
    assert "ro" in mount["options"] and "noexec" in mount["options"]


def test_nfs_cache_host_exports_to_each_client_and_opens_2049(tmp_path):
    modules = cache_host_modules("nix-serve", "24.05", nix_cache_nfs=True)
    config = standin_eval(tmp_path, modules, "24.05", "  networking.nftables.enable = true;\n")["config"]
    exports = config["services"]["nfs"]["server"]["exports"]
    assert exports.split() == [
        CACHE_DIR,
        "10.77.0.11(ro,root_squash,no_subtree_check,sec=sys)",
        "fd00:77::12(ro,root_squash,no_subtree_check,sec=sys)",
    ]
    assert "ip6 saddr fd00:77::12 tcp dport 2049 accept" in config["networking"]["firewall"]["extraInputRules"]
