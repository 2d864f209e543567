"""One mapping from a host's pyinfra SSH data to the OpenSSH client, for every fleetforge command
that opens ``ssh`` itself (``fleetforge verify``, the rollout's snapshots and health checks,
``pytest fleetforge/pytest_checks.py``), so a host that pyinfra reaches is reached the same way.

| host data (pyinfra ``@ssh``)     | OpenSSH (ssh(1), ssh_config(5))                                |
|----------------------------------|----------------------------------------------------------------|
| ``ssh_hostname`` (default: name) | the destination, after ``--``                                  |
| ``ssh_user``                     | ``-l USER`` (unset: ``User`` of the config, else the local user) |
| ``ssh_port``                     | ``-p PORT``                                                    |
| ``ssh_key``                      | ``-i KEY -o IdentitiesOnly=yes`` (that key only, as pyinfra)   |
| ``ssh_config_file``              | ``-F FILE`` (only that file, as pyinfra reads only that file)  |
| ``ssh_known_hosts_file``         | ``-o UserKnownHostsFile=FILE``                                 |
| ``ssh_strict_host_key_checking`` | ``-o StrictHostKeyChecking=V`` (default ``accept-new``, pyinfra's) |
| ``ssh_connect_timeout``          | ``-o ConnectTimeout=S``                                        |
| ``ssh_keepalive_interval``       | ``-o ServerAliveInterval=S`` (default 15, as ``@asyncssh``)    |
| ``ssh_keepalive_count_max``      | ``-o ServerAliveCountMax=N`` (default 3, as ``@asyncssh``)     |
| ``ssh_allow_agent = False``      | ``-o IdentityAgent=none``                                      |
| ``ssh_password``, ``ssh_key_password`` | answered through ``SSH_ASKPASS`` (below), never on argv  |
| ``_sudo``, ``_sudo_user``        | commands run under ``sudo`` (by the caller)                    |

Keepalives also bound a shared master connection (``ControlPersist``): a host that stops
answering mid-run is dropped after about interval x (count + 1) seconds instead of hanging every
command multiplexed over it. Masters are closed (``ssh -O exit``) when the process exits.

Options always end with ``--``: whatever the destination holds, ssh(1) reads no option after it.

Secrets: OpenSSH reads passwords and key passphrases only from a terminal or an askpass program
(``SSH_ASKPASS`` with ``SSH_ASKPASS_REQUIRE=force``, OpenSSH >= 8.4). fleetforge writes one
askpass script (no secret in it) into a private directory (``mkdtemp``, mode 0700) and gives
the secrets to the ``ssh`` process in its environment only (``FLEETFORGE_SSH_PASSWORD``,
``FLEETFORGE_SSH_KEY_PASSWORD``; ``/proc/PID/environ`` is readable by the same user only). The
script answers ``Enter passphrase for key ...`` (a prompt a server cannot forge: OpenSSH prefixes
keyboard-interactive prompts with ``(user@host)``) with the key passphrase, password prompts with
the password, and refuses every other prompt (an unknown host key included). With a secret,
``BatchMode`` is off (it disables askpass) and ``NumberOfPasswordPrompts=1``. No package needed.

Every value is checked before it reaches an argument (:func:`ssh_data_problems`): an
``ssh_user`` of ``-oProxyCommand=...`` would otherwise be an option that runs a command here.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any

from fleetforge.textcheck import has_control

_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*\$?")
_DNS = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?")
_IPV6 = re.compile(r"[0-9A-Fa-f]*:[0-9A-Fa-f:.]*(?:%[A-Za-z0-9_.-]+)?")
# A path that ssh(1) takes as one word in ``-o Key=value`` (no blanks, quotes, ``#`` or ``\``)
# and that holds none of ssh_config's ``%`` tokens or ``${ENV}`` references.
_PATH = re.compile(r"[A-Za-z0-9_./~+@:,=][A-Za-z0-9_./~+@:,=-]*")
STRICT_VALUES = ("yes", "no", "off", "accept-new", "ask")
DEFAULT_STRICT = "accept-new"  # pyinfra's default (pyinfra.connectors.ssh)
# A master lives while this process runs (closed at exit: ``close_masters``), so a rollout's
# snapshot, verification, health checks and rollback of a wave share one connection per host
# however long the wave's deploy takes; keepalives still drop it if the host stops answering.
# Should the process be killed, an idle master exits after this many seconds.
CONTROL_PERSIST_S = 1800
# a host (or a shared master connection to it) that stops answering is dropped after about
# interval x (count + 1) seconds; the same defaults as the @asyncssh connector (ssh_keepalive_*)
KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT_MAX = 15, 3

ASKPASS_SCRIPT = """#!/bin/sh
# fleetforge: answers OpenSSH's key passphrase and password prompts (fleetforge/sshopts.py)
case $1 in
  "Enter passphrase for key "*) v=$FLEETFORGE_SSH_KEY_PASSWORD ;;
  *[Pp]"assword: "|*[Pp]"assword:") v=$FLEETFORGE_SSH_PASSWORD ;;
  *) exit 1 ;;
esac
[ -n "$v" ] || exit 1
printf '%s\\n' "$v"
"""


def _text(value: Any) -> str | None:
    """``value`` if it is a one-line string, else ``None``."""
    return value if isinstance(value, str) and value and not has_control(value) else None


def _user_problem(value: Any) -> str | None:
    text = _text(value)
    if text is None or not _USER.fullmatch(text):
        return f"expected a user name like debian (letters, digits, '.', '_', '-'; no '@'), got {value!r}"
    return None


def _hostname_problem(value: Any) -> str | None:
    text = _text(value)
    if text is None or not (_DNS.fullmatch(text) or (":" in text and _IPV6.fullmatch(text))):
        return f"expected a host name or an IP address like 203.0.113.10, got {value!r}"
    return None


def _port_problem(value: Any) -> str | None:
    digits = isinstance(value, str) and value.isascii() and value.isdigit()
    if isinstance(value, bool) or not (isinstance(value, int) or digits):
        return f"expected a port number 1-65535, got {value!r}"
    return None if 1 <= int(value) <= 65535 else f"expected a port number 1-65535, got {value!r}"


def _path_problem(value: Any) -> str | None:
    text = _text(value)
    if text is None or not _PATH.fullmatch(text):
        return f"expected a file path without spaces, quotes, '%', '#' or a leading '-', got {value!r}"
    return None


def _strict_problem(value: Any) -> str | None:
    return None if value in STRICT_VALUES else f"expected one of {', '.join(STRICT_VALUES)}, got {value!r}"


def _timeout_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
        return f"expected a number of seconds 1-3600, got {value!r}"
    return None


def _count_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        return f"expected a whole number 1-100, got {value!r}"
    return None


def _interval_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3600:
        return f"expected a whole number of seconds 1-3600, got {value!r}"
    return None


def _secret_problem(value: Any) -> str | None:
    # Never show the value: it is a secret.
    return None if _text(value) is not None else "expected a non-empty string on one line (value not shown)"


_CHECKS = {
    "ssh_hostname": _hostname_problem,
    "ssh_user": _user_problem,
    "ssh_port": _port_problem,
    "ssh_key": _path_problem,
    "ssh_config_file": _path_problem,
    "ssh_known_hosts_file": _path_problem,
    "ssh_strict_host_key_checking": _strict_problem,
    "ssh_connect_timeout": _timeout_problem,
    "ssh_keepalive_interval": _interval_problem,
    "ssh_keepalive_count_max": _count_problem,
    "ssh_password": _secret_problem,
    "ssh_key_password": _secret_problem,
    "_sudo_user": _user_problem,
}


def ssh_data_problems(host: str, data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Every SSH data key of ``host`` that could not be passed to OpenSSH safely.

    ``data``: the host's merged data (``host.data.dict()``). Unset keys (missing, ``None`` or
    ``""``, which pyinfra treats as unset) are fine. Without ``ssh_hostname`` the host name is
    the destination and is checked as one, unless it names a connector (``@local``,
    ``@fake/...``, ``@ssh/...``).

    Returns ``(host, key, message)`` triples, e.g. ``("web-1", "ssh_user", "expected a user
    name ..., got '-oProxyCommand=...'")``; secrets are never quoted in a message.
    """
    problems = []
    for key, check in _CHECKS.items():
        value = data.get(key)
        if value not in (None, "") and (message := check(value)):
            problems.append((host, key, message))
    if not data.get("ssh_hostname") and not host.startswith("@") and (message := _hostname_problem(host)):
        problems.append((host, "ssh_hostname", f"not set, so the host name is the SSH destination: {message}"))
    return problems


@dataclass(frozen=True)
class SshConnection:
    """How to reach one inventory host with OpenSSH; built by :func:`connection`.

    Constructing one checks every field as :func:`ssh_data_problems` does and raises
    ``ValueError("host NAME: KEY: message")`` for the first bad one, so no argv is ever built
    from an unsafe value. Secrets are kept out of ``repr``.
    """

    host: str
    hostname: str
    user: str | None = None
    port: int | None = None
    key: str | None = None
    config_file: str | None = None
    known_hosts_file: str | None = None
    strict_host_key_checking: str = DEFAULT_STRICT
    connect_timeout: float | None = None
    keepalive_interval: int = KEEPALIVE_INTERVAL_S
    keepalive_count_max: int = KEEPALIVE_COUNT_MAX
    allow_agent: bool = True
    sudo: bool = False
    sudo_user: str | None = None
    password: str | None = field(default=None, repr=False)
    key_password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        fields = {
            "ssh_hostname": self.hostname,
            "ssh_user": self.user,
            "ssh_port": self.port,
            "ssh_key": self.key,
            "ssh_config_file": self.config_file,
            "ssh_known_hosts_file": self.known_hosts_file,
            "ssh_strict_host_key_checking": self.strict_host_key_checking,
            "ssh_connect_timeout": self.connect_timeout,
            "ssh_keepalive_interval": self.keepalive_interval,
            "ssh_keepalive_count_max": self.keepalive_count_max,
            "ssh_password": self.password,
            "ssh_key_password": self.key_password,
            "_sudo_user": self.sudo_user,
        }
        for key, value in fields.items():
            unset = value is None or (value == "" and key != "ssh_hostname")
            if not unset and (message := _CHECKS[key](value)):
                raise ValueError(f"host {self.host}: {key}: {message}")

    @property
    def has_secret(self) -> bool:
        """A password or key passphrase is set (answered through askpass, ``BatchMode`` off)."""
        return bool(self.password or self.key_password)

    def argv(self, command: str, *, connect_timeout: float | None = None, share: bool = False) -> list[str]:
        """``ssh`` argv running ``command`` (one string, for the remote shell) on the host.

        ``connect_timeout``: seconds (default: ``ssh_connect_timeout``, else 10).
        ``share``: multiplex over a master connection kept until this process exits (one
        handshake for a series of commands; the socket, in a private directory, is named by a
        hash of the host and every option; ``close_masters``); else a fresh connection that shares nothing
        (``ControlMaster=no``, ``ControlPath=none``).
        """
        timeout = connect_timeout or self.connect_timeout or 10
        argv = ["ssh"]
        if self.config_file:
            argv += ["-F", os.path.expanduser(self.config_file)]
        if self.has_secret:
            argv += ["-o", "BatchMode=no", "-o", "NumberOfPasswordPrompts=1"]
        else:
            argv += ["-o", "BatchMode=yes"]
        argv += ["-o", f"ConnectTimeout={max(1, round(timeout))}"]
        argv += ["-o", f"ServerAliveInterval={self.keepalive_interval}"]
        argv += ["-o", f"ServerAliveCountMax={self.keepalive_count_max}"]
        argv += ["-o", f"StrictHostKeyChecking={self.strict_host_key_checking}"]
        if self.known_hosts_file:
            argv += ["-o", f"UserKnownHostsFile={os.path.expanduser(self.known_hosts_file)}"]
        if self.port:
            argv += ["-p", str(self.port)]
        if self.user:
            argv += ["-l", self.user]
        if self.key:
            argv += ["-i", os.path.expanduser(self.key), "-o", "IdentitiesOnly=yes"]
        if not self.allow_agent and not self.key:
            argv += ["-o", "IdentityAgent=none"]
        if share:
            # One master per host *and* settings: a changed user, key or config never reuses it.
            name = hashlib.sha256("\0".join([self.host, self.hostname, *argv]).encode()).hexdigest()[:24]
            path = os.path.join(private_dir(), name)
            argv += ["-o", "ControlMaster=auto", "-o", f"ControlPath={path.replace('%', '%%')}"]
            argv += ["-o", f"ControlPersist={CONTROL_PERSIST_S}s"]
            with _LOCK:
                _MASTERS[path] = self.hostname
        else:
            argv += ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
        return [*argv, "--", self.hostname, command]

    def env(self) -> dict[str, str] | None:
        """The environment for the ``ssh`` process: ``None`` (inherit) without a secret, else
        the askpass variables and the secrets (see the module docstring)."""
        if not self.has_secret:
            return None
        env = {**os.environ, "SSH_ASKPASS": askpass_program(), "SSH_ASKPASS_REQUIRE": "force"}
        env.pop("FLEETFORGE_SSH_PASSWORD", None)
        env.pop("FLEETFORGE_SSH_KEY_PASSWORD", None)
        if self.password:
            env["FLEETFORGE_SSH_PASSWORD"] = self.password
        if self.key_password:
            env["FLEETFORGE_SSH_KEY_PASSWORD"] = self.key_password
        return env

    def run(
        self, command: str, *, timeout: float | None = None, share: bool = False
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``command`` on the host; ``timeout`` seconds for the whole call (``None``: no
        limit). Returns the completed process (exit 255: ssh failed). Raises
        ``subprocess.TimeoutExpired``."""
        argv = self.argv(command, connect_timeout=timeout, share=share)
        return subprocess.run(
            argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, env=self.env(), check=False
        )


def connection(host: str, data: dict[str, Any]) -> SshConnection:
    """The :class:`SshConnection` for inventory host ``host`` with merged ``data``.

    Raises ``ValueError("host NAME: KEY: message")`` for a value :func:`ssh_data_problems`
    refuses (the caller normally validated the inventory before; this is the last guard).
    """
    problems = ssh_data_problems(host, data)
    if problems:
        raise ValueError("; ".join(f"host {h}: {key}: {message}" for h, key, message in problems))
    port = data.get("ssh_port")
    return SshConnection(
        host=host,
        hostname=data.get("ssh_hostname") or host,
        user=data.get("ssh_user") or None,
        port=int(port) if port else None,
        key=data.get("ssh_key") or None,
        config_file=data.get("ssh_config_file") or None,
        known_hosts_file=data.get("ssh_known_hosts_file") or None,
        strict_host_key_checking=data.get("ssh_strict_host_key_checking") or DEFAULT_STRICT,
        connect_timeout=data.get("ssh_connect_timeout") or None,
        keepalive_interval=data.get("ssh_keepalive_interval") or KEEPALIVE_INTERVAL_S,
        keepalive_count_max=data.get("ssh_keepalive_count_max") or KEEPALIVE_COUNT_MAX,
        allow_agent=data.get("ssh_allow_agent") is not False,
        sudo=bool(data.get("_sudo")),
        sudo_user=data.get("_sudo_user") or None,
        password=data.get("ssh_password") or None,
        key_password=data.get("ssh_key_password") or None,
    )


_LOCK = threading.Lock()
_PRIVATE: dict[str, str] = {}
_MASTERS: dict[str, str] = {}  # control socket path -> destination, of this process's masters


def close_masters() -> None:
    """Ask every master connection this process started to exit (``ssh -O exit``, 5 s each at
    most); a master that is gone already is fine. Runs at exit, before the private directory
    holding the sockets is removed."""
    with _LOCK:
        masters = list(_MASTERS.items())
        _MASTERS.clear()
    for path, hostname in masters:
        if os.path.exists(path):
            argv = ["ssh", "-o", f"ControlPath={path.replace('%', '%%')}", "-O", "exit", "--", hostname]
            try:
                subprocess.run(argv, capture_output=True, timeout=5, stdin=subprocess.DEVNULL, check=False)
            except (OSError, subprocess.TimeoutExpired):
                pass


def private_dir() -> str:
    """This process's private directory (``mkdtemp``: unpredictable name, mode 0700), for the
    askpass script and control sockets; removed at exit."""
    with _LOCK:
        if "dir" not in _PRIVATE:
            path = tempfile.mkdtemp(prefix="fleetforge-ssh-")
            atexit.register(shutil.rmtree, path, True)
            atexit.register(close_masters)  # runs first: atexit calls are last in, first out
            _PRIVATE["dir"] = path
        return _PRIVATE["dir"]


def askpass_program() -> str:
    """Path of the askpass script (:data:`ASKPASS_SCRIPT`, mode 0700) in :func:`private_dir`,
    created once per process with ``O_EXCL|O_NOFOLLOW``."""
    directory = private_dir()
    with _LOCK:
        if "askpass" not in _PRIVATE:
            path = os.path.join(directory, "askpass")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o700)
            with os.fdopen(fd, "w") as f:
                f.write(ASKPASS_SCRIPT)
            _PRIVATE["askpass"] = path
        return _PRIVATE["askpass"]
