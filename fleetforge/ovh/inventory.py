"""A pyinfra inventory of an OVH account's running VPS and dedicated servers.

In an ``inventory.py``::

    from fleetforge import ovh

    fleet = ovh.inventory(group_data={"ssh_user": "debian", "_sudo": True})
    ovh_all = fleet.all                  # every running host
    globals().update(fleet.groups())     # ovh_dc_gra11, ovh_model_vps_2025_model1, ...

Each group is built by ``fleetforge.inventory.group`` (``fleetforge_connector`` in the group data
picks ``@asyncssh``; host data is validated before pyinfra connects). Hosts that are not running,
or whose API answer cannot be trusted, are left out, listed in ``fleet.skipped`` and printed on
stderr, one line each. An account with no VPS and no dedicated server gives an empty fleet and a
line on stderr, not an error. Everything the API answers is treated as untrusted input.
"""

from __future__ import annotations

import copy
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetforge.ovh.api import KINDS, Account, is_host_name, load_account, parse_ip, resolve_credentials
from fleetforge.ovh.errors import OvhError, clean
from fleetforge.ovh.hardware import OvhModel

Group = tuple[list[Any], dict[str, Any]]
_CODE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")  # a datacenter code: gra11, rbx8, us-west-or-2
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")  # as OvhModel.name


@dataclass(frozen=True)
class OvhHost:
    """One running host: ``name`` (its service name), ``data`` (pyinfra host data), and the model
    name it is grouped by (``None``: a dedicated server without a commercial range)."""

    name: str
    data: dict[str, Any]
    model_name: str | None


def identifier(prefix: str, text: str) -> str:
    """A group name: ``prefix`` + ``text`` lowercased, each character not ``[a-z0-9]`` made ``_``."""
    return prefix + re.sub(r"[^a-z0-9]", "_", text.lower())


@dataclass(frozen=True, eq=False)
class OvhFleet:
    """The hosts of an OVH account as pyinfra groups.

    ``hosts``: the running hosts; ``skipped``: ``(name, reason)`` of the others (``"state stopped"``;
    a name that is not a host name is given as its ``repr``, cut at 120 characters);
    ``group_data``: the user's group data, given to every group; ``endpoint``: the API's URL;
    ``cached``: whether the answers came from the cache.
    """

    hosts: tuple[OvhHost, ...]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    group_data: dict[str, Any] = field(default_factory=dict)
    endpoint: str = ""
    cached: bool = False

    @property
    def all(self) -> Group:
        """Every running host: a pyinfra group ``([entries], group data)``."""
        return self._group(self.hosts)

    def groups(self) -> dict[str, Group]:
        """``{group name: group}`` by datacenter (``ovh_dc_gra11``) and by model
        (``ovh_model_vps_2025_model1``), sorted by name. Each group is ``([entries], group data)``."""
        members: dict[str, list[OvhHost]] = {}
        for host in self.hosts:
            members.setdefault(identifier("ovh_dc_", host.data["ovh_datacenter"]), []).append(host)
            if host.model_name:
                members.setdefault(identifier("ovh_model_", host.model_name), []).append(host)
        return {name: self._group(hosts) for name, hosts in sorted(members.items())}

    def _group(self, hosts: Iterable[OvhHost]) -> Group:
        from fleetforge.inventory import group

        return group([(host.name, copy.deepcopy(host.data)) for host in hosts], copy.deepcopy(self.group_data))


def _datacenter(text: Any) -> str | None:
    """``gra11`` from a VPS zone (``Region OpenStack: os-gra11``) or a dedicated server's
    ``datacenter`` (``gra3``); ``None`` if it is not a datacenter code."""
    if not isinstance(text, str):
        return None
    code = text.rsplit(":", 1)[-1].strip().lower().removeprefix("os-")
    return code if _CODE.fullmatch(code) else None


def _addresses(ips: Any, primary: Any = None) -> tuple[str, str | None] | str:
    """``(ssh_hostname, ovh_ipv6)`` from ``/ips`` (and a dedicated server's primary ``ip``), or the
    reason to refuse the host. ``ssh_hostname``: the first IPv4 address (the primary one first;
    blocks such as a failover ``/29`` are not addresses), else the first IPv6 address.
    ``ovh_ipv6``: the first IPv6 address, or the routed block (``2001:db8:1:2::/64``) where the API
    gives a block, as it does for dedicated servers. Any entry that is not an IP address, or is a
    loopback, link-local, multicast, reserved or unspecified one, refuses the host."""
    if not isinstance(ips, list):
        return "GET .../ips did not answer a list"
    v4: list[str] = []
    v6: list[tuple[str, bool]] = []
    for raw in ([primary] if primary is not None else []) + ips:
        iface = parse_ip(raw)
        if iface is None:
            return f"{clean(repr(raw), 80)} from the API is not an IP address"
        ip = iface.ip
        if ip.is_loopback or ip.is_unspecified or ip.is_multicast or ip.is_link_local or ip.is_reserved:
            return f"{iface} from the API is not a host's public address"
        if ip.version == 4:
            if iface.network.prefixlen == 32:
                v4.append(str(ip))
        else:
            whole = iface.network.prefixlen == 128
            v6.append((str(ip) if whole else str(iface.network), whole))
    ipv6 = v6[0][0] if v6 else None
    connectable = v4 + [address for address, whole in v6 if whole]
    if not connectable:
        return "no IPv4 and no IPv6 address to connect to"
    return connectable[0], ipv6


def _vps_model(model: Any) -> OvhModel | str:
    from pydantic import ValidationError

    if not isinstance(model, dict):
        return "no model in the API answer"
    try:
        return OvhModel(
            name=model.get("name"), vcores=model.get("vcore"), memory_mib=model.get("memory"), disk_gb=model.get("disk")
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        return f"model {clean(repr(model.get('name')), 60)}: {where} is not valid ({clean(repr(error['input']), 60)})"


def _common(record: dict[str, Any], running: str) -> dict[str, Any] | str:
    if record.get("error"):
        return clean(record["error"])
    detail = record.get("detail")
    if not isinstance(detail, dict):
        return "the API gave no details"
    state = detail.get("state")
    if state != running:
        return f"state {clean(state, 40)}"
    return detail


def _vps_host(name: str, record: dict[str, Any]) -> OvhHost | str:
    detail = _common(record, "running")
    if isinstance(detail, str):
        return detail
    datacenter = _datacenter(detail.get("zone"))
    if datacenter is None:
        return f"zone {clean(repr(detail.get('zone')), 80)} names no datacenter"
    model = _vps_model(detail.get("model"))
    if isinstance(model, str):
        return model
    addresses = _addresses(record.get("ips"))
    if isinstance(addresses, str):
        return addresses
    data = {"ssh_hostname": addresses[0], "ovh_kind": "vps", "ovh_datacenter": datacenter, "ovh_ipv6": addresses[1]}
    data["ovh_model"] = model.model_dump()
    return OvhHost(name, data, model.name)


def _size(value: Any, units: Mapping[str, float]) -> int | None:
    """``{"unit": "GB", "value": 480}`` in the unit ``units`` maps to 1, or ``None`` (also for a
    value that is not finite: JSON's ``1e400``, ``Infinity``, ``NaN``, or one that overflows)."""
    if not isinstance(value, dict) or value.get("unit") not in units:
        return None
    number = value.get("value")
    if not isinstance(number, int | float) or isinstance(number, bool):
        return None
    size = number * units[value["unit"]]
    return None if isinstance(size, float) and not math.isfinite(size) else int(size)


def _dedicated_model(hardware: Any, name: str | None) -> OvhModel | None:
    """The nominal size from ``/specifications/hardware``: threads (processors x threads per
    processor), ``memorySize`` (MB, meaning MiB as for VPS), the largest disk group's ``diskSize``
    (GB). ``None`` if anything is missing or not valid."""
    from pydantic import ValidationError

    if not isinstance(hardware, dict) or name is None:
        return None
    groups = hardware.get("diskGroups") if isinstance(hardware.get("diskGroups"), list) else []
    disks = [_size(group.get("diskSize"), {"GB": 1, "TB": 1000}) for group in groups if isinstance(group, dict)]
    processors, threads = hardware.get("numberOfProcessors"), hardware.get("threadsPerProcessor")
    try:
        return OvhModel(
            name=name,
            vcores=processors * threads if isinstance(processors, int) and isinstance(threads, int) else None,
            memory_mib=_size(hardware.get("memorySize"), {"MB": 1, "GB": 1024, "TB": 1024**2}),
            disk_gb=max((disk for disk in disks if disk), default=None),
        )
    except ValidationError:
        return None


def _dedicated_host(name: str, record: dict[str, Any]) -> OvhHost | str:
    detail = _common(record, "ok")
    if isinstance(detail, str):
        return detail
    power = detail.get("powerState", "poweron")
    if power != "poweron":
        return f"power state {clean(power, 40)}"
    datacenter = _datacenter(detail.get("datacenter"))
    if datacenter is None:
        return f"datacenter {clean(repr(detail.get('datacenter')), 80)} is not a datacenter code"
    addresses = _addresses(record.get("ips"), detail.get("ip"))
    if isinstance(addresses, str):
        return addresses
    commercial = detail.get("commercialRange")
    model_name = commercial if isinstance(commercial, str) and _MODEL.fullmatch(commercial) else None
    data = {"ssh_hostname": addresses[0], "ovh_kind": "dedicated", "ovh_datacenter": datacenter}
    data["ovh_ipv6"] = addresses[1]
    model = _dedicated_model(record.get("hardware"), model_name)
    if model is not None:
        data["ovh_model"] = model.model_dump()
    return OvhHost(name, data, model_name)


def build_fleet(account: Account, group_data: Mapping[str, Any] | None = None) -> OvhFleet:
    """The fleet of ``account``'s answers (pure: no I/O). Hosts are kept in the API's order, VPS
    first; a host refused for any reason goes to ``skipped`` with that reason."""
    hosts: list[OvhHost] = []
    skipped: list[tuple[str, str]] = []
    seen: set[str] = set()
    for kind, records, build in (("vps", account.vps, _vps_host), ("dedicated", account.dedicated, _dedicated_host)):
        for record in records:
            name = record.get("name") if isinstance(record, dict) else record
            if not is_host_name(name):
                skipped.append((clean(repr(name), 120), f"{kind} service name is not an RFC 1123 host name"))
                continue
            if name in seen:
                skipped.append((name, "listed twice by the API"))
                continue
            seen.add(name)
            host = build(name, record)
            if isinstance(host, str):
                skipped.append((name, host))
            else:
                hosts.append(host)
    return OvhFleet(tuple(hosts), skipped, dict(group_data or {}), account.endpoint, account.cached)


def _report(fleet: OvhFleet, account: Account, kinds: tuple[str, ...]) -> None:
    """Print each skipped host, and an empty account, on stderr: one line each."""
    for name, reason in fleet.skipped:
        print(f"fleetforge ovh: skipped {name}: {reason}", file=sys.stderr)
    if not account.vps and not account.dedicated:
        listed = " and no ".join({"vps": "VPS", "dedicated": "dedicated server"}[kind] for kind in kinds)
        print(
            f"fleetforge ovh: the OVH account at {account.endpoint} has no {listed}: the inventory is empty",
            file=sys.stderr,
        )


def inventory(
    group_data: Mapping[str, Any] | None = None,
    *,
    endpoint: str | None = None,
    application_key: str | None = None,
    application_secret: str | None = None,
    consumer_key: str | None = None,
    config_file: str | os.PathLike[str] | None = None,
    cache_s: float = 300,
    kinds: Iterable[str] = KINDS,
    timeout_s: float = 30,
) -> OvhFleet:
    """The running VPS and dedicated servers of an OVH account, as an ``OvhFleet``.

    ``group_data``: pyinfra group data given to every group (host data overrides it).
    ``endpoint``: ``ovh-eu``, ``ovh-ca``, ``ovh-us``... or a base URL (``https://...``, or
    ``http://`` on localhost, e.g. ``http://127.0.0.1:8080/1.0``); the keys: default to the ``OVH_*``
    environment variables, then ovh.conf, as the ``ovh`` client reads them (``config_file``: one
    more ovh.conf, read last). ``cache_s``: seconds the answers are reused (0: not cached).
    ``kinds``: ``"vps"`` and/or ``"dedicated"``. ``timeout_s``: per API request.

    Host data of each host: ``ssh_hostname``, ``ovh_kind``, ``ovh_datacenter``, ``ovh_ipv6``, and
    ``ovh_model`` (``{"name", "vcores", "memory_mib", "disk_gb"}``; dedicated servers only when the
    hardware specification gives it). Skipped hosts and an empty account are printed on stderr.

    Raises ``OvhError`` (one line, no secret in it) when the endpoint or credentials are missing,
    the keys are refused, the API rate-limits (429), fails (5xx) or cannot be reached.
    """
    kinds = tuple(kinds)
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown or not kinds:
        raise OvhError(f"kinds: expected some of {', '.join(KINDS)}, got {clean(kinds, 80)}", "config")
    if not isinstance(cache_s, int | float) or cache_s < 0:
        raise OvhError(f"cache_s: expected a number of seconds >= 0, got {clean(cache_s, 40)}", "config")
    creds = resolve_credentials(endpoint, application_key, application_secret, consumer_key, config_file)
    account = load_account(creds, kinds, cache_s, timeout_s)
    fleet = build_fleet(account, group_data)
    _report(fleet, account, tuple(kind for kind in KINDS if kind in kinds))
    return fleet
