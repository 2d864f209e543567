"""Public key authentication in one round trip instead of three, for ``@asyncssh`` connections.

asyncssh authenticates like OpenSSH's client: a ``none`` request to learn the server's methods,
then a public key *query* (is this key acceptable?), then the signed request: three round trips
after the key exchange. RFC 4252 (section 7) lets a client send the signed request directly,
which is what paramiko (pyinfra's ``@ssh``) does. Over 25 ms per direction that is about 0.1 s
per host, and it made ``@asyncssh`` slower than ``@ssh`` on one host (bench/connector_bench.py).

For connections opened by the ``@asyncssh`` connector only (their client callbacks object is a
``FastAuthClient``):

- authentication starts with ``publickey`` rather than ``none``; a server that refuses it
  answers with its list of methods and asyncssh carries on from that list (password, ...);
- each key is offered with its signature at once, without the query.

Other asyncssh connections in the process keep asyncssh's behaviour. This relies on two
asyncssh internals, checked by ``tests/connector/test_asyncssh_connector.py`` (auth succeeds,
a wrong key fails with ``PermissionDenied``): ``SSHClientConnection._auth_methods`` (the
methods still to try) and the client handler registry of ``asyncssh.auth``.
"""

from __future__ import annotations

from typing import Any

import asyncssh
from asyncssh import auth as _auth


class FastAuthClient(asyncssh.SSHClient):
    """asyncssh client callbacks that start authentication with a signed public key request."""

    _conn: asyncssh.SSHClientConnection | None = None

    def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
        self._conn = conn

    def begin_auth(self, username: str) -> bool:
        if self._conn is not None and getattr(self._conn, "_auth_methods", None) == [b"none"]:
            self._conn._auth_methods = [b"publickey"]  # type: ignore[attr-defined]
        return True


class _SignedFirstPublicKeyAuth(_auth._ClientPublicKeyAuth):  # type: ignore[name-defined,misc]
    """``publickey`` that sends the signed request first on ``FastAuthClient`` connections."""

    async def _start(self) -> None:
        if not isinstance(getattr(self._conn, "_owner", None), FastAuthClient):
            await super()._start()
            return
        self._keypair = await self._conn.public_key_auth_requested()
        if self._keypair is None:
            self._conn.try_next_auth(next_method=True)
            return
        await self._send_signed_request()


def install() -> None:
    """Register the signed-first ``publickey`` handler (idempotent)."""
    handlers: dict[bytes, Any] = _auth._client_auth_handlers
    if handlers.get(b"publickey") is not _SignedFirstPublicKeyAuth:
        handlers[b"publickey"] = _SignedFirstPublicKeyAuth


install()
