"""SSH to the test VMs with the OpenSSH client: key only, batch mode, strict host key checking."""

from __future__ import annotations

import os
import select
import shlex
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import VMError
from .prereq import tool

#: Seconds an idle multiplexing master connection stays open.
CONTROL_PERSIST_S = 60


@dataclass(frozen=True)
class SSHTarget:
    """Where and how to log in to one VM."""

    host: str
    port: int
    user: str
    key: Path
    known_hosts: Path


def ssh_argv(
    target: SSHTarget,
    command: str | Sequence[str] | None = None,
    *,
    connect_timeout: float = 10,
    control_path: Path | None = None,
) -> list[str]:
    """OpenSSH argv for ``target``; ``command`` is a shell string or an argv (quoted here).

    Ignores the user's ``~/.ssh/config`` (``-F /dev/null``) and agent, accepts only the host key
    in ``target.known_hosts``. With ``control_path``, connections are multiplexed over one master
    connection kept for :data:`CONTROL_PERSIST_S` seconds (a command then costs about 0.07 s
    instead of about 1 s of login under TCG); close it with :func:`close_master`.
    """
    argv = [
        tool("ssh"),
        "-F", "/dev/null",
        "-i", str(target.key),
        "-p", str(target.port),
        "-o", "IdentitiesOnly=yes",
        "-o", "IdentityAgent=none",
        "-o", "BatchMode=yes",
        "-o", "PasswordAuthentication=no",
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={target.known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "UpdateHostKeys=no",
        "-o", f"ConnectTimeout={int(max(1, connect_timeout))}",
        "-o", "ServerAliveInterval=10",
        "-o", "LogLevel=ERROR",
        "-l", target.user,
        target.host,
    ]  # fmt: skip
    if control_path is not None:
        argv[1:1] = [
            "-o", "ControlMaster=auto",
            "-o", f"ControlPath={control_path}",
            "-o", f"ControlPersist={CONTROL_PERSIST_S}",
        ]  # fmt: skip
    if command is not None:
        argv += ["--", command if isinstance(command, str) else shlex.join(command)]
    return argv


def run_ssh(
    target: SSHTarget,
    command: str | Sequence[str],
    *,
    timeout: float | None = 120,
    input: str | None = None,
    check: bool = False,
    connect_timeout: float = 10,
    control_path: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` on ``target``; return the completed process (text stdout/stderr).

    Exit status 255 means SSH itself failed (connection, authentication, host key).
    ``control_path``: multiplex over a master connection (see :func:`ssh_argv`).

    Raises:
        subprocess.TimeoutExpired: the command ran longer than ``timeout`` seconds.
        subprocess.CalledProcessError: ``check=True`` and the exit status was not 0.
    """
    # gevent's subprocess.run (pyinfra's CLI monkey-patches the stdlib) refuses ``stdin`` next to
    # ``input`` even when it is None: pass exactly one of them.
    feed: dict[str, object] = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    return subprocess.run(  # type: ignore[call-overload]
        ssh_argv(target, command, connect_timeout=connect_timeout, control_path=control_path),
        **feed,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


def close_master(target: SSHTarget, control_path: Path) -> None:
    """Ask a multiplexing master (if any) to exit; needed before a VM is reset or stopped."""
    if not control_path.exists():
        return
    argv = ssh_argv(target, control_path=control_path)
    argv[-1:-1] = ["-O", "exit"]
    subprocess.run(argv, capture_output=True, timeout=10, check=False)
    control_path.unlink(missing_ok=True)


def is_reachable(target: SSHTarget, timeout: float = 5) -> bool:
    """True if a key login on ``target`` runs ``true`` within ``timeout`` seconds."""
    try:
        return run_ssh(target, "true", timeout=timeout, connect_timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def wait_for_ssh(target: SSHTarget, timeout: float, *, interval: float = 0.2) -> float:
    """Retry a key login until it works; return the seconds waited.

    QEMU's user network accepts TCP connections before the guest listens, so only a real login
    proves the VM is up.

    Raises:
        VMError: no successful login within ``timeout`` seconds (message has ssh's last error).
    """
    start = time.monotonic()
    deadline = start + timeout
    last = ""
    while True:
        left = deadline - time.monotonic()
        try:
            p = run_ssh(target, "true", timeout=max(2.0, min(15.0, left)), connect_timeout=5)
            if p.returncode == 0:
                return time.monotonic() - start
            last = p.stderr.strip()
        except subprocess.TimeoutExpired:
            last = "timeout"
        if time.monotonic() >= deadline:
            raise VMError(f"no SSH login on {target.host}:{target.port} after {timeout:.0f} s: {last}")
        time.sleep(interval)


def sync_clock(target: SSHTarget, extra: str = "", timeout: float = 30) -> None:
    """Set the guest clock to the controller's (sub-second), then run ``extra`` shell code.

    The epoch is sent only after the remote shell reports it is running, so the connection
    setup time does not skew the clock.

    Raises:
        VMError: the login or the command failed.
    """
    script = 'echo ready; read t; date -s "@$t" >/dev/null'
    if extra:
        script += f"; {extra}"
    proc = subprocess.Popen(
        ssh_argv(target, script),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin and proc.stdout
    try:
        deadline = time.monotonic() + timeout
        buf = b""
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise VMError(f"clock sync on port {target.port}: no answer in {timeout} s")
            ready, _, _ = select.select([proc.stdout], [], [], left)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                buf += chunk
        if not buf.startswith(b"ready"):
            proc.kill()
            _, err = proc.communicate(timeout=5)
            raise VMError(f"clock sync on port {target.port} failed: {err.decode().strip()}")
        _, err = proc.communicate(
            input=f"{time.time():.6f}\n".encode(),
            timeout=max(1.0, deadline - time.monotonic()),
        )
    except subprocess.TimeoutExpired as e:
        proc.kill()
        raise VMError(f"clock sync on port {target.port} timed out") from e
    if proc.returncode != 0:
        raise VMError(f"clock sync on port {target.port} failed: {err.decode().strip()}")


def sync_clock_when_up(target: SSHTarget, timeout: float, extra: str = "", interval: float = 0.1) -> float:
    """Retry :func:`sync_clock` until the guest answers; return the seconds waited.

    Saves one full login (about 1 s under TCG) compared with :func:`wait_for_ssh` followed by
    :func:`sync_clock`.

    Raises:
        VMError: no successful login within ``timeout`` seconds.
    """
    start = time.monotonic()
    while True:
        try:
            sync_clock(target, extra=extra, timeout=max(5.0, min(30.0, timeout)))
            return time.monotonic() - start
        except VMError as e:
            if time.monotonic() - start >= timeout:
                raise VMError(f"no SSH login on {target.host}:{target.port} after {timeout:.0f} s: {e}") from e
        time.sleep(interval)
