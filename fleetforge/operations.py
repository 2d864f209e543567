"""pyinfra operations that push a ``TuningPlan``.

They diff the desired state against ``HostFacts`` gathered once by ``facts.probe.HostProbe``
and yield quoted commands, or call ``host.noop`` when nothing is to change.

Why ``managed_file`` and not ``files.template``/``files.put``: pyinfra's file operations ask
the host for ``File`` and ``Sha1File`` facts (two round trips per file and per run), overwrite
in place when uploading without sudo, and keep no backup. The probe already holds each managed
file's content, so ``managed_file`` needs no extra round trip, backs up what it replaces and
renames a fully written temporary file into place (atomic on the same filesystem).
"""

from __future__ import annotations

import posixpath
import sys
from datetime import UTC, datetime
from io import BytesIO

from pyinfra import host, logger, state
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation
from pyinfra.operations.util.files import generate_color_diff

from fleetforge.models import HostFacts, ManagedFile, TuningPlan
from fleetforge.paths import BACKUP_SUFFIX, SYSCTL_CONF

RUN_STAMP = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def show_diff() -> bool:
    """Diffs are shown with ``--diff`` and also with ``--dry``: a dry run exists to show what
    would change. pyinfra 3.10 gives operations no dry-run flag, so the CLI arguments tell."""
    return bool(state.config.DIFF) or "--dry" in sys.argv


def backup_path(dest: str, stamp: str = RUN_STAMP) -> str:
    """Where ``managed_file`` keeps the file it replaces: ``<dest>.fleetforge-<stamp>.bak``."""
    return dest + BACKUP_SUFFIX.format(stamp=stamp)


@operation()
def managed_file(dest: str, content: str, current: ManagedFile | None, mode: str = "644", backup: bool = True):
    """Make ``dest`` hold exactly ``content``.

    + dest: remote path
    + content: desired text
    + current: the file as the probe found it (``None`` when absent)
    + mode: octal permission string applied before the rename
    + backup: copy an existing, different file to ``backup_path(dest)`` first

    Writes ``<dest>.fleetforge-new`` then ``mv -f`` over ``dest``, so readers never see a
    half-written file. With ``--diff`` or ``--dry`` the change is shown as a unified diff.
    """
    if current is not None and current.content == content:
        host.noop(f"{dest} is up to date")
        return
    if show_diff():
        host.log(f"Will {'modify' if current else 'create'} {dest}", logger.info)
        old = (current.content if current else "").splitlines(keepends=True)
        for line in generate_color_diff(old, content.splitlines(keepends=True)):
            logger.info("  %s", line)
    temp = dest + ".fleetforge-new"
    yield StringCommand("mkdir", "-p", QuoteString(posixpath.dirname(dest)))
    if current is not None and backup:
        yield StringCommand("cp", "-p", QuoteString(dest), QuoteString(backup_path(dest)))
    yield FileUploadCommand(BytesIO(content.encode()), temp, remote_temp_filename=host.get_temp_filename(temp))
    yield StringCommand("chmod", mode, QuoteString(temp))
    yield StringCommand("mv", "-f", QuoteString(temp), QuoteString(dest))


def io_drift(plan: TuningPlan, facts: HostFacts) -> list[str]:
    """Disks whose live scheduler or read_ahead_kb differ from the plan (``vda: ...`` lines)."""
    drift = []
    for disk_plan in plan.disks:
        disk = facts.disk(disk_plan.name)
        if disk.scheduler != disk_plan.scheduler.value:
            drift.append(f"{disk.name}: scheduler {disk.scheduler} -> {disk_plan.scheduler.value}")
        if disk.read_ahead_kb != disk_plan.read_ahead_kb.value:
            drift.append(f"{disk.name}: read_ahead_kb {disk.read_ahead_kb} -> {disk_plan.read_ahead_kb.value}")
    return drift


def sysctl_drift(plan: TuningPlan, facts: HostFacts) -> list[str]:
    """Sysctl keys whose live value differs from the plan."""
    return [
        f"{key}: {facts.sysctl.get(key)} -> {value}"
        for key, value in plan.sysctl_values().items()
        if facts.sysctl.get(key) != value
    ]


def zram_drift(plan: TuningPlan, facts: HostFacts) -> list[str]:
    """How the live zram0 differs from the plan (size, algorithm, active swap)."""
    zram0 = next((z for z in facts.zram if z.name == "zram0"), None)
    if not plan.zram.enabled.value:
        return ["zram0 swap is active but zram is disabled"] if zram0 and zram0.swap_active else []
    want_bytes = plan.zram.size_mib.value * 1048576
    if zram0 is None:
        return ["zram0 does not exist"]
    drift = []
    if zram0.disksize_bytes != want_bytes:
        drift.append(f"zram0 disksize {zram0.disksize_bytes} -> {want_bytes}")
    if zram0.algorithm != plan.zram.algorithm.value:
        drift.append(f"zram0 algorithm {zram0.algorithm} -> {plan.zram.algorithm.value}")
    if not zram0.swap_active:
        drift.append("zram0 is not an active swap device")
    return drift


UDEV_APPLY = (
    StringCommand("udevadm", "control", "--reload"),
    StringCommand("udevadm", "trigger", "--subsystem-match=block", "--action=change"),
    StringCommand("udevadm", "settle"),
)

SYSCTL_APPLY = (StringCommand("sysctl", "-p", QuoteString(SYSCTL_CONF)),)
NIX_DAEMON_RESTART = (StringCommand("systemctl", "try-restart", "nix-daemon.service"),)

# zram-generator makes systemd-zram-setup@zram0.service (creates the device) and
# dev-zram0.swap (swapon). A resize needs the swap off and the device reset first.
ZRAM_APPLY = (
    StringCommand("systemctl", "daemon-reload"),
    StringCommand("systemctl", "stop", "dev-zram0.swap", "systemd-zram-setup@zram0.service", "||", "true"),
    StringCommand("systemctl", "start", "systemd-zram-setup@zram0.service"),
    StringCommand("systemctl", "start", "dev-zram0.swap"),
)
ZRAM_REMOVE = (
    StringCommand("systemctl", "stop", "dev-zram0.swap", "systemd-zram-setup@zram0.service", "||", "true"),
    StringCommand("systemctl", "daemon-reload"),
)
