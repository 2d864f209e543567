"""A local TEST STAND-IN for the OVH API: the real API cannot be reached from here.

``OvhApiStandIn`` is an HTTP server on 127.0.0.1 (ephemeral port, a thread; use it as a context
manager) that answers the calls ``fleetforge.ovh`` makes, under ``/1.0`` as the real endpoints
do, from an in-memory account a test configures::

    GET /1.0/auth/time                                        (no signature)
    GET /1.0/vps, /1.0/vps/{serviceName}, /1.0/vps/{serviceName}/ips
    GET /1.0/dedicated/server, /1.0/dedicated/server/{serviceName}, .../ips,
        .../specifications/hardware

It checks each signed request as OVH documents it: ``X-Ovh-Application`` (a known application
key), ``X-Ovh-Consumer`` (a known, validated consumer key), ``X-Ovh-Timestamp`` (within 180 s
of its clock) and ``X-Ovh-Signature`` = ``"$1$"`` + SHA-1 hex of
``APPLICATION_SECRET+CONSUMER_KEY+METHOD+URL+BODY+TIMESTAMP``. Errors are answered in OVH's shape,
``{"message": ..., "errorCode": ...}``: unknown application key 403 ``INVALID_KEY``; bad signature
400 ``INVALID_SIGNATURE``; unknown consumer key 403 ``INVALID_CREDENTIAL`` "This credential does
not exist"; expired or not validated one 403 ``INVALID_CREDENTIAL`` "This credential is not
valid"; a path outside the consumer key's rules 403 ``NOT_GRANTED_CALL``; unknown service 404.
``fail_with`` makes signed calls answer 429 (with ``Retry-After``), 500 or 503 instead.

``requests`` lists every request served (``StandInRequest``), so a test can count API calls.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

PREFIX = "/1.0"
APPLICATION_KEY = "standinAppKey0001"
APPLICATION_SECRET = "standinAppSecret00000000000000001"
CONSUMER_KEY = "standinConsumerKey00000000000001"
MAX_SKEW_S = 180


def vps(
    name: str,
    *,
    state: str = "running",
    zone: str = "Region OpenStack: os-gra11",
    model: str = "vps-2025-model1",
    vcore: int = 2,
    memory_mb: int = 4096,
    disk_gb: int = 80,
    ips: list[str] | None = None,
) -> dict[str, Any]:
    """A VPS as ``/vps/{serviceName}`` and ``/ips`` answer it: ``{"detail": {...}, "ips": [...]}``."""
    detail = {
        "name": name,
        "displayName": name,
        "state": state,
        "zone": zone,
        "vcore": vcore,
        "memoryLimit": memory_mb,
        "offerType": "ssd",
        "netbootMode": "local",
        "cluster": "",
        "model": {
            "name": model,
            "offer": f"VPS {model}",
            "memory": memory_mb,
            "disk": disk_gb,
            "vcore": vcore,
            "version": "2019v1",
            "maximumAdditionnalIp": 16,
            "availableOptions": [],
            "datacenter": [],
        },
    }
    return {"detail": detail, "ips": ["203.0.113.10", "2001:db8::10"] if ips is None else ips}


def dedicated(
    name: str,
    *,
    state: str = "ok",
    power: str = "poweron",
    datacenter: str = "rbx8",
    ip: str = "203.0.113.20",
    commercial_range: str | None = "rise-1",
    ips: list[str] | None = None,
    hardware: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A dedicated server as ``/dedicated/server/{serviceName}``, ``/ips`` and
    ``/specifications/hardware`` answer it (``hardware=None``: that call answers 404)."""
    detail = {
        "name": name,
        "serverId": 123456,
        "datacenter": datacenter,
        "state": state,
        "powerState": power,
        "ip": ip,
        "reverse": name,
        "commercialRange": commercial_range,
        "os": "debian12_64",
        "rack": "G101A01",
        "monitoring": True,
    }
    return {
        "detail": detail,
        "ips": [f"{ip}/32", "2001:db8:1:2::/64"] if ips is None else ips,
        "hardware": hardware,
    }


def hardware_spec(threads: int = 12, memory_mb: int = 32768, disk_gb: int = 512, disks: int = 2) -> dict[str, Any]:
    """A ``/specifications/hardware`` answer: one processor of ``threads`` threads, one disk group."""
    return {
        "bootMode": "uefi",
        "description": "RISE-1 | Intel Xeon-E 2386G",
        "numberOfProcessors": 1,
        "coresPerProcessor": threads // 2,
        "threadsPerProcessor": threads,
        "processorName": "Xeon-E 2386G",
        "memorySize": {"unit": "MB", "value": memory_mb},
        "diskGroups": [
            {"diskGroupId": 1, "diskSize": {"unit": "GB", "value": disk_gb}, "diskType": "NVME", "numberOfDisks": disks}
        ],
    }


@dataclass
class StandInAccount:
    """What the stand-in serves: ``{serviceName: record}`` per kind (records from ``vps()`` and
    ``dedicated()``; an answer given as ``bytes`` is served as it is: a hostile body that is not
    JSON, or JSON nested too deep to decode). ``extra_vps_names``: names listed by ``GET /vps``
    without a record (hostile or vanished services)."""

    vps: dict[str, dict[str, Any]] = field(default_factory=dict)
    dedicated: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra_vps_names: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class StandInRequest:
    """One request served: method, path without ``/1.0``, whether it was signed, the answer's status."""

    method: str
    path: str
    signed: bool
    status: int


@dataclass
class Failure:
    """Answer signed calls with ``status`` (429, 500, 503...) and OVH's error body; ``retry_after``:
    the ``Retry-After`` header; ``count``: how many calls fail (``None``: all)."""

    status: int
    retry_after: int | None = None
    count: int | None = None


_MESSAGES = {429: "Too many requests", 500: "Internal server error", 503: "Service unavailable"}


class OvhApiStandIn:
    """TEST STAND-IN for the OVH API (see the module docstring); not the real API.

    ``account``: what it serves. ``applications``: ``{application key: secret}``. ``consumer_keys``:
    ``{consumer key: state}``, state ``"validated"``, ``"expired"`` or ``"pendingValidation"``.
    ``rules``: ``(method, path pattern)`` the consumer keys may call (OVH's ``*`` wildcard).
    """

    def __init__(
        self,
        account: StandInAccount | None = None,
        applications: dict[str, str] | None = None,
        consumer_keys: dict[str, str] | None = None,
        rules: list[tuple[str, str]] | None = None,
    ):
        self.account = account or StandInAccount()
        self.applications = applications or {APPLICATION_KEY: APPLICATION_SECRET}
        self.consumer_keys = consumer_keys or {CONSUMER_KEY: "validated"}
        self.rules = rules or [
            ("GET", "/vps"),
            ("GET", "/vps/*"),
            ("GET", "/dedicated/server"),
            ("GET", "/dedicated/server/*"),
        ]
        self.failure: Failure | None = None
        self.requests: list[StandInRequest] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> OvhApiStandIn:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.standin = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    @property
    def endpoint(self) -> str:
        """The base URL to give ``fleetforge.ovh.inventory(endpoint=...)``: ``http://127.0.0.1:PORT/1.0``."""
        assert self._server is not None, "use the stand-in as a context manager"
        return f"http://127.0.0.1:{self._server.server_address[1]}{PREFIX}"

    # -- test helpers -------------------------------------------------------------------------

    def fail_with(self, status: int, retry_after: int | None = None, count: int | None = None) -> None:
        """Make signed calls answer ``status`` (see ``Failure``)."""
        self.failure = Failure(status, retry_after, count)

    def api_calls(self) -> list[str]:
        """``"GET /vps"``... of the signed requests served, in order (``/auth/time`` is not one)."""
        with self._lock:
            return [f"{r.method} {r.path}" for r in self.requests if r.signed]

    # -- answers ------------------------------------------------------------------------------

    def answer(self, method: str, url: str, path: str, headers: Any, body: bytes) -> tuple[int, Any, dict[str, str]]:
        """``(status, JSON body, extra headers)`` for one request (``path`` without ``/1.0``)."""
        if path == "/auth/time":
            return 200, int(time.time()), {}
        refused = self._check_signature(method, url, headers, body)
        if refused is not None:
            return refused
        if not any(method == m and fnmatch.fnmatchcase(path, pattern) for m, pattern in self.rules):
            return _error(403, "NOT_GRANTED_CALL", "This call has not been granted")
        with self._lock:
            failure = self.failure
            if failure is not None and failure.count is not None:
                failure.count -= 1
                if failure.count < 0:
                    failure = self.failure = None
        if failure is not None:
            headers_out = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
            status, body_out, _ = _error(failure.status, None, _MESSAGES.get(failure.status, "Error"))
            return status, body_out, headers_out
        if method != "GET":
            return _error(405, None, f"Method {method} not allowed")
        return self._route(path)

    def _check_signature(self, method: str, url: str, headers: Any, body: bytes) -> tuple[int, Any, dict] | None:
        secret = self.applications.get(headers.get("X-Ovh-Application", ""))
        if secret is None:
            return _error(403, "INVALID_KEY", "Invalid application key")
        consumer = headers.get("X-Ovh-Consumer", "")
        if not consumer:
            return _error(403, "NOT_CREDENTIAL", "You must login first")
        state = self.consumer_keys.get(consumer)
        if state is None:
            return _error(403, "INVALID_CREDENTIAL", "This credential does not exist")
        if state != "validated":
            return _error(403, "INVALID_CREDENTIAL", "This credential is not valid")
        timestamp = headers.get("X-Ovh-Timestamp", "")
        if not timestamp.isdigit() or abs(int(timestamp) - time.time()) > MAX_SKEW_S:
            return _error(400, "QUERY_TIME_OUT", "Query out of time")
        text = "+".join([secret, consumer, method, url, body.decode("utf-8", "replace"), timestamp])
        if headers.get("X-Ovh-Signature", "") != "$1$" + hashlib.sha1(text.encode()).hexdigest():
            return _error(400, "INVALID_SIGNATURE", "Invalid signature")
        return None

    def _route(self, path: str) -> tuple[int, Any, dict[str, str]]:
        parts = [unquote(part) for part in path.strip("/").split("/")]
        account = self.account
        if parts == ["vps"]:
            return 200, list(account.vps) + list(account.extra_vps_names), {}
        if parts == ["dedicated", "server"]:
            return 200, list(account.dedicated), {}
        if parts[0] == "vps" and len(parts) in (2, 3):
            record = account.vps.get(parts[1])
            key = {2: "detail", 3: parts[-1] if parts[-1] == "ips" else None}[len(parts)]
        elif parts[:2] == ["dedicated", "server"] and len(parts) in (3, 4, 5):
            record = account.dedicated.get(parts[2])
            tail = "/".join(parts[3:])
            key = {"": "detail", "ips": "ips", "specifications/hardware": "hardware"}.get(tail)
        else:
            return _error(404, None, f"Got an invalid (or empty) URL: {path}")
        if record is None or key is None or record.get(key) is None:
            return _error(404, None, f"The requested object ({path}) does not exist")
        return 200, record[key], {}


def _error(status: int, code: str | None, message: str) -> tuple[int, Any, dict[str, str]]:
    body: dict[str, Any] = {"message": message}
    if code is not None:
        body["errorCode"] = code
        body["httpCode"] = f"{status}"
    return status, body, {}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # one write per answer (headers and body buffered, flushed after each request), no Nagle:
    # otherwise each call waits for the client's delayed ACK (about 40 ms)
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        standin: OvhApiStandIn = self.server.standin  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        url = f"http://{self.headers.get('Host', '')}{self.path}"
        if split.path.startswith(PREFIX + "/"):
            status, payload, extra = standin.answer(self.command, url, split.path[len(PREFIX) :], self.headers, body)
        else:
            status, payload, extra = _error(404, None, f"Got an invalid (or empty) URL: {split.path}")
        signed = bool(self.headers.get("X-Ovh-Signature"))
        with standin._lock:
            standin.requests.append(StandInRequest(self.command, split.path.removeprefix(PREFIX), signed, status))
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        return
