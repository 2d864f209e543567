"""known_hosts checking for ``@asyncssh``: on by default, relaxed only on request.

``ssh_strict_host_key_checking`` takes OpenSSH's values:

- ``"yes"`` (the default here; pyinfra's ``@ssh`` defaults to ``accept-new``): the host's key
  must already be in the known_hosts file; an unknown or a changed key is refused.
- ``"accept-new"``: an unknown host's key is trusted and appended to the file (trust on first
  use); a changed key is still refused.
- ``"no"`` / ``"off"``: no checking at all. Only for throwaway hosts; it must be set explicitly.

The refusal names the host, the key's SHA256 fingerprint, the file, and what to do, like
OpenSSH's ``REMOTE HOST IDENTIFICATION HAS CHANGED`` message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import asyncssh

from .fastauth import FastAuthClient

STRICT_VALUES = {"yes": "yes", "accept-new": "accept-new", "no": "no", "off": "no"}
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"


def known_host_name(host: str, port: int) -> str:
    """The known_hosts host field OpenSSH uses: ``host`` on port 22, else ``[host]:port``."""
    return host if port == 22 else f"[{host}]:{port}"


@dataclass
class HostKeyPolicy:
    """How one connection checks the server's host key.

    Attributes:
        mode: ``"yes"``, ``"accept-new"`` or ``"no"`` (see the module docstring).
        path: the known_hosts file (``~`` expanded).
        refusal: after a refused key, the reason (for the connect error); else ``""``.
        learned: after ``accept-new`` trusted an unknown host, its known_hosts line to append.
    """

    mode: str
    path: str
    refusal: str = ""
    learned: str = ""
    _known: asyncssh.SSHKnownHosts | None = field(default=None, repr=False)

    @classmethod
    def from_data(cls, strict: str | bool | None, path: str | None) -> HostKeyPolicy:
        """Build from host data ``ssh_strict_host_key_checking`` and ``ssh_known_hosts_file``.

        Raises:
            ValueError: ``strict`` is not one of yes/accept-new/no/off (or a bool).
        """
        if isinstance(strict, bool):
            strict = "yes" if strict else "no"
        value = STRICT_VALUES.get(str(strict or "yes").lower())
        if value is None:
            raise ValueError(f"ssh_strict_host_key_checking: expected yes, accept-new or no, got {strict!r}")
        return cls(mode=value, path=os.path.expanduser(path or DEFAULT_KNOWN_HOSTS))

    def known_hosts(self) -> asyncssh.SSHKnownHosts | None:
        """What to pass as asyncssh's ``known_hosts``: ``None`` disables checking (mode ``no``).

        A missing file counts as empty (every host unknown). The parsed file is shared by every
        host that names it until the file changes (size or mtime): a fleet of N hosts with one
        known_hosts file parses it once, not N times.
        """
        if self.mode == "no":
            return None
        self._known = _parsed_known_hosts(self.path)
        return self._known

    def decide(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        """Called by asyncssh for a key that known_hosts does not trust; True accepts it."""
        known = self._known.match(host, addr, port)[0] if self._known else []
        fingerprint = key.get_fingerprint()
        name = known_host_name(host, port)
        if known:
            self.refusal = (
                f"REMOTE HOST IDENTIFICATION HAS CHANGED: {name} presented {key.get_algorithm()} key "
                f"{fingerprint}, which does not match {self.path}; if the change is expected, remove the old "
                f"key with: ssh-keygen -f {self.path} -R '{name}'"
            )
            return False
        if self.mode == "accept-new":
            self.learned = f"{name} {key.export_public_key('openssh').decode().strip()}\n"
            return True
        self.refusal = (
            f"host key not verifiable: {name} ({key.get_algorithm()} {fingerprint}) is not in {self.path}; "
            "add it after checking the fingerprint, or set ssh_strict_host_key_checking='accept-new' "
            "to trust it on first use"
        )
        return False

    def remember(self) -> None:
        """Append a key trusted by ``accept-new`` to the known_hosts file (created 0600)."""
        if not self.learned:
            return
        os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(self.learned)
        self.learned = ""


_PARSED: dict[str, tuple[tuple[int, int], asyncssh.SSHKnownHosts]] = {}


def _parsed_known_hosts(path: str) -> asyncssh.SSHKnownHosts:
    """``path`` parsed, cached by (mtime, size); a missing file is an empty list."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return asyncssh.import_known_hosts("")
    stamp = (st.st_mtime_ns, st.st_size)
    cached = _PARSED.get(path)
    if cached is None or cached[0] != stamp:
        with open(path, encoding="utf-8") as f:
            cached = _PARSED[path] = (stamp, asyncssh.import_known_hosts(f.read()))
    return cached[1]


class PolicyClient(FastAuthClient):
    """asyncssh client callbacks: untrusted host keys go to a ``HostKeyPolicy``; public key
    authentication in one round trip (``fastauth``)."""

    def __init__(self, policy: HostKeyPolicy) -> None:
        self.policy = policy

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        return self.policy.decide(host, addr, port, key)
