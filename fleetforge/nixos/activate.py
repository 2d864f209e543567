"""Activate fleetforge's NixOS modules safely: ``nixos-rebuild test``, verify, then ``switch``.

The order is host data's ``nixos_activation`` (default ``["test", "switch"]``; ``["boot"]`` for
hosts that must not change live). After ``test`` and after ``switch`` the live values are
checked against the plan with the checks of ``fleetforge verify``. On any failure (evaluation
or activation error, or a check that fails) the host goes back to where it was:

- the files fleetforge wrote are restored from their backups (or removed if they were new);
- if the system profile moved (a ``switch`` or ``boot`` built a new generation):
  ``nixos-rebuild switch --rollback`` (``boot --rollback`` on boot-only hosts) returns the
  profile, the boot default and, after a live change, the running system to the previous one;
- if it did not (only ``test`` ran, or ``switch`` failed before building), the unchanged profile
  is activated again (``/nix/var/nix/profiles/system/bin/switch-to-configuration test``);
  a boot-only host is never activated live;

and the operation fails, so pyinfra reports that host as failed with the reason.

Flake hosts (``fleetforge.nixos.flake``) are built with ``--flake /etc/nixos#<name>``. Nix reads a
flake in a git work tree from the files git knows only, so when ``/etc/nixos`` is in one, every
file fleetforge manages there is ``git add``-ed before the first action (nothing is committed:
the commit stays the operator's). A rollback leaves the index consistent with the restored files:
a file git did not track before is dropped from the index (``git rm --cached``), a file it did is
added again with its restored content.
"""

from __future__ import annotations

from types import SimpleNamespace

from pyinfra import logger
from pyinfra.api import FunctionCommand, QuoteString, StringCommand, operation

from fleetforge.nixos.flake import FLAKE_DIR
from fleetforge.verify import Check, run_checks

SYSTEM_PROFILE = "/nix/var/nix/profiles/system"


class _PyinfraRunner:
    """``run(cmd)`` over a pyinfra host, shaped like testinfra's (``.rc``, ``.stdout``)."""

    def __init__(self, host):
        self.host = host

    def run(self, command: str) -> SimpleNamespace:
        ok, output = self.host.run_shell_command(StringCommand(command))
        return SimpleNamespace(
            rc=0 if ok else 1, stdout="\n".join(output.stdout_lines), stderr="\n".join(output.stderr_lines)
        )


def _run(host, *argv: str) -> tuple[bool, str]:
    """Run ``argv`` quoted; return (success, the error: from the first ``error`` line on)."""
    ok, output = host.run_shell_command(StringCommand(*[QuoteString(a) for a in argv]))
    lines = [line for line in (output.stderr_lines or output.stdout_lines) if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.lstrip().lower().startswith("error")]
    start = errors[0] if errors else max(0, len(lines) - 1)
    return ok, " | ".join(lines[start:])[:500]


def _generation(host) -> str:
    ok, output = host.run_shell_command(StringCommand("readlink", SYSTEM_PROFILE))
    return output.stdout_lines[0] if ok and output.stdout_lines else "(none)"


def _restore(host, written: list[tuple[str, str | None]]) -> None:
    for path, backup in written:
        if backup:
            _run(host, "mv", "-f", backup, path)
        else:
            _run(host, "rm", "-f", path)


def _git_error(output) -> str:
    """git's message without its ``hint:`` lines, one line."""
    lines = [line for line in output.stderr_lines or output.stdout_lines if line.strip()]
    return " | ".join(line for line in lines if not line.startswith("hint:"))[:500]


def _git_track(host, files: list[str]) -> tuple[bool, str, set[str] | None]:
    """``git add`` ``files`` (absolute paths under /etc/nixos) if /etc/nixos is in a git work
    tree: ``(ok, error, the files git tracked before)``; ``None`` when not in git (or no git).

    Not ok, with git's own words: git refuses the repository (``safe.directory``: it is owned by
    another user; fleetforge does not override that check, which keeps root from running that
    user's git hooks), listing or adding fails (an ignore rule: a flake sees only files git
    knows, so the rule must go)."""
    ok, output = host.run_shell_command(StringCommand("git", "-C", FLAKE_DIR, "rev-parse", "--is-inside-work-tree"))
    if not ok:
        error = _git_error(output)
        if "not a git repository" in error or "not found" in error:
            return True, "", None
        return False, f"git in {FLAKE_DIR}: {error}", None
    if output.stdout_lines != ["true"]:
        return True, "", None
    relative = [_relative(path) for path in files]
    ok, output = host.run_shell_command(
        StringCommand("git", "-C", FLAKE_DIR, "ls-files", "--", *[QuoteString(p) for p in relative])
    )
    if not ok:
        return False, f"git ls-files in {FLAKE_DIR}: {_git_error(output)}", None
    tracked = {f"{FLAKE_DIR}/{line}" for line in output.stdout_lines}
    ok, output = host.run_shell_command(
        StringCommand("git", "-C", FLAKE_DIR, "add", "--", *[QuoteString(p) for p in relative])
    )
    return ok, "" if ok else f"git add in {FLAKE_DIR}: {_git_error(output)}", tracked


def _git_restore(host, files: list[str], tracked: set[str]) -> None:
    for path in files:
        if path in tracked:
            _run(host, "git", "-C", FLAKE_DIR, "add", "--", _relative(path))
        else:
            _run(host, "git", "-C", FLAKE_DIR, "rm", "--cached", "--quiet", "--ignore-unmatch", "--", _relative(path))


def _relative(path: str) -> str:
    if not path.startswith(f"{FLAKE_DIR}/"):
        raise ValueError(f"{path}: not under {FLAKE_DIR}")
    return path[len(FLAKE_DIR) + 1 :]


def _roll_back(host, before: str, live: bool, written: list[tuple[str, str | None]], git) -> str:
    """Restore the files (and the git index: ``git`` is ``(files, tracked before)`` or ``None``),
    then the system profile; return the generation the profile is back at."""
    _restore(host, written)
    if git is not None:
        _git_restore(host, *git)
    if _generation(host) != before:  # a switch/boot made a new generation: drop it
        _run(host, "nixos-rebuild", "switch" if live else "boot", "--rollback")
    elif live:  # only `test` ran (or switch failed before building): re-activate the profile
        _run(host, f"{SYSTEM_PROFILE}/bin/switch-to-configuration", "test")
    return _generation(host)


def activate(
    state,
    host,
    actions: list[str],
    checks: list[Check],
    written: list[tuple[str, str | None]],
    flake: str | None = None,
    flake_files: list[str] = (),
) -> bool:
    """Run the actions with verification; roll back and return ``False`` on any failure."""
    before = _generation(host)
    done: list[str] = []
    git = None
    if flake_files:
        ok, detail, tracked = _git_track(host, list(flake_files))
        git = (list(flake_files), tracked) if tracked is not None else None
        if not ok:
            after = _roll_back(host, before, False, written, git)
            logger.error(f"{host.print_prefix}{detail.strip()}; files restored, system profile at {after}")
            return False
    flake_args = ("--flake", flake) if flake else ()
    for action in actions:
        ok, detail = _run(host, "nixos-rebuild", action, *flake_args)
        if ok and action in ("test", "switch"):
            failed = [r for r in run_checks(host.name, _PyinfraRunner(host), checks) if r.severity == "fail"]
            ok, detail = not failed, "; ".join(r.line() for r in failed[:5])
        if ok:
            done.append(action)
            continue
        live = any(a in ("test", "switch") for a in [*done, action])
        after = _roll_back(host, before, live, written, git)
        logger.error(
            f"{host.print_prefix}nixos-rebuild {action} failed: {detail.strip()}; files restored, "
            f"system profile back at {after} (was {before})"
        )
        return False
    host.log(f"NixOS activated ({', '.join(done)}): system profile {before} -> {_generation(host)}", logger.info)
    return True


@operation()
def nixos_activate(
    actions: list[str],
    checks: list[Check],
    written: list[tuple[str, str | None]],
    flake: str | None = None,
    flake_files: list[str] = (),
):
    """Activate the modules with ``actions`` (``test``/``switch``/``boot``), verifying with
    ``checks`` after ``test`` and ``switch``.

    + actions: ``nixos-rebuild`` actions in order
    + checks: the plan's checks (``fleetforge.verify.checks_for(plan, nixos=True)``)
    + written: ``(path, backup path or None)`` of every file this run wrote, for the rollback
    + flake: ``/etc/nixos#<name>`` for a flake host (``--flake``), else ``None``
    + flake_files: a flake host's managed files under /etc/nixos, ``git add``-ed when it is a git
      work tree
    """
    yield FunctionCommand(activate, (actions, checks, written), {"flake": flake, "flake_files": list(flake_files)})
