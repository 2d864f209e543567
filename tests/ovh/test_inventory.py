"""``fleetforge.ovh.inventory`` against the local OVH API stand-in, through the real ``ovh`` client:
groups, host data, skipped hosts and hostile answers."""

from pyinfra.api import Inventory

from fleetforge.connector.asyncssh_connector import AsyncSSHConnector
from fleetforge.testbed import ovh_api
from fleetforge.testbed.ovh_api import OvhApiStandIn, StandInAccount
from tests.ovh.helpers import SERVER, STOPPED, VPS_1, VPS_2, VPS_3, fleet_of, names

MODEL_1 = {"name": "vps-2025-model1", "vcores": 2, "memory_mib": 4096, "disk_gb": 80}


def test_groups_by_datacenter_and_by_model(standin):
    fleet = fleet_of(standin)
    groups = fleet.groups()
    assert {name: names(group) for name, group in groups.items()} == {
        "ovh_dc_gra11": [VPS_1, VPS_2],
        "ovh_dc_rbx8": [SERVER],
        "ovh_dc_sbg5": [VPS_3],
        "ovh_model_rise_1": [SERVER],
        "ovh_model_vps_2025_model1": [VPS_1, VPS_3],
        "ovh_model_vps_2025_model2": [VPS_2],
    }
    assert names(fleet.all) == [VPS_1, VPS_2, VPS_3, SERVER]


def test_host_data_of_a_vps_and_a_dedicated_server(standin):
    data = dict(fleet_of(standin).all[0])
    assert data[VPS_1] == {
        "ssh_hostname": "203.0.113.11",
        "ovh_kind": "vps",
        "ovh_datacenter": "gra11",
        "ovh_ipv6": "2001:db8::11",
        "ovh_model": MODEL_1,
    }
    assert data[VPS_2]["ovh_ipv6"] is None
    assert data[VPS_2]["ovh_model"] == {"name": "vps-2025-model2", "vcores": 4, "memory_mib": 8192, "disk_gb": 160}
    assert data[VPS_3]["ssh_hostname"] == "203.0.113.13"  # IPv4 first, whatever the API's order
    assert data[SERVER] == {
        "ssh_hostname": "203.0.113.20",
        "ovh_kind": "dedicated",
        "ovh_datacenter": "rbx8",
        "ovh_ipv6": "2001:db8:1:2::/64",  # a dedicated server is given a routed /64 block
        "ovh_model": {"name": "rise-1", "vcores": 12, "memory_mib": 32768, "disk_gb": 512},
    }


def test_group_data_is_kept_and_host_data_overrides_it_in_pyinfra(standin):
    fleet = fleet_of(standin, group_data={"ssh_user": "debian", "_sudo": True, "ssh_hostname": "192.0.2.99"})
    inventory = Inventory(fleet.all, **fleet.groups())
    host = inventory.get_host(VPS_1)
    assert host.data.ssh_user == "debian"
    assert host.data._sudo is True
    assert host.data.ssh_hostname == "203.0.113.11"
    assert host.data.ovh_model == MODEL_1
    assert sorted(host.groups) == ["ovh_dc_gra11", "ovh_model_vps_2025_model1"]
    assert fleet.group_data == {"ssh_user": "debian", "_sudo": True, "ssh_hostname": "192.0.2.99"}


def test_the_connector_choice_of_fleetforge_inventory_group_applies(standin):
    fleet = fleet_of(standin, group_data={"fleetforge_connector": "asyncssh"})
    assert names(fleet.all)[0] == f"@asyncssh/{VPS_1}"
    host = Inventory(fleet.all).get_host(VPS_1)
    assert host.connector_cls is AsyncSSHConnector


def test_groups_are_independent_copies(standin):
    fleet = fleet_of(standin)
    fleet.all[0][0][1]["ovh_model"]["vcores"] = 99
    assert dict(fleet.all[0])[VPS_1]["ovh_model"]["vcores"] == 2


def test_a_stopped_vps_is_skipped_with_its_reason_on_stderr(standin, capsys):
    fleet = fleet_of(standin)
    assert fleet.skipped == [(STOPPED, "state stopped")]
    assert STOPPED not in names(fleet.all)
    assert all(STOPPED not in names(group) for group in fleet.groups().values())
    assert capsys.readouterr().err.splitlines() == [f"fleetforge ovh: skipped {STOPPED}: state stopped"]
    assert f"GET /vps/{STOPPED}/ips" not in standin.api_calls()  # nothing more is asked about it


def test_dedicated_servers_not_ok_or_powered_off_are_skipped(capsys):
    account = StandInAccount(
        dedicated={
            "ns1.ip-203-0-113.eu": ovh_api.dedicated("ns1.ip-203-0-113.eu", state="error"),
            "ns2.ip-203-0-113.eu": ovh_api.dedicated("ns2.ip-203-0-113.eu", power="poweroff"),
            "ns3.ip-203-0-113.eu": ovh_api.dedicated("ns3.ip-203-0-113.eu", commercial_range=None),
        }
    )
    with OvhApiStandIn(account) as api:
        fleet = fleet_of(api)
    assert fleet.skipped == [("ns1.ip-203-0-113.eu", "state error"), ("ns2.ip-203-0-113.eu", "power state poweroff")]
    (entry,) = fleet.all[0]
    assert entry[0] == "ns3.ip-203-0-113.eu"
    assert "ovh_model" not in entry[1]  # no hardware specification (404): the key is left out
    assert list(fleet.groups()) == ["ovh_dc_rbx8"]  # and no commercial range: no model group
    assert len(capsys.readouterr().err.splitlines()) == 2


def test_hostile_service_names_are_refused_and_never_requested(capsys):
    hostile = ["evil;rm -rf /", "../../me", "a b.example", "x\nnewline", "-leading.example", "a" * 300, 42, None]
    account = StandInAccount(vps={VPS_1: ovh_api.vps(VPS_1)}, extra_vps_names=hostile)
    with OvhApiStandIn(account) as api:
        fleet = fleet_of(api)
    assert names(fleet.all) == [VPS_1]
    assert len(fleet.skipped) == len(hostile)
    assert {reason for _, reason in fleet.skipped} == {"vps service name is not an RFC 1123 host name"}
    assert api.api_calls() == ["GET /vps", f"GET /vps/{VPS_1}", f"GET /vps/{VPS_1}/ips", "GET /dedicated/server"]
    err = capsys.readouterr().err
    assert len(err.splitlines()) == len(hostile)  # the newline in a name did not add a line
    assert "skipped 'x\\nnewline': vps service name" in err
    assert "skipped 'evil;rm -rf /'" in err


def test_hostile_addresses_zones_and_models_refuse_the_host():
    account = StandInAccount(
        vps={
            "vps-a.vps.ovh.net": ovh_api.vps("vps-a.vps.ovh.net", ips=["203.0.113.1 -oProxyCommand=sh"]),
            "vps-b.vps.ovh.net": ovh_api.vps("vps-b.vps.ovh.net", ips=["127.0.0.1"]),
            "vps-c.vps.ovh.net": ovh_api.vps("vps-c.vps.ovh.net", zone='os-gra11"; builtins.abort "x'),
            "vps-d.vps.ovh.net": ovh_api.vps("vps-d.vps.ovh.net", model="model name with spaces"),
            "vps-e.vps.ovh.net": ovh_api.vps("vps-e.vps.ovh.net", ips=[]),
            "vps-f.vps.ovh.net": ovh_api.vps("vps-f.vps.ovh.net", ips=["2001:db8::f"]),
        }
    )
    account.vps["vps-g.vps.ovh.net"] = ovh_api.vps("vps-g.vps.ovh.net")
    account.vps["vps-g.vps.ovh.net"]["detail"]["model"]["vcore"] = True
    with OvhApiStandIn(account) as api:
        fleet = fleet_of(api)
    reasons = dict(fleet.skipped)
    assert "is not an IP address" in reasons["vps-a.vps.ovh.net"]
    assert reasons["vps-b.vps.ovh.net"] == "127.0.0.1/32 from the API is not a host's public address"
    assert reasons["vps-c.vps.ovh.net"].startswith("zone ")
    assert reasons["vps-d.vps.ovh.net"].startswith("model 'model name with spaces': name is not valid")
    assert reasons["vps-e.vps.ovh.net"] == "no IPv4 and no IPv6 address to connect to"
    assert reasons["vps-g.vps.ovh.net"].startswith("model 'vps-2025-model1': vcores is not valid")
    (entry,) = fleet.all[0]  # an IPv6-only VPS is reached over IPv6
    assert entry == ("vps-f.vps.ovh.net", entry[1]) and entry[1]["ssh_hostname"] == "2001:db8::f"


def test_an_empty_account_is_an_empty_fleet_and_one_line(capsys):
    with OvhApiStandIn(StandInAccount()) as api:
        fleet = fleet_of(api)
        endpoint = api.endpoint
    assert fleet.all == ([], {})
    assert fleet.groups() == {}
    assert fleet.skipped == []
    assert capsys.readouterr().err == (
        f"fleetforge ovh: the OVH account at {endpoint} has no VPS and no dedicated server: the inventory is empty\n"
    )


def test_kinds_limits_the_calls_to_the_vps(standin):
    fleet = fleet_of(standin, kinds=("vps",))
    assert SERVER not in names(fleet.all)
    assert not any("/dedicated" in call for call in standin.api_calls())


def test_credentials_from_the_ovh_environment_variables(standin, monkeypatch):
    monkeypatch.setenv("OVH_ENDPOINT", standin.endpoint)
    monkeypatch.setenv("OVH_APPLICATION_KEY", ovh_api.APPLICATION_KEY)
    monkeypatch.setenv("OVH_APPLICATION_SECRET", ovh_api.APPLICATION_SECRET)
    monkeypatch.setenv("OVH_CONSUMER_KEY", ovh_api.CONSUMER_KEY)
    from fleetforge import ovh

    assert VPS_1 in names(ovh.inventory().all)


def test_credentials_from_an_ovh_conf_file(standin, tmp_path):
    conf = tmp_path / "ovh.conf"
    conf.write_text(
        f"[default]\nendpoint={standin.endpoint}\n\n[{standin.endpoint}]\n"
        f"application_key={ovh_api.APPLICATION_KEY}\napplication_secret={ovh_api.APPLICATION_SECRET}\n"
        f"consumer_key={ovh_api.CONSUMER_KEY}\n"
    )
    from fleetforge import ovh

    assert VPS_1 in names(ovh.inventory(config_file=str(conf)).all)


def test_dedicated_addresses_blocks_are_not_connected_to():
    account = StandInAccount(
        dedicated={
            "ns4.ip-203-0-113.eu": ovh_api.dedicated(
                "ns4.ip-203-0-113.eu", ip=None, ips=["198.51.100.8/29", "203.0.113.30/32", "2001:db8:2::/64"]
            ),
            "ns5.ip-203-0-113.eu": ovh_api.dedicated("ns5.ip-203-0-113.eu", ip=None, ips=["2001:db8:3::/64"]),
            "ns6.ip-203-0-113.eu": ovh_api.dedicated("ns6.ip-203-0-113.eu", ip="203.0.113.6\n-oProxyCommand=x"),
        }
    )
    with OvhApiStandIn(account) as api:
        fleet = fleet_of(api)
    data = dict(fleet.all[0])["ns4.ip-203-0-113.eu"]
    assert (data["ssh_hostname"], data["ovh_ipv6"]) == ("203.0.113.30", "2001:db8:2::/64")
    assert fleet.skipped == [
        ("ns5.ip-203-0-113.eu", "no IPv4 and no IPv6 address to connect to"),
        ("ns6.ip-203-0-113.eu", "'203.0.113.6\\n-oProxyCommand=x' from the API is not an IP address"),
    ]


def test_a_service_gone_between_the_list_and_its_details_is_skipped():
    account = StandInAccount(vps={VPS_1: ovh_api.vps(VPS_1)}, extra_vps_names=["vps-00000000.vps.ovh.net"])
    with OvhApiStandIn(account) as api:
        fleet = fleet_of(api)
    assert names(fleet.all) == [VPS_1]
    assert fleet.skipped == [("vps-00000000.vps.ovh.net", "404 on GET /vps/vps-00000000.vps.ovh.net")]
