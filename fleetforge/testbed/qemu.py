"""QEMU command lines, accelerator choice, process handling and a minimal QMP client.

The machine is a look-alike of an OVH VPS (KVM guest on i440fx): NIC ``virtio-net-pci`` in PCI
slot 3 (guest name ``ens3``), root and data disks on virtio-blk or virtio-scsi with serial
numbers (so ``/dev/disk/by-id`` exists), a virtio RNG, the serial console in a log file and no
default devices (``-nodefaults``: the default floppy and CD-ROM slow the boot).
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from .errors import VMError
from .flavours import Flavour
from .prereq import tool

Accel = Literal["tcg", "kvm"]

ENV_ACCEL = "FLEETFORGE_TESTBED_ACCEL"

#: Settings that shape the virtual hardware; part of the image recipe hash, because the golden
#: RAM snapshots are only valid for exactly this hardware.
QEMU_SETTINGS: dict[str, str] = {
    "machine": "pc",
    "tcg_accel": "tcg,thread=multi,tb-size=256",
    "tcg_cpu": "qemu64",
    "kvm_accel": "kvm",
    "kvm_cpu": "host",
    "nic": "virtio-net-pci,addr=0x3,mac=52:54:00:f1:ee:01,romfile=",
    # second NIC, guest ens4: the test LAN (fleetforge/testbed/lan.py)
    "lan_nic": "virtio-net-pci,addr=0x4,mac=52:54:00:f1:ee:02,romfile=",
    "disk_slot": "0x5",
    "data_slot": "0x6",
    "rng": "virtio-rng-pci,addr=0x7",
    "root_serial": "ff-root",
    "data_serial": "ff-data",
    "drive_opts": "format=qcow2,cache=unsafe,discard=unmap,aio=threads",
}

PR_SET_THP_DISABLE = 41
SSH_GUEST_PORT = 22


def choose_accel() -> Accel:
    """``kvm`` when ``kvm_intel``/``kvm_amd`` is loaded and ``/dev/kvm`` is usable, else ``tcg``.

    ``$FLEETFORGE_TESTBED_ACCEL`` (``tcg``/``kvm``) overrides. A bare ``/dev/kvm`` is not
    enough: on nested "PVM" hosts it exists but a stock Debian kernel hangs under it.
    """
    env = os.environ.get(ENV_ACCEL, "").strip().lower()
    if env in ("tcg", "kvm"):
        return env  # type: ignore[return-value]
    loaded = any(Path(f"/sys/module/{m}").exists() for m in ("kvm_intel", "kvm_amd"))
    if loaded and os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "kvm"
    return "tcg"


@functools.cache
def qemu_version() -> str:
    """Version of ``qemu-system-x86_64`` such as ``7.2.22`` (part of the golden-state key)."""
    out = subprocess.run([tool("qemu-system-x86_64"), "--version"], capture_output=True, text=True, check=True).stdout
    words = out.split()
    try:
        return words[words.index("version") + 1]
    except (ValueError, IndexError):
        return out.strip().replace(" ", "_")[:40]


def _esc(path: Path | str) -> str:
    """Escape a value for QEMU's comma-separated option syntax."""
    return str(path).replace(",", ",,")


def qemu_command(
    *,
    name: str,
    flavour: Flavour,
    accel: Accel,
    kernel: Path,
    initrd: Path,
    append: str,
    root_disk: Path,
    data_disk: Path,
    ssh_port: int,
    qmp_socket: Path,
    pidfile: Path,
    console_log: Path,
    incoming: Path | None = None,
    lan_tap: str | None = None,
) -> list[str]:
    """Build the ``qemu-system-x86_64`` argv for one VM (daemonized).

    Args:
        name: VM name (shown in ``ps`` and QMP).
        flavour: disk transport, RAM (MiB) and vCPUs.
        accel: ``tcg`` or ``kvm`` (see :func:`choose_accel`).
        kernel, initrd, append: direct kernel boot (no bootloader).
        root_disk, data_disk: qcow2 files for the root disk and the empty second disk.
        ssh_port: host port on 127.0.0.1 forwarded to the guest's port 22.
        qmp_socket: path of the QMP unix socket (at most 107 bytes).
        pidfile: where QEMU writes its PID.
        console_log: file receiving the guest's serial console.
        incoming: a zstd-compressed migration stream to start from (golden state), or ``None``
            for a cold boot.
        lan_tap: tap device on the test LAN bridge for the second NIC (``ens4``); ``None``
            gives that NIC a closed user-mode backend (golden boots: the device must exist so
            the saved state fits every VM, its backend is not part of the state).
    """
    s = QEMU_SETTINGS
    if len(str(qmp_socket).encode()) > 107:
        raise VMError(f"QMP socket path too long for a unix socket (max 107 bytes): {qmp_socket}")
    accel_opt = s["kvm_accel"] if accel == "kvm" else s["tcg_accel"]
    cpu = s["kvm_cpu"] if accel == "kvm" else s["tcg_cpu"]
    drive = s["drive_opts"]
    argv = [
        tool("qemu-system-x86_64"),
        "-name", f"{name},process=qemu-{name}",
        "-nodefaults", "-no-user-config",
        "-machine", f"{s['machine']},dump-guest-core=off",
        "-accel", accel_opt,
        "-cpu", cpu,
        "-smp", str(flavour.vcpus),
        "-m", str(flavour.memory_mib),
        "-display", "none",
        "-kernel", str(kernel), "-initrd", str(initrd), "-append", append,
        "-chardev", f"file,id=con0,path={_esc(console_log)}",
        "-serial", "chardev:con0",
        "-qmp", f"unix:{_esc(qmp_socket)},server=on,wait=off",
        "-pidfile", str(pidfile),
        "-daemonize",
        "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{ssh_port}-:{SSH_GUEST_PORT}",
        "-device", f"{s['nic']},netdev=net0",
        "-netdev", (f"tap,id=lan0,ifname={lan_tap},script=no,downscript=no" if lan_tap
                    else "user,id=lan0,restrict=on"),
        "-device", f"{s['lan_nic']},netdev=lan0",
        "-device", s["rng"],
        "-drive", f"if=none,id=root,file={_esc(root_disk)},{drive}",
        "-drive", f"if=none,id=data,file={_esc(data_disk)},{drive}",
    ]  # fmt: skip
    if flavour.transport == "virtio-blk":
        argv += [
            "-device", f"virtio-blk-pci,drive=root,id=rootdisk,addr={s['disk_slot']},"
                       f"serial={s['root_serial']}",
            "-device", f"virtio-blk-pci,drive=data,id=datadisk,addr={s['data_slot']},"
                       f"serial={s['data_serial']}",
        ]  # fmt: skip
    elif flavour.transport == "virtio-scsi":
        argv += [
            "-device", f"virtio-scsi-pci,id=scsi0,addr={s['disk_slot']}",
            "-device", "scsi-hd,drive=root,id=rootdisk,bus=scsi0.0,channel=0,scsi-id=0,lun=0,"
                       f"serial={s['root_serial']}",
            "-device", "scsi-hd,drive=data,id=datadisk,bus=scsi0.0,channel=0,scsi-id=1,lun=0,"
                       f"serial={s['data_serial']}",
        ]  # fmt: skip
    else:  # pragma: no cover - Flavour.transport is a Literal
        raise VMError(f"unknown disk transport {flavour.transport!r}")
    if incoming is not None:
        argv += ["-incoming", f"exec:zstd -dcq {shlex.quote(str(incoming))}"]
    return argv


def _disable_thp() -> None:
    """preexec_fn: no transparent huge pages for QEMU (saves about half the RSS per VM).

    ``PR_SET_THP_DISABLE`` is inherited across fork and execve.
    """
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)
    except Exception:  # noqa: BLE001 - best effort only
        pass


def launch(argv: Sequence[str], cwd: Path, timeout: float = 60.0) -> None:
    """Start QEMU with ``-daemonize`` and wait until it has daemonized.

    Raises:
        VMError: QEMU exited with an error (message has its stderr), e.g. a port in use.
    """
    proc = subprocess.run(
        list(argv),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_disable_thp,  # noqa: PLW1509 - single-threaded use of prctl only
        check=False,
    )
    if proc.returncode != 0:
        raise VMError(f"qemu failed to start (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout}")


def read_pid(pidfile: Path) -> int | None:
    """PID from a QEMU pid file, or ``None``."""
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int | None, marker: str | Path) -> bool:
    """True if ``pid`` runs and its command line contains ``marker`` (guards against PID reuse)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return str(marker).encode() in cmdline


def rss_mib(pid: int | None) -> float | None:
    """Resident memory of ``pid`` in MiB (``VmRSS``), or ``None``."""
    if not pid:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def kill(pid: int | None, marker: str | Path, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL, a QEMU process if it is still ours; waits until it is gone."""
    if not pid_alive(pid, marker):
        return
    assert pid is not None
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not pid_alive(pid, marker):
                return
            time.sleep(0.05)
    raise VMError(f"qemu pid {pid} did not exit")


def port_free(port: int) -> bool:
    """True if ``port`` can be bound on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(avoid: set[int] | frozenset[int] = frozenset()) -> int:
    """A currently free TCP port on 127.0.0.1 (not in ``avoid``)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in avoid:
            return port
    raise VMError("no free TCP port on 127.0.0.1")


class QMP:
    """Minimal synchronous QMP client over a unix socket.

    Use as a context manager::

        with QMP(path) as q:
            q.command("stop")
            out = q.hmp("savevm clean")
    """

    def __init__(self, path: Path, timeout: float = 30.0, connect_timeout: float = 10.0) -> None:
        """Connect and negotiate capabilities.

        Args:
            path: the ``-qmp unix:`` socket.
            timeout: seconds to wait for each reply.
            connect_timeout: seconds to retry connecting while QEMU creates the socket.

        Raises:
            VMError: no QMP server answered.
        """
        self.path = path
        self.timeout = timeout
        deadline = time.monotonic() + connect_timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(str(path))
                break
            except OSError as e:
                sock.close()
                if time.monotonic() > deadline:
                    raise VMError(f"cannot connect to QMP socket {path}: {e}") from e
                time.sleep(0.05)
        self._sock = sock
        self._buf = b""
        greeting = self._read()
        if "QMP" not in greeting:
            raise VMError(f"unexpected QMP greeting: {greeting}")
        self.command("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        while b"\n" not in self._buf:
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError as e:
                raise VMError(f"QMP {self.path}: no reply in {self.timeout} s") from e
            if not chunk:
                raise VMError(f"QMP {self.path}: connection closed")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def command(self, name: str, **arguments: Any) -> Any:
        """Run QMP command ``name``; return its ``return`` value.

        Raises:
            VMError: QEMU answered with an error.
        """
        msg: dict[str, Any] = {"execute": name}
        if arguments:
            msg["arguments"] = arguments
        self._sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read()
            if "event" in reply:
                continue
            if "error" in reply:
                err = reply["error"]
                raise VMError(f"QMP {name} failed: {err.get('class')}: {err.get('desc')}")
            return reply.get("return")

    def hmp(self, line: str) -> str:
        """Run a human-monitor command (``savevm``, ``loadvm``...) and return its text output.

        HMP reports errors as text, so callers must check the returned string.
        """
        return str(self.command("human-monitor-command", **{"command-line": line}) or "")

    def wait_status(self, wanted: set[str], timeout: float, poll: float = 0.05) -> str:
        """Poll ``query-status`` until its status is in ``wanted``; return it.

        Raises:
            VMError: timeout, or the VM reached a failure state.
        """
        deadline = time.monotonic() + timeout
        status = "?"
        while time.monotonic() < deadline:
            status = self.command("query-status")["status"]
            if status in wanted:
                return status
            if status in {"internal-error", "io-error", "guest-panicked", "shutdown"}:
                raise VMError(f"VM entered state {status!r}")
            time.sleep(poll)
        raise VMError(f"VM still in state {status!r} after {timeout} s (wanted {sorted(wanted)})")

    def close(self) -> None:
        """Close the socket (QEMU keeps running)."""
        try:
            self._sock.close()
        except OSError:
            pass

    def __enter__(self) -> QMP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def create_vm_disks(backing: Path, directory: Path, root_name: str, data_disk_gib: int) -> None:
    """Create a VM's disks in ``directory``: ``root_name``, a qcow2 overlay over ``backing``
    (never written to), and ``data.qcow2``, an empty ``data_disk_gib`` GiB disk.

    Raises ``subprocess.CalledProcessError`` if ``qemu-img`` fails.
    """
    qemu_img = tool("qemu-img")
    overlay = [qemu_img, "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(backing), str(directory / root_name)]
    subprocess.run(overlay, check=True, capture_output=True)
    data = [qemu_img, "create", "-q", "-f", "qcow2", str(directory / "data.qcow2"), f"{data_disk_gib}G"]
    subprocess.run(data, check=True, capture_output=True)
