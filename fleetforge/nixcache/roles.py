"""The fleet's shared Nix store: one host of the inventory is a signed binary cache, the others
substitute from it (Nix manual: "Serving a Nix store via HTTP", ``nix copy``, binary cache stores).

Roles come from the inventory:

- group ``nix_cache``: exactly one host, the cache (zero or two hosts is an error naming the
  group). No such group: no shared cache.
- group ``nix_cache_clients`` if it exists, else every other host with ``nix`` enabled.

How clients reach the cache is never guessed: the cache host's ``nix_cache_address``, else its
``lan_address`` (a private address the clients can reach); neither set is an error naming the
host. The cache serves HTTP on that address and ``nix_cache_port`` (5000, nix-serve's port), with
priority ``nix_cache_priority`` (30: before cache.nixos.org's 40).

With ``nix_cache_nfs``, the cache directory (a signed ``file://`` binary cache that Nix itself
writes) is also exported read-only over NFS to exactly the clients' addresses and mounted at
``NFS_MOUNT`` on each client, which substitutes from ``file://NFS_MOUNT``. Exporting
``/nix/store`` itself, as some guides do, gives clients no usable store: a store is the directory *plus*
its SQLite database (``/nix/var/nix/db``: validity, references, signatures), so a client
mounting a bare ``/nix/store`` has paths it cannot register or trust, and writing one store from
several hosts corrupts it (NixOS/nix#7396). A binary cache directory is self-describing
(``nix-cache-info``, signed ``.narinfo`` files, ``nar/``), read-only, and checked per path
against ``trusted-public-keys``.

Keys: the secret signing key is generated on the cache host (``nix-store
--generate-binary-cache-key``) into ``SECRET_KEY`` (mode 0600) and never read back; the public
key is read as a fact (``fleetforge.facts.nix_cache.NixCacheKey``) and written into every client's
``trusted-public-keys`` through the main job's nix.conf plan. Rotation: set ``nix_cache_key_name``
to a new name (``fleetforge-HOST-2``); the next run generates that key, re-signs the cache and
clients trust the new public key.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass
from typing import Any

from fleetforge.planner import PlanError
from fleetforge.render import MkIf, render
from fleetforge.settings import HostSettings, SettingsError

CACHE_GROUP = "nix_cache"
CLIENTS_GROUP = "nix_cache_clients"
STATE_DIR = "/var/lib/fleetforge/nix-cache"
SECRET_KEY = f"{STATE_DIR}/secret-key"
PUBLIC_KEY = f"{STATE_DIR}/public-key"
CANARY_FILE = f"{STATE_DIR}/canary-path"  # a tiny path built on the cache host, for verify
CACHE_DIR = "/var/cache/fleetforge/nix-cache"
NFS_MOUNT = "/mnt/fleetforge/nixcache"
# Files of a (non-NixOS) cache host and NFS client (``fleetforge.nixcache.deploy``).
NGINX_SITE = "/etc/nginx/sites-enabled/fleetforge-nix-cache.conf"
REFRESH_SERVICE = "/etc/systemd/system/fleetforge-nix-cache.service"
REFRESH_TIMER = "/etc/systemd/system/fleetforge-nix-cache.timer"
EXPORTS = "/etc/exports.d/fleetforge-nix-cache.exports"
MOUNT_UNIT = "/etc/systemd/system/mnt-fleetforge-nixcache.mount"
REFRESH_INTERVAL = "5min"
# A Nix binary cache key name (``nix-store --generate-binary-cache-key NAME``): the part before
# ``:`` of ``NAME:BASE64``; the same pattern as host data's ``nix_cache_key_name``. It goes into
# shell commands (quoted) and into the canary's builder environment, never into Nix code.
KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class CacheRoles:
    """``cache``: the cache host's name; ``address``/``port``: where clients reach it;
    ``clients``: ``{client name: its address on the cache's network}``; ``nfs``: export too."""

    cache: str
    address: str
    port: int
    priority: int
    key_name: str
    clients: dict[str, str]
    nfs: bool

    @property
    def host_port(self) -> str:
        """``address:port`` (``[address]:port`` for IPv6): nginx's ``listen``, harmonia's ``bind``."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host_port}"

    def substituter(self) -> str:
        """The URL clients put first in ``substituters`` (with its priority)."""
        base = f"file://{NFS_MOUNT}" if self.nfs else self.http_url
        return f"{base}?priority={self.priority}"


def cache_roles(groups: dict[str, list[str]], settings: dict[str, HostSettings]) -> CacheRoles | None:
    """Read the roles from the inventory (pure).

    Args:
        groups: ``{group name: [host names]}`` of the inventory.
        settings: every host's validated ``HostSettings`` (addresses are ``lan_address`` and
            ``nix_cache_address`` there).

    Returns:
        ``CacheRoles``, or ``None`` when the inventory has no ``nix_cache`` group.

    Raises:
        SettingsError: the group holds 0 or several hosts; the cache host has no address;
            a client has no ``lan_address`` (the cache allows, and exports to, each address);
            no ``nix_cache_key_name`` and the cache's host name makes no key name.
    """
    if CACHE_GROUP not in groups:
        return None
    members = groups[CACHE_GROUP]
    if len(members) != 1:
        raise SettingsError(
            [(f"group {CACHE_GROUP}", "hosts", f"expected exactly one cache host, got {len(members)}: {members}")]
        )
    cache = members[0]
    s = settings[cache]
    address = s.nix_cache_address or s.lan_address
    if not address:
        raise SettingsError(
            [(cache, "nix_cache_address", "expected the address clients reach the cache at (or lan_address)")]
        )
    if CLIENTS_GROUP in groups:
        names = [n for n in groups[CLIENTS_GROUP] if n != cache]
    else:
        names = [n for n in settings if n != cache and settings[n].nix]
    problems, clients = [], {}
    for name in names:
        client_address = settings[name].lan_address
        if not client_address:
            problems.append((name, "lan_address", "expected the client's LAN address (the cache allows each one)"))
        clients[name] = client_address or ""
    key_name = s.nix_cache_key_name or f"fleetforge-{cache}-1"
    if not KEY_NAME.fullmatch(key_name):
        message = f"the default key name {key_name!r} (from the host name) is not a key name like fleetforge-cache-1"
        problems.append((cache, "nix_cache_key_name", f"{message}: set nix_cache_key_name"))
    if problems:
        raise SettingsError(problems)
    return CacheRoles(
        cache=cache,
        address=address,
        port=s.nix_cache_port,
        priority=s.nix_cache_priority,
        key_name=key_name,
        clients=clients,
        nfs=s.nix_cache_nfs,
    )


# -- NixOS cache host: options by NixOS release ------------------------------------------------
# Which NixOS releases have the options the cache module writes, and with which shape
# (nixpkgs nixos/modules/services/networking/{harmonia,nix-serve}.nix and firewall*.nix; the
# evidence per row is in docs/nixos-options.md). Edges marked "inferred" come from the date a
# nixpkgs PR merged (releases branch off in May and November), not from a release's own tree.
#   23.05: networking.firewall.extraInputRules (nftables rules; PR #203011) and the harmonia
#          module (PR #230550): services.harmonia.{enable, signKeyPath, settings}
#   24.11: services.harmonia.signKeyPaths, a list (PR #335344; signKeyPath deprecated) - inferred
#   26.05: services.harmonia.cache.{enable, signKeyPaths, settings} (harmonia 3.0, PR #488515;
#          the flat names still evaluate, with rename warnings) - inferred
#   25.11: networking.firewall.backend (firewalld PR #398587) - read at evaluation, see below
# Unchanged in every release read (types in docs/nixos-options.md): services.nix-serve.{enable,
# bindAddress (str), port (types.port), secretKeyFile (null or str)}, services.nfs.server.{enable,
# exports (lines)}, fileSystems.<mount>.{device, fsType, options}, systemd.services.<name>.
# {description, serviceConfig, script, startAt}, assertions.
# Nothing older than 23.05 is supported for the cache host: the per-client nftables rules need
# extraInputRules, and NixOS refuses a definition of an option it does not declare.
CACHE_HOST_MIN_RELEASE = "23.05"
HARMONIA_SHAPES = (("26.05", "cache"), ("24.11", "signKeyPaths"), ("23.05", "signKeyPath"))

# The host's firewall backend, as Nix evaluated on the host: `networking.firewall.backend` where
# the option exists (25.11+), else `networking.nftables.enable` decides, as firewall.nix did.
FIREWALL_BACKEND = (
    '(config.networking.firewall.backend or (if config.networking.nftables.enable then "nftables" else "iptables"))'
)
IPTABLES_BACKEND = f'{FIREWALL_BACKEND} == "iptables"'
NFTABLES_BACKEND = f'{FIREWALL_BACKEND} == "nftables"'
OTHER_BACKEND = f"!({IPTABLES_BACKEND} || {NFTABLES_BACKEND})"


def release_key(release: str) -> tuple[int, int]:
    """``"24.05"`` -> ``(24, 5)``, for ordering NixOS releases; ``ValueError`` otherwise."""
    year, _, month = release.partition(".")
    return int(year), int(month)


def firewall_rules(clients: list[str], ports: list[int]) -> tuple[str, str]:
    """``(iptables lines, nftables rules)`` that accept TCP ``ports`` from each client address.

    iptables (``networking.firewall.extraCommands``, a shell script run by firewall-start): one
    ``iptables``/``ip6tables`` command per client and port, jumping to ``nixos-fw-accept``; an
    IPv6 address given to ``iptables`` would fail the script and leave the firewall stopped.
    nftables (``networking.firewall.extraInputRules``, rules of chain ``input-allow`` in table
    ``inet nixos-fw``): ``ip saddr A tcp dport P accept`` or ``ip6 saddr ...``. Addresses are
    parsed (``ValueError`` for anything that is not an IP address) and written canonically.
    """
    iptables, nftables = [], []
    for port in ports:
        for client in clients:
            address = ipaddress.ip_address(client)
            v6 = address.version == 6
            command = ["ip6tables" if v6 else "iptables", "-A", "nixos-fw", "-p", "tcp", "-s", str(address)]
            iptables.append(shlex.join([*command, "--dport", str(int(port)), "-j", "nixos-fw-accept"]))
            nftables.append(f"{'ip6' if v6 else 'ip'} saddr {address} tcp dport {int(port)} accept")
    return "\n".join(iptables) + "\n", "\n".join(nftables) + "\n"


def _harmonia(release: str, bind: str) -> dict[str, Any]:
    shape = next(shape for first, shape in HARMONIA_SHAPES if release_key(release) >= release_key(first))
    settings = {"bind": bind}  # a plain definition: beats 26.05's mkDefault "[::]:5000"
    if shape == "signKeyPath":
        return {"enable": True, "signKeyPath": SECRET_KEY, "settings": settings}
    if shape == "signKeyPaths":
        return {"enable": True, "signKeyPaths": [SECRET_KEY], "settings": settings}
    return {"cache": {"enable": True, "signKeyPaths": [SECRET_KEY], "settings": settings}}


def _nfs_server_options(clients: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``services.nfs`` and ``systemd`` values of an NFS cache host: the export, read-only to
    ``clients``, and the service that refreshes the signed cache every 5 minutes."""
    opts = "(ro,root_squash,no_subtree_check,sec=sys)"
    nfs = {"server": {"enable": True, "exports": f"{CACHE_DIR} " + " ".join(f"{c}{opts}" for c in clients) + "\n"}}
    copy = ["/run/current-system/sw/bin/nix", "--extra-experimental-features", "nix-command", "copy", "--all"]
    refresh = {
        "description": "fleetforge: refresh the signed Nix binary cache",
        "serviceConfig": {"Type": "oneshot", "UMask": "0022"},
        "script": shlex.join([*copy, "--to", f"file://{CACHE_DIR}?secret-key={SECRET_KEY}&compression=zstd"]),
        "startAt": "*:0/5",
    }
    return nfs, {"services": {"fleetforge-nix-cache": refresh}}


def nixos_cache_options(roles: CacheRoles, server: str = "nix-serve", release: str | None = None) -> dict[str, Any]:
    """NixOS option values for a NixOS cache host (the module ``nix-cache.nix``), for NixOS
    ``release`` (``"YY.MM"``, the probe's ``os.nixos_release``).

    ``server``: ``nix-serve`` (``services.nix-serve``: ``bindAddress`` (an IPv6 address in
    brackets: the module runs ``nix-serve --listen ADDRESS:PORT``), ``port``, ``secretKeyFile``)
    or ``harmonia`` (``services.harmonia``, shaped for the release: see ``HARMONIA_SHAPES``).
    The port is opened in the NixOS firewall for each client address only (the modules'
    ``openFirewall`` would open it to everyone), for whichever backend the host runs, chosen by
    Nix on the host (``FIREWALL_BACKEND``): ``extraCommands`` under iptables,
    ``extraInputRules`` under nftables; any other backend (firewalld) fails an assertion. With
    NFS: ``services.nfs.server`` exports the signed cache directory read-only to the clients
    (``root_squash``), NFS's port 2049 opened to them, and a ``fleetforge-nix-cache`` service
    every 5 minutes signs and copies the store into it (``nix copy --all``).

    Raises ``PlanError`` (host, ``nixos release``) when the release is unknown or older than
    ``CACHE_HOST_MIN_RELEASE``.
    """
    try:
        supported = release is not None and release_key(release) >= release_key(CACHE_HOST_MIN_RELEASE)
    except ValueError:
        supported = False
    if not supported:
        raise PlanError(
            roles.cache,
            "nixos release",
            f"expected NixOS {CACHE_HOST_MIN_RELEASE} or later for the Nix cache module "
            f"(nixos-version gave {release!r})",
        )
    clients = sorted(roles.clients.values())
    iptables, nftables = firewall_rules(clients, [roles.port, 2049] if roles.nfs else [roles.port])
    message = "fleetforge's nix-cache.nix opens the cache port with the iptables or nftables firewall only"
    options: dict[str, Any] = {
        "networking": {
            "firewall": {
                "extraCommands": MkIf(IPTABLES_BACKEND, iptables),
                "extraInputRules": MkIf(NFTABLES_BACKEND, nftables),
            }
        },
        "assertions": MkIf(OTHER_BACKEND, [{"assertion": False, "message": message}]),
    }
    if server == "harmonia":
        serve = {"harmonia": _harmonia(release, roles.host_port)}
    else:
        bind = f"[{roles.address}]" if ":" in roles.address else roles.address
        serve = {"nix-serve": {"enable": True, "bindAddress": bind, "port": roles.port, "secretKeyFile": SECRET_KEY}}
    options["services"] = serve
    if roles.nfs:
        options["services"]["nfs"], options["systemd"] = _nfs_server_options(clients)
    return options


def nixos_client_options(roles: CacheRoles) -> dict[str, Any]:
    """NixOS option values for a client of an NFS cache: the export mounted read-only at
    ``NFS_MOUNT`` (``fileSystems``; on NixOS ``/etc`` is generated, so no mount unit file)."""
    options = ["ro", "nosuid", "nodev", "noexec", "soft", "timeo=50", "vers=4.2", "_netdev"]
    mount = {"device": f"{roles.address}:{CACHE_DIR}", "fsType": "nfs", "options": options}
    return {"fileSystems": {NFS_MOUNT: mount}}


def client_settings(settings: HostSettings, roles: CacheRoles, public_key: str) -> HostSettings:
    """``settings`` with the cache first in ``nix_substituters`` and its key trusted."""
    return settings.model_copy(
        update={
            "nix_substituters": [roles.substituter(), *settings.nix_substituters],
            "nix_trusted_public_keys": [public_key, *settings.nix_trusted_public_keys],
        }
    )


def cache_host_files(roles: CacheRoles) -> dict[str, str]:
    """``{path: content}`` that a (non-NixOS) cache host gets: the refresh service and timer,
    the nginx site and, with NFS, the export (``nixcache_deploy`` writes them, verify hashes them)."""
    clients = sorted(roles.clients.values())
    files = {
        REFRESH_SERVICE: render("nix-cache-refresh.service.j2", cache_dir=CACHE_DIR, secret_key=SECRET_KEY),
        REFRESH_TIMER: render("nix-cache-refresh.timer.j2", interval=REFRESH_INTERVAL),
        NGINX_SITE: render("nix-cache-nginx.conf.j2", listen=roles.host_port, cache_dir=CACHE_DIR, clients=clients),
    }
    if roles.nfs:
        files[EXPORTS] = render("nix-cache.exports.j2", cache_dir=CACHE_DIR, clients=clients)
    return files


def nfs_client_files(roles: CacheRoles) -> dict[str, str]:
    """``{path: content}`` that a (non-NixOS) client of an NFS cache gets: the mount unit. The
    cache's host name goes through the template's ``unit`` filter (``%`` specifiers escaped,
    systemd.unit(5))."""
    what = f"{roles.address}:{CACHE_DIR}"
    return {MOUNT_UNIT: render("nix-cache-nfs.mount.j2", cache=roles.cache, what=what, where=NFS_MOUNT)}
