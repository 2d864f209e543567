"""The one error of ``fleetforge.ovh`` and the translation of the ``ovh`` client's exceptions into it.

python-ovh (``ovh/client.py``, ``Client.call``) raises, by HTTP answer:

- 403 with ``errorCode`` ``INVALID_KEY`` -> ``InvalidKey`` (also raised locally, without a response,
  when the application secret or consumer key is empty); ``INVALID_CREDENTIAL`` ->
  ``InvalidCredential``; ``NOT_CREDENTIAL`` -> ``NotCredential``; ``NOT_GRANTED_CALL`` ->
  ``NotGrantedCall``; ``FORBIDDEN`` -> ``Forbidden``
- 400 -> ``BadParametersError`` (``INVALID_SIGNATURE`` and ``QUERY_TIME_OUT`` among them), 404 ->
  ``ResourceNotFoundError``, 409 -> ``ResourceConflictError``, 460 -> ``ResourceExpiredError``
- anything else, 429 and 5xx included -> ``APIError`` (``.response`` is the ``requests.Response``)
- a network failure -> ``HTTPError`` (its ``args[1]`` is the ``requests`` exception); a body that is
  not JSON -> ``InvalidResponse`` (no response attached, so no status either)

``translate`` turns each into an ``OvhError`` whose message is one line: what failed, then what
to do. Messages never carry the application secret or the consumer key (``scrub``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

from fleetforge.errors import FleetforgeError
from fleetforge.facts.sections import has_control

Kind = Literal["config", "credentials", "permission", "rate_limit", "server", "network", "response", "api"]

RIGHTS_HINT = "GET on /vps, /vps/*, /dedicated/server and /dedicated/server/* (docs/ovh.md)"


class OvhError(FleetforgeError):
    """The OVH API could not give the inventory. ``str()`` is one line: what failed, what to do.

    ``kind``: ``"config"`` (no endpoint or credentials), ``"credentials"`` (keys refused),
    ``"permission"`` (consumer key lacks a right), ``"rate_limit"`` (429), ``"server"`` (5xx),
    ``"network"``, ``"response"`` (an answer fleetforge cannot use) or ``"api"`` (other HTTP errors).
    ``status``: the HTTP status, when there was one. ``retry_after_s``: from a 429's
    ``Retry-After`` header, when it gave a number of seconds.
    """

    def __init__(self, message: str, kind: Kind, status: int | None = None, retry_after_s: int | None = None):
        self.kind, self.status, self.retry_after_s = kind, status, retry_after_s
        super().__init__(message)


def clean(text: Any, limit: int = 160) -> str:
    """``text`` as one short printable line: its ``repr`` if it holds a control character or any
    other character that is not printable (U+2028, bidi overrides, zero-width and other format
    characters: ``repr`` escapes them), cut at ``limit`` characters. API answers are untrusted: they
    must not add lines, escape codes or reorder what a terminal shows."""
    text = text if isinstance(text, str) else repr(text)
    if has_control(text) or not text.isprintable():
        text = repr(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret in ``secrets`` replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _body(response: Any, secrets: Iterable[str | None]) -> tuple[str | None, str]:
    """``(errorCode, message)`` of an OVH error answer (``(None, "")`` if it has none), each
    scrubbed of ``secrets`` before it is cut (a secret cut in two would not be found after)."""
    try:
        body = response.json()
    except (ValueError, AttributeError, RecursionError):
        return None, ""
    if not isinstance(body, dict):
        return None, ""
    code, message = body.get("errorCode"), body.get("message") or ""

    def text(value: Any) -> str:
        return scrub(value if isinstance(value, str) else repr(value), secrets)

    return (clean(text(code), 40) if code else None), clean(text(message))


def _retry_after(response: Any) -> int | None:
    value = str(response.headers.get("Retry-After", "")).strip()
    return int(value) if value.isdigit() and len(value) < 8 else None


def _network_reason(exc: Exception) -> str:
    inner = exc.args[1] if len(exc.args) > 1 else exc
    errno = re.search(r"\[Errno -?\d+\] [^'\")\]]{1,80}", str(inner))
    return type(inner).__name__ + (f": {errno.group(0)}" if errno else "")


def translate(exc: Exception, call: str, endpoint: str, secrets: Iterable[str | None]) -> OvhError:
    """The ``OvhError`` for ``exc``, raised by the ``ovh`` client during ``call`` (``"GET /vps"``)
    against ``endpoint`` (its URL). ``secrets`` are removed from the message."""
    import ovh.exceptions as ox

    where = f"OVH API {endpoint}: {call}"
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    secrets = tuple(secrets)
    code, message = _body(response, secrets) if response is not None else (None, "")
    said = f": {message}" if message else ""
    if isinstance(exc, ox.HTTPError):
        text, kind = (
            f"cannot reach the API ({_network_reason(exc)}); check the network, a proxy or the endpoint",
            "network",
        )
    elif isinstance(exc, ox.InvalidResponse):
        text, kind = "the answer is not JSON (an outage, or a proxy in the way?); try again later", "response"
    elif isinstance(exc, ox.InvalidKey) and response is None:
        text, kind = "the application secret or the consumer key is empty; set both (docs/ovh.md)", "config"
    elif isinstance(exc, ox.InvalidKey):
        text = f"the application key is not valid (403 INVALID_KEY{said}); check OVH_APPLICATION_KEY or"
        text, kind = text + " application_key in ovh.conf, or create an application (docs/ovh.md)", "credentials"
    elif isinstance(exc, ox.InvalidCredential):
        text = f"the consumer key is unknown, expired or not validated yet (403 INVALID_CREDENTIAL{said}); open the"
        text += f" validationUrl given with it, or request a new consumer key with {RIGHTS_HINT}"
        kind = "credentials"
    elif isinstance(exc, ox.NotCredential):
        text, kind = f"no valid consumer key was sent (403 NOT_CREDENTIAL{said}); set OVH_CONSUMER_KEY", "credentials"
    elif isinstance(exc, ox.NotGrantedCall):
        text = f"the consumer key may not make this call (403 NOT_GRANTED_CALL{said}); request a consumer key with"
        text, kind = text + f" {RIGHTS_HINT}, or list one kind only (kinds=('vps',))", "permission"
    elif code == "INVALID_SIGNATURE":
        text = f"the request signature was refused (400 INVALID_SIGNATURE{said}); the application secret does not"
        text, kind = text + " belong to this application key: check OVH_APPLICATION_SECRET", "credentials"
    elif code == "QUERY_TIME_OUT":
        text, kind = f"the request's timestamp was refused (400 QUERY_TIME_OUT{said}); check the clock", "credentials"
    elif status == 429:
        retry = _retry_after(response)
        after = f", retry after {retry} s" if retry is not None else ""
        text = f"rate limited by the OVH API (429 Too Many Requests{after}); wait and run again (the inventory"
        text += " is cached for cache_s seconds once fetched)"
        return OvhError(scrub(f"{where}: {text}", secrets), "rate_limit", status, retry)
    elif status is not None and status >= 500:
        text, kind = f"the OVH API failed (HTTP {status}{said}); the fault is on OVH's side: try again later", "server"
    elif isinstance(exc, ox.Forbidden):
        text, kind = f"refused (403 FORBIDDEN{said}); check the consumer key's rights: {RIGHTS_HINT}", "permission"
    else:
        text, kind = f"failed (HTTP {' '.join(str(part) for part in (status, code) if part)}{said})", "api"
    return OvhError(scrub(f"{where}: {text}", secrets), kind, status)
