"""Host data validation: one line per problem naming host, key and what was expected."""

import pytest

from fleetforge.settings import SettingsError, parse_size_mib, settings_from_data, validate_hosts


def test_bad_zram_size_names_host_key_and_expectation():
    with pytest.raises(SettingsError) as err:
        settings_from_data("vm-blk-1", {"zram_size": "lots", "ssh_port": 2222})
    assert (
        str(err.value) == 'host vm-blk-1: zram_size: expected a size like "2G", "512M" or a number of MiB, got \'lots\''
    )


@pytest.mark.parametrize(
    ("data", "key", "fragment"),
    [
        ({"zram_sise": "1G"}, "zram_sise", "unknown key"),
        ({"io_scheduler": "cfq"}, "io_scheduler", "'none', 'mq-deadline', 'bfq' or 'kyber'"),
        ({"swappiness": 300}, "swappiness", "less than or equal to 200"),
        ({"read_ahead_kb": "big"}, "read_ahead_kb", "valid integer"),
        ({"disks": {"vda": {"schedular": "none"}}}, "disks.vda.schedular", "read_ahead_kb, scheduler"),
        ({"zram_algorithm": "gzip"}, "zram_algorithm", "'zstd'"),
        ({"nix_substituters": ["cache.example"]}, "nix_substituters.0", "expected a substituter URL"),
    ],
)
def test_each_bad_key_is_named(data, key, fragment):
    with pytest.raises(SettingsError) as err:
        settings_from_data("web1", data)
    (line,) = str(err.value).splitlines()
    assert line.startswith(f"host web1: {key}: ")
    assert fragment in line


def test_connector_keys_and_declared_keys_are_not_typos():
    settings = settings_from_data(
        "h", {"ssh_user": "debian", "_sudo": True, "app_port": 80, "extra_data_keys": ["app_port"]}
    )
    assert settings.zram is True


def test_all_hosts_are_reported_together():
    with pytest.raises(SettingsError) as err:
        validate_hosts({"a": {"zram_size": "lots"}, "b": {}, "c": {"swappiness": -1}})
    assert [p[:2] for p in err.value.problems] == [("a", "zram_size"), ("c", "swappiness")]


@pytest.mark.parametrize(("text", "mib"), [(512, 512), ("512M", 512), ("2G", 2048), ("1.5GiB", 1536), ("1T", 1048576)])
def test_sizes(text, mib):
    assert parse_size_mib(text) == mib


@pytest.mark.parametrize("bad", ["lots", "0", -5, True, "2 parsecs"])
def test_bad_sizes(bad):
    with pytest.raises(ValueError, match="expected"):
        parse_size_mib(bad)


# Every pattern-checked key refuses a newline (it would add a line to the file the value lands
# in) and anything else outside its pattern, with the key and the value's repr in the message.
@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"nix_settings": {"max-jobs": "4\ntrusted-users = *"}}, "nix_settings.max-jobs"),
        ({"nix_settings": {"post-build-hook": "x\r!include /tmp/evil.conf"}}, "nix_settings.post-build-hook"),
        ({"nix_settings": {"trusted-users": ["root", "a\nb"]}}, "nix_settings.trusted-users"),
        ({"nix_settings": {"trusted-users": ["root alice"]}}, "nix_settings.trusted-users"),
        ({"nix_settings": {"max-jobs\n": 4}}, "nix_settings.max-jobs\n.[key]"),
        ({"sysctl": {"vm.swappiness": "10\nkernel.core_pattern = |/tmp/x"}}, "sysctl.vm.swappiness"),
        ({"sysctl": {"vm.swappiness\n": 10}}, "sysctl.vm.swappiness\n.[key]"),
        ({"nix_substituters": ["https://c.example.org\n"]}, "nix_substituters.0"),
        ({"nix_trusted_public_keys": ["k:abc=\n"]}, "nix_trusted_public_keys.0"),
        ({"iso_dir": "/srv/isos\n"}, "iso_dir"),
        ({"iso_dir": "/srv/../etc"}, "iso_dir"),
        ({"lan_address": "10.0.0.1\n"}, "lan_address"),
        ({"lan_address": "10.0.0.1 allow all"}, "lan_address"),
        ({"nix_cache_address": "-oProxyCommand=x"}, "nix_cache_address"),
        ({"nix_cache_address": "cache.lan\n"}, "nix_cache_address"),
        ({"nix_cache_key_name": "k-1\n"}, "nix_cache_key_name"),
        ({"nixos_flake_host": "web-1\n"}, "nixos_flake_host"),
        ({"nixos_flake_host": "web-1 --option x y"}, "nixos_flake_host"),
        ({"nixos_flake_host": "web#1"}, "nixos_flake_host"),
        ({"disks": {'vda"': {"scheduler": "none"}}}, 'disks.vda".[key]'),
        ({"health_checks": [{"http": "http://10.0.0.1/\n"}]}, "health_checks.0.http"),
    ],
)
def test_no_value_can_add_a_line(data, key):
    with pytest.raises(SettingsError) as err:
        settings_from_data("web1", data)
    problems = err.value.problems
    assert [(h, k) for h, k, _ in problems] == [("web1", key)], problems
    assert problems[0][2].startswith("expected ")


def test_odd_but_valid_values_pass_unchanged():
    s = settings_from_data(
        "h",
        {
            "nix_settings": {"max-jobs": 4, "sandbox": False, "trusted-users": ["root", "@wheel"], "x": "a = b"},
            "sysctl": {"net.ipv4.tcp_rmem": "4096 87380 6291456", "vm.max_map_count": 262144},
            "lan_address": "fd00::10",
            "nix_cache_address": "cache-1.lan",
            "disks": {"nvme0n1": {}, "dm-0": {}},
        },
    )
    assert s.nix_settings == {"max-jobs": 4, "sandbox": False, "trusted-users": ["root", "@wheel"], "x": "a = b"}
    assert s.sysctl["vm.max_map_count"] == 262144
    assert s.lan_address == "fd00::10"
    assert set(s.disks) == {"nvme0n1", "dm-0"}


def test_nix_conf_from_odd_values_has_exactly_the_planned_keys():
    """Values that pass validation land as one ``key = value`` line each: nix.conf parsed back
    (nix.conf(5): one setting per line, ``#`` comments) has the plan's keys and no other."""
    from fleetforge.components import desired_files
    from fleetforge.components.nix_settings import NIX_BEGIN
    from fleetforge.paths import NIX_CONF
    from fleetforge.planner import plan_host
    from tests.conftest import facts_from

    facts = facts_from("controller-docker-vda")
    data = {"nix_settings": {"x-a": "a = b", "x-b": ["@wheel", "root"], "x-c": "!include /etc/x"}}
    plan = plan_host("h", facts, settings_from_data("h", data))
    text = desired_files(plan, facts)[NIX_CONF]
    block = text[text.index(NIX_BEGIN) : text.index("# END fleetforge")]  # the host's own lines stay above
    lines = [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    keys = [line.split("=", 1)[0].strip() for line in lines]
    assert sorted(keys) == sorted(plan.nix.settings)
    assert "x-c = !include /etc/x" in lines  # a value, never a directive at the start of a line


def test_host_names_that_could_be_options_or_add_lines_are_refused():
    from pyinfra.api import Inventory

    from fleetforge.settings import inventory_settings

    with pytest.raises(SettingsError) as err:
        inventory_settings(Inventory((["ok", "-oProxyCommand=x", "a b", "x\ny", "@local"], {})))
    assert [h for h, _, _ in err.value.problems] == ["-oProxyCommand=x", "a b", "x\ny"]
    text = str(err.value)
    assert len(text.splitlines()) == 3  # the newline in a name is shown as \n, not printed
    assert "host 'x\\ny': (host name): expected a name without spaces" in text


@pytest.mark.parametrize(
    "data, key",
    [
        ({"nix_settings": {"access-tokens": "github.com=ghp_TOPSECRET\nx"}}, "nix_settings.access-tokens"),
        ({"secret_keys": ["my-pass"], "nix_settings": {"my-pass": "ghp_TOPSECRET\nx"}}, "nix_settings.my-pass"),
    ],
)
def test_a_mistyped_secret_is_named_but_its_value_never_shown(data, key):
    with pytest.raises(SettingsError) as caught:
        settings_from_data("web-1", data)
    text = str(caught.value)
    assert text.startswith(f"host web-1: {key}: expected a nix.conf value on one line") and "not shown" in text
    assert "TOPSECRET" not in text and "TOPSECRET" not in repr(caught.value.problems)
