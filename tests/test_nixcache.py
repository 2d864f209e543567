"""Shared Nix store roles (pure): the nix_cache group, addresses, clients, substituter order;
the NixCacheKey fact's parser; the rendered NFS export lists exactly the clients."""

import pytest
from pyinfra.api.exceptions import FactProcessError

from fleetforge.facts.nix_cache import NixCacheKey
from fleetforge.nixcache.roles import cache_roles, client_settings
from fleetforge.planner import NIXOS_CACHE
from fleetforge.render import render
from fleetforge.settings import SettingsError, settings_from_data

DATA = {
    "cache": {"lan_address": "10.77.0.10"},
    "web": {"lan_address": "10.77.0.11"},
    "db": {"lan_address": "10.77.0.12"},
    "nonix": {"lan_address": "10.77.0.13", "nix": False},
}


def roles(groups, data=DATA):
    settings = {name: settings_from_data(name, d) for name, d in data.items()}
    return cache_roles(groups, settings)


def test_no_group_means_no_shared_cache():
    assert roles({"all": list(DATA)}) is None


def test_clients_are_the_other_hosts_with_nix_or_the_clients_group():
    r = roles({"nix_cache": ["cache"]})
    assert r.cache == "cache" and r.clients == {"web": "10.77.0.11", "db": "10.77.0.12"}
    assert r.substituter() == "http://10.77.0.10:5000?priority=30"
    assert roles({"nix_cache": ["cache"], "nix_cache_clients": ["db"]}).clients == {"db": "10.77.0.12"}


@pytest.mark.parametrize("members", [[], ["cache", "web"]])
def test_zero_or_two_cache_hosts_is_an_error_naming_the_group(members):
    with pytest.raises(SettingsError, match=r"group nix_cache: hosts: expected exactly one cache host, got \d"):
        roles({"nix_cache": members})


def test_the_cache_address_is_never_assumed():
    data = {**DATA, "cache": {}}
    with pytest.raises(SettingsError, match="host cache: nix_cache_address: expected the address clients reach"):
        roles({"nix_cache": ["cache"]}, data)
    explicit = roles({"nix_cache": ["cache"]}, {**DATA, "cache": {"nix_cache_address": "192.168.1.5"}})
    assert explicit.http_url == "http://192.168.1.5:5000"


def test_a_client_without_an_address_is_an_error():
    with pytest.raises(SettingsError, match="host web: lan_address: expected the client's LAN address"):
        roles({"nix_cache": ["cache"]}, {**DATA, "web": {}})


def test_clients_get_the_cache_first_and_its_key_in_the_main_plan_settings():
    r = roles({"nix_cache": ["cache"]}, {**DATA, "cache": {"lan_address": "10.77.0.10", "nix_cache_nfs": True}})
    base = settings_from_data("web", {"nix_substituters": ["https://example.org"]})
    s = client_settings(base, r, "fleetforge-cache-1:AAAA")
    assert s.nix_substituters == ["file:///mnt/fleetforge/nixcache?priority=30", "https://example.org"]
    assert s.nix_trusted_public_keys == ["fleetforge-cache-1:AAAA"]
    assert NIXOS_CACHE not in s.nix_substituters  # the planner appends the public cache after these


def test_the_export_lists_exactly_the_clients_read_only_and_root_squashed():
    text = render(
        "nix-cache.exports.j2", cache_dir="/var/cache/fleetforge/nix-cache", clients=["10.77.0.11", "10.77.0.12"]
    )
    line = [x for x in text.splitlines() if x and not x.startswith("#")]
    assert line == [
        "/var/cache/fleetforge/nix-cache 10.77.0.11(ro,root_squash,no_subtree_check,sec=sys) "
        "10.77.0.12(ro,root_squash,no_subtree_check,sec=sys)"
    ]
    assert "/24" not in text


def test_the_key_fact_reads_the_public_key_and_the_secret_mode_only():
    state = NixCacheKey().process(
        ["@@public", "fleetforge-cache-1:T2ZJ+abc=", "@@secret", "600", "@@cache", "yes", "@@done"]
    )
    assert (state.public_key, state.key_name, state.secret_mode, state.cache_ready) == (
        "fleetforge-cache-1:T2ZJ+abc=",
        "fleetforge-cache-1",
        "600",
        True,
    )
    empty = NixCacheKey().process(["@@public", "@@secret", "@@cache", "@@done"])
    assert (empty.public_key, empty.secret_mode, empty.cache_ready) == (None, None, False)
    with pytest.raises(FactProcessError):
        NixCacheKey().process(["@@public", "not a key", "@@secret", "@@cache", "@@done"])


def test_keygen_makes_a_0600_key_once_and_rotates_on_a_new_name(tmp_path):
    """The cache host's key script, run for real with nix-store (as on the host)."""
    import subprocess

    from fleetforge.nixcache.deploy import KEYGEN

    secret, public = tmp_path / "k" / "secret-key", tmp_path / "k" / "public-key"
    cache = tmp_path / "cache"
    (cache / "nar").mkdir(parents=True)
    (cache / "old.narinfo").write_text("Sig: fleetforge-cache-1:...")

    def keygen(name):
        argv = ["sh", "-c", KEYGEN, "keygen", name, str(secret), str(public), str(cache)]
        subprocess.run(argv, check=True, capture_output=True)

    keygen("fleetforge-cache-1")
    first = public.read_text()
    assert first.startswith("fleetforge-cache-1:") and oct(secret.stat().st_mode & 0o777) == "0o600"
    keygen("fleetforge-cache-1")
    assert public.read_text() == first  # same name: kept
    assert (cache / "old.narinfo").exists()
    keygen("fleetforge-cache-2")
    assert list(cache.iterdir()) == []  # emptied: the refresh re-signs every path with the new key
    assert public.read_text().startswith("fleetforge-cache-2:")
    assert (tmp_path / "k" / "public-key.old").read_text() == first  # the old pair is kept aside
    assert oct(secret.stat().st_mode & 0o777) == "0o600"


# ---------------------------------------------------------------- hostile names and answers

HOSTILE = ["c;touch${IFS}/tmp/PWNED", "c'$(id)", "@fake/cache", 'c"+builtins.abort"x']


@pytest.mark.parametrize("name", HOSTILE)
def test_a_cache_host_name_that_makes_no_key_name_is_refused_naming_host_and_key(name):
    data = {name: {"lan_address": "10.77.0.10"}, "web": DATA["web"]}
    with pytest.raises(SettingsError) as err:
        roles({"nix_cache": [name]}, data)
    assert [(h, k) for h, k, _ in err.value.problems] == [(name, "nix_cache_key_name")]
    assert "set nix_cache_key_name" in str(err.value)
    named = {**data, name: {**data[name], "nix_cache_key_name": "fleet-cache-1"}}
    assert roles({"nix_cache": [name]}, named).key_name == "fleet-cache-1"


@pytest.mark.parametrize("name", [*HOSTILE, "fleetforge-cache-1"])
def test_the_key_name_is_one_quoted_argument_of_each_command(name):
    """Defence in depth: even a key name that validation would refuse stays one argument."""
    import shlex

    from fleetforge.nixcache.deploy import CANARY, KEYGEN, canary_command, keygen_command
    from fleetforge.nixcache.roles import CACHE_DIR, CANARY_FILE, PUBLIC_KEY, SECRET_KEY

    keygen = shlex.split(keygen_command(name).get_raw_value())
    assert keygen == ["sh", "-c", KEYGEN, "fleetforge-keygen", name, SECRET_KEY, PUBLIC_KEY, CACHE_DIR]
    canary = shlex.split(canary_command(name).get_raw_value())
    assert canary == ["sh", "-c", CANARY, "fleetforge-canary", name, CANARY_FILE]


def test_the_scripts_take_a_hostile_key_name_as_data(tmp_path):
    """KEYGEN and CANARY run for real (nix-store, nix-build) with a name full of shell and Nix
    syntax: the key and the canary's output carry the name; no marker file appears."""
    import os
    import subprocess

    from fleetforge.nixcache.deploy import CANARY, KEYGEN

    marker = tmp_path / "PWNED"
    name = f'x";touch {marker};"${{builtins.abort "n"}}$(touch {marker})'
    secret, public = tmp_path / "secret-key", tmp_path / "public-key"
    argv = ["sh", "-c", KEYGEN, "keygen", name, str(secret), str(public), str(tmp_path / "cache")]
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    assert public.read_text().startswith(name + ":")
    env = {**os.environ, "NIX_CONFIG": "substituters =\nconnect-timeout = 1"}
    out = subprocess.run(
        ["sh", "-c", CANARY, "canary", name, str(tmp_path / "canary")],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    path = (tmp_path / "canary").read_text().strip()
    assert open(path).read() == name + "\n"
    assert not marker.exists()


@pytest.mark.parametrize(
    "public, mode",
    [
        ("fleetforge-cache-1:T2ZJ+abc= # trusted-users = *", "600"),
        ('c"$(x):T2ZJ', "600"),
        ("fleetforge-cache-1:T2ZJ+abc=", "600; rm -rf /"),
        ("${builtins.abort 1}:AAAA", "600"),
    ],
)
def test_the_key_fact_refuses_host_output_that_is_not_a_key_or_a_mode(public, mode):
    with pytest.raises(FactProcessError):
        NixCacheKey().process(["@@public", public, "@@secret", mode, "@@cache", "@@done"])
    with pytest.raises(FactProcessError):  # a second line would reach every client's nix.conf
        NixCacheKey().process(["@@public", "k-1:AAAA", "trusted-users = *", "@@secret", "@@cache", "@@done"])


def _inventory_hosts(data):
    from fleetforge.gather import InventoryHost

    groups = {"cache": ["nix_cache"]}
    return [InventoryHost(n, d, groups.get(n, []), settings_from_data(n, d)) for n, d in data.items()]


@pytest.mark.parametrize(
    "answer, public, canary",
    [
        ("fleetforge-cache-1:T2ZJ\n/nix/store/0123456789abcdfghijklmnpqrsvwxyz-fleetforge-cache-canary\n", True, True),
        ("k:AAAA; trusted-users = *\n/nix/store/x; touch /tmp/PWNED\n", False, False),
        ("fleetforge-cache-1:T2ZJ\n/etc/shadow\n", True, False),
    ],
)
def test_verify_takes_only_a_key_and_a_store_path_from_the_cache_host(answer, public, canary):
    from types import SimpleNamespace

    from fleetforge.nixcache import verify as nixcache_verify

    lines = answer.splitlines()
    cache = nixcache_verify.prepare(
        _inventory_hosts(DATA), lambda name, data: SimpleNamespace(run=lambda cmd: SimpleNamespace(stdout=answer))
    )
    assert (cache.public_key, cache.canary) == (lines[0] if public else "", lines[1] if canary else "")


def test_verify_hashes_the_cache_hosts_files_naming_a_deleted_one(tmp_path):
    import os

    from fleetforge.nixcache import verify as nixcache_verify
    from fleetforge.nixcache.roles import NGINX_SITE, SECRET_KEY, cache_host_files
    from tests.test_verify_logic import TreeHost

    cache = nixcache_verify.CacheVerification(roles({"nix_cache": ["cache"]}))
    host = TreeHost(tmp_path)
    host.write({**cache_host_files(cache.roles), SECRET_KEY: "secret"})
    os.chmod(tmp_path / SECRET_KEY.lstrip("/"), 0o600)
    results = cache.checks("cache", host)
    assert [(r.item, r.severity) for r in results if r.severity != "ok"] == [] and len(results) == 4
    os.remove(tmp_path / NGINX_SITE.lstrip("/"))
    bad = [r for r in cache.checks("cache", host) if r.severity != "ok"]
    assert [(r.item, r.actual) for r in bad] == [(f"file {NGINX_SITE} sha256", "absent")]
    host.write({"/etc/NIXOS": ""})  # on NixOS these files are modules, checked by verify itself
    assert [r.item for r in cache.checks("cache", host)] == ["nix cache secret key mode"]


def test_the_mount_unit_and_firewall_rules_keep_their_structure():
    import shlex

    from fleetforge.nixcache.roles import MOUNT_UNIT, firewall_rules, nfs_client_files

    cache = {"lan_address": "10.77.0.10", "nix_cache_nfs": True, "nix_cache_key_name": "k-1"}
    r = roles({"nix_cache": ["ca%nche"]}, {"ca%nche": cache, "web": DATA["web"]})
    unit = nfs_client_files(r)[MOUNT_UNIT]
    assert "Description=fleetforge: Nix binary cache of ca%%nche over NFS" in unit.splitlines()
    iptables, nftables = firewall_rules(sorted(r.clients.values()), [5000, 2049])
    assert [shlex.split(rule) for rule in iptables.splitlines()] == [
        ["iptables", "-A", "nixos-fw", "-p", "tcp", "-s", "10.77.0.11", "--dport", str(port), "-j", "nixos-fw-accept"]
        for port in (5000, 2049)
    ]
    assert nftables.splitlines() == [
        "ip saddr 10.77.0.11 tcp dport 5000 accept",
        "ip saddr 10.77.0.11 tcp dport 2049 accept",
    ]
    with pytest.raises(ValueError):  # only addresses reach the rules (settings check lan_address too)
        firewall_rules(["10.0.0.1 accept; flush ruleset"], [5000])
