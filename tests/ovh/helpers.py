"""Shared data and helpers of the OVH inventory tests."""

from fleetforge import ovh
from fleetforge.testbed import ovh_api
from fleetforge.testbed.ovh_api import OvhApiStandIn, StandInAccount

VPS_1 = "vps-1a2b3c4d.vps.ovh.net"
VPS_2 = "vps-5e6f7a8b.vps.ovh.net"
VPS_3 = "vps-9c0d1e2f.vps.ovh.net"
STOPPED = "vps-0000dead.vps.ovh.net"
SERVER = "ns3001234.ip-203-0-113.eu"
SECRETS = (ovh_api.APPLICATION_SECRET, ovh_api.CONSUMER_KEY)


def default_account() -> StandInAccount:
    """Two VPS in gra11 (two models), one in sbg5, a stopped VPS and a dedicated server in rbx8."""
    return StandInAccount(
        vps={
            VPS_1: ovh_api.vps(VPS_1, ips=["203.0.113.11", "2001:db8::11"]),
            VPS_2: ovh_api.vps(
                VPS_2, model="vps-2025-model2", vcore=4, memory_mb=8192, disk_gb=160, ips=["203.0.113.12"]
            ),
            VPS_3: ovh_api.vps(VPS_3, zone="Region OpenStack: os-sbg5", ips=["2001:db8::13", "203.0.113.13"]),
            STOPPED: ovh_api.vps(STOPPED, state="stopped"),
        },
        dedicated={SERVER: ovh_api.dedicated(SERVER, hardware=ovh_api.hardware_spec())},
    )


def fleet_of(api: OvhApiStandIn, **kwargs) -> ovh.OvhFleet:
    """``ovh.inventory`` against the stand-in with its keys (``kwargs`` override them)."""
    options = {
        "endpoint": api.endpoint,
        "application_key": ovh_api.APPLICATION_KEY,
        "application_secret": ovh_api.APPLICATION_SECRET,
        "consumer_key": ovh_api.CONSUMER_KEY,
    }
    options.update(kwargs)
    return ovh.inventory(**options)


def names(group) -> list[str]:
    """The host names of a pyinfra group ``(entries, data)``."""
    return [entry[0] if isinstance(entry, tuple) else entry for entry in group[0]]
