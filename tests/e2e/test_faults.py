"""Faults mid-deploy on a test VM of its own (vm-fault-1, blk flavour), through ``fleetforge
rollout`` over ``@asyncssh`` in a one-host wave (canary):

- full disk: a 64 KiB tmpfs (mode 0755), filled, over /etc/sysctl.d: the deploy fails naming the file and
  "No space left on device", the rollback restores the pre-deploy state, no temporary file is
  left; after the space is freed a re-run converges and a second one changes nothing;
- freeze: the VM's QEMU is stopped (SIGSTOP) mid-deploy: keepalives drop it within the
  documented (count + 1) x interval, the run goes on and ends, the record says what changed and
  that the host could not be rolled back; thawed, it converges and a second run changes nothing;
- kill: the VM's QEMU is stopped for good mid-deploy (``Testbed.stop``): the run ends at once
  with the same truthful record; every file the record reports written is on the dead VM's disk
  with its full content and no file is half-written (the disk is read offline with e2fsck and
  debugfs); a new VM converges and a second run changes nothing.

The tests run in order on the same VM, reset to its clean snapshot before each; it is removed
at the end.
"""

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.e2e import helpers

pytestmark = pytest.mark.vm

VM = "vm-fault-1"
KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT = 2, 2
BATCH = "fleetforge: tune VPS | Tuning files and follow-ups"  # every file and follow-up, one command
FILES = {
    "udev": "/etc/udev/rules.d/60-fleetforge-io.rules",
    "sysctl": "/etc/sysctl.d/60-fleetforge.conf",
    "zram": "/etc/systemd/zram-generator.conf",
    "nix": "/etc/nix/nix.conf",
}
DIRS = "/etc/udev/rules.d /etc/sysctl.d /etc/systemd /etc/nix /tmp /var/tmp"
STATE = (
    f"sha256sum {' '.join(FILES.values())} 2>/dev/null; ls -a {DIRS}; "
    "for k in vm/swappiness vm/watermark_scale_factor vm/watermark_boost_factor vm/dirty_ratio vm/page-cluster net/core/rmem_max net/ipv4/tcp_rmem; "
    "do echo $k=$(cat /proc/sys/$k); done; cat /sys/block/vd?/queue/scheduler /sys/block/vd?/queue/read_ahead_kb; "
    "swapon --show=NAME --noheadings; true"
)
# What a write that did not finish could leave: fleetforge's and pyinfra's temporary names.
LEFTOVERS = (
    f"find {DIRS} -maxdepth 1 \\( -name '*fleetforge-new*' -o -name '.*.fleetforge*' -o -name 'pyinfra-*' \\) "
    "2>/dev/null; true"
)
ROOT_PARTITION_OFFSET = 262144 * 512  # fleetforge.testbed.image.ROOT_START_SECTOR


@pytest.fixture(scope="module")
def vm(testbed, tmp_path_factory):
    testbed.up([f"{VM}:blk"])
    tmp = tmp_path_factory.mktemp("faults")
    yield testbed, tmp
    testbed.down([VM])


def inventory(testbed, tmp: Path) -> str:
    (data,) = [d for n, d in testbed.inventory_hosts() if n == VM]
    data = {
        **data,
        "ssh_keepalive_interval": KEEPALIVE_INTERVAL_S,
        "ssh_keepalive_count_max": KEEPALIVE_COUNT,
        "ssh_connect_timeout": 5,
    }
    path = tmp / "inventory.py"
    path.write_text(
        "from fleetforge.inventory import group\n"
        f"canary = group([({VM!r}, {data!r})], {{'fleetforge_connector': 'asyncssh'}})\n"
    )
    return str(path)


def rollout(testbed, tmp: Path) -> tuple[subprocess.CompletedProcess, dict]:
    record = tmp / "record.json"
    record.unlink(missing_ok=True)
    out = helpers.run("fleetforge", "rollout", inventory(testbed, tmp), "deploys/vps.py", "--record", str(record))
    assert record.exists(), out.stdout[-3000:] + out.stderr[-3000:]
    return out, json.loads(record.read_text())


def host_of(record: dict) -> dict:
    return record["waves"][0]["host_results"][VM]


def converges_then_changes_nothing(testbed, tmp: Path) -> None:
    """A re-run of the rollout passes with every check verified; the next plain pyinfra run
    changes nothing; no temporary file is left."""
    out, record = rollout(testbed, tmp)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert host_of(record)["verification"]["passed"] == host_of(record)["verification"]["total"]
    again = helpers.run("pyinfra", "-y", "--json", inventory(testbed, tmp), "deploys/vps.py")
    assert again.returncode == 0, again.stderr[-3000:]
    totals = json.loads(again.stdout)["results"]["totals"]
    assert (totals["success"], totals["error"]) == (0, 0) and totals["no_change"] > 0, totals
    assert testbed.ssh(VM, LEFTOVERS, check=True).stdout == ""


class Background:
    """``fleetforge rollout`` in the background; ``lines``: (monotonic time, stderr line)."""

    def __init__(self, testbed, tmp: Path):
        self.record = tmp / "record.json"
        self.record.unlink(missing_ok=True)
        argv = ["fleetforge", "rollout", inventory(testbed, tmp), "deploys/vps.py", "--record", str(self.record)]
        env = {**os.environ, "PATH": f"{helpers.BIN}:{os.environ['PATH']}"}
        self.proc = subprocess.Popen(
            argv, cwd=helpers.REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[tuple[float, str]] = []
        self.stdout: list[str] = []
        self.readers = [
            threading.Thread(target=self._read, args=(self.proc.stderr, True), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stdout, False), daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    def _read(self, stream, stamped: bool) -> None:
        for line in stream:
            if stamped:
                self.lines.append((time.monotonic(), line))
            else:
                self.stdout.append(line)

    def wait(self, timeout: float) -> tuple[str, str, dict]:
        """Wait for the rollout to end (``subprocess.TimeoutExpired``: it hangs); return its
        stdout, stderr and record."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:  # show where it hangs: stderr lines with their times
            start = self.lines[0][0] if self.lines else 0
            print("rollout stderr so far:", "".join(f"{t - start:7.1f} {line}" for t, line in self.lines)[-6000:])
            print("rollout stdout so far:", "".join(self.stdout)[-3000:])
            raise
        for reader in self.readers:
            reader.join(5)
        stdout, stderr = "".join(self.stdout), "".join(line for _, line in self.lines)
        assert self.record.exists(), stdout[-3000:] + stderr[-3000:]
        return stdout, stderr, json.loads(self.record.read_text())

    def when(self, text: str) -> float:
        return next(t for t, line in self.lines if text in line)


def wait_for_file(testbed, path: str, timeout: float = 300) -> None:
    """Until ``path`` exists on the VM (the deploy renamed it into place)."""
    deadline = time.monotonic() + timeout
    while testbed.ssh(VM, ["test", "-e", path]).returncode != 0:
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


def assert_not_rolled_back_record(stdout: str, record: dict, changed: list[str]) -> None:
    host = host_of(record)
    assert record["exit_code"] == 1 and record["outcome"] == "stopped"
    assert record["waves"][0]["deploy"]["results_from"] == "event log"  # pyinfra gave no JSON
    assert "No hosts remaining!" in record["waves"][0]["deploy"]["log_tail"][-1]
    assert host["status"] == "not-rolled-back"
    assert host["rollback"] == {"rolled_back": False, "error": "host unreachable after the deploy"}
    assert host["operations_changed"][: len(changed)] == changed  # written before the fault, in order
    assert stdout.splitlines()[-2] == (
        f"NOT ROLLED BACK, state unknown, check by hand: {VM} (rollback not run: host unreachable after the deploy)"
    )


def test_full_disk_names_the_file_and_the_cause_and_leaves_nothing(vm):
    testbed, tmp = vm
    testbed.reset(VM)
    testbed.ssh(
        VM,
        "mount -t tmpfs -o size=64k,mode=0755 fleetforge-full /etc/sysctl.d && head -c 1M /dev/zero > /etc/sysctl.d/zz-filler",
    )
    assert testbed.ssh(VM, "df --output=avail -B1 /etc/sysctl.d | tail -1", check=True).stdout.split() == ["0"]
    before = testbed.ssh(VM, STATE, check=True).stdout
    out, record = rollout(testbed, tmp)
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    host = host_of(record)
    (reason,) = host["reasons"]  # pyinfra's last error lines for the host
    # the file (or its temporary name next to it) and the errno-level cause
    assert re.search(r"/etc/sysctl\.d/\.?60-fleetforge\.conf\S* failed: .*No space left on device", reason), reason
    # the batch stopped at the sysctl file: the udev rules before it were written (the rollback
    # restores them), the files after it were not attempted
    assert host["operations_changed"] == [] and host["operations_unfinished"] == [BATCH]
    assert 'stopped at "sysctl settings" (failed); done before it: I/O scheduler udev rules' in reason, reason
    assert host["status"] == "rolled-back" and host["rollback"]["verified"], host["rollback"]
    assert testbed.ssh(VM, LEFTOVERS, check=True).stdout == ""
    assert testbed.ssh(VM, STATE, check=True).stdout == before  # rolled back, nothing left behind

    testbed.ssh(VM, "rm /etc/sysctl.d/zz-filler", check=True)
    converges_then_changes_nothing(testbed, tmp)


def test_a_frozen_host_is_dropped_by_keepalives_and_the_run_ends(vm):
    testbed, tmp = vm
    testbed.reset(VM)
    pid = testbed.info(VM).pid
    run = Background(testbed, tmp)
    try:
        wait_for_file(testbed, FILES["udev"])
        os.kill(pid, signal.SIGSTOP)
        frozen = time.monotonic()
        stdout, stderr, record = run.wait(timeout=120)
    finally:
        os.kill(pid, signal.SIGCONT)
        if run.proc.poll() is None:
            run.proc.kill()
    # dropped between count x interval and (count + 1) x interval after the freeze (the last data
    # came at most one interval before it), plus pyinfra's exit; the rollout then ends too
    dropped = run.when("deploy finished in") - frozen
    ended = run.when("rollout stopped") - frozen
    bound = (KEEPALIVE_COUNT + 1) * KEEPALIVE_INTERVAL_S
    assert KEEPALIVE_COUNT * KEEPALIVE_INTERVAL_S - 0.5 <= dropped <= bound + 3, (dropped, stderr[-3000:])
    assert ended < dropped + 30, (ended, stderr[-3000:])  # the post-deploy snapshot times out, no hang
    assert "not responding to keepalive" in host_of(record)["reasons"][0], host_of(record)["reasons"]
    # the udev rules file was in place before the freeze, inside the one batch operation, which
    # the freeze cut short: the record lists it as unfinished, never as changed
    host = host_of(record)
    assert host["operations_changed"] == [] and host["operations_unfinished"] == [BATCH], host
    assert_not_rolled_back_record(stdout, record, [])

    # thawed, the same host converges: what the cut-off run left (its writer was interrupted
    # when the connection closed) is completed and no temporary file stays
    converges_then_changes_nothing(testbed, tmp)


def read_dead_disk(testbed, tmp: Path, paths: list[str]) -> tuple[dict[str, str | None], dict[str, set[str]]]:
    """The files at ``paths`` on a stopped VM's root disk, as the guest would find them at its
    next boot (the root partition copied out, its ext4 journal replayed by e2fsck; ``None``:
    absent), and the names in their directories."""
    raw = tmp / "dead-root.ext4"
    disk = Path(testbed.info(VM).vm_dir) / "root.qcow2"
    partition = f"driver=raw,offset={ROOT_PARTITION_OFFSET},file.driver=qcow2,file.file.driver=file"
    subprocess.run(
        ["qemu-img", "convert", "-O", "raw", "--image-opts", f"{partition},file.file.filename={disk}", str(raw)],
        check=True,
    )
    try:
        fs = str(raw)
        fsck = subprocess.run(["e2fsck", "-fy", fs], capture_output=True, text=True)
        assert fsck.returncode in (0, 1), fsck.stdout + fsck.stderr  # 1: the journal was replayed
        files: dict[str, str | None] = {}
        for path in paths:
            out = subprocess.run(["debugfs", "-R", f"cat {path}", fs], capture_output=True, text=True)
            files[path] = None if "File not found" in out.stderr else out.stdout
        names = {}
        for directory in sorted({os.path.dirname(p) for p in paths}):
            out = subprocess.run(["debugfs", "-R", f"ls -p {directory}", fs], capture_output=True, text=True)
            names[directory] = {line.split("/")[5] for line in out.stdout.splitlines() if line.count("/") >= 6}
        return files, names
    finally:
        raw.unlink(missing_ok=True)


def test_a_killed_host_fails_alone_and_what_was_reported_written_survives(vm):
    testbed, tmp = vm
    testbed.reset(VM)
    fresh = {
        d: set(testbed.ssh(VM, ["ls", "-a", d]).stdout.split()) for d in {os.path.dirname(p) for p in FILES.values()}
    }
    run = Background(testbed, tmp)
    try:
        wait_for_file(testbed, FILES["sysctl"])
        testbed.stop(VM)
        killed = time.monotonic()
        stdout, stderr, record = run.wait(timeout=120)
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert run.when("deploy finished in") - killed < 10, stderr[-3000:]  # a dead host is noticed at once
    assert_not_rolled_back_record(stdout, record, [])
    assert host_of(record)["operations_unfinished"] == [BATCH]  # cut short: no file is reported written
    reported = [path for path in FILES.values() if BATCH in host_of(record)["operations_changed"]]
    dead, names = read_dead_disk(testbed, tmp, list(FILES.values()))

    testbed.up([f"{VM}:blk"])  # a new VM from the golden state: the dead disk is gone
    converges_then_changes_nothing(testbed, tmp)
    written = {path: testbed.ssh(VM, ["cat", path], check=True).stdout for path in FILES.values()}
    for path in reported:  # reported written before the power went: on the disk, whole
        assert dead[path] == written[path], (path, dead[path])
    for path in FILES.values():  # anything else: absent or whole, never half-written
        assert dead[path] in (None, written[path]), (path, dead[path])
    for path in reported:  # and no temporary file next to a file reported written
        directory = os.path.dirname(path)
        assert names[directory] == fresh[directory] | {os.path.basename(path)}, (directory, names[directory])
