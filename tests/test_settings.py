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
        ({"nix_substituters": ["cache.example"]}, "nix_substituters.0", "pattern"),
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
