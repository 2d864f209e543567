"""Many light SSH hosts: one real OpenSSH ``sshd`` per Linux network namespace, for fan-out tests.

Each host ``i`` of a fleet with prefix ``P`` and subnet ``S`` is:

- network namespace ``P-i`` with loopback up, ``eth0`` at address ``S[i + 2]``/prefixlen (a veth
  pair whose root-namespace end ``P-i`` is a port of bridge ``P-br`` at ``S[1]``), and an
  ``unreachable default`` route so DNS lookups fail at once instead of timing out;
- its own ``sshd`` (``ip netns exec P-i /usr/sbin/sshd -D -f CONFIG -E LOG``) listening on
  ``S[i + 2]:22`` with its own ed25519 host key. Root logs in with the fleet's client key only.

The hosts share the machine's filesystem, users and kernel: use them for connection, fan-out and
latency tests, not for deploys that change files. They need root (namespaces, bridge).
Root's ``~/.bashrc`` is not read by remote commands (``SetEnv SHLVL=1``: bash reads it for
sshd only at shell level 1), so a command costs a few ms of CPU, not a ``pyenv init``.

With ``delay_ms > 0`` one :mod:`~fleetforge.testbed.delay_proxy` process listens on 127.0.0.1,
one port per host, and delays every chunk by ``delay_ms`` per direction; clients then connect
through it (see :meth:`LightHost.ssh_data`).

Example::

    with SshdFleet(tmp_path, 50, delay_ms=25) as fleet:
        inventory = fleet.inventory_entries()   # [(name, pyinfra @ssh host data), ...]
        fleet.stall(3)                          # host 3: TCP connects, no SSH banner
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from .errors import MissingPrerequisiteError, TestbedError
from .prereq import find_program
from .ssh import SSHTarget

#: program -> Debian package, needed to start a fleet.
SSHD_REQUIREMENTS: dict[str, str] = {
    "ip": "iproute2",
    "sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
}

#: Debian packages for the light SSH hosts and the tests that log in to them (``ssh``).
SSHD_APT_PACKAGES: tuple[str, ...] = ("iproute2", "openssh-client", "openssh-server")

_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")
_PROXY_MODULE = "fleetforge.testbed.delay_proxy"
#: Seconds :meth:`SshdFleet.start` waits for all sshd to accept TCP connections, plus
#: :data:`START_TIMEOUT_PER_HOST_S` per host (hundreds of sshd start on a few cores).
START_TIMEOUT_S = 30.0
START_TIMEOUT_PER_HOST_S = 0.05
#: Most hosts in one fleet: a Linux bridge takes at most 1024 ports (``BR_MAX_PORTS``), and the
#: root namespace, which reaches every host's address, keeps one neighbour entry per host
#: (``net.ipv4.neigh.default.gc_thresh3``: 1024 by default).
MAX_HOSTS = 1000

SSHD_CONFIG = """\
# fleetforge light SSH host {name}
ListenAddress {address}:22
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
# bash reads ~/.bashrc for sshd commands only when its shell level is 1; it becomes 2 with this.
SetEnv SHLVL=1
PrintMotd no
PrintLastLog no
X11Forwarding no
Subsystem sftp internal-sftp
MaxStartups 200:30:400
MaxSessions 100
LogLevel INFO
"""


class SshdFleetError(TestbedError):
    """The light SSH hosts could not be started, changed or stopped."""


def check_sshd_requirements() -> dict[str, str]:
    """Return ``{program: absolute path}`` for :data:`SSHD_REQUIREMENTS`.

    Raises:
        MissingPrerequisiteError: a program is missing (the message names it and its Debian
            package) or the process is not root.
    """
    found = {prog: find_program(prog) for prog in SSHD_REQUIREMENTS}
    missing = sorted(prog for prog, path in found.items() if path is None)
    if missing:
        pkgs = sorted({SSHD_REQUIREMENTS[p] for p in missing})
        raise MissingPrerequisiteError(
            "the light SSH hosts need programs that are not installed: "
            + ", ".join(f"{p} (Debian package {SSHD_REQUIREMENTS[p]})" for p in missing)
            + "\ninstall them with:  apt-get install -y --no-install-recommends "
            + " ".join(pkgs)
        )
    if os.geteuid() != 0:
        raise MissingPrerequisiteError("the light SSH hosts need root (network namespaces and a bridge)")
    return {prog: str(path) for prog, path in found.items()}


@dataclass(frozen=True)
class LightHost:
    """One light SSH host.

    ``address``/``port`` are where its sshd listens (inside namespace ``netns``);
    ``connect_host``/``connect_port`` are where clients should connect: the same, or the delay
    proxy (``127.0.0.1``, one port per host) when the fleet has a delay.
    """

    index: int
    name: str
    netns: str
    address: str
    port: int
    connect_host: str
    connect_port: int
    key: Path
    known_hosts: Path

    def ssh_data(self) -> dict[str, object]:
        """pyinfra ``@ssh`` host data: log in as root with the fleet key, strict host key checking."""
        return {
            "ssh_hostname": self.connect_host,
            "ssh_port": self.connect_port,
            "ssh_user": "root",
            "ssh_key": str(self.key),
            "ssh_known_hosts_file": str(self.known_hosts),
            "ssh_strict_host_key_checking": "yes",
        }

    def ssh_target(self) -> SSHTarget:
        """The same login for :func:`fleetforge.testbed.ssh.run_ssh` (the OpenSSH client)."""
        return SSHTarget(self.connect_host, self.connect_port, "root", self.key, self.known_hosts)


class SshdFleet:
    """``count`` light SSH hosts (see the module docstring), files under ``root``.

    Args:
        root: directory for keys, ``known_hosts``, configs and logs (created; reused files are
            overwritten).
        count: number of hosts, 1 to the number of addresses in ``subnet`` minus 3 (network,
            bridge and broadcast addresses), at most :data:`MAX_HOSTS`: a /24 holds 253 hosts,
            a /22 (``10.99.0.0/22``, as ``bench/connector_bench.py`` uses) 1000.
        prefix: 1-8 lowercase letters/digits, starting with a letter. Names the namespaces
            (``P-0``...), veths (``P-0``...) and bridge (``P-br``). Fleets that coexist need
            different prefixes *and* subnets; starting a fleet first removes the namespaces,
            links, sshd and proxy processes left by a crashed run with the same prefix.
        subnet: IPv4 network of any prefix length; the bridge gets its first address, host ``i``
            the ``i + 2``-th (in a /22 host 254 is ``10.99.1.0``, a valid host address there).
        delay_ms: added latency per direction in milliseconds (0: clients connect directly).

    Raises (from :meth:`start`, also on ``with``):
        MissingPrerequisiteError: ``ip``, ``sshd`` or ``ssh-keygen`` is missing, or not root.
        SshdFleetError: bad arguments, the subnet is used by another interface, or a host did
            not come up (everything started is cleaned up first).
    """

    def __init__(
        self,
        root: Path,
        count: int,
        *,
        prefix: str = "ffl",
        subnet: str = "10.99.0.0/24",
        delay_ms: float = 0,
    ) -> None:
        if not _PREFIX_RE.match(prefix):
            raise SshdFleetError(f"prefix must be 1-8 lowercase letters/digits starting with a letter: {prefix!r}")
        net = ipaddress.ip_network(subnet)
        if not isinstance(net, ipaddress.IPv4Network):
            raise SshdFleetError(f"subnet must be IPv4: {subnet}")
        most = min(net.num_addresses - 3, MAX_HOSTS)
        if not 1 <= count <= most:
            raise SshdFleetError(f"count must be 1..{most} for {subnet}: {count}")
        if delay_ms < 0:
            raise SshdFleetError(f"delay_ms must be >= 0: {delay_ms}")
        self.root = Path(root)
        self.count = count
        self.prefix = prefix
        self.subnet = net
        self.delay_ms = float(delay_ms)
        self.bridge = f"{prefix}-br"
        self.key = self.root / "client_ed25519"
        self.known_hosts = self.root / "known_hosts"
        self.authorized_keys = self.root / "authorized_keys"
        self._tools: dict[str, str] = {}
        self._sshd: dict[int, subprocess.Popen[bytes]] = {}
        self._proxy: subprocess.Popen[bytes] | None = None
        self._proxy_ports: list[int] = []

    # ------------------------------------------------------------------ layout

    def netns(self, i: int) -> str:
        """Name of host ``i``'s network namespace (also its root-namespace veth): ``P-i``."""
        return f"{self.prefix}-{i}"

    def address(self, i: int) -> str:
        """Host ``i``'s IPv4 address (its sshd listens on port 22 there)."""
        return str(self.subnet.network_address + i + 2)

    def host_dir(self, i: int) -> Path:
        """Directory of host ``i``'s host key, ``sshd_config``, ``sshd.log`` and pid file."""
        return self.root / "hosts" / self.netns(i)

    @property
    def hosts(self) -> list[LightHost]:
        """The hosts in index order (valid after :meth:`start`)."""
        return [self._host(i) for i in range(self.count)]

    def inventory_entries(self) -> list[tuple[str, dict[str, object]]]:
        """``[(name, ssh_data), ...]`` for a pyinfra inventory, in index order."""
        return [(h.name, h.ssh_data()) for h in self.hosts]

    def _host(self, i: int) -> LightHost:
        proxied = bool(self._proxy_ports)
        return LightHost(
            index=i,
            name=self.netns(i),
            netns=self.netns(i),
            address=self.address(i),
            port=22,
            connect_host="127.0.0.1" if proxied else self.address(i),
            connect_port=self._proxy_ports[i] if proxied else 22,
            key=self.key,
            known_hosts=self.known_hosts,
        )

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> SshdFleet:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> SshdFleet:
        """Create the network, keys and sshd of every host; return when each sshd accepts TCP.

        Raises:
            MissingPrerequisiteError, SshdFleetError: see the class docstring. On any error the
                fleet is stopped (cleaned up) before the exception propagates.
        """
        self._tools = check_sshd_requirements()
        cleanup_prefix(self.prefix, self._tools["ip"])
        try:
            self._check_subnet_free()
            self._make_keys()
            self._make_network()
            self._write_files()
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
            for i in range(self.count):
                self._start_sshd(i)
            if self.delay_ms > 0:
                self._start_proxy()
            self._wait_listening(range(self.count), START_TIMEOUT_S + START_TIMEOUT_PER_HOST_S * self.count)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Kill every process of the fleet and delete its namespaces, veths and bridge.

        Safe to call more than once and after a partial or failed start. Files under ``root``
        are kept (logs). Raises SshdFleetError only if a namespace or link could not be deleted.
        """
        if self._proxy is not None:
            _end(self._proxy)
            self._proxy = None
        self._proxy_ports = []
        for proc in self._sshd.values():
            _end(proc)
        self._sshd.clear()
        ip = self._tools.get("ip") or find_program("ip")
        if ip is not None:  # without ``ip`` nothing of the fleet can exist
            cleanup_prefix(self.prefix, ip)

    # ------------------------------------------------------------------ failure helpers

    def stall(self, i: int) -> None:
        """SIGSTOP host ``i``'s sshd: TCP still connects (kernel backlog) but no banner comes."""
        os.kill(self._proc(i).pid, signal.SIGSTOP)

    def resume(self, i: int) -> None:
        """SIGCONT host ``i``'s sshd after :meth:`stall`; it then serves the queued connections."""
        os.kill(self._proc(i).pid, signal.SIGCONT)

    def kill(self, i: int) -> None:
        """Stop host ``i``'s sshd listener: connections to it are refused (open sessions stay)."""
        _end(self._sshd.pop(i))

    def restart(self, i: int) -> None:
        """(Re)start host ``i``'s sshd (after :meth:`kill`, or to pick up a new host key)."""
        if i in self._sshd:
            _end(self._sshd.pop(i))
        self._start_sshd(i)
        self._wait_listening([i], 10)

    def rekey(self, i: int) -> None:
        """Give host ``i`` a new host key and restart its sshd; ``known_hosts`` keeps the old key."""
        self._keygen([self.host_dir(i) / "ssh_host_ed25519_key"])
        self.restart(i)

    def sshd_pid(self, i: int) -> int:
        """PID of host ``i``'s listening sshd."""
        return self._proc(i).pid

    # ------------------------------------------------------------------ internals

    def _proc(self, i: int) -> subprocess.Popen[bytes]:
        if i not in self._sshd:
            raise SshdFleetError(f"{self.netns(i)}: sshd is not running (killed, or the fleet is stopped)")
        return self._sshd[i]

    def _check_subnet_free(self) -> None:
        out = _run([self._tools["ip"], "-j", "-4", "addr", "show"]).stdout
        for link in json.loads(out or "[]"):
            for a in link.get("addr_info", []):
                net = ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}").network
                if link.get("ifname") != self.bridge and net.overlaps(self.subnet):
                    raise SshdFleetError(
                        f"subnet {self.subnet} overlaps {net} on interface {link.get('ifname')}: "
                        "choose another subnet for this fleet"
                    )

    def _keygen(self, paths: Iterable[Path]) -> None:
        procs = []
        for p in paths:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.unlink(missing_ok=True)
            p.with_name(p.name + ".pub").unlink(missing_ok=True)
            argv = [self._tools["ssh-keygen"], "-q", "-t", "ed25519", "-N", "", "-C", p.parent.name, "-f", str(p)]
            procs.append((p, subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)))
        for p, proc in procs:
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise SshdFleetError(f"ssh-keygen for {p} failed: {err.decode().strip()}")

    def _make_keys(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        paths = [self.key] + [self.host_dir(i) / "ssh_host_ed25519_key" for i in range(self.count)]
        for start in range(0, len(paths), 32):  # bounded parallelism
            self._keygen(paths[start : start + 32])

    def _make_network(self) -> None:
        ip = self._tools["ip"]
        plen = self.subnet.prefixlen
        gateway = self.subnet.network_address + 1
        lines = [
            f"link add {self.bridge} type bridge",
            f"addr add {gateway}/{plen} dev {self.bridge}",
            f"link set {self.bridge} up",
        ]
        for i in range(self.count):
            ns = self.netns(i)
            lines += [
                f"netns add {ns}",
                f"link add {ns} type veth peer name eth0 netns {ns}",
                f"link set {ns} master {self.bridge} up",
            ]
        _run([ip, "-batch", "-"], "\n".join(lines) + "\n")
        procs = []
        for i in range(self.count):
            batch = (
                "link set lo up\n"
                f"addr add {self.address(i)}/{plen} dev eth0\n"
                "link set eth0 up\n"
                "route add unreachable default\n"
            )
            proc = subprocess.Popen(
                [ip, "-n", self.netns(i), "-batch", "-"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            assert proc.stdin
            proc.stdin.write(batch.encode())
            proc.stdin.close()
            procs.append((i, proc))
        for i, proc in procs:
            assert proc.stderr
            err = proc.stderr.read()
            if proc.wait() != 0:
                raise SshdFleetError(f"configuring namespace {self.netns(i)} failed: {err.decode().strip()}")

    def _write_files(self) -> None:
        self.authorized_keys.write_text(self.key.with_name(self.key.name + ".pub").read_text())
        self._write_known_hosts()
        for i in range(self.count):
            d = self.host_dir(i)
            (d / "sshd_config").write_text(
                SSHD_CONFIG.format(
                    name=self.netns(i),
                    address=self.address(i),
                    host_key=d / "ssh_host_ed25519_key",
                    pid_file=d / "sshd.pid",
                    authorized_keys=self.authorized_keys,
                )
            )

    def _write_known_hosts(self) -> None:
        """One line per host address (and per proxy port ``[127.0.0.1]:PORT``) with its key."""
        lines = []
        for i in range(self.count):
            pub = (self.host_dir(i) / "ssh_host_ed25519_key.pub").read_text().split()
            key = f"{pub[0]} {pub[1]}"
            lines.append(f"{self.address(i)} {key}")
            if self._proxy_ports:
                lines.append(f"[127.0.0.1]:{self._proxy_ports[i]} {key}")
        self.known_hosts.write_text("\n".join(lines) + "\n")

    def _start_sshd(self, i: int) -> None:
        d = self.host_dir(i)
        argv = [self._tools["ip"], "netns", "exec", self.netns(i)]
        argv += [self._tools["sshd"], "-D", "-f", str(d / "sshd_config"), "-E", str(d / "sshd.log")]
        # ``ip netns exec`` execs sshd: the Popen pid is sshd's. Own session: a Ctrl-C in a test
        # run does not reach it; stop() and the next start's cleanup kill it.
        self._sshd[i] = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

    def _start_proxy(self) -> None:
        targets = [f"{self.address(i)}:22" for i in range(self.count)]
        argv = [sys.executable, "-m", _PROXY_MODULE, "--delay-ms", str(self.delay_ms), "--tag", self.prefix]
        argv += ["--watch-stdin", *targets]
        log = (self.root / "delay_proxy.log").open("wb")
        with log:
            self._proxy = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        assert self._proxy.stdout
        line = self._proxy.stdout.readline()  # the proxy prints its ports once it listens
        try:
            ports = json.loads(line)["ports"]
        except (ValueError, KeyError) as e:
            raise SshdFleetError(f"delay proxy did not start; see {self.root / 'delay_proxy.log'}") from e
        if len(ports) != self.count:
            raise SshdFleetError(f"delay proxy reported {len(ports)} ports for {self.count} hosts")
        self._proxy_ports = [int(p) for p in ports]
        self._write_known_hosts()

    def _wait_listening(self, indices: Iterable[int], timeout: float) -> None:
        pending = list(indices)
        deadline = time.monotonic() + timeout
        while pending:
            still = []
            for i in pending:
                proc = self._proc(i)
                if proc.poll() is not None:
                    log = self.host_dir(i) / "sshd.log"
                    tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
                    raise SshdFleetError(f"{self.netns(i)}: sshd exited with status {proc.returncode}: {tail}")
                try:
                    socket.create_connection((self.address(i), 22), timeout=1).close()
                except OSError:
                    still.append(i)
            pending = still
            if pending:
                if time.monotonic() > deadline:
                    raise SshdFleetError(f"sshd not listening after {timeout:.0f} s on: {pending}")
                time.sleep(0.02)


# ---------------------------------------------------------------------- cleanup


def _run(argv: Sequence[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if p.returncode != 0:
        raise SshdFleetError(f"{' '.join(argv)} failed: {p.stderr.strip()}")
    return p


def _end(proc: subprocess.Popen[bytes]) -> None:
    """Kill a child (even a stopped one) and reap it."""
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()


def _pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def _kill_and_wait(pids: Iterable[int], timeout: float = 5) -> None:
    pids = set(pids)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.01)


def fleet_pids(prefix: str) -> list[int]:
    """PIDs of every process of fleets with ``prefix``: all processes inside its namespaces
    (sshd and sessions) and its delay proxy, found by ``/proc`` (no PID files needed)."""
    ns_re = re.compile(rf"^{re.escape(prefix)}-\d+$")
    inodes = set()
    netns_dir = Path("/run/netns")
    if netns_dir.is_dir():
        for entry in netns_dir.iterdir():
            if ns_re.match(entry.name):
                try:
                    st = entry.stat()
                    inodes.add((st.st_dev, st.st_ino))
                except OSError:
                    pass
    found = []
    for pid in _pids():
        try:
            st = os.stat(f"/proc/{pid}/ns/net")
            if (st.st_dev, st.st_ino) in inodes:
                found.append(pid)
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if _PROXY_MODULE.encode() in args and b"--tag" in args:
            tag = args.index(b"--tag") + 1
            if tag < len(args) and args[tag] == prefix.encode():
                found.append(pid)
    return found


def fleet_leftovers(prefix: str, ip: str = "ip") -> dict[str, list[str]]:
    """What exists of fleets with ``prefix``: ``{"netns": [...], "links": [...], "pids": [...]}``."""
    ns_re = re.compile(rf"^{re.escape(prefix)}-(\d+|br)$")
    netns_dir = Path("/run/netns")
    netns = sorted(e.name for e in netns_dir.iterdir() if ns_re.match(e.name)) if netns_dir.is_dir() else []
    links = json.loads(_run([ip, "-j", "link", "show"]).stdout or "[]")
    names = sorted(link["ifname"] for link in links if ns_re.match(link.get("ifname", "")))
    return {"netns": netns, "links": names, "pids": [str(p) for p in fleet_pids(prefix)]}


def cleanup_prefix(prefix: str, ip: str = "ip") -> None:
    """Kill the processes and delete the namespaces, veths and bridge of fleets with ``prefix``.

    Used by :meth:`SshdFleet.start` (leftovers of a crashed run) and :meth:`SshdFleet.stop`.

    Raises:
        SshdFleetError: something was still there after the cleanup.
    """
    _kill_and_wait(fleet_pids(prefix))
    left = fleet_leftovers(prefix, ip)
    lines = [f"link del {name}" for name in left["links"] if not name.endswith("-br")]
    lines += [f"link del {name}" for name in left["links"] if name.endswith("-br")]
    lines += [f"netns del {name}" for name in left["netns"]]
    if lines:
        subprocess.run([ip, "-force", "-batch", "-"], input="\n".join(lines) + "\n", capture_output=True, text=True)
    left = fleet_leftovers(prefix, ip)
    if any(left.values()):
        raise SshdFleetError(f"could not clean up fleet {prefix!r}: {left}")
