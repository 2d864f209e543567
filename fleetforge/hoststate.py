"""A host's state as far as fleetforge changes it, recorded before a rollout wave, and the
rollback that puts it back.

``snapshot()`` records (over SSH, read-only):

- the SHA-256 of every file in ``fleetforge.paths.MANAGED_FILES`` (``None`` when absent) and the
  ``<path>.fleetforge-<stamp>.bak`` backups next to them;
- the live values the plan checks (``fleetforge.verify``: one value per check item), the sysctl
  keys and disk queue settings the probe reads, whether ``/sys/block/zram0`` exists, and on NixOS
  the system profile's generation.

``rollback(pre, post)`` undoes what happened between two snapshots: files that changed are
restored from the backups that run made (files that were new are removed), then the live state is
re-applied as ``fleetforge.operations`` does (udev trigger, ``sysctl -p``, zram restart or removal,
nix-daemon try-restart) and the recorded live values are written back (a removed sysctl file or
udev rule does not by itself return the kernel to its old values). On NixOS: files restored, then
``nixos-rebuild switch --rollback`` if the generation moved. ``diff(pre, after)`` then tells
whether the rollback reached the recorded state.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from fleetforge import components
from fleetforge.facts.models import HostFacts
from fleetforge.facts.sections import SHA256
from fleetforge.paths import MANAGED_FILES
from fleetforge.planner import plan_host
from fleetforge.settings import HostSettings
from fleetforge.textcheck import has_control
from fleetforge.verify import CheckResult, checks_for, persistence_checks, probe_with, run_checks, testinfra_host

SYSTEM_PROFILE = "/nix/var/nix/profiles/system"

STATE_SCRIPT = r"""
for f; do
  d=${f%/*}; [ -d "$d" ] && printf 'D %s\n' "$d"
  [ -f "$f" ] && printf 'F %s %s\n' "$(sha256sum < "$f" | cut -d' ' -f1)" "$f"
  for b in "$f".fleetforge-*.bak; do [ -e "$b" ] && printf 'B %s\n' "$b"; done
done
g=$(readlink /nix/var/nix/profiles/system 2>/dev/null) && printf 'G %s\n' "$g"
[ -e /sys/block/zram0 ] && echo Z
true
"""


@dataclass
class HostSnapshot:
    host: str
    files: dict[str, str | None]
    backups: list[str]
    dirs: list[str]
    checks: dict[str, str | None]
    sysctl: dict[str, str]
    disks: dict[str, dict[str, Any]]
    zram_device: bool
    generation: str | None
    is_nixos: bool
    changed_by: list[str] = field(default_factory=list)
    #: the probe's facts the snapshot was made from (a rollout hands them to the wave's deploy,
    #: which then needs no probe of its own); never part of the record
    facts: HostFacts | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        out = asdict(replace(self, facts=None))
        out.pop("facts")
        return out

    def comparable(self) -> dict[str, Any]:
        """What must be equal for two snapshots to be the same host state."""
        out = self.to_json()
        out.pop("host"), out.pop("changed_by")
        return out


_BACKUP = re.compile(r"(?P<path>/.+)\.fleetforge-\d{8}T\d{6}Z\.bak")
_MANAGED_DIRS = frozenset(posixpath.dirname(path) for path in MANAGED_FILES)


def parse_state(text: str) -> tuple[dict[str, str | None], list[str], list[str], str | None, bool]:
    """``(files, backups, directories, generation, zram0 exists)`` from ``STATE_SCRIPT``.

    Host output: each line is checked on its own. ``F`` lines must name a managed file and a
    sha256, ``D`` lines a managed file's directory; ``B`` lines that are not
    ``<managed file>.fleetforge-<UTC stamp>.bak`` are not fleetforge's backups and are left out.
    Raises ``ValueError`` naming the line (as ``repr``) for anything else.
    """
    files: dict[str, str | None] = dict.fromkeys(MANAGED_FILES)
    backups, dirs, generation, zram = [], set(), None, False
    for line in text.splitlines():
        tag, _, rest = line.partition(" ")
        digest, _, path = rest.partition(" ")
        backup = _BACKUP.fullmatch(rest)
        if tag == "F" and path in files and SHA256.fullmatch(digest):
            files[path] = digest
        elif tag == "B":
            if backup and backup.group("path") in files:
                backups.append(rest)
        elif tag == "D" and rest in _MANAGED_DIRS:
            dirs.add(rest)
        elif tag == "G" and rest and not has_control(rest):
            generation = rest
        elif tag == "Z" and not rest:
            zram = True
        elif line.strip():
            raise ValueError(f"state script: unexpected line {line!r}")
    return files, sorted(backups), sorted(dirs), generation, zram


class HostUnreachable(RuntimeError):
    """SSH to the host failed (testinfra's ssh backend exits 255)."""


class _Host:
    """A testinfra host whose SSH failures raise ``HostUnreachable`` with ssh's own message
    (testinfra raises ``RuntimeError(CommandResult)`` without it)."""

    def __init__(self, host):
        self._host = host

    def run(self, command: str):
        try:
            return self._host.run(command)
        except RuntimeError as exc:
            result = exc.args[0] if exc.args else None
            stderr = getattr(result, "stderr", "") or ""
            lines = [line for line in stderr.strip().splitlines() if line.strip()]
            raise HostUnreachable(f"ssh failed: {lines[-1] if lines else exc}") from None


def _connect(name: str, data: dict[str, Any]):
    return _Host(testinfra_host(name, data))


def inspect(
    name: str, data: dict[str, Any], settings: HostSettings, host=None
) -> tuple[HostSnapshot, list[CheckResult]]:
    """Probe once, run the plan's checks once (``fleetforge.verify``) and read the managed files:
    the host's snapshot and its verification results. Raises whatever reaching or probing the
    host raised."""
    host = host or _connect(name, data)
    facts = probe_with(host, settings)
    plan = plan_host(name, facts, settings)
    persistent = persistence_checks(plan, facts, flake_host=settings.nixos_flake_host)
    checks = [*checks_for(plan, nixos=facts.os.is_nixos), *persistent]
    results = run_checks(name, host, checks)
    out = host.run(shlex.join(["sh", "-c", STATE_SCRIPT, "fleetforge-state", *MANAGED_FILES]))
    if out.rc != 0:
        raise RuntimeError(f"state script exited {out.rc}: {out.stderr.strip()[:200]}")
    files, backups, dirs, generation, zram = parse_state(out.stdout)
    snap = HostSnapshot(
        host=name,
        files=files,
        backups=backups,
        dirs=dirs,
        checks={r.item: r.actual for r in results},
        sysctl=dict(sorted(facts.sysctl.items())),
        disks={d.name: {"scheduler": d.scheduler, "read_ahead_kb": d.read_ahead_kb} for d in facts.disks},
        zram_device=zram,
        generation=generation,
        is_nixos=facts.os.is_nixos,
        facts=facts,
    )
    return snap, results


def snapshot(name: str, data: dict[str, Any], settings: HostSettings, host=None) -> HostSnapshot:
    """Record the host's state; raises whatever reaching or probing it raised."""
    return inspect(name, data, settings, host)[0]


def diff(before: HostSnapshot, after: HostSnapshot) -> list[str]:
    """Differences between two snapshots, one line each (``[]``: same state)."""
    a, b = before.comparable(), after.comparable()
    lines = []
    for key in a:
        if isinstance(a[key], dict):
            for item in sorted(set(a[key]) | set(b[key])):
                if a[key].get(item) != b[key].get(item):
                    lines.append(f"{key} {item}: {a[key].get(item)!r} -> {b[key].get(item)!r}")
        elif a[key] != b[key]:
            lines.append(f"{key}: {a[key]!r} -> {b[key]!r}")
    return lines


def changed_files(pre: HostSnapshot, post: HostSnapshot) -> list[str]:
    return [path for path in MANAGED_FILES if pre.files.get(path) != post.files.get(path)]


def new_backups(pre: HostSnapshot, post: HostSnapshot) -> list[str]:
    return [b for b in post.backups if b not in pre.backups]


def rollback_commands(pre: HostSnapshot, post: HostSnapshot) -> tuple[list[str], list[str]]:
    """Shell commands that return ``post`` to ``pre``: ``(commands, problems)``.

    Files that changed come back from the backups this run made (files that were new are
    removed), directories the deploy made are removed, NixOS goes back to its generation, then
    each tuning component restores its live state (``fleetforge.components``: reload, write the
    recorded values back). Every value that came from the host is one quoted word; what cannot be
    restored safely is reported in ``problems``, as are files that changed without a backup.
    """
    cmds: list[str] = []
    problems: list[str] = []
    changed = changed_files(pre, post)
    made = new_backups(pre, post)
    for path in changed:
        if pre.files.get(path) is None:
            cmds.append(shlex.join(["rm", "-f", path]))
            continue
        mine = sorted(b for b in made if b.startswith(path + ".fleetforge-"))
        if not mine:
            problems.append(f"{path} changed but this run left no backup of it")
            continue
        cmds.append(shlex.join(["mv", "-f", mine[-1], path]))
    # directories the deploy created (``mkdir -p`` before a new file), deepest first
    for directory in sorted(set(post.dirs) - set(pre.dirs), key=lambda d: (-d.count("/"), d)):
        cmds.append(shlex.join(["rmdir", directory]))
    if pre.is_nixos and post.generation != pre.generation:
        cmds.append("nixos-rebuild switch --rollback")
    elif pre.is_nixos and changed:
        cmds.append(shlex.join([f"{SYSTEM_PROFILE}/bin/switch-to-configuration", "test"]))
    more, issues = components.restore(pre, post, changed)
    return cmds + more, problems + issues


def run_rollback(name: str, data: dict[str, Any], pre: HostSnapshot, post: HostSnapshot, host=None) -> dict[str, Any]:
    """Run the rollback on the host; ``{"commands", "problems", "errors"}``. Never raises for a
    failed command (reported in ``errors``); raises if the host cannot be reached."""
    host = host or _connect(name, data)
    cmds, problems = rollback_commands(pre, post)
    errors = []
    for cmd in cmds:
        out = host.run(cmd)
        if out.rc != 0:
            errors.append(f"{cmd}: exit {out.rc}: {(out.stderr or out.stdout).strip()[:200]}")
    return {"commands": cmds, "problems": problems, "errors": errors}
