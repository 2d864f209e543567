"""``fleetforge.inventory.group``: the connector of a group or host chosen by its data."""

import pytest
from pyinfra.api import Inventory

from fleetforge import pyinfra_speed
from fleetforge.connector.asyncssh_connector import AsyncSSHConnector
from fleetforge.inventory import connector_problems, group
from fleetforge.settings import SettingsError


def test_group_data_selects_asyncssh_and_host_data_overrides_it():
    hosts, data = group(
        ["a", ("b", {"ssh_port": 2222}), ("c", {"fleetforge_connector": "ssh"}), "@local"],
        {"fleetforge_connector": "asyncssh", "ssh_user": "debian"},
    )
    assert hosts == [
        "@asyncssh/a",
        ("@asyncssh/b", {"ssh_port": 2222}),
        ("c", {"fleetforge_connector": "ssh"}),
        "@local",
    ]
    assert data == {"fleetforge_connector": "asyncssh", "ssh_user": "debian"}


def test_without_the_key_hosts_stay_on_ssh():
    assert group(["a", ("b", {"x": 1})]) == (["a", ("b", {"x": 1})], {})


def test_pyinfra_builds_asyncssh_hosts_under_their_plain_names():
    inventory = Inventory(group([("vps-1", {"ssh_hostname": "203.0.113.10"})], {"fleetforge_connector": "asyncssh"}))
    (host,) = list(inventory)
    assert host.name == "vps-1"
    assert host.connector_cls is AsyncSSHConnector
    assert host.data.ssh_hostname == "203.0.113.10"
    assert connector_problems([host]) == []


def test_a_bad_connector_name_names_the_host_and_key():
    with pytest.raises(SettingsError) as err:
        group(["a", ("b", {"fleetforge_connector": "paramiko"})])
    assert str(err.value) == "host b: fleetforge_connector: expected one of ssh, asyncssh, got 'paramiko'"


def test_the_key_set_without_group_is_reported_not_ignored():
    inventory = Inventory((["plain"], {"fleetforge_connector": "asyncssh"}))
    problems = connector_problems(list(inventory))
    assert [(h, k) for h, k, _ in problems] == [("plain", "fleetforge_connector")]
    assert "fleetforge.inventory.group" in problems[0][2]


def test_linear_group_building_keeps_pyinfras_groups():
    """fleetforge swaps pyinfra's list scans for set lookups while groups are built; the groups
    must come out as pyinfra builds them: plain lists, inventory order, each host once."""

    names = [f"h{i}" for i in range(6)]
    inventory = Inventory(
        (names, {}),
        even=(["h0", "h2", "h4", "h2"], {}),
        odd=(["h1", "h3", "h5"], {"x": 1}),
        both=(["h5", "h0"], {}),
    )
    assert type(inventory.groups["even"]) is list
    assert [h.name for h in inventory.groups["even"]] == ["h0", "h2", "h4"]
    assert [h.name for h in inventory.groups["odd"]] == ["h1", "h3", "h5"]
    assert [h.name for h in inventory.groups["both"]] == ["h0", "h5"]
    assert inventory.get_host("h3").data.x == 1
    assert inventory.get_host("h0").groups == ["even", "both"]
    assert Inventory.make_hosts_and_groups._fleetforge_linear
    assert isinstance(pyinfra_speed._HostList(), list)


def test_linear_host_init_pads_like_pyinfra():
    from pyinfra.api import Config, State

    inventory = Inventory((["a", "bbbb", "cc"], {}))
    State(inventory, Config())
    assert {h.name: h.print_prefix_padding for h in inventory} == {"a": "   ", "bbbb": "", "cc": "  "}
