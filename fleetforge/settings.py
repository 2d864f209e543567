"""Host and group data that fleetforge reads, validated by pydantic before any host is touched.

Every key here can be set in ``inventory.py`` host data, ``group_data/<group>.py`` or with
``--data key=value``; pyinfra merges them (``--data`` > host > group > ``all``). An unknown key,
a wrong type or an impossible value raises ``SettingsError`` with one line per problem naming
the host, the key and what was expected.

Keys that belong to pyinfra or its connectors (``ssh_*``, ``_sudo``, ...) are ignored; keys used
by your own deploys can be declared in ``extra_data_keys`` so they are not reported as typos.
"""

from __future__ import annotations

import ipaddress
import re
import weakref
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from fleetforge.components.io_scheduler.settings import DiskSettings as DiskSettings  # re-exported
from fleetforge.components.io_scheduler.settings import IoSchedulerSettings
from fleetforge.components.nix_settings.settings import NixSettingsSettings
from fleetforge.components.podman.settings import PodmanSettings
from fleetforge.components.sysctl.settings import SysctlSettings
from fleetforge.components.zram.settings import ZRAM_ALGORITHMS as ZRAM_ALGORITHMS  # re-exported
from fleetforge.components.zram.settings import ZramSettings
from fleetforge.components.zram.settings import parse_size_mib as parse_size_mib  # re-exported
from fleetforge.errors import FleetforgeError
from fleetforge.layout.settings import LayoutSettings
from fleetforge.measure.settings import MeasureSettings
from fleetforge.ovh.hardware import OvhModel
from fleetforge.secrets import is_secret_key, secret_keys
from fleetforge.textcheck import AbsPath, check_text, has_control, matching

# Prefixes of data keys read by pyinfra's connectors; never fleetforge's.
CONNECTOR_PREFIXES = (
    "ssh_",
    "winrm_",
    "docker_",
    "dockerssh_",
    "podman_",
    "chroot_",
    "local_",
    "vagrant_",
    "terraform_",
    "fake_",
    "asyncssh_",
    "testbed_",
    "_",
)


def _ip_address(value: Any) -> str:
    try:
        return str(ipaddress.ip_address(check_text(value, None, "an IPv4 or IPv6 address")))
    except ValueError:
        raise ValueError(f"expected an IPv4 or IPv6 address, got {value!r}") from None


def _address(value: Any) -> str:
    """An IP address or a DNS name (RFC 1123 labels): never a leading ``-`` or a space."""
    try:
        return _ip_address(value)
    except ValueError:
        return check_text(value, _HOSTNAME, "an IP address or a host name like cache.example.org")


_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*")


def _ipv6(value: Any) -> str:
    try:
        text = check_text(value, None, "an IPv6 address or network")
        return str(ipaddress.IPv6Network(text, strict=False) if "/" in text else ipaddress.IPv6Address(text))
    except ValueError:
        raise ValueError(f"expected an IPv6 address or network like 2001:db8::/64, got {value!r}") from None


IPAddress = Annotated[str, BeforeValidator(_ip_address)]
IPv6 = Annotated[str, BeforeValidator(_ipv6)]
Address = Annotated[str, BeforeValidator(_address)]
KeyName = matching(r"[A-Za-z0-9][A-Za-z0-9._-]*", "a key name like fleetforge-cache-1")
# a Nix name that is also a safe flake fragment (no quotes, dots or '#'): fleetforge.nixos.flake
FLAKE_HOST_PATTERN = r"[A-Za-z_][A-Za-z0-9_-]*"
FlakeHost = matching(FLAKE_HOST_PATTERN, "a nixosConfigurations name like web-1")


# --- staged rollout (``fleetforge rollout``): health checks run after each wave's deploy ---
class HealthCheck(BaseModel):
    """One health check, exactly one of ``command`` (run on the host over a new SSH session, must
    exit 0), ``http`` (fetched from the machine running fleetforge, must answer 2xx) or
    ``ssh_reconnect`` (a fresh SSH login must succeed). Tried ``1 + retries`` times,
    ``delay_s`` apart; each attempt may take at most ``timeout_s`` seconds."""

    model_config = ConfigDict(extra="forbid")

    command: Annotated[str, Field(min_length=1)] | None = None
    http: matching(r"https?://\S+", "an http(s) URL like http://203.0.113.10/health") | None = None
    ssh_reconnect: bool | None = None
    retries: Annotated[int, Field(ge=0, le=100)] = 3
    timeout_s: Annotated[float, Field(gt=0, le=3600)] = 10
    delay_s: Annotated[float, Field(ge=0, le=600)] = 2

    @model_validator(mode="after")
    def _one_kind(self) -> HealthCheck:
        kinds = [k for k in ("command", "http", "ssh_reconnect") if getattr(self, k)]
        if len(kinds) != 1:
            raise ValueError(f"expected exactly one of command, http, ssh_reconnect=true, got {kinds or 'none'}")
        return self

    def describe(self) -> str:
        if self.command:
            return f"command {self.command!r}"
        return f"http {self.http}" if self.http else "ssh reconnect"


# --- end of staged rollout settings ---


class HostSettings(
    MeasureSettings, PodmanSettings, NixSettingsSettings, ZramSettings, SysctlSettings, IoSchedulerSettings
):
    """fleetforge's keys in host/group data; all optional, ``None`` means "let the planner pick".

    Each tuning component's keys are defined with it (``fleetforge/components/<name>/settings.py``)
    and inherited here; the keys below belong to the other areas. Sizes are MiB (or strings with
    a unit), ``read_ahead_kb`` is KiB.
    """

    model_config = ConfigDict(extra="forbid")

    extra_data_keys: list[str] = []
    # more setting names whose values are secrets, masked wherever fleetforge prints or records a
    # file's lines (fleetforge/secrets.py; access-tokens and netrc-file always are)
    secret_keys: list[matching(r"[A-Za-z0-9_.-]+", "a setting name like access-tokens")] = []
    # the disko layout of a disk (``fleetforge disko``, deploys/disko.py, deploys/disk_layout.py)
    disk_layout: LayoutSettings | None = None
    # NixOS hosts: the order of ``nixos-rebuild`` actions; the plan is verified after ``test``
    # (and after ``switch``); ``["boot"]`` for hosts that must not be switched live.
    nixos_activation: list[Literal["test", "switch", "boot"]] = ["test", "switch"]
    # flake hosts (/etc/nixos/flake.nix): the host's nixosConfigurations name, when it is not the
    # host's own name (uname -n); activated as nixos-rebuild ACTION --flake /etc/nixos#NAME
    nixos_flake_host: FlakeHost | None = None
    # staged rollout: checks after each wave's deploy (``fleetforge rollout``, fleetforge/health.py)
    health_checks: list[HealthCheck] = []
    # offline ISO bundle (deploys/iso_bundle.py): where it goes on the host (fleetforge
    # default /var/lib/hypervisor/isos), the local bundle directory, and whether to delete other files
    iso_dir: AbsPath = "/var/lib/hypervisor/isos"
    iso_bundle: str = "bundle"
    iso_prune: bool = False
    # the host's private (LAN) address, used where other hosts must reach it (nix cache, NFS)
    lan_address: IPAddress | None = None
    # shared Nix store (fleetforge/nixcache/roles.py): on the nix_cache host
    nix_cache_address: Address | None = None
    nix_cache_port: Annotated[int, Field(ge=1, le=65535)] = 5000
    nix_cache_priority: Annotated[int, Field(ge=0)] = 30
    nix_cache_key_name: KeyName | None = None
    nix_cache_nfs: bool = False
    nix_cache_server: Literal["nix-serve", "harmonia"] = "nix-serve"  # NixOS cache hosts
    # which pyinfra connector reaches the host; takes effect through fleetforge.inventory.group
    fleetforge_connector: Literal["ssh", "asyncssh"] = "ssh"
    # set by fleetforge.ovh.inventory (docs/ovh.md), or by hand: what OVH sells for this host.
    # ``fleetforge plan`` and ``verify`` warn (exit 2) where the detected hardware differs.
    ovh_model: OvhModel | None = None
    ovh_kind: Literal["vps", "dedicated"] | None = None
    ovh_datacenter: matching(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", "an OVH datacenter like gra11") | None = None
    ovh_ipv6: IPv6 | None = None  # an address, or the routed block (2001:db8:1:2::/64)


class SettingsError(FleetforgeError):
    """Host data that fleetforge cannot use.

    ``problems``: ``(host, key, message)`` triples; ``str()`` is one line per problem.
    """

    def __init__(self, problems: list[tuple[str, str, str]]):
        self.problems = problems
        super().__init__("\n".join(f"host {_shown(h)}: {_shown(key)}: {message}" for h, key, message in problems))


def _shown(text: str) -> str:
    """``text`` as is, or its ``repr`` when it holds a control character (one problem, one line)."""
    return repr(text) if has_control(text) else text


_GOT = re.compile(r",? got .*\Z", re.S)


def settings_from_data(host: str, data: dict[str, Any]) -> HostSettings:
    """Validate the fleetforge keys of one host's merged data.

    ``data``: the host's merged data (``host.data.dict()`` in pyinfra). Returns ``HostSettings``.
    Raises ``SettingsError`` naming the host and every bad key.
    """
    declared = set(data.get("extra_data_keys") or [])
    secret = secret_keys(data if isinstance(data.get("secret_keys"), list) else {})
    ours = {key: value for key, value in data.items() if not key.startswith(CONNECTOR_PREFIXES) and key not in declared}
    try:
        return HostSettings.model_validate(ours)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(part) for part in err["loc"])
            if err["type"] == "extra_forbidden":
                model = DiskSettings if err["loc"][0] == "disks" else HostSettings
                known = ", ".join(sorted(model.model_fields))
                message = f"unknown key (expected one of: {known}; declare your own keys in "
                message += "extra_data_keys)"
            elif any(isinstance(part, str) and is_secret_key(part, secret) for part in err["loc"]):
                # a secret's value is never printed, not even a mistyped one (fleetforge/secrets.py)
                message = _GOT.sub("", err["msg"].removeprefix("Value error, ")) + " (the value is a secret: not shown)"
            else:
                message = err["msg"].removeprefix("Value error, ")
                if not message.startswith("expected"):
                    message = f"expected: {message} (got {err['input']!r})"
            problems.append((host, key, message))
        raise SettingsError(problems) from None


def validate_hosts(hosts: dict[str, dict[str, Any]]) -> dict[str, HostSettings]:
    """Validate every host's data at once: ``{name: data}`` -> ``{name: HostSettings}``.

    Raises one ``SettingsError`` listing the problems of all hosts, so a run stops before any
    host is touched and a person sees every mistake at once.
    """
    settings, problems = {}, []
    for name, data in hosts.items():
        try:
            settings[name] = settings_from_data(name, data)
        except SettingsError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SettingsError(problems)
    return settings


def inventory_settings(inventory: Any) -> dict[str, HostSettings]:
    """Validate every host of a pyinfra ``Inventory`` once: ``{host name: HostSettings}``.

    The result, or the ``SettingsError``, is kept for the inventory object, so every host's
    prepare (``deploys/*.py``), the pre-connect check (``fleetforge.inventory``) and the CLI ask
    for it at the cost of a dict lookup: one validation per run, linear in hosts. Checked: the
    fleetforge keys of each host's merged data, the ``ssh_*`` keys that reach OpenSSH
    (``fleetforge.sshopts``) and a ``fleetforge_connector`` that did not take effect.

    Raises ``SettingsError`` listing every problem of every host (the same object each time).
    """
    cached = _VALIDATED.get(inventory)
    if cached is None:
        try:
            cached = _validate_inventory(list(inventory))
        except SettingsError as exc:
            cached = exc
        _VALIDATED[inventory] = cached
    if isinstance(cached, SettingsError):
        raise SettingsError(cached.problems) from None
    return cached


_VALIDATED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _validate_inventory(hosts: list[Any]) -> dict[str, HostSettings]:
    from fleetforge.connector.choice import connector_problems

    datas = {host.name: host.data.dict() for host in hosts}
    problems = connector_problems(hosts)
    for name, data in datas.items():
        name_problem = _host_name_problem(name)
        if name_problem:  # reported once, not again as the SSH destination it would be
            problems.append(name_problem)
        problems.extend(p for p in _ssh_problems(name, data) if not (name_problem and p[1] == "ssh_hostname"))
    try:
        settings = validate_hosts(datas)
    except SettingsError as exc:
        problems.extend(exc.problems)
    if problems:
        raise SettingsError(problems)
    return settings


def _host_name_problem(name: str) -> tuple[str, str, str] | None:
    """A host name goes into file names, log lines, ``--limit`` and, when ``ssh_hostname`` is
    not set, the SSH destination: no control characters, no whitespace, no leading ``-``."""
    if has_control(name) or any(ch.isspace() for ch in name) or name.startswith("-") or not name:
        return (
            name,
            "(host name)",
            f"expected a name without spaces or control characters, not starting with '-', got {name!r}",
        )
    return None


def _ssh_problems(name: str, data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The connection keys that would reach an OpenSSH command line (see fleetforge.sshopts)."""
    return _SSH_CHECK(name, data) if _SSH_CHECK is not None else []


try:
    from fleetforge.sshopts import ssh_data_problems as _SSH_CHECK
except ImportError:  # pragma: no cover - the module lands with the SSH settings work
    _SSH_CHECK = None
