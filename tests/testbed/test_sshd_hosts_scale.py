"""Fleets larger than a /24: addresses and limits (no hosts are started)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from fleetforge.testbed.sshd_hosts import MAX_HOSTS, SshdFleet, SshdFleetError


def test_a_22_holds_500_hosts_with_distinct_host_addresses(tmp_path: Path) -> None:
    fleet = SshdFleet(tmp_path, 500, prefix="ffs", subnet="10.99.0.0/22")
    net = ipaddress.ip_network("10.99.0.0/22")
    addresses = [fleet.address(i) for i in range(500)]
    assert addresses[0] == "10.99.0.2" and addresses[253] == "10.99.0.255" and addresses[254] == "10.99.1.0"
    assert addresses[-1] == "10.99.1.245"
    assert len(set(addresses)) == 500
    assert all(ipaddress.ip_address(a) in net for a in addresses)
    assert str(net.network_address + 1) not in addresses and str(net.broadcast_address) not in addresses
    assert fleet.netns(499) == "ffs-499" and len(fleet.netns(499)) <= 15  # a valid interface name too


@pytest.mark.parametrize(
    ("count", "subnet"), [(254, "10.99.0.0/24"), (MAX_HOSTS + 1, "10.99.0.0/22"), (MAX_HOSTS + 1, "10.96.0.0/20")]
)
def test_too_many_hosts_are_refused(tmp_path: Path, count: int, subnet: str) -> None:
    with pytest.raises(SshdFleetError, match="count must be"):
        SshdFleet(tmp_path, count, subnet=subnet)


def test_the_largest_fleet_fits_a_22(tmp_path: Path) -> None:
    fleet = SshdFleet(tmp_path, MAX_HOSTS, subnet="10.99.0.0/22")
    assert ipaddress.ip_address(fleet.address(MAX_HOSTS - 1)) < ipaddress.ip_network("10.99.0.0/22").broadcast_address
