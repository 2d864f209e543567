"""What pushing the bundle to one host means: files to send, files to prune, disk use after.

Thresholds (fleetforge defaults): warn when the ISO directory's filesystem would
be above 85 % used after the transfer, refuse above 90 %. "Used" is ``df``'s: used / (used +
available), so blocks reserved for root count as they do in ``df``'s Use%. A replaced file's old
copy stays until its new copy is verified and renamed over it, so the check also refuses when
the largest file to send does not fit in the space available now.

The push writes as root inside the ISO directory (``fleetforge.bundle.push``), so it is refused
when another user could swap entries there: a directory owned by neither root nor the deploying
user, or writable by group or others without the sticky bit (a user who can rename entries could
put a symbolic link where root is about to write).
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetforge.bundle.manifest import BundleIndex, IndexEntry
from fleetforge.facts.iso_dir import IsoDirState

WARN_PERCENT = 85.0
REFUSE_PERCENT = 90.0


@dataclass
class PushPlan:
    """``send``: index entries missing or different on the host; ``prune``: host files not in the
    bundle (only when pruning is asked for); ``verdict``: ok, warn or refuse, with ``reason``."""

    send: list[IndexEntry]
    prune: list[str]
    up_to_date: int
    send_bytes: int
    used_after_percent: float
    verdict: str
    reason: str

    def summary(self) -> str:
        text = (
            f"iso bundle: {len(self.send)} file(s) to send ({self.send_bytes} bytes), {self.up_to_date} up to date"
            f"{f', {len(self.prune)} to prune' if self.prune else ''}; {self.used_after_percent:.1f}% used after"
        )
        return f"{text}; {self.reason}" if self.reason else text


def plan_push(index: BundleIndex, state: IsoDirState, prune: bool = False) -> PushPlan:
    """Compare the bundle's index with the host's directory (pure; no I/O)."""
    send, same = [], 0
    for entry in index.files.values():
        have = state.files.get(entry.name)
        if have and (have.size_bytes, have.sha256) == (entry.size_bytes, entry.sha256):
            same += 1
        else:
            send.append(entry)
    pruned = sorted(name for name in state.files if name not in index.files) if prune else []
    send_bytes = sum(e.size_bytes for e in send)
    freed = sum(state.files[e.name].size_bytes for e in send if e.name in state.files)
    freed += sum(state.files[name].size_bytes for name in pruned)
    capacity = state.fs_used_bytes + state.fs_avail_bytes
    used_after = state.fs_used_bytes + send_bytes - freed
    percent = 100.0 * used_after / capacity if capacity else 100.0
    largest = max((e.size_bytes for e in send), default=0)
    verdict, reason = "ok", ""
    unsafe = unsafe_directory(state)
    if unsafe and (send or pruned):
        verdict, reason = "refuse", f"refused: {unsafe}"
    elif percent > REFUSE_PERCENT:
        verdict = "refuse"
        reason = f"refused: the filesystem would be {percent:.1f}% used (limit {REFUSE_PERCENT:g}%)"
    elif largest > state.fs_avail_bytes:
        verdict = "refuse"
        reason = f"refused: a {largest}-byte file does not fit in {state.fs_avail_bytes} bytes available"
    elif percent > WARN_PERCENT:
        verdict = "warn"
        reason = f"warning: the filesystem will be {percent:.1f}% used (above {WARN_PERCENT:g}%)"
    return PushPlan(send, pruned, same, send_bytes, percent, verdict, reason)


def unsafe_directory(state: IsoDirState) -> str | None:
    """Why root must not write in the host's ISO directory, or ``None`` (also when it does not
    exist yet: the push creates it). Mode bits as stat(2): 0o022 group/other write, 0o1000 sticky."""
    if state.dir_mode is None:
        return None
    if state.dir_owner_uid not in (0, state.runner_uid):
        return f"the ISO directory belongs to uid {state.dir_owner_uid}, not root or the deploying user"
    if state.dir_mode & 0o022 and not state.dir_mode & 0o1000:
        return (
            f"the ISO directory is writable by group or others (mode {state.dir_mode:04o}) without the sticky bit: "
            "another user could swap what root writes there (chmod go-w or +t)"
        )
    return None
