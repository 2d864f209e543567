"""pyinfra operations that push a ``TuningPlan``.

They diff the desired state against ``HostFacts`` gathered once by ``fleetforge.facts.probe.HostProbe``
and yield quoted commands, or call ``host.noop`` when nothing is to change.

Why ``managed_file`` and not ``files.template``/``files.put``: pyinfra's file operations ask
the host for ``File`` and ``Sha1File`` facts (two round trips per file and per run), overwrite
in place when uploading without sudo, keep no backup, and with sudo upload through
``/tmp/pyinfra-<sha1 of the path>``, a name any local user can predict and plant first. The
probe already holds each managed file's content, so ``managed_file`` needs no extra round trip;
it sends the content on the command's stdin (no SFTP, no temporary file outside the
destination's directory) to ``WRITE_SCRIPT``, which writes it safely and durably.
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pyinfra import host, logger, state
from pyinfra.api import OperationValueError, QuoteString, StringCommand, operation
from pyinfra.operations.util.files import generate_color_diff

from fleetforge.models import ManagedFile
from fleetforge.paths import BACKUP_SUFFIX
from fleetforge.secrets import redact_file, secret_keys

RUN_STAMP = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
NEW_FILE_MODE = "644"  # a file that does not exist yet, when the plan sets no mode
STALE_TEMP_MINUTES = 60  # temporary files older than this, left by a run killed mid-write, are removed

# Runs as root (pyinfra adds sudo/su when asked): sh -c WRITE_SCRIPT fleetforge-write DEST MODE
# OWNER GROUP BACKUP SHA256, with DEST's content base64-encoded on stdin; empty MODE/OWNER/GROUP
# keep the existing file's (a new file: NEW_FILE_MODE, root), empty BACKUP makes none.
# - DEST's directory must not let other users swap names in it while root writes: owned by root,
#   by the user running the script or by the login user that ran sudo, and not writable by group
#   or others unless sticky (then others cannot rename or remove root's files: chmod(1) "restricted
#   deletion flag"), so no symlink is followed and the rename is the one intended;
# - the new file is created by mktemp(1) next to DEST (O_EXCL, mode 0600, unpredictable name,
#   same filesystem so rename(2) is atomic) and written with dd oflag=nofollow;
# - its SHA-256 is checked, owner and mode are set, the old file is copied to BACKUP
#   (cp --remove-destination: never through a symlink planted there), both are fsync'd
#   (sync(1) FILE, coreutils >= 8.24), the new file is renamed over DEST (mv -T: never into a
#   directory) and DEST's directory is fsync'd, so a file reported written survives a power cut;
# - on any failure or signal the temporary file (and a backup made by this run) is removed and
#   the command fails with "fleetforge: writing DEST failed: <step's own error>" on stderr.
WRITE_SCRIPT = r"""
set -u
dest=$1 mode=$2 owner=$3 group=$4 bak=$5 sha=$6
tmp= made_bak=
fail() {
  trap - HUP INT TERM PIPE
  [ -z "$tmp" ] || rm -f -- "$tmp"
  [ -z "$made_bak" ] || rm -f -- "$bak"
  printf 'fleetforge: writing %s failed: %s\n' "$dest" "$1" >&2
  exit 1
}
trap 'fail "interrupted by a signal"' HUP INT TERM PIPE
step() { out=$("$@" 2>&1) || fail "${out:-$1 failed}"; }
write() { base64 -d | dd of="$tmp" oflag=nofollow bs=65536 status=none; }
digest() { sha256sum < "$tmp"; }
dir=$(dirname -- "$dest") base=$(basename -- "$dest")
step mkdir -p -- "$dir"
step stat -L -c '%u %a' -- "$dir"
uid=${out% *} perm=${out#* }
[ "$uid" = 0 ] || [ "$uid" = "$(id -u)" ] || [ "$uid" = "${SUDO_UID:-0}" ] ||
  fail "$dir is owned by uid $uid, not by root or the deploying user"
[ $((0$perm & 022)) = 0 ] || [ $((0$perm & 01000)) != 0 ] ||
  fail "$dir is writable by group or others (mode $perm)"
for old in "$dir/.$base".fleetforge-??????????; do
  [ -f "$old" ] && [ -n "$(find "$old" -maxdepth 0 -mmin +STALE)" ] && rm -f -- "$old"
done
step mktemp -- "$dir/.$base.fleetforge-XXXXXXXXXX"
tmp=$out
step write
step digest
[ "${out%% *}" = "$sha" ] || fail "the written content does not match (sha256 ${out%% *}, expected $sha)"
if [ -e "$dest" ]; then
  step chown -h --reference="$dest" -- "$tmp"
  step chmod --reference="$dest" -- "$tmp"
else
  mode=${mode:-NEWMODE}
fi
[ -z "$owner" ] || step chown -h -- "$owner" "$tmp"
[ -z "$group" ] || step chgrp -h -- "$group" "$tmp"
[ -z "$mode" ] || step chmod -- "$mode" "$tmp"
if [ -n "$bak" ] && [ -e "$dest" ]; then
  made_bak=1
  step cp -p --remove-destination -- "$dest" "$bak"
  step sync -- "$bak"
fi
step sync -- "$tmp"
step mv -f -T -- "$tmp" "$dest"
tmp= made_bak=
step sync -- "$dir"
""".replace("STALE", str(STALE_TEMP_MINUTES)).replace("NEWMODE", NEW_FILE_MODE)

_MODE = re.compile(r"[0-7]{3,4}")


def show_diff() -> bool:
    """Diffs are shown with ``--diff`` and also with ``--dry``: a dry run exists to show what
    would change. pyinfra 3.10 gives operations no dry-run flag, so the CLI arguments tell."""
    return bool(state.config.DIFF) or "--dry" in sys.argv


def backup_path(dest: str, stamp: str | None = None) -> str:
    """Where ``managed_file`` keeps the file it replaces: ``<dest>.fleetforge-<stamp>.bak``
    (``stamp``: this run's UTC start, ``RUN_STAMP``, unless given)."""
    return dest + BACKUP_SUFFIX.format(stamp=stamp or RUN_STAMP)


def write_file_command(
    dest: str, content: str, mode: str | None = None, user: str | None = None, group: str | None = None,
    backup: str | None = None,
) -> StringCommand:  # fmt: skip
    """The one command that makes ``dest`` hold ``content`` (``WRITE_SCRIPT``, content on stdin).

    ``mode``: octal string like ``"640"``; ``mode``/``user``/``group`` ``None`` keep the existing
    file's (new file: ``NEW_FILE_MODE``, root). ``backup``: where to copy the replaced file.
    Raises ``ValueError`` for a relative ``dest`` or a mode that is not 3-4 octal digits.
    """
    args = _write_args(dest, content, mode, user, group, backup)
    return StringCommand(
        "sh", "-c", QuoteString(WRITE_SCRIPT), "fleetforge-write", *(QuoteString(a) for a in args),
        _stdin=base64.encodebytes(content.encode()).decode(),
    )  # fmt: skip


def _write_args(
    dest: str, content: str, mode: str | None, user: str | None, group: str | None, backup: str | None
) -> tuple[str, ...]:
    """``WRITE_SCRIPT``'s arguments after ``$0``; ``ValueError`` as ``write_file_command``."""
    if not posixpath.isabs(dest) or dest.endswith("/"):
        raise ValueError(f"managed file: expected an absolute file path, got {dest!r}")
    if mode is not None and not _MODE.fullmatch(mode):
        raise ValueError(f"managed file {dest}: expected an octal mode like 644, got {mode!r}")
    sha = hashlib.sha256(content.encode()).hexdigest()
    return (dest, mode or "", user or "", group or "", backup or "", sha)


def _log_diff(dest: str, current: ManagedFile | None, content: str) -> None:
    """``--diff``/``--dry``: the change as a unified diff, secret values masked (``secrets``)."""
    keys = secret_keys(host.data)
    host.log(f"Will {'modify' if current else 'create'} {dest}", logger.info)
    old = redact_file(dest, current.content if current else "", keys).splitlines(keepends=True)
    new = redact_file(dest, content, keys).splitlines(keepends=True)
    for line in generate_color_diff(old, new):
        logger.info("  %s", line)


@operation()
def managed_file(
    dest: str, content: str, current: ManagedFile | dict | None, mode: str | None = None, user: str | None = None,
    group: str | None = None, backup: bool = True,
):  # fmt: skip
    """Make ``dest`` hold exactly ``content``.

    + dest: absolute remote path
    + content: desired text
    + current: the file as the probe found it (``None`` when absent; a dict is its JSON form)
    + mode: octal permission string; ``None`` keeps the existing file's (a new one gets 644)
    + user, group: owner to set; ``None`` keeps the existing file's (a new one: root)
    + backup: copy an existing, different file to ``backup_path(dest)`` first

    One command (``WRITE_SCRIPT``): readers never see a half-written file, nothing is left
    behind when it fails, and the failure names ``dest`` and the cause. With ``--diff`` or
    ``--dry`` the change is shown as a unified diff with secret values masked.
    """
    if isinstance(current, dict):  # the probe's JSON form (pyinfra's fact cache, operation fixtures)
        current = ManagedFile.model_validate(current)
    if current is not None and current.content == content:
        host.noop(f"{dest} is up to date")
        return
    try:
        command = write_file_command(dest, content, mode, user, group, backup_path(dest) if backup else None)
    except ValueError as exc:
        raise OperationValueError(str(exc)) from None
    if show_diff():
        _log_diff(dest, current, content)
    yield command


# ------------------------------------------------------------------ many files, one command
# Runs as root: sh -c BATCH_SCRIPT fleetforge-batch WRITE_SCRIPT STEP..., where a STEP is
#   w TITLE DEST MODE OWNER GROUP BACKUP SHA256   (one line of base64 content read from stdin)
#   r TITLE COMMAND                               (shell text built by fleetforge, stdin /dev/null)
# in order. Each w runs WRITE_SCRIPT (all of its guarantees hold per file). The first step that
# fails stops the batch: stderr then has the step's own error, then one line naming the step, the
# steps done before it and those not attempted (a follow-up of several commands named once), and
# the exit status is 1.
BATCH_SCRIPT = r"""
set -u
write=$1; shift
done=
stop() {
  at=$1 rest=; shift
  [ "${done##*, }" != "$at" ] || { done=${done%"$at"}; done=${done%, }; }  # a follow-up cut short
  while [ $# -gt 0 ]; do
    [ "$2" = "$at" ] || [ "$2" = "${rest##*, }" ] || rest="$rest${rest:+, }$2"
    if [ "$1" = w ]; then shift 8; else shift 3; fi
  done
  printf 'fleetforge: stopped at "%s" (failed); done before it: %s; not attempted: %s\n' \
    "$at" "${done:-nothing}" "${rest:-nothing}" >&2
  exit 1
}
while [ $# -gt 0 ]; do
  title=$2
  case $1 in
  w)
    IFS= read -r data || data=
    printf '%s\n' "$data" | sh -c "$write" fleetforge-write "$3" "$4" "$5" "$6" "$7" "$8" ||
      { shift 8; stop "$title" "$@"; }
    shift 8 ;;
  r)
    out=$(sh -c "$3" </dev/null 2>&1) ||
      { printf 'fleetforge: %s: `%s` failed: %s\n' "$title" "$3" "$out" >&2; shift 3; stop "$title" "$@"; }
    shift 3 ;;
  *)
    printf 'fleetforge: unknown step %s\n' "$1" >&2; exit 2 ;;
  esac
  [ "$title" = "${done##*, }" ] || done="$done${done:+, }$title"
done
"""


@dataclass(frozen=True)
class FileStep:
    """One file of ``managed_files`` and what makes it live.

    ``dest``/``content``/``current``/``mode``/``user``/``group``: as ``managed_file``.
    ``follow_up``: commands run, in order, after the file is written, and also when it is up to
    date but ``drift`` (``"item: live -> planned"`` lines) is not empty; ``follow_up_title``
    names them in logs and errors.
    """

    title: str
    dest: str
    content: str
    current: ManagedFile | None = None
    follow_up: tuple[StringCommand, ...] = ()
    follow_up_title: str = ""
    drift: tuple[str, ...] = ()
    mode: str | None = None
    user: str | None = None
    group: str | None = None

    @property
    def changed(self) -> bool:
        return self.current is None or self.current.content != self.content

    @property
    def runs_follow_up(self) -> bool:
        return bool(self.follow_up) and (self.changed or bool(self.drift))


def batch_command(steps: Sequence[FileStep], backup: bool = True) -> StringCommand | None:
    """The one command that writes every changed file of ``steps`` (backed up when ``backup``)
    and runs the follow-ups due, in the order given; ``None`` when nothing is due.

    Raises ``ValueError`` for a bad ``dest`` or ``mode`` (``write_file_command``)."""
    bits: list = []
    stdin: list[str] = []
    for step in steps:
        if step.changed:
            bak = backup_path(step.dest) if backup and step.current is not None else None
            args = _write_args(step.dest, step.content, step.mode, step.user, step.group, bak)
            bits += ["w", QuoteString(step.title), *(QuoteString(a) for a in args)]
            stdin.append(base64.b64encode(step.content.encode()).decode() + "\n")
        if step.runs_follow_up:
            for command in step.follow_up:
                bits += ["r", QuoteString(step.follow_up_title), QuoteString(command)]
    if not bits:
        return None
    return StringCommand(
        "sh", "-c", QuoteString(BATCH_SCRIPT), "fleetforge-batch", QuoteString(WRITE_SCRIPT), *bits,
        _stdin="".join(stdin),
    )  # fmt: skip


@operation()
def managed_files(steps: list[FileStep], backup: bool = True):
    """Make every file of ``steps`` hold its content and make it live, in one command.

    + steps: ``FileStep`` per file, in the order to write them
    + backup: copy each existing, different file to ``backup_path(dest)`` first

    One round trip however many files change: the changed files' contents go on stdin (one
    base64 line each), each is written by ``WRITE_SCRIPT`` (atomic, backed up, fsync'd), and each
    file's follow-up runs right after it, only when the file changed or the live state drifted.
    A failing step stops the batch, and the error names that file or follow-up, what was done
    before it and what was not attempted. Nothing due: a noop. ``--diff``/``--dry`` show each
    file's unified diff (secrets masked) and each drift.
    """
    try:
        command = batch_command(steps, backup)
    except ValueError as exc:
        raise OperationValueError(str(exc)) from None
    if command is None:
        host.noop(f"{len(steps)} file(s) up to date, live state as planned")
        return
    for step in steps:
        if step.changed and show_diff():
            _log_diff(step.dest, step.current, step.content)
        if step.drift and step.follow_up:
            host.log(f"{step.follow_up_title}: live state differs from the plan: {'; '.join(step.drift)}", logger.info)
    yield command
