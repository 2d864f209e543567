"""A real asyncssh SSH server inside the test process, for connector tests.

It runs on its own ``LoopThread`` (a native-thread asyncio loop, like the connector's), so the
pytest process, monkey-patched by gevent as pyinfra's CLI is, holds a server and a client at once.
Commands run for real through ``/bin/sh -c`` (the original ``os.posix_spawn`` on a native thread:
gevent's patched ``subprocess`` and ``posix_spawn`` need its hub); SFTP serves the real filesystem.

Test hooks: a command containing ``FFTEST_DROP`` makes the server abort the TCP connection
0.3 s after the command starts (a host that vanishes mid-command).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
from gevent import monkey

from fleetforge.connector.bridge import LoopThread

_poll = monkey.get_original("select", "poll")
_posix_spawn = monkey.get_original("os", "posix_spawn")
DROP_MARKER = "FFTEST_DROP"


def run_shell(command: str, stdin: bytes) -> tuple[int, bytes, bytes]:
    """Run ``sh -c command`` with ``stdin``; blocking, for a native thread. Returns (code, out, err).

    The exit code comes back through a pipe (fd 3) rather than ``waitpid``: gevent's hub reaps
    every child of a patched process, so the status would be gone.
    """
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    code_r, code_w = os.pipe()
    actions = [(os.POSIX_SPAWN_DUP2, fd, target) for fd, target in ((in_r, 0), (out_w, 1), (err_w, 2), (code_w, 3))]
    argv = ["sh", "-c", 'sh -c "$1" 3>&-; printf %s $? >&3', "sh", command]
    _posix_spawn("/bin/sh", argv, dict(os.environ), file_actions=actions)
    for fd in (in_r, out_w, err_w, code_w):
        os.close(fd)
    if stdin:
        os.write(in_w, stdin)
    os.close(in_w)
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: [], code_r: []}
    poller = _poll()
    for fd in chunks:
        poller.register(fd)
    open_fds = set(chunks)
    while open_fds:
        for fd, _ in poller.poll():
            data = os.read(fd, 65536)
            if data:
                chunks[fd].append(data)
            else:
                poller.unregister(fd)
                open_fds.discard(fd)
    for fd in chunks:
        os.close(fd)
    code = int(b"".join(chunks[code_r]) or b"-1")
    return code, b"".join(chunks[out_r]), b"".join(chunks[err_r])


@dataclass
class InProcessSSHServer:
    """An asyncssh server on 127.0.0.1 accepting ``client_key`` for any user name.

    Attributes (after ``start()``): ``port``; ``host_key_path`` / ``client_key_path`` (files);
    ``known_hosts`` (a file with this server's key for ``[127.0.0.1]:port``).
    """

    root: Path
    port: int = 0
    loop: LoopThread = field(default_factory=LoopThread)
    _server: asyncssh.SSHAcceptor | None = None

    def start(self) -> InProcessSSHServer:
        self.root.mkdir(parents=True, exist_ok=True)
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.host_key_path = self.root / "host_key"
        self.client_key_path = self.root / "client_key"
        host_key.write_private_key(str(self.host_key_path))
        client_key.write_private_key(str(self.client_key_path))
        os.chmod(self.client_key_path, 0o600)
        (self.root / "authorized_keys").write_bytes(client_key.export_public_key())
        self.host_public = host_key.export_public_key().decode().strip()

        async def serve() -> asyncssh.SSHAcceptor:
            return await asyncssh.create_server(
                asyncssh.SSHServer,
                "127.0.0.1",
                0,
                server_host_keys=[str(self.host_key_path)],
                authorized_client_keys=str(self.root / "authorized_keys"),
                process_factory=self._handle,
                sftp_factory=True,
                encoding=None,
            )

        self._server = self.loop.run(serve)
        self.port = self._server.sockets[0].getsockname()[1]
        self.known_hosts = self.root / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {self.host_public}\n")
        return self

    async def _handle(self, process: asyncssh.SSHServerProcess) -> None:
        command = process.command or ""
        if DROP_MARKER in command:
            await asyncio.sleep(0.3)
            process.channel.get_connection().abort()
            return
        stdin = await process.stdin.read()
        loop = asyncio.get_running_loop()
        code, out, err = await loop.run_in_executor(None, run_shell, command, stdin)
        try:
            process.stdout.write(out)
            process.stderr.write(err)
            process.exit(code)
        except (asyncssh.Error, OSError, BrokenPipeError):  # the client closed the channel (timeout)
            pass

    def host_data(self, **extra: object) -> dict[str, object]:
        """pyinfra host data reaching this server with its key and strict known_hosts."""
        return {
            "ssh_hostname": "127.0.0.1",
            "ssh_port": self.port,
            "ssh_user": "root",
            "ssh_key": str(self.client_key_path),
            "ssh_known_hosts_file": str(self.known_hosts),
            **extra,
        }

    def stop(self) -> None:
        server = self._server
        if server is not None:

            async def close() -> None:
                server.close()
                await server.wait_closed()

            self.loop.run(close, timeout=5)
        self.loop.stop()
