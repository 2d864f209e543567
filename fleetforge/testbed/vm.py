"""The testbed manager: start, track, reset and stop disposable OVH-like VMs.

Typical use::

    from fleetforge.testbed import Testbed

    tb = Testbed()                     # $FLEETFORGE_TESTBED_DIR or ~/.cache/fleetforge/testbed
    vms = tb.up()                      # vm-blk-1 (blk) and vm-scsi-1 (scsi); reuses running VMs
    tb.ssh("vm-blk-1", "lsblk")        # CompletedProcess
    tb.reset("vm-blk-1")               # back to the "clean" snapshot (about 2-3 s)
    tb.down()

Each VM is a qcow2 overlay on its flavour's golden disk, started with ``-incoming`` from the
golden RAM state, renamed (hostname) and clock-synced over SSH, then snapshotted as ``clean``
(``savevm``) for :meth:`Testbed.reset`. The VMs are recorded in ``run/state.json``; see
:func:`inventory_hosts` for pyinfra inventory entries.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import BaseModel, Field

from . import lan
from .errors import TestbedError, TestbedNotUpError, VMError
from .flavours import DEFAULT_SPECS, flavour_for_name, get_flavour
from .golden import Golden, ensure_golden
from .image import Image, Recipe, ensure_image, find_image
from .locking import file_lock
from .paths import Layout
from .prereq import check_prerequisites
from .qemu import (
    QMP,
    Accel,
    choose_accel,
    create_vm_disks,
    free_port,
    kill,
    launch,
    pid_alive,
    port_free,
    qemu_command,
    read_pid,
    rss_mib,
)
from .ssh import SSHTarget, close_master, is_reachable, run_ssh, sync_clock, sync_clock_when_up

STATE_VERSION = 1
SNAPSHOT = "clean"
#: Seconds to wait for SSH after a start from the golden state or a reset.
START_TIMEOUT = 120.0
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

Spec = tuple[str, str]
Log = Callable[[str], None]


def _quiet(_msg: str) -> None:
    return None


class VMInfo(BaseModel):
    """One test VM as recorded in ``run/state.json``.

    ``running`` and ``reachable`` are as of the last check (:meth:`Testbed.status` re-checks).
    """

    name: str
    flavour: str
    ssh_host: str = "127.0.0.1"
    ssh_port: int
    ssh_user: str = "root"
    ssh_key: Path
    known_hosts: Path = Field(description="run/known_hosts: exact [127.0.0.1]:PORT lines")
    memory_mib: int
    vcpus: int
    root_disk: str = Field(description="guest kernel name of the root disk: vda or sda")
    data_disk: str = Field(description="guest kernel name of the empty second disk: vdb or sdb")
    pid: int | None
    running: bool
    reachable: bool | None = None
    accel: str
    image: str = Field(description="recipe hash of the image the VM runs")
    vm_dir: Path
    qmp_socket: Path
    console_log: Path
    started_at: float = Field(description="epoch seconds of the start")
    rss_mib: float | None = Field(default=None, description="QEMU resident memory, MiB")
    timings: dict[str, float] = Field(default_factory=dict, description="seconds per start step")
    lan_address: str | None = Field(default=None, description="address on the test LAN (ens4, 10.77.0.0/24)")

    def target(self) -> SSHTarget:
        """SSH coordinates for OpenSSH (or paramiko: ``known_hosts`` has exact port lines)."""
        return SSHTarget(self.ssh_host, self.ssh_port, self.ssh_user, self.ssh_key, self.known_hosts)

    @property
    def control_path(self) -> Path:
        """OpenSSH multiplexing socket for :meth:`Testbed.ssh` (short enough for a unix socket)."""
        p = self.vm_dir / f"ssh-{self.ssh_port}.ctl"
        if len(str(p)) > 80:  # OpenSSH appends a temporary suffix; sun_path holds 108 bytes
            digest = hashlib.sha1(str(p).encode()).hexdigest()[:12]
            p = Path(tempfile.gettempdir()) / f"fleetforge-{digest}.ctl"
        return p


class _State(BaseModel):
    version: int = STATE_VERSION
    vms: dict[str, VMInfo] = Field(default_factory=dict)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def normalize_specs(specs: Iterable[Spec | str] | None) -> list[Spec]:
    """Turn ``None`` (default testbed), ``(name, flavour)`` tuples or ``"name[:flavour]"``
    strings into a list of ``(name, flavour)``.

    Raises:
        ValueError: a bad VM name, an unknown flavour, or a name listed twice.
    """
    out: list[Spec] = []
    for spec in DEFAULT_SPECS if specs is None else specs:
        if isinstance(spec, str):
            name, _, flavour = spec.partition(":")
            flavour = flavour or flavour_for_name(name)
        else:
            name, flavour = spec
        if not NAME_RE.match(name):
            raise ValueError(f"bad VM name {name!r}: use lowercase letters, digits and '-'")
        get_flavour(flavour)
        if name in (n for n, _ in out):
            raise ValueError(f"VM {name!r} listed twice")
        out.append((name, flavour))
    return out


class Testbed:
    """Manage the test VMs of one testbed directory.

    Args:
        root: testbed directory (``None``: ``$FLEETFORGE_TESTBED_DIR`` or
            ``~/.cache/fleetforge/testbed``).
        recipe: image recipe (default :class:`~fleetforge.testbed.image.Recipe`).
        accel: ``tcg``/``kvm``; ``None`` picks KVM only when ``kvm_intel``/``kvm_amd`` is loaded.
        log: progress messages sink (e.g. ``print``); silent by default.

    All methods that change VMs take an inter-process lock on ``run/lock``, so a CLI call and a
    pytest session can share one testbed.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        recipe: Recipe | None = None,
        accel: Accel | None = None,
        log: Log | None = None,
    ) -> None:
        self.layout = Layout.at(root)
        self.recipe = recipe or Recipe()
        self.accel: Accel = accel or choose_accel()
        self.log: Log = log or _quiet

    # ------------------------------------------------------------------ state
    def _load(self) -> _State:
        p = self.layout.state_file
        if not p.exists():
            return _State()
        try:
            state = _State.model_validate_json(p.read_text())
        except ValueError as e:
            raise TestbedError(f"unreadable testbed state {p}: {e} (run 'testbed down')") from e
        for vm in state.vms.values():  # records written before known_hosts moved to run/
            vm.known_hosts = self.layout.known_hosts
        return state

    def _host_key(self, image_hash: str) -> str | None:
        """``ssh-ed25519 AAAA...`` host key of the VMs of image ``image_hash``."""
        try:
            pub = (self.layout.images / image_hash / "ssh_host_ed25519_key.pub").read_text()
        except OSError:
            return None
        return " ".join(pub.split()[:2])

    def _save(self, state: _State, images: Iterable[str] = ()) -> None:
        """Write ``run/state.json`` and ``run/known_hosts`` (both atomically).

        known_hosts gets an exact ``[127.0.0.1]:PORT`` line per VM (paramiko, hence pyinfra,
        does not match wildcards) and a ``[127.0.0.1]:*`` line per image (OpenSSH, for VMs
        being started).
        """
        _write_atomic(self.layout.state_file, state.model_dump_json(indent=1) + "\n")
        lines = []
        for vm in state.vms.values():
            if key := self._host_key(vm.image):
                lines.append(f"[{vm.ssh_host}]:{vm.ssh_port} {key}")
        for h in sorted({*images, *(vm.image for vm in state.vms.values())}):
            if key := self._host_key(h):
                lines.append(f"[127.0.0.1]:* {key}")
        _write_atomic(self.layout.known_hosts, "".join(f"{x}\n" for x in lines))

    def _alive(self, vm: VMInfo) -> bool:
        return pid_alive(vm.pid, vm.vm_dir)

    def _reachable_patiently(self, vm: VMInfo) -> bool:
        """SSH check for a VM that may be busy (a deploy under emulation): 2 tries, 20 s each.

        A false negative would restart (and wipe) a VM someone is using, so be patient.
        """
        return any(is_reachable(vm.target(), timeout=20) for _ in range(2))

    # ------------------------------------------------------------------ images
    def image(self) -> Image | None:
        """The built image of this testbed's recipe, or ``None``."""
        return find_image(self.layout, self.recipe)

    def build(self, *, force: bool = False, goldens: bool = True) -> Image:
        """Build (or reuse) the image and, with ``goldens``, the golden state of every flavour.

        Raises:
            MissingPrerequisiteError, MirrorNotFoundError, ImageBuildError, VMError.
        """
        check_prerequisites(build=True)
        img = ensure_image(self.layout, self.recipe, force=force, log=self.log)
        if goldens:
            self._goldens(img, sorted({f.name for f in self.recipe.flavours}))
        return img

    def _goldens(self, img: Image, flavours: Sequence[str]) -> dict[str, Golden]:
        if not flavours:
            return {}
        with ThreadPoolExecutor(max_workers=len(flavours)) as ex:
            futs = {f: ex.submit(ensure_golden, img, get_flavour(f), self.accel, log=self.log) for f in flavours}
            return {f: fut.result() for f, fut in futs.items()}

    # ------------------------------------------------------------------ API
    def up(self, specs: Iterable[Spec | str] | None = None) -> list[VMInfo]:
        """Make sure the VMs in ``specs`` run and answer SSH; return them in ``specs`` order.

        ``specs``: ``[(name, flavour), ...]`` or ``["name[:flavour]", ...]``; ``None`` means
        the default testbed (``vm-blk-1`` blk, ``vm-scsi-1`` scsi). Idempotent: a VM that
        already runs with the same flavour and image and answers SSH is kept as it is (not
        reset); others are (re)started from the golden state. VMs not listed are left alone.
        Builds the image (1-3 min) and golden states (about 1 min) on first use.

        Raises:
            ValueError: bad specs.
            MissingPrerequisiteError: QEMU or another tool is missing (names the packages).
            ImageBuildError, VMError: building or starting failed (VMs that did start are kept
                and recorded).
        """
        wanted = normalize_specs(specs)
        check_prerequisites(build=self.image() is None)
        with file_lock(self.layout.lock_file):
            img = ensure_image(self.layout, self.recipe, log=self.log)
            state = self._load()
            self._save(state, images=[img.recipe_hash])  # known_hosts accepts the new VMs
            keep: dict[str, VMInfo] = {}
            start: list[Spec] = []
            candidates = {
                name: old
                for name, flavour in wanted
                if (old := state.vms.get(name)) is not None
                and old.flavour == flavour
                and old.image == img.recipe_hash
                and old.accel == self.accel
                and self._alive(old)
            }
            reachable: dict[str, bool] = {}
            if candidates:
                with ThreadPoolExecutor(max_workers=len(candidates)) as ex:
                    reachable = dict(
                        zip(candidates, ex.map(self._reachable_patiently, candidates.values()), strict=True)
                    )
            for name, flavour in wanted:
                old = state.vms.get(name)
                if old is not None and reachable.get(name):
                    old.running, old.reachable = True, True
                    old.rss_mib = rss_mib(old.pid)
                    keep[name] = old
                    self.log(f"{name}: already running on port {old.ssh_port}")
                else:
                    if old is not None:
                        self._kill(old)
                    start.append((name, flavour))
            goldens = self._goldens(img, sorted({f for _, f in start}))
            avoid = {vm.ssh_port for vm in state.vms.values()}
            ports = {}
            for name, _ in start:
                old = state.vms.get(name)
                # a restarted VM keeps its port when it can, so inventories stay valid
                if old is not None and port_free(old.ssh_port):
                    ports[name] = old.ssh_port
                else:
                    ports[name] = free_port(avoid)
                avoid.add(ports[name])
            # LAN addresses: a restarted VM keeps its own; others get the lowest free one
            starting = {name for name, _ in start}
            taken = {vm.lan_address for n, vm in state.vms.items() if vm.lan_address and n not in starting}
            addresses: dict[str, str] = {}
            for name, _ in start:
                old = state.vms.get(name)
                kept = old.lan_address if old is not None else None
                addresses[name] = kept if kept and kept not in taken else lan.allocate_address(taken)
                taken.add(addresses[name])
            errors: list[str] = []
            if start:
                with ThreadPoolExecutor(max_workers=len(start)) as ex:
                    futs = {
                        name: ex.submit(self._start, name, goldens[flavour], img, ports[name], avoid, addresses[name])
                        for name, flavour in start
                    }
                    for name, fut in futs.items():
                        try:
                            state.vms[name] = fut.result()
                        except Exception as e:  # noqa: BLE001 - reported below
                            state.vms.pop(name, None)
                            errors.append(f"{name}: {e}")
            state.vms.update(keep)
            self._save(state)
            if errors:
                raise VMError("some VMs did not start:\n" + "\n".join(errors))
            return [state.vms[name] for name, _ in wanted]

    def _start(self, name: str, golden: Golden, img: Image, port: int, avoid: set[int], lan_address: str) -> VMInfo:
        """Start one VM from ``golden`` on ``port``; rename it, give it ``lan_address`` on the
        test LAN, snapshot it as ``clean``."""
        flavour = golden.flavour
        vm_dir = self.layout.vm_dir(name)
        shutil.rmtree(vm_dir, ignore_errors=True)
        vm_dir.mkdir(parents=True)
        t0 = time.monotonic()
        create_vm_disks(golden.disk, vm_dir, "root.qcow2", flavour.data_disk_gib)
        tap = lan.add_tap(f"{self.layout.root}/{name}")
        info = VMInfo(
            name=name,
            flavour=flavour.name,
            ssh_port=port,
            ssh_key=img.ssh_key,
            known_hosts=self.layout.known_hosts,
            memory_mib=flavour.memory_mib,
            vcpus=flavour.vcpus,
            root_disk=flavour.root_disk,
            data_disk=flavour.data_disk,
            pid=None,
            running=False,
            accel=self.accel,
            image=img.recipe_hash,
            vm_dir=vm_dir,
            qmp_socket=vm_dir / "qmp.sock",
            console_log=vm_dir / "console.log",
            started_at=time.time(),
            lan_address=lan_address,
        )
        for attempt in range(3):
            argv = qemu_command(
                name=name,
                flavour=flavour,
                accel=self.accel,
                kernel=img.kernel,
                initrd=img.initrd,
                append=img.kernel_cmdline,
                root_disk=vm_dir / "root.qcow2",
                data_disk=vm_dir / "data.qcow2",
                ssh_port=info.ssh_port,
                qmp_socket=info.qmp_socket,
                pidfile=vm_dir / "qemu.pid",
                console_log=info.console_log,
                incoming=golden.state,
                lan_tap=tap,
            )
            (vm_dir / "qemu.argv.json").write_text(json.dumps(argv, indent=1) + "\n")
            try:
                launch(argv, cwd=vm_dir)
                break
            except VMError as e:
                if "host forwarding" in str(e) and attempt < 2:  # port taken meanwhile
                    info.ssh_port = free_port(avoid)
                    avoid.add(info.ssh_port)
                    continue
                raise VMError(f"{name}: {e}") from e
        info.pid = read_pid(vm_dir / "qemu.pid")
        info.running = True
        try:
            with QMP(info.qmp_socket) as q:
                # the golden VM was paused when saved, so the incoming one ends up paused
                if q.wait_status({"running", "paused"}, timeout=120) == "paused":
                    q.command("cont")
            t_run = time.monotonic()
            target = info.target()
            setup = f"{_rename_script(name)} && {lan.guest_script(lan_address)}"
            sync_clock_when_up(target, START_TIMEOUT, extra=setup)
            t_ssh = time.monotonic()
            with QMP(info.qmp_socket, timeout=120) as q:
                out = q.hmp(f"savevm {SNAPSHOT}")
            if out.strip():
                raise VMError(f"savevm {SNAPSHOT} failed: {out.strip()}")
            t_save = time.monotonic()
            sync_clock(target)  # the guest clock stood still during savevm
        except BaseException:
            self._kill(info)
            raise
        info.reachable = True
        info.timings = {
            "incoming_s": round(t_run - t0, 2),
            "ssh_s": round(t_ssh - t_run, 2),
            "savevm_s": round(t_save - t_ssh, 2),
            "total_s": round(time.monotonic() - t0, 2),
        }
        info.rss_mib = rss_mib(info.pid)
        self.log(f"{name}: up on 127.0.0.1:{info.ssh_port} in {info.timings['total_s']} s")
        return info

    def _kill(self, vm: VMInfo) -> None:
        """Stop a VM's QEMU (QMP quit, then signals)."""
        close_master(vm.target(), vm.control_path)
        if self._alive(vm):
            try:
                with QMP(vm.qmp_socket, timeout=5, connect_timeout=2) as q:
                    q.command("quit")
            except VMError:
                pass
            kill(vm.pid, vm.vm_dir)
        lan.del_tap(f"{self.layout.root}/{vm.name}")
        vm.running, vm.reachable, vm.pid = False, False, None

    def down(self, names: Iterable[str] | None = None) -> list[str]:
        """Stop VMs and delete their disks and state entries; ``None`` means all VMs.

        Returns the names removed. Unknown names are ignored.
        """
        with file_lock(self.layout.lock_file):
            state = self._load()
            chosen = list(state.vms) if names is None else [n for n in names if n in state.vms]
            for name in chosen:
                vm = state.vms.pop(name)
                self._kill(vm)
                shutil.rmtree(vm.vm_dir, ignore_errors=True)
                self.log(f"{name}: down")
            self._save(state)
            return chosen

    def status(self, *, check_ssh: bool = True) -> list[VMInfo]:
        """All recorded VMs with ``running`` (process alive), ``reachable`` (SSH login works,
        checked in parallel, 10 s timeout; ``None`` when ``check_ssh`` is false) and ``rss_mib``.

        Does not change the state file. Returns ``[]`` when nothing was started.
        """
        vms = list(self._load().vms.values())
        for vm in vms:
            vm.running = self._alive(vm)
            if not vm.running:
                vm.pid = None
            vm.rss_mib = rss_mib(vm.pid) if vm.running else None
            vm.reachable = None
        if check_ssh:
            live = [vm for vm in vms if vm.running]
            if live:
                with ThreadPoolExecutor(max_workers=len(live)) as ex:
                    for vm, ok in zip(live, ex.map(lambda v: is_reachable(v.target(), timeout=10), live), strict=True):
                        vm.reachable = ok
            for vm in vms:
                if not vm.running:
                    vm.reachable = False
        return vms

    def info(self, name: str) -> VMInfo:
        """The recorded VM ``name`` (no liveness check).

        Raises:
            TestbedNotUpError: no such VM in the state file.
        """
        vm = self._load().vms.get(name)
        if vm is None:
            raise TestbedNotUpError(f"no VM {name!r} in {self.layout.state_file}: run 'fleetforge testbed up'")
        return vm

    def _running(self, name: str) -> VMInfo:
        vm = self.info(name)
        if not self._alive(vm):
            raise TestbedNotUpError(f"VM {name!r} is not running: run 'fleetforge testbed up'")
        return vm

    def reset(self, name: str) -> float:
        """Restore VM ``name`` to its ``clean`` snapshot (``loadvm``), wait for SSH and resync
        its clock. Returns the seconds it took (about 2-3 s under TCG).

        Raises:
            TestbedNotUpError: the VM is not running.
            VMError: loadvm or SSH failed.
        """
        t0 = time.monotonic()
        with file_lock(self.layout.lock_file):
            vm = self._running(name)
            close_master(vm.target(), vm.control_path)  # its TCP connection dies with loadvm
            with QMP(vm.qmp_socket, timeout=120) as q:
                out = q.hmp(f"loadvm {SNAPSHOT}")
                if out.strip():
                    raise VMError(f"{name}: loadvm {SNAPSHOT} failed: {out.strip()}")
                q.wait_status({"running"}, timeout=30)
            sync_clock_when_up(vm.target(), START_TIMEOUT)
        took = time.monotonic() - t0
        self.log(f"{name}: reset in {took:.2f} s")
        return took

    def stop(self, name: str) -> VMInfo:
        """Stop VM ``name`` but keep its state entry (``running=False``): its SSH port then
        refuses logins, as an unreachable host would. ``up()`` starts it again from the golden
        state; its port stays reserved meanwhile.

        Raises:
            TestbedNotUpError: no such VM.
        """
        with file_lock(self.layout.lock_file):
            state = self._load()
            vm = state.vms.get(name)
            if vm is None:
                raise TestbedNotUpError(f"no VM {name!r} in {self.layout.state_file}")
            self._kill(vm)
            self._save(state)
            self.log(f"{name}: stopped")
            return vm

    def ssh(
        self,
        name: str,
        command: str | Sequence[str],
        *,
        timeout: float | None = 120,
        check: bool = False,
        input: str | None = None,
        multiplex: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` (shell string, or argv quoted for the remote shell) as root on VM
        ``name``; return the completed process with text ``stdout``/``stderr``.

        With ``multiplex`` (default) commands share one OpenSSH master connection per VM (about
        0.07 s per command instead of about 1 s for a full login under TCG); the master exits
        after 60 s idle and is closed by reset/stop/down. Exit status 255 means SSH failed.

        Raises:
            TestbedNotUpError: no such VM recorded.
            subprocess.TimeoutExpired: ran longer than ``timeout`` seconds.
            subprocess.CalledProcessError: ``check=True`` and a non-zero exit status.
        """
        vm = self.info(name)
        return run_ssh(
            vm.target(),
            command,
            timeout=timeout,
            check=check,
            input=input,
            control_path=vm.control_path if multiplex else None,
        )

    def inventory_hosts(
        self, *, running_only: bool = False, required: bool = False
    ) -> list[tuple[str, dict[str, object]]]:
        """pyinfra inventory entries for this testbed; see :func:`inventory_hosts`."""
        return inventory_hosts(self.layout.root, running_only=running_only, required=required)


def _rename_script(name: str) -> str:
    """Shell code that gives the guest the hostname ``name`` (no D-Bus round trip)."""
    return (
        f"hostname {name} && echo {name} > /etc/hostname && "
        f"sed -i 's/^127\\.0\\.1\\.1\\s.*/127.0.1.1\\t{name}/' /etc/hosts"
    )


def inventory_hosts(
    root: Path | str | None = None, *, running_only: bool = False, required: bool = False
) -> list[tuple[str, dict[str, object]]]:
    """pyinfra inventory entries ``(name, data)`` for the VMs of the testbed at ``root``.

    ``data`` holds ``ssh_hostname``, ``ssh_port``, ``ssh_user`` (``root``), ``ssh_key``,
    ``ssh_known_hosts_file`` (``run/known_hosts`` with exact ``[127.0.0.1]:PORT`` entries) and
    ``ssh_strict_host_key_checking="yes"``, plus ``testbed_flavour``, ``testbed_root_disk``,
    ``testbed_memory_mib``, ``testbed_vcpus``.

    Reads only the state file (no SSH, no QEMU needed), so it is cheap to call from an
    ``inventory.py``. VMs stopped with :meth:`Testbed.stop` are included (they are part of the
    testbed and unreachable, which is what unreachable-host tests want); ``running_only=True``
    drops VMs whose QEMU process is not running.

    When the testbed is not up (no state file, or no VM recorded) the result is ``[]``, so an
    inventory that also lists real hosts still loads; pass ``required=True`` to get an error
    instead.

    Raises:
        TestbedNotUpError: ``required`` and no (running) VM is recorded.
        TestbedError: the state file is unreadable.
    """
    layout = Layout.at(root)
    state = _State()
    if layout.state_file.exists():
        try:
            state = _State.model_validate_json(layout.state_file.read_text())
        except ValueError as e:
            raise TestbedError(f"unreadable testbed state {layout.state_file}: {e}") from e
    out: list[tuple[str, dict[str, object]]] = []
    for vm in state.vms.values():
        if running_only and not pid_alive(vm.pid, vm.vm_dir):
            continue
        out.append(
            (
                vm.name,
                {
                    "ssh_hostname": vm.ssh_host,
                    "ssh_port": vm.ssh_port,
                    "ssh_user": vm.ssh_user,
                    "ssh_key": str(vm.ssh_key),
                    "ssh_known_hosts_file": str(layout.known_hosts),
                    "ssh_strict_host_key_checking": "yes",
                    "testbed_flavour": vm.flavour,
                    "testbed_root_disk": vm.root_disk,
                    "testbed_memory_mib": vm.memory_mib,
                    "testbed_vcpus": vm.vcpus,
                    **({"lan_address": vm.lan_address} if vm.lan_address else {}),
                },
            )
        )
    if not out and required:
        raise TestbedNotUpError(
            f"the testbed at {layout.root} has no "
            + ("running " if running_only else "")
            + "VM: run 'fleetforge testbed up'"
        )
    return out
