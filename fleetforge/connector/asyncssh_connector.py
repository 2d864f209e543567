"""``@asyncssh``: a pyinfra 3.x connector that runs commands and SFTP over asyncssh.

Use it per host (``"@asyncssh/vm-1"``) or for a whole group through host or group data with
``fleetforge.inventory.group`` (``{"fleetforge_connector": "asyncssh"}``). It takes the same host
data keys as pyinfra's ``@ssh`` (``ssh_hostname``, ``ssh_port``, ``ssh_user``, ``ssh_key``,
``ssh_key_password``, ``ssh_password``, ``ssh_allow_agent``, ``ssh_look_for_keys``,
``ssh_forward_agent``, ``ssh_config_file``, ``ssh_known_hosts_file``,
``ssh_strict_host_key_checking``, ``ssh_connect_retries``...), so switching is one word, plus:

- ``ssh_connect_timeout`` (s, default pyinfra's ``CONNECT_TIMEOUT``, 10): TCP connect, key
  exchange and authentication together.
- ``ssh_keepalive_interval`` (s, default 15) and ``ssh_keepalive_count_max`` (default 3): a host
  that stops answering is dropped instead of hanging. asyncssh sends a keepalive after each
  interval without data from the host and drops the connection at the first interval after
  count of them went unanswered: (count + 1) x interval after the host's last data, 60 s with
  the defaults (a host that froze during an idle wait is dropped 45 to 60 s after it froze).
  OpenSSH's ``ServerAliveCountMax`` drops one interval sooner (ssh_config(5): 45 s for 15 x 3).

Differences from ``@ssh``, on purpose: known_hosts checking defaults to ``yes`` (unknown keys are
refused; ``accept-new`` and ``no`` must be asked for, see ``hostkeys``); one SSH connection per
host carries every command as a new channel and file transfers over one SFTP session; command
output is printed (``-vv``) when the command ends rather than line by line; only SFTP transfers
(``ssh_file_transfer_protocol="scp"`` is refused).

Sudo, su and doas uploads and downloads, pyinfra's sudo password prompt and ``rsync`` (which runs
the ``ssh`` binary) are inherited from pyinfra's ``SSHConnector`` unchanged; this class replaces
its transport only (``connect``, ``run_shell_command``, ``_put_file``, ``_get_file``).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import random
import socket
from typing import IO, TYPE_CHECKING, Any

import asyncssh
import gevent
from pyinfra import logger
from pyinfra.api.exceptions import ConnectError
from pyinfra.api.output import echo, format_text
from pyinfra.connectors.base import DataMeta
from pyinfra.connectors.ssh import ConnectorData as SSHConnectorData
from pyinfra.connectors.ssh import SSHConnector, connector_data_meta
from pyinfra.connectors.util import (
    CommandOutput,
    OutputLine,
    execute_command_with_sudo_retry,
    make_unix_command_for_host,
    write_stdin,
)
from typing_extensions import Unpack, override

from .bridge import LOOP
from .hostkeys import HostKeyPolicy, PolicyClient
from .sftp_errors import diagnose

if TYPE_CHECKING:
    from pyinfra.api.arguments import ConnectorArguments
    from pyinfra.api.command import StringCommand

# AES-GCM first: asyncssh runs it as one ``cryptography`` call per packet, while its
# chacha20-poly1305 builds new cipher objects for every packet (measured: 3x the controller CPU
# per packet, the largest cost of a connection after the handshake). Other ciphers follow.
ENCRYPTION_ALGS = "^aes128-gcm@openssh.com,aes256-gcm@openssh.com"
TRANSFER_CHUNK_BYTES = 4 * 1024 * 1024  # SFTP read/write size; asyncssh pipelines requests within it
DISCONNECT_TIMEOUT_S = 5


class ConnectorData(SSHConnectorData):
    ssh_connect_timeout: int
    ssh_keepalive_interval: int
    ssh_keepalive_count_max: int


DATA_META: dict[str, DataMeta] = {
    **connector_data_meta,
    "ssh_strict_host_key_checking": DataMeta("known_hosts checking: yes (default), accept-new or no", "yes"),
    "ssh_connect_timeout": DataMeta("seconds for TCP connect + key exchange + auth (default CONNECT_TIMEOUT)"),
    "ssh_keepalive_interval": DataMeta("seconds without data from the host before each SSH keepalive", 15),
    "ssh_keepalive_count_max": DataMeta(
        "unanswered keepalives before the connection is dropped, one interval after the last", 3
    ),
}


class _StdinBuffer(io.BytesIO):
    """Collects what pyinfra's ``write_stdin`` writes (it closes the buffer when done)."""

    def close(self) -> None:  # keep the value readable after write_stdin's close()
        pass


class _Collector(asyncssh.SSHClientSession):
    """Keeps a channel's stdout/stderr lines in arrival order and its exit status."""

    def __init__(self) -> None:
        self.lines: list[OutputLine] = []
        self.partial = {"stdout": b"", "stderr": b""}
        self.exit_status: int | None = None
        self.exit_signal: str | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        name = "stderr" if datatype == asyncssh.EXTENDED_DATA_STDERR else "stdout"
        *complete, self.partial[name] = (self.partial[name] + data).split(b"\n")
        self.lines.extend(OutputLine(name, line.decode("utf-8", "replace")) for line in complete)

    def exit_status_received(self, status: int) -> None:
        self.exit_status = status

    def exit_signal_received(self, signal: str, core_dumped: bool, msg: str, lang: str) -> None:
        self.exit_signal = signal

    def connection_lost(self, exc: Exception | None) -> None:
        for name, rest in self.partial.items():
            if rest:
                self.lines.append(OutputLine(name, rest.decode("utf-8", "replace")))
        self.partial = {"stdout": b"", "stderr": b""}
        if not self.done.done():
            if exc is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(_transport_error(exc))


def _transport_error(exc: BaseException) -> OSError:
    """asyncssh's errors as ``OSError`` (``ConnectionError``), which pyinfra treats as a host failure."""
    if isinstance(exc, OSError):
        return exc
    reason = getattr(exc, "reason", "") or str(exc) or type(exc).__name__
    return ConnectionError(f"SSH connection lost: {reason}")


class AsyncSSHConnector(SSHConnector):
    """Connect to hosts over SSH with asyncssh: ``@asyncssh/HOST``.

    One asyncssh connection per host, opened in ``connect`` and shared by every command (a new
    channel each) and file transfer (one SFTP session, opened on first use). All asyncssh work
    runs on the process-wide loop thread (``fleetforge.connector.bridge.LOOP``); the calling
    greenlet waits without blocking other hosts.

    Failures become that host's failure: ``connect`` raises pyinfra's ``ConnectError`` with the
    reason (host key refused, authentication failed, connection refused, timed out, could not
    resolve); a command on a dropped connection raises ``ConnectionError`` (an ``OSError``) and a
    command past its ``_timeout`` raises ``TimeoutError``, both of which pyinfra reports for that
    host only.
    """

    data_cls = ConnectorData
    data_meta = DATA_META
    data: ConnectorData  # type: ignore[assignment]
    #: every connection is a coroutine on one asyncio loop: many hosts at once cost one socket
    #: each, no thread or greenlet (``fleetforge.parallel.fit_parallel`` counts such hosts)
    one_loop = True

    _conn: asyncssh.SSHClientConnection | None = None
    _sftp: asyncssh.SFTPClient | None = None

    @override
    @staticmethod
    def make_names_data(name):
        """``@asyncssh/NAME``: a host called NAME, reached at ``ssh_hostname`` (default NAME).

        Also makes the pyinfra run that builds this host connect all ``@asyncssh`` hosts at once
        unless the user set a parallelism (``fleetforge.parallel.parallel_for_asyncssh``).
        """
        if not name:
            raise ConnectError("@asyncssh needs a host: @asyncssh/HOSTNAME")
        from fleetforge.parallel import parallel_for_asyncssh

        parallel_for_asyncssh()
        yield name, {"ssh_hostname": name}, []

    # connection

    def _connect_kwargs(self, policy: HostKeyPolicy) -> dict[str, Any]:
        data = self.data
        timeout = data["ssh_connect_timeout"] or self.state.config.CONNECT_TIMEOUT
        kwargs: dict[str, Any] = {
            "host": data["ssh_hostname"] or self.host.name,
            "client_factory": lambda: PolicyClient(policy),
            "connect_timeout": timeout,
            "keepalive_interval": data["ssh_keepalive_interval"],
            "keepalive_count_max": data["ssh_keepalive_count_max"],
            "agent_forwarding": bool(data["ssh_forward_agent"]),
            "encryption_algs": ENCRYPTION_ALGS,
        }
        if data["ssh_port"]:
            kwargs["port"] = int(data["ssh_port"])
        if data["ssh_user"]:
            kwargs["username"] = data["ssh_user"]
        if data["ssh_config_file"]:
            kwargs["config"] = [os.path.expanduser(data["ssh_config_file"])]
        if data["ssh_password"]:
            kwargs["password"] = data["ssh_password"]
        if data["ssh_key"]:
            kwargs["client_keys"] = [os.path.expanduser(data["ssh_key"])]
            kwargs["passphrase"] = data["ssh_key_password"]
            kwargs["agent_path"] = None
        else:
            if not data["ssh_allow_agent"]:
                kwargs["agent_path"] = None
            if not data["ssh_look_for_keys"]:
                kwargs["client_keys"] = []
        return kwargs

    @override
    def connect(self) -> None:
        """Open the host's SSH connection, retrying ``ssh_connect_retries`` times on network errors.

        Raises:
            ConnectError: with the reason; pyinfra then marks this host failed.
        """
        if self.data["ssh_file_transfer_protocol"] not in (None, "sftp"):
            raise ConnectError("@asyncssh transfers files over SFTP only (ssh_file_transfer_protocol)")
        try:
            policy = HostKeyPolicy.from_data(
                self.data["ssh_strict_host_key_checking"], self.data["ssh_known_hosts_file"]
            )
        except ValueError as e:
            raise ConnectError(str(e)) from None
        kwargs = self._connect_kwargs(policy)
        retries = self.data["ssh_connect_retries"] or 0
        while True:
            try:
                self._conn = LOOP.run(lambda: _open(policy, kwargs), timeout=kwargs["connect_timeout"] + 5)
                break
            except (TimeoutError, OSError, asyncssh.ConnectionLost) as e:
                if retries <= 0:
                    raise ConnectError(_connect_reason(e, kwargs, policy)) from None
                retries -= 1
                delays = (self.data["ssh_connect_retry_min_delay"], self.data["ssh_connect_retry_max_delay"])
                gevent.sleep(random.uniform(*delays))
            except (asyncssh.Error, asyncssh.KeyImportError, ValueError) as e:
                raise ConnectError(_connect_reason(e, kwargs, policy)) from None
        policy.remember()

    @override
    def disconnect(self) -> None:
        """Close the SFTP session and the connection (bounded wait, never raises)."""
        conn, sftp = self._conn, self._sftp
        self._conn = self._sftp = None
        if conn is None:
            return

        async def close() -> None:
            # Not waiting for the server to acknowledge (``wait_closed``): that is a round trip
            # per host at the end of every run, and nothing is left to say to the host.
            if sftp is not None:
                sftp.exit()
            conn.close()
            await asyncio.sleep(0)  # let the transport start sending the disconnect

        try:
            LOOP.run(close, timeout=DISCONNECT_TIMEOUT_S)
        except Exception as e:  # a host that vanished: nothing left to close cleanly
            logger.debug("%s: disconnect: %r", self.host.name, e)

    def _connection(self) -> asyncssh.SSHClientConnection:
        if self._conn is None:
            raise ConnectionError(f"{self.host.name}: not connected")
        return self._conn

    # commands

    @override
    def run_shell_command(
        self,
        command: StringCommand,
        print_output: bool = False,
        print_input: bool = False,
        **arguments: Unpack[ConnectorArguments],
    ) -> tuple[bool, CommandOutput]:
        """Run ``command`` (wrapped for ``_sudo``, ``_su_user``, ``_env``, ``_chdir``, ``_shell_executable``).

        Args:
            command: the command; pyinfra's global arguments arrive in ``arguments``.
            print_output: echo the output lines (after the command ends).
            print_input: echo the command before running it.
            arguments: ``_get_pty`` (bool), ``_timeout`` (s, None = no limit), ``_stdin`` (str,
                list of lines or file object; each line gets a newline), ``_success_exit_codes``
                (default ``[0]``), and the wrapping arguments above.

        Returns:
            ``(succeeded, CommandOutput)``: the lines of stdout and stderr in arrival order.

        Raises:
            TimeoutError: ``_timeout`` passed; the channel is closed.
            ConnectionError: the connection dropped or no channel could be opened.
        """
        get_pty = bool(arguments.pop("_get_pty", False))
        timeout = arguments.pop("_timeout", None)
        stdin = arguments.pop("_stdin", None)
        success_codes = arguments.pop("_success_exit_codes", None) or [0]
        conn = self._connection()
        stdin_bytes = None
        if stdin:
            buffer = _StdinBuffer()
            write_stdin(stdin, buffer)
            stdin_bytes = buffer.getvalue()

        def execute() -> tuple[int, CommandOutput]:
            unix_command = make_unix_command_for_host(self.state, self.host, command, **arguments)
            raw = unix_command.get_raw_value()
            logger.debug("Running command on %s: (pty=%s) %s", self.host.name, get_pty, unix_command)
            if print_input:
                echo(f"{self.host.print_prefix}>>> {unix_command}", err=True)
            status, lines = LOOP.run(lambda: _exec(conn, raw, stdin_bytes, get_pty, timeout))
            if print_output:
                for line in lines:
                    text = line.line if line.buffer_name == "stdout" else format_text(line.line, "red")
                    echo(f"{self.host.print_prefix}{text}", err=True)
            return status, CommandOutput(lines)

        status, output = execute_command_with_sudo_retry(self.host, arguments, execute)
        return status in success_codes, output

    # files (pyinfra's SSHConnector.put_file/get_file call these for the SFTP part)

    async def _sftp_client(self) -> asyncssh.SFTPClient:
        if self._sftp is None:
            self._sftp = await self._connection().start_sftp_client()
        return self._sftp

    def _put_file(self, filename_or_io, remote_location: str) -> None:
        """Write a local file or IO object to ``remote_location`` over SFTP (as the login user).

        Raises:
            OSError: the SFTP open or write failed: the message names ``remote_location`` and the
                cause (``No space left on device``, ``Read-only file system``, ``Permission
                denied``..., see ``sftp_errors``), ``errno`` set when known; no partial file
                is left. ``ConnectionError`` when the connection dropped.
        """
        from pyinfra.api.util import get_file_io

        logger.debug("Uploading %s to %s", filename_or_io, remote_location)
        with get_file_io(filename_or_io) as file_io:
            self._sftp_call(lambda: self._write_remote(file_io, remote_location))

    def _get_file(self, remote_filename: str, filename_or_io) -> None:
        """Read ``remote_filename`` over SFTP into a local file or IO object.

        Raises:
            OSError: the SFTP read failed, naming ``remote_filename`` and the cause, or the
                connection dropped (``ConnectionError``).
        """
        from pyinfra.api.util import get_file_io

        with get_file_io(filename_or_io, "wb") as file_io:
            self._sftp_call(lambda: self._read_remote(remote_filename, file_io))

    def _sftp_call(self, factory) -> None:
        try:
            LOOP.run(factory)
        except asyncssh.SFTPError as e:  # the session itself (the file errors are diagnosed above)
            raise OSError(f"SFTP session failed: {e.reason}") from None
        except asyncssh.Error as e:
            raise _transport_error(e) from None

    def _as_root(self) -> bool:
        return self._connection().get_extra_info("username") == "root"

    async def _write_remote(self, file_io: IO, remote: str) -> None:
        """Write ``file_io`` to ``remote``. A failed open or write raises ``OSError`` naming the
        path and the cause (``sftp_errors.diagnose``); after a failed write the partial file
        this upload created is removed, so a full disk is not left fuller."""
        sftp = await self._sftp_client()
        as_root = self._as_root()
        try:
            remote_file = await sftp.open(remote, "wb")
        except asyncssh.SFTPError as e:
            raise await diagnose(sftp, "open", remote, e, 1, as_root) from None
        chunk: bytes | str = b""
        try:
            try:
                while chunk := file_io.read(TRANSFER_CHUNK_BYTES):
                    await remote_file.write(chunk.encode() if isinstance(chunk, str) else chunk)
            finally:
                await remote_file.close()
        except asyncssh.SFTPError as e:
            error = await diagnose(sftp, "write", remote, e, max(len(chunk), 1), as_root)
            with contextlib.suppress(asyncssh.Error, OSError):
                await sftp.remove(remote)
            raise error from None

    async def _read_remote(self, remote: str, file_io: IO) -> None:
        sftp = await self._sftp_client()
        try:
            async with sftp.open(remote, "rb") as remote_file:
                while chunk := await remote_file.read(TRANSFER_CHUNK_BYTES):
                    file_io.write(chunk)
        except asyncssh.SFTPError as e:
            raise await diagnose(sftp, "read", remote, e, 1, self._as_root()) from None


async def _open(policy: HostKeyPolicy, kwargs: dict[str, Any]) -> asyncssh.SSHClientConnection:
    """Connect on the loop thread (known_hosts is read here too)."""
    known = policy.known_hosts()
    return await asyncssh.connect(known_hosts=known, **kwargs)


async def _exec(
    conn: asyncssh.SSHClientConnection, command: str, stdin: bytes | None, get_pty: bool, timeout: float | None
) -> tuple[int, list[OutputLine]]:
    """Run one command on a new channel; returns (exit status, lines). -1 when killed by a signal."""
    try:
        channel, session = await conn.create_session(
            _Collector, command, term_type="xterm" if get_pty else None, encoding=None
        )
    except (asyncssh.Error, OSError) as e:
        raise _transport_error(e) from None
    try:
        if stdin:
            channel.write(stdin)
        channel.write_eof()
        await asyncio.wait_for(session.done, timeout)
    except BaseException:
        channel.close()
        raise
    status = session.exit_status
    return (status if status is not None else -1), session.lines


def _connect_reason(e: BaseException, kwargs: dict[str, Any], policy: HostKeyPolicy) -> str:
    """One line saying why a connect failed, naming the address and what was tried."""
    where = f"{kwargs['host']}:{kwargs.get('port', 22)}"
    if isinstance(e, asyncssh.HostKeyNotVerifiable):
        return policy.refusal or f"host key not verifiable ({e.reason})"
    if isinstance(e, asyncssh.PermissionDenied):
        keys = kwargs.get("client_keys")
        how = f"key={keys[0]}" if keys else "agent/default keys"
        return f"Authentication failed ({where}, user={kwargs.get('username', 'default')}, {how}): {e.reason}"
    if isinstance(e, (asyncio.TimeoutError, TimeoutError)):
        return f"Connect timed out after {kwargs['connect_timeout']} s ({where})"
    if isinstance(e, ConnectionRefusedError):
        return f"Connection refused ({where})"
    if isinstance(e, socket.gaierror):
        return f"Could not resolve hostname {kwargs['host']}: {e.strerror or e}"
    if isinstance(e, asyncssh.KeyImportError):
        return f"Could not load the SSH key {kwargs.get('client_keys')}: {e}"
    if isinstance(e, OSError):
        return f"Could not connect ({where}): {e.strerror or e}"
    return f"SSH error ({where}): {getattr(e, 'reason', '') or e}"
