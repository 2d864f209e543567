"""Set up the shared Nix store (``deploys/nix_cache.py``); see ``fleetforge/nixcache/roles.py``.

On a NixOS cache host only the signing key is made here; the server (``services.nix-serve`` or
``services.harmonia``) is the ``nix-cache.nix`` module that ``deploys/vps.py`` writes with the
host's other modules (``fleetforge.nixcache.roles.nixos_cache_options``).

On other cache hosts (Debian-like; the binary cache is written by Nix itself and served by the
distribution's nginx): a signing key generated on the host if it has none (mode 0600, never
read back), a systemd service + timer that signs and copies every store path into the
``file://`` cache directory, nginx bound to the cache address allowing only the clients, and with
``nix_cache_nfs`` a read-only NFS export to exactly the clients' addresses (``root_squash``).
Clients are set up by the main job (``deploys/vps.py``), after this deploy: their
``substituters`` and ``trusted-public-keys`` from the cache's public key, and with NFS a systemd
mount unit for the export (``nfs_client``; on NixOS a ``fileSystems`` entry). A second deploy
rather than one: the cache must have its key and export before clients can trust and mount
it, and pyinfra runs one deploy's operations of different hosts interleaved.
"""

from __future__ import annotations

import weakref

from pyinfra import host, inventory, logger
from pyinfra.api import QuoteString, StringCommand, deploy
from pyinfra.facts.server import LinuxDistribution
from pyinfra.operations import server

from fleetforge.facts.layout import FileContents
from fleetforge.facts.nix_cache import NixCacheKey, NixCacheKeyState
from fleetforge.nixcache.roles import (  # noqa: F401 - file paths re-exported for callers and tests
    CACHE_DIR,
    CANARY_FILE,
    EXPORTS,
    MOUNT_UNIT,
    NFS_MOUNT,
    NGINX_SITE,
    PUBLIC_KEY,
    REFRESH_INTERVAL,
    REFRESH_SERVICE,
    REFRESH_TIMER,
    SECRET_KEY,
    STATE_DIR,
    CacheRoles,
    cache_host_files,
    cache_roles,
    nfs_client_files,
)
from fleetforge.operations import managed_file
from fleetforge.settings import inventory_settings

# A tiny derivation built on the cache host (builtins.derivation, /bin/sh builder): verify asks
# each client to substitute it. Its output holds the key name, so a rotated key gets a new path.
# The name reaches the build as an argument (``--argstr``) and the builder's environment
# (``keyName``), never as Nix code or shell code.
CANARY = r"""
name=$1; out=$2
expr='{ keyName }: derivation { name = "fleetforge-cache-canary"; system = builtins.currentSystem;
  builder = "/bin/sh"; args = [ "-c" "echo \"$keyName\" > $out" ]; inherit keyName; }'
path=$(nix-build --no-out-link --option build-users-group '' --option sandbox false \
  --argstr keyName "$name" -E "$expr") && echo "$path" > "$out"
"""

# Generate the key only where there is none of that name. Rotation (a new name): the old pair
# is kept as *.old and the cache directory emptied, so the refresh re-signs every path with the
# new key (``nix copy`` skips paths whose .narinfo exists, which would keep old signatures).
KEYGEN = r"""
name=$1; secret=$2; public=$3; cache=$4
if [ -f "$secret" ] && [ -f "$public" ] && [ "$(cut -d: -f1 "$public")" = "$name" ]; then exit 0; fi
umask 077; mkdir -p "$(dirname "$secret")"
if [ -f "$secret" ]; then
  mv -f "$secret" "$secret.old" && mv -f "$public" "$public.old"
  [ -n "$cache" ] && [ -d "$cache" ] && find "$cache" -mindepth 1 -delete
fi
nix-store --generate-binary-cache-key "$name" "$secret" "$public"
chmod 600 "$secret"; chmod 644 "$public"
"""


def inventory_roles() -> CacheRoles | None:
    """The roles of the current inventory (validates every host's data first); computed once
    per inventory, as every host's prepare asks for them."""
    if host.inventory in _ROLES:
        return _ROLES[host.inventory]
    groups = {name: [h.name for h in hosts] for name, hosts in inventory.groups.items()}
    roles = _ROLES[host.inventory] = cache_roles(groups, inventory_settings(host.inventory))
    return roles


_ROLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_KEYS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def cache_public_key(roles: CacheRoles) -> NixCacheKeyState | None:
    """The cache host's key state, read from that host once per inventory (one round trip,
    public key only), however many clients ask while preparing."""
    if host.inventory not in _KEYS:
        cache_host = inventory.get_host(roles.cache)
        _KEYS[host.inventory] = cache_host.get_fact(NixCacheKey, secret=SECRET_KEY, public=PUBLIC_KEY, cache=CACHE_DIR)
    return _KEYS[host.inventory]


def _script(script: str, name: str, *args: str) -> StringCommand:
    """``sh -c SCRIPT NAME ARGS...`` with every argument quoted (``$1``... in the script)."""
    return StringCommand("sh", "-c", QuoteString(script), name, *[QuoteString(a) for a in args])


def keygen_command(key_name: str) -> StringCommand:
    """The cache host's key generation (``KEYGEN``) for ``key_name``, every argument quoted."""
    return _script(KEYGEN, "fleetforge-keygen", key_name, SECRET_KEY, PUBLIC_KEY, CACHE_DIR)


def canary_command(key_name: str) -> StringCommand:
    """The canary build (``CANARY``) for ``key_name``, every argument quoted."""
    return _script(CANARY, "fleetforge-canary", key_name, CANARY_FILE)


def _files(contents: dict[str, str]) -> list:
    current = host.get_fact(FileContents, paths=list(contents))
    changed = []
    for path, text in contents.items():
        changed.append(managed_file(name=f"nix cache: {path}", dest=path, content=text, current=current.get(path)))
    return changed


def _cache_host(roles: CacheRoles) -> None:
    key = host.get_fact(NixCacheKey, secret=SECRET_KEY, public=PUBLIC_KEY, cache=CACHE_DIR)
    nixos = (host.get_fact(LinuxDistribution).get("release_meta") or {}).get("ID") == "nixos"
    rotated = key is None or key.key_name != roles.key_name
    if rotated:
        server.shell(
            name=f"nix cache: signing key {roles.key_name} (generated on the host)",
            commands=[keygen_command(roles.key_name)],
        )
    else:
        host.noop(f"nix cache: signing key {roles.key_name} exists (mode {key.secret_mode})")
    if nixos:  # /etc is generated: the server is nix-cache.nix, written by deploys/vps.py
        host.noop(f"nix cache: NixOS host: {roles.key_name} is served by the nix-cache.nix module (deploys/vps.py)")
        return
    changed = _files(cache_host_files(roles))
    server.shell(
        name="nix cache: refresh now, timer enabled, nginx serving",
        commands=[
            StringCommand("mkdir", "-p", QuoteString(CACHE_DIR), QuoteString(STATE_DIR)),
            canary_command(roles.key_name),
            "systemctl daemon-reload",
            "systemctl start fleetforge-nix-cache.service",
            "systemctl enable --now fleetforge-nix-cache.timer nginx.service",
            "systemctl reload-or-restart nginx.service",
        ],
        _if=lambda: any(op.did_change() for op in changed) or rotated or not key.cache_ready,
    )
    if roles.nfs:
        server.shell(
            name="nix cache: NFS export (read-only, clients only)",
            commands=["systemctl enable --now nfs-server.service", "exportfs -ra"],
            _if=changed[-1].did_change,
        )


def nfs_client(roles: CacheRoles) -> None:
    """On a non-NixOS client: mount the export read-only at ``NFS_MOUNT`` (systemd mount unit;
    NixOS clients get ``fileSystems`` in ``nix-cache.nix`` instead)."""
    what = f"{roles.address}:{CACHE_DIR}"
    (unit,) = _files(nfs_client_files(roles))
    server.shell(
        name=f"nix cache: mount {what} read-only at {NFS_MOUNT}",
        commands=[
            StringCommand("mkdir", "-p", QuoteString(NFS_MOUNT)),
            "systemctl daemon-reload",
            "systemctl enable --now mnt-fleetforge-nixcache.mount",
        ],
        _if=unit.did_change,
    )


@deploy("fleetforge: shared Nix store")
def nix_cache() -> None:
    """Set up this host's part of the shared Nix store (cache host, NFS client, or nothing).

    Raises ``SettingsError`` (roles or addresses missing, naming the group or host) while
    preparing, before any host is changed.
    """
    roles = inventory_roles()
    if roles is None:
        host.noop("nix cache: the inventory has no nix_cache group")
        return
    if host.name == roles.cache:
        _cache_host(roles)
    else:
        logger.debug("%s: not the nix cache host: its part is in deploys/vps.py", host.name)
