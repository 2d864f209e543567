"""Read an OVH account's VPS and dedicated servers with the official ``ovh`` client.

Calls (all ``GET``, under the endpoint's ``/1.0``)::

    /vps                               -> ["vps-1a2b3c4d.vps.ovh.net", ...]
    /vps/{serviceName}                 -> {"name", "displayName", "state", "zone", "vcore", "memoryLimit",
                                           "model": {"name", "offer", "memory" (MB), "disk" (GB), "vcore", ...}}
    /vps/{serviceName}/ips             -> ["203.0.113.10", "2001:db8::10"]            (running VPS only)
    /dedicated/server                  -> ["ns1234.ip-203-0-113.eu", ...]
    /dedicated/server/{serviceName}    -> {"name", "datacenter", "state", "powerState", "ip", "commercialRange", ...}
    /dedicated/server/{serviceName}/ips                      -> ["203.0.113.20/32", "2001:db8:1::/64"]
    /dedicated/server/{serviceName}/specifications/hardware  -> {"numberOfProcessors", "threadsPerProcessor",
                                           "memorySize": {"unit", "value"}, "diskGroups": [...], ...}

Credentials are the ``ovh`` client's (``ovh/config.py``): arguments, else the ``OVH_ENDPOINT``,
``OVH_APPLICATION_KEY``, ``OVH_APPLICATION_SECRET``, ``OVH_CONSUMER_KEY`` environment variables,
else ``./ovh.conf``, ``~/.ovh.conf``, ``/etc/ovh.conf`` (``[default] endpoint=``, then the keys in
the endpoint's section). Service names are checked (RFC 1123) before they are put in a URL; one
that is not is not fetched. Answers are cached (``fleetforge.ovh.cache``).
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from fleetforge.ovh.cache import cache_path, read_cache, write_cache
from fleetforge.ovh.errors import OvhError, clean, scrub, translate

KINDS = ("vps", "dedicated")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


def is_host_name(name: Any) -> bool:
    """True if ``name`` is an RFC 1123 host name: dot-separated labels of letters, digits and
    inner hyphens, 1-63 characters each, 253 in all. Nothing else may reach a shell, a path or Nix."""
    return isinstance(name, str) and len(name) <= 253 and _HOST_NAME.fullmatch(name) is not None


@dataclass(frozen=True)
class Credentials:
    """Where and as whom to call: ``endpoint`` (the name given, ``ovh-eu`` or a URL), ``url`` (its
    base URL, ``https://eu.api.ovh.com/1.0``) and the three keys (the two secret ones left out of
    ``repr``, so no traceback or log line shows them)."""

    endpoint: str
    url: str
    application_key: str
    application_secret: str = field(repr=False)
    consumer_key: str = field(repr=False)

    @property
    def secrets(self) -> tuple[str, str]:
        return self.application_secret, self.consumer_key


def _endpoint_url(endpoint: str) -> str:
    """The base URL of a named endpoint (``ovh-eu``) or of an endpoint given as a URL: ``https://``
    anywhere, ``http://`` only on the loopback (a local stand-in). Raises ``OvhError``."""
    from ovh.client import ENDPOINTS

    if endpoint in ENDPOINTS:
        return ENDPOINTS[endpoint]
    parts = urlsplit(endpoint)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme == "https" or (parts.scheme == "http" and loopback):
        if parts.hostname and not parts.query and not parts.fragment and not _has_space(endpoint):
            return endpoint.rstrip("/")
    names = ", ".join(ENDPOINTS)
    raise OvhError(
        f"unknown OVH endpoint {clean(endpoint)}: expected one of {names}, or an https:// URL (http:// on localhost)",
        "config",
    )


def _has_space(text: str) -> bool:
    return any(ch.isspace() for ch in text)


def resolve_credentials(
    endpoint: str | None = None,
    application_key: str | None = None,
    application_secret: str | None = None,
    consumer_key: str | None = None,
    config_file: str | os.PathLike[str] | None = None,
) -> Credentials:
    """The endpoint and keys, looked up as the ``ovh`` client does: each argument, else its
    ``OVH_*`` environment variable, else the ovh.conf files (``config_file`` read last, so it wins
    over the standard ones). Raises ``OvhError`` (kind ``config``) naming what is missing."""
    from ovh.config import ConfigurationManager

    conf = ConfigurationManager()
    if config_file is not None:
        conf.read(os.fspath(config_file))
    endpoint = endpoint or conf.get("default", "endpoint")
    if not endpoint:
        raise OvhError(
            "no OVH endpoint: set OVH_ENDPOINT (ovh-eu, ovh-ca, ovh-us...) or endpoint= in the [default] section"
            " of ovh.conf, or pass endpoint= (docs/ovh.md)",
            "config",
        )
    url = _endpoint_url(endpoint)
    keys = {
        "application_key": application_key or conf.get(endpoint, "application_key"),
        "application_secret": application_secret or conf.get(endpoint, "application_secret"),
        "consumer_key": consumer_key or conf.get(endpoint, "consumer_key"),
    }
    missing = [name for name, value in keys.items() if not value]
    if missing:
        env = ", ".join(f"OVH_{name.upper()}" for name in missing)
        raise OvhError(
            f"OVH credentials missing for endpoint {clean(endpoint)}: {', '.join(missing)}; set {env} or"
            f" put them in the [{clean(endpoint)}] section of ovh.conf (docs/ovh.md)",
            "config",
        )
    return Credentials(endpoint, url, **keys)


def _client_endpoint(creds: Credentials) -> str:
    """The endpoint name to give ``ovh.Client`` for ``creds``.

    python-ovh only accepts the names of its ``ovh.client.ENDPOINTS`` table (``Client.__init__``:
    ``ENDPOINTS[endpoint]``, else ``InvalidRegion``) and has no option for a base URL. An endpoint
    given as a URL is therefore added to that public table under its own URL as the name. This is
    the only change fleetforge makes to the client: it adds an entry (no existing one is touched),
    and only for an endpoint the user gave as a URL.
    """
    from ovh.client import ENDPOINTS

    if creds.endpoint not in ENDPOINTS:
        ENDPOINTS.setdefault(creds.url, creds.url)
        return creds.url
    return creds.endpoint


class OvhApi:
    """``GET`` calls through an ``ovh.Client``, each failure raised as one ``OvhError``.

    ``timeout_s``: per request (connect and read). ``calls``: how many calls were made.
    """

    def __init__(self, creds: Credentials, timeout_s: float = 30):
        import ovh

        self.creds = creds
        self.calls = 0
        try:
            self._client = ovh.Client(
                endpoint=_client_endpoint(creds),
                application_key=creds.application_key,
                application_secret=creds.application_secret,
                consumer_key=creds.consumer_key,
                timeout=timeout_s,
            )
        except ovh.exceptions.APIError as exc:  # InvalidConfiguration: e.g. OVH_CLIENT_ID set as well
            raise OvhError(f"OVH client configuration: {clean(scrub(str(exc), creds.secrets))}", "config") from None

    def get(self, path: str) -> Any:
        """The decoded JSON answer of ``GET path``. Raises ``OvhError``."""
        import ovh.exceptions

        self.calls += 1
        try:
            return self._client.get(path)
        except ovh.exceptions.APIError as exc:
            raise translate(exc, f"GET {path}", self.creds.url, self.creds.secrets) from None
        except (AttributeError, TypeError, RecursionError) as exc:
            # an error answer whose JSON is not an object; JSON nested deeper than Python decodes
            raise OvhError(
                f"OVH API {self.creds.url}: GET {path}: unexpected answer ({type(exc).__name__})", "response"
            ) from None


def _names(api: OvhApi, path: str) -> list[Any]:
    names = api.get(path)
    if not isinstance(names, list):
        raise OvhError(
            f"OVH API {api.creds.url}: GET {path}: expected a list of names, got {clean(names, 60)}", "response"
        )
    return names


def _optional(api: OvhApi, path: str) -> tuple[Any, str | None]:
    """``(answer, None)``, or ``(None, reason)`` when ``path`` answers 404 (a service that went away
    between the list and the call, or a detail OVH does not have)."""
    try:
        return api.get(path), None
    except OvhError as exc:
        if exc.status == 404:
            return None, f"404 on GET {path}"
        raise


def _vps(api: OvhApi, name: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"name": name}
    if not is_host_name(name):
        return record  # refused by the inventory, never put in a URL
    base = f"/vps/{quote(name, safe='')}"
    record["detail"], record["error"] = _optional(api, base)
    if isinstance(record["detail"], dict) and record["detail"].get("state") == "running":
        record["ips"], record["error"] = _optional(api, f"{base}/ips")
    return record


def _dedicated(api: OvhApi, name: Any, hardware: bool) -> dict[str, Any]:
    record: dict[str, Any] = {"name": name}
    if not is_host_name(name):
        return record
    base = f"/dedicated/server/{quote(name, safe='')}"
    record["detail"], record["error"] = _optional(api, base)
    detail = record["detail"]
    if isinstance(detail, dict) and detail.get("state") == "ok" and detail.get("powerState", "poweron") == "poweron":
        record["ips"], record["error"] = _optional(api, f"{base}/ips")
        if hardware and record["error"] is None:
            record["hardware"], _ = _optional(api, f"{base}/specifications/hardware")
    return record


def fetch_account(api: OvhApi, kinds: Iterable[str] = KINDS, hardware: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Every service of the account: ``{"vps": [record], "dedicated": [record]}``, where a record is
    ``{"name", "detail", "ips", "hardware", "error"}`` as far as fetched (``ips`` only for running
    hosts; ``error``: the 404 that stopped it). Names that are not host names get a record with the
    name only. ``kinds``: which of ``"vps"``, ``"dedicated"`` to list. Raises ``OvhError``."""
    kinds = set(kinds)
    account: dict[str, list[dict[str, Any]]] = {"vps": [], "dedicated": []}
    if "vps" in kinds:
        account["vps"] = [_vps(api, name) for name in _names(api, "/vps")]
    if "dedicated" in kinds:
        account["dedicated"] = [_dedicated(api, name, hardware) for name in _names(api, "/dedicated/server")]
    return account


@dataclass(frozen=True)
class Account:
    """An account's answers (``vps``, ``dedicated``: records as ``fetch_account`` returns them), the
    endpoint URL they came from, and whether they came from the cache (``api_calls``: calls made)."""

    endpoint: str
    vps: list[dict[str, Any]]
    dedicated: list[dict[str, Any]]
    cached: bool
    api_calls: int


def load_account(
    creds: Credentials, kinds: Iterable[str] = KINDS, cache_s: float = 300, timeout_s: float = 30
) -> Account:
    """The account's services, from the cache if fetched less than ``cache_s`` seconds ago
    (``0``: no cache, neither read nor written), else from the API (then cached).
    Raises ``OvhError``; a cache that cannot be written is reported on stderr, not raised."""
    kinds = tuple(kind for kind in KINDS if kind in set(kinds))
    path = cache_path(creds.url, creds.application_key, creds.consumer_key, kinds)
    if cache_s > 0:
        cached = read_cache(path, creds.url, cache_s)
        if cached is not None:
            return Account(creds.url, list(cached.get("vps") or []), list(cached.get("dedicated") or []), True, 0)
    api = OvhApi(creds, timeout_s)
    account = fetch_account(api, kinds)
    if cache_s > 0:
        try:
            write_cache(path, creds.url, account)
        except (OSError, TypeError, ValueError) as exc:
            print(f"fleetforge ovh: cannot cache the OVH answers in {path.parent}: {clean(exc)}", file=sys.stderr)
    return Account(creds.url, account["vps"], account["dedicated"], False, api.calls)


def parse_ip(value: Any) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    """``value`` (``"203.0.113.10"``, ``"203.0.113.10/32"``, ``"2001:db8::/64"``) as an interface,
    or ``None`` if it is not an IP address, with or without a prefix length. An IPv6 scope
    (``fe80::1%eth0``: any text but ``%`` and ``/`` to ``ipaddress``) is not an address either."""
    if not isinstance(value, str) or len(value) > 64 or "%" in value:
        return None
    try:
        return ipaddress.ip_interface(value)
    except ValueError:
        return None
