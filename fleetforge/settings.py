"""Host and group data that fleetforge reads, validated by pydantic before any host is touched.

Every key here can be set in ``inventory.py`` host data, ``group_data/<group>.py`` or with
``--data key=value``; pyinfra merges them (``--data`` > host > group > ``all``). An unknown key,
a wrong type or an impossible value raises ``SettingsError`` with one line per problem naming
the host, the key and what was expected.

Keys that belong to pyinfra or its connectors (``ssh_*``, ``_sudo``, ...) are ignored; keys used
by your own deploys can be declared in ``extra_data_keys`` so they are not reported as typos.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from fleetforge.errors import FleetforgeError
from fleetforge.layout import LayoutSettings

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

ZRAM_ALGORITHMS = ("lzo", "lzo-rle", "lz4", "lz4hc", "zstd", "842", "deflate")
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_UNIT_MIB = {"": 1.0, "B": 1 / 1048576, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1048576.0}


def parse_size_mib(value: Any) -> int:
    """A size as MiB: an int (MiB) or a string like ``"512M"``, ``"2G"``, ``"1.5GiB"``.

    Raises ``ValueError`` with the expected forms for anything else (``"lots"``, ``-1``).
    """
    if isinstance(value, bool):
        raise ValueError(f'expected a size like "2G", "512M" or a number of MiB, got {value!r}')
    if isinstance(value, int):
        mib = value
    else:
        match = _SIZE_RE.match(str(value)) if isinstance(value, str) else None
        if not match:
            raise ValueError(f'expected a size like "2G", "512M" or a number of MiB, got {value!r}')
        unit = (match.group(2) or "").upper()[:1]
        mib = int(float(match.group(1)) * _UNIT_MIB[unit])
    if mib <= 0:
        raise ValueError(f"expected a size above 0, got {value!r}")
    return mib


SizeMiB = Annotated[int, BeforeValidator(parse_size_mib)]
Scheduler = Literal["none", "mq-deadline", "bfq", "kyber"]
ReadAheadKB = Annotated[int, Field(ge=0, le=65536)]
NixValue = str | int | bool | list[str]


class DiskSettings(BaseModel):
    """Per-disk override, keyed by kernel name (``vda``, ``sda``, ``nvme0n1``)."""

    model_config = ConfigDict(extra="forbid")

    scheduler: Scheduler | None = None
    read_ahead_kb: ReadAheadKB | None = None


# --- staged rollout (``fleetforge rollout``): health checks run after each wave's deploy ---
class HealthCheck(BaseModel):
    """One health check, exactly one of ``command`` (run on the host over a new SSH session, must
    exit 0), ``http`` (fetched from the machine running fleetforge, must answer 2xx) or
    ``ssh_reconnect`` (a fresh SSH login must succeed). Tried ``1 + retries`` times,
    ``delay_s`` apart; each attempt may take at most ``timeout_s`` seconds."""

    model_config = ConfigDict(extra="forbid")

    command: Annotated[str, Field(min_length=1)] | None = None
    http: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = None
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


class HostSettings(BaseModel):
    """fleetforge's keys in host/group data; all optional, ``None`` means "let the planner pick".

    Sizes are MiB (or strings with a unit), ``read_ahead_kb`` is KiB.
    """

    model_config = ConfigDict(extra="forbid")

    io_scheduler: Scheduler | None = None
    read_ahead_kb: ReadAheadKB | None = None
    disks: dict[str, DiskSettings] = {}
    sysctl_profiles: list[Literal["vm-memory", "network"]] = ["vm-memory", "network"]
    sysctl: dict[Annotated[str, Field(pattern=r"^[a-z0-9_.\-/]+$")], str | int] = {}
    swappiness: Annotated[int, Field(ge=0, le=200)] | None = None
    zram: bool = True
    zram_size: SizeMiB | None = None
    zram_algorithm: Literal[ZRAM_ALGORITHMS] | None = None  # type: ignore[valid-type]
    zram_priority: Annotated[int, Field(ge=-1, le=32767)] | None = None
    nix: bool = True
    nix_settings: dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")], NixValue] = {}
    nix_substituters: list[Annotated[str, Field(pattern=r"^(https?|file|s3|ssh)://\S+$")]] = []
    nix_trusted_public_keys: list[Annotated[str, Field(pattern=r"^\S+:\S+$")]] = []
    extra_data_keys: list[str] = []
    # the disko layout of a disk (``fleetforge disko``, deploys/disko.py, deploys/disk_layout.py)
    disk_layout: LayoutSettings | None = None
    # NixOS hosts: the order of ``nixos-rebuild`` actions; the plan is verified after ``test``
    # (and after ``switch``); ``["boot"]`` for hosts that must not be switched live.
    nixos_activation: list[Literal["test", "switch", "boot"]] = ["test", "switch"]
    # staged rollout: checks after each wave's deploy (``fleetforge rollout``, fleetforge/health.py)
    health_checks: list[HealthCheck] = []
    # offline ISO bundle (deploys/iso_bundle.py): where it goes on the host (seed 000's
    # /var/lib/hypervisor/isos), the local bundle directory, and whether to delete other files
    iso_dir: Annotated[str, Field(pattern=r"^/")] = "/var/lib/hypervisor/isos"
    iso_bundle: str = "bundle"
    iso_prune: bool = False
    # the host's private (LAN) address, used where other hosts must reach it (nix cache, NFS)
    lan_address: Annotated[str, Field(pattern=r"^[0-9a-fA-F.:]+$")] | None = None
    # shared Nix store (fleetforge/nixcache.py): on the nix_cache host
    nix_cache_address: Annotated[str, Field(pattern=r"^[0-9a-zA-Z.:-]+$")] | None = None
    nix_cache_port: Annotated[int, Field(ge=1, le=65535)] = 5000
    nix_cache_priority: Annotated[int, Field(ge=0)] = 30
    nix_cache_key_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")] | None = None
    nix_cache_nfs: bool = False
    nix_cache_server: Literal["nix-serve", "harmonia"] = "nix-serve"  # NixOS cache hosts
    # which pyinfra connector reaches the host; takes effect through fleetforge.inventory.group
    fleetforge_connector: Literal["ssh", "asyncssh"] = "ssh"


class SettingsError(FleetforgeError):
    """Host data that fleetforge cannot use.

    ``problems``: ``(host, key, message)`` triples; ``str()`` is one line per problem.
    """

    def __init__(self, problems: list[tuple[str, str, str]]):
        self.problems = problems
        super().__init__("\n".join(f"host {h}: {key}: {message}" for h, key, message in problems))


def settings_from_data(host: str, data: dict[str, Any]) -> HostSettings:
    """Validate the fleetforge keys of one host's merged data.

    ``data``: the host's merged data (``host.data.dict()`` in pyinfra). Returns ``HostSettings``.
    Raises ``SettingsError`` naming the host and every bad key.
    """
    declared = set(data.get("extra_data_keys") or [])
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
