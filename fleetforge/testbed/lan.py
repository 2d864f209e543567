"""The test hosts' private LAN: every VM's second NIC (``ens4``) on one Linux bridge.

Like hosts of a fleet on a provider's private network (OVH vRack), the VMs reach each other at
``10.77.0.0/24`` (the notes' testbed used that subnet): the bridge ``fflan0`` holds ``10.77.0.1``
(this machine, so the controller and test network namespaces can join the LAN too), and each
VM gets a tap device on it and an address from ``10.77.0.10`` up, chosen when the VM starts and
kept in the testbed state. The address and a unique MAC are set inside the guest after it is
restored from its golden state (every VM restored from one golden has the golden's MAC).

Needs root and ``ip`` (iproute2), like the rest of the testbed.
"""

from __future__ import annotations

import hashlib
import ipaddress
import subprocess

from .errors import VMError

BRIDGE = "fflan0"
SUBNET = ipaddress.ip_network("10.77.0.0/24")
HOST_ADDRESS = "10.77.0.1"
FIRST_VM_HOST = 10
GUEST_IFACE = "ens4"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise VMError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def ensure_bridge() -> None:
    """Create ``fflan0`` with ``10.77.0.1/24`` if it is missing (idempotent, and safe when VMs
    start in parallel: ``addr replace``, and a bridge created meanwhile is fine)."""
    if _ip("link", "show", BRIDGE, check=False).returncode != 0:
        _ip("link", "add", BRIDGE, "type", "bridge", check=False)
        _ip("link", "show", BRIDGE)  # raises if it still does not exist
    _ip("addr", "replace", f"{HOST_ADDRESS}/{SUBNET.prefixlen}", "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")


def tap_name(vm_key: str) -> str:
    """The VM's tap device: ``fft`` + 10 hex digits of ``vm_key`` (testbed root + VM name, so
    two testbeds on one machine do not take each other's taps; 15 characters at most)."""
    return "fft" + hashlib.sha1(vm_key.encode()).hexdigest()[:10]


def add_tap(vm_key: str) -> str:
    """Create (or recreate) the VM's tap device on the bridge; returns its name."""
    ensure_bridge()
    tap = tap_name(vm_key)
    _ip("link", "del", tap, check=False)
    _ip("tuntap", "add", "dev", tap, "mode", "tap")
    _ip("link", "set", tap, "master", BRIDGE)
    _ip("link", "set", tap, "up")
    return tap


def del_tap(vm_key: str) -> None:
    """Remove the VM's tap device (no error if it is gone)."""
    _ip("link", "del", tap_name(vm_key), check=False)


def allocate_address(taken: set[str]) -> str:
    """The lowest LAN address from ``10.77.0.10`` that is not in ``taken``."""
    for host in range(FIRST_VM_HOST, SUBNET.num_addresses - 1):
        address = str(SUBNET.network_address + host)
        if address not in taken:
            return address
    raise VMError(f"no free address left on the test LAN {SUBNET}")


def mac_for(address: str) -> str:
    """A locally administered MAC derived from the LAN address (unique per VM)."""
    octets = [int(x) for x in address.split(".")]
    return f"52:54:00:77:{octets[2]:02x}:{octets[3]:02x}"


def guest_script(address: str) -> str:
    """Shell code run in the guest after a restore: unique MAC, the address on ``ens4``."""
    return (
        f"ip link set {GUEST_IFACE} down && ip link set {GUEST_IFACE} address {mac_for(address)} && "
        f"ip addr flush dev {GUEST_IFACE} && ip addr add {address}/{SUBNET.prefixlen} dev {GUEST_IFACE} && "
        f"ip link set {GUEST_IFACE} up"
    )
