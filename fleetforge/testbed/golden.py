"""Golden VM states: boot a flavour once, then save its RAM/device state for fast starts.

A golden state is a qcow2 overlay of the image's base disk (frozen after the boot) plus a
zstd-compressed migration stream of the stopped VM. A test VM is a new qcow2 overlay on the
golden disk started with ``-incoming`` from the stream: SSH is up within seconds instead of a
40 s cold boot under TCG.

Goldens live in ``images/<hash>/golden/<flavour>-<accel>-<qemu version>/`` and are built in a
``.tmp-*`` directory then renamed, like images.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import VMError
from .flavours import Flavour
from .image import Image
from .locking import file_lock
from .qemu import (
    QEMU_SETTINGS,
    QMP,
    Accel,
    create_vm_disks,
    free_port,
    kill,
    launch,
    qemu_command,
    qemu_version,
    read_pid,
)
from .ssh import SSHTarget, run_ssh, wait_for_ssh

#: Seconds allowed for a cold boot to SSH (about 40 s on an idle 2-core machine under TCG).
COLD_BOOT_TIMEOUT = 900.0

Log = Callable[[str], None]


def _quiet(_msg: str) -> None:
    return None


def golden_key(flavour: Flavour, accel: Accel) -> str:
    """Directory name of a golden state: ``<flavour>-<accel>-<qemu version>``."""
    return f"{flavour.name}-{accel}-{qemu_version()}"


@dataclass(frozen=True)
class Golden:
    """A finished golden state of one flavour."""

    path: Path
    flavour: Flavour
    accel: Accel

    @property
    def disk(self) -> Path:
        """Root disk (qcow2 overlay of the base image) as it was when the state was saved."""
        return self.path / "disk.qcow2"

    @property
    def state(self) -> Path:
        """zstd-compressed migration stream (RAM and device state)."""
        return self.path / "state.zst"

    def info(self) -> dict[str, object]:
        """Measurements taken while the golden state was made (boot and save seconds...)."""
        return json.loads((self.path / "info.json").read_text())


def find_golden(image: Image, flavour: Flavour, accel: Accel) -> Golden | None:
    """The golden state of ``flavour`` for ``image``, or ``None`` if it is not made yet."""
    p = image.golden_dir(golden_key(flavour, accel))
    if (p / "info.json").exists() and (p / "state.zst").exists():
        return Golden(p, flavour, accel)
    return None


def ensure_golden(image: Image, flavour: Flavour, accel: Accel, *, log: Log = _quiet) -> Golden:
    """Return the golden state of ``flavour``, making it first if needed (about 1 min).

    Raises:
        VMError: the cold boot or the state save failed.
    """
    if g := find_golden(image, flavour, accel):
        return g
    key = golden_key(flavour, accel)
    with file_lock(image.path / "golden" / f".lock-{key}"):
        if g := find_golden(image, flavour, accel):
            return g
        return make_golden(image, flavour, accel, log=log)


def _disk_names(target: SSHTarget) -> tuple[str, dict[str, str], str]:
    """(root fs source, {disk serial: kernel name}, boot id) of the guest."""
    p = run_ssh(
        target,
        "findmnt -no SOURCE /; cat /proc/sys/kernel/random/boot_id; lsblk -dno NAME,SERIAL",
        timeout=60,
    )
    lines = p.stdout.splitlines()
    if p.returncode != 0 or len(lines) < 2:
        raise VMError(f"cannot list the guest's disks: {p.stderr.strip()}")
    disks = {}
    for line in lines[2:]:
        parts = line.split()
        if len(parts) == 2:
            disks[parts[1]] = parts[0]
    return lines[0].strip(), disks, lines[1].strip()


def _ensure_disk_names(target: SSHTarget, flavour: Flavour, *, log: Log, tries: int = 8) -> int:
    """Reboot until the root disk is ``/dev/<root_disk>`` and the data disk ``<data_disk>``.

    The SCSI disk driver probes disks in parallel on a multi-vCPU guest, so ``sda``/``sdb`` can
    swap at boot. The golden state freezes one boot's names for every VM started from it, so
    that boot must have the expected names. Returns the number of reboots needed.

    Raises:
        VMError: still wrong after ``tries`` boots.
    """
    for attempt in range(tries):
        root, disks, boot_id = _disk_names(target)
        want_root = f"/dev/{flavour.root_disk}1"
        if root == want_root and disks.get(QEMU_SETTINGS["data_serial"]) == flavour.data_disk:
            return attempt
        log(f"golden {flavour.name}: root is {root} ({disks}), want {want_root}: rebooting")
        run_ssh(target, "systemctl reboot", timeout=30)
        deadline = time.monotonic() + COLD_BOOT_TIMEOUT
        while time.monotonic() < deadline:
            time.sleep(2)
            try:
                wait_for_ssh(target, max(1.0, deadline - time.monotonic()), interval=1.0)
                if _disk_names(target)[2] != boot_id:
                    break
            except VMError:
                continue
    raise VMError(f"golden {flavour.name}: disk names still wrong after {tries} boots")


def make_golden(image: Image, flavour: Flavour, accel: Accel, *, log: Log = _quiet) -> Golden:
    """Cold-boot ``flavour``, wait for SSH, stop it and save its state (caller holds the lock)."""
    key = golden_key(flavour, accel)
    final = image.golden_dir(key)
    tmp = final.parent / f".tmp-{key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    pidfile = tmp / "qemu.pid"
    info: dict[str, object] = {"flavour": flavour.name, "accel": accel, "qemu": qemu_version()}
    try:
        create_vm_disks(image.base_disk, tmp, "disk.qcow2", flavour.data_disk_gib)
        port = free_port()
        argv = qemu_command(
            name=f"golden-{flavour.name}",
            flavour=flavour,
            accel=accel,
            kernel=image.kernel,
            initrd=image.initrd,
            append=image.kernel_cmdline,
            root_disk=tmp / "disk.qcow2",
            data_disk=tmp / "data.qcow2",
            ssh_port=port,
            qmp_socket=tmp / "qmp.sock",
            pidfile=pidfile,
            console_log=tmp / "console.log",
        )
        target = SSHTarget("127.0.0.1", port, "root", image.ssh_key, image.known_hosts)
        log(f"golden {key}: cold boot (about 40-90 s under TCG) ...")
        t0 = time.monotonic()
        launch(argv, cwd=tmp)
        try:
            wait_for_ssh(target, COLD_BOOT_TIMEOUT, interval=1.0)
        except VMError as e:
            console = (tmp / "console.log").read_text(errors="replace")[-3000:]
            raise VMError(f"golden {key}: {e}\n--- console tail ---\n{console}") from e
        info["boot_to_ssh_s"] = round(time.monotonic() - t0, 1)
        info["reboots"] = _ensure_disk_names(target, flavour, log=log)
        # let boot jobs finish, then drop the page cache: smaller state file, lower RSS per VM
        p = run_ssh(
            target,
            "systemctl is-system-running --wait; systemctl --failed --no-legend --plain; "
            "sync; echo 3 > /proc/sys/vm/drop_caches; sync",
            timeout=300,
        )
        lines = p.stdout.split()
        info["system_state"] = lines[0] if lines else "?"
        info["failed_units"] = [w for w in lines[1:] if "." in w]
        info["settled_s"] = round(time.monotonic() - t0, 1)
        t1 = time.monotonic()
        with QMP(tmp / "qmp.sock", timeout=60) as q:
            q.command("stop")
            q.command("migrate-set-parameters", **{"max-bandwidth": 64 << 30})
            state_cmd = f"exec:zstd -q -T0 -3 -o {shlex.quote(str(tmp / 'state.zst'))}"
            q.command("migrate", uri=state_cmd)
            deadline = time.monotonic() + 600
            while True:
                st = q.command("query-migrate")
                status = st.get("status")
                if status == "completed":
                    break
                if status in ("failed", "cancelled") or time.monotonic() > deadline:
                    raise VMError(f"golden {key}: saving the state failed: {st}")
                time.sleep(0.1)
            try:
                q.command("quit")
            except VMError:
                pass  # the socket may close before the reply
        kill(read_pid(pidfile), tmp, timeout=30)
        info["save_s"] = round(time.monotonic() - t1, 1)
        info["state_mib"] = round((tmp / "state.zst").stat().st_size / 2**20, 1)
        info["total_s"] = round(time.monotonic() - t0, 1)
        for leftover in ("data.qcow2", "qmp.sock", "qemu.pid"):
            (tmp / leftover).unlink(missing_ok=True)
        (tmp / "info.json").write_text(json.dumps(info, indent=1) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    except BaseException:
        kill(read_pid(pidfile), tmp)
        failed = final.parent / f"failed-{key}.console.log"
        if (tmp / "console.log").exists():
            shutil.copy(tmp / "console.log", failed)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(
        f"golden {key}: boot {info['boot_to_ssh_s']} s, save {info['save_s']} s, "
        f"state {info['state_mib']} MiB ({info['system_state']})"
    )
    return Golden(final, flavour, accel)
