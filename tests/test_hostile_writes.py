"""``managed_file``'s write, run for real: the exact command pyinfra sends (``write_file_command``)
run by ``sh`` here, and through pyinfra's ``@local`` connector (content on stdin, as over SSH).

- no predictable name: the temporary file is made by mktemp(1) next to the destination, a new
  name each run, never ``/tmp/pyinfra-<sha1>``; symlinks planted at the old fixed names are not
  followed; a directory other users could swap names in is refused;
- an existing file keeps its mode and owner unless the plan sets them; a new one gets 644;
- a failed write (full disk, read-only file system) leaves no temporary file and no backup,
  keeps the old file, and reports the path and the cause;
- the new file and the backup are fsync'd before the rename and the directory after it (strace).
Tests that need root (chown, mounting a small tmpfs) are skipped without it.
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fleetforge.operations import STALE_TEMP_MINUTES, write_file_command

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TEMP_NAME = re.compile(r"\.(?P<base>.+)\.fleetforge-[A-Za-z0-9]{10}")
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def write(dest: Path, content: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run the command ``managed_file`` yields, content on stdin as pyinfra sends it."""
    command = write_file_command(str(dest), content, **kwargs)
    return subprocess.run(
        ["sh", "-c", command.get_raw_value()], input=command.connector_arguments["_stdin"],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )  # fmt: skip


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if "fleetforge-" in p.name and not p.name.endswith(".bak"))


@pytest.fixture
def etc(tmp_path):
    directory = tmp_path / "etc"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    return directory


def spy_path(tmp_path: Path) -> tuple[dict, Path]:
    """A PATH whose ``mv`` logs its arguments and runs the real mv(1)."""
    spy = tmp_path / "spy"
    spy.mkdir()
    log = tmp_path / "mv.log"
    (spy / "mv").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> {log}\nexec {shutil.which("mv")} "$@"\n')
    (spy / "mv").chmod(0o755)
    return {"PATH": f"{spy}:{os.environ['PATH']}"}, log


def test_temp_names_are_new_each_run_next_to_the_destination(etc, tmp_path):
    dest = etc / "60-fleetforge.conf"
    env, log = spy_path(tmp_path)
    for content in ("one\n", "two\n"):
        assert write(dest, content, env=env).returncode == 0
    sources = [Path(line) for line in log.read_text().splitlines() if line.startswith(str(etc))][::2]
    assert len(sources) == 2 and sources[0] != sources[1]
    for source in sources:
        assert source.parent == etc and TEMP_NAME.fullmatch(source.name)["base"] == dest.name
    assert dest.read_text() == "two\n" and leftovers(etc) == []


def test_symlinks_at_the_old_fixed_names_are_not_followed(etc, tmp_path):
    """The names the old code used (``<dest>.fleetforge-new``, pyinfra's sudo upload copy
    ``/tmp/pyinfra-<sha1>``) planted as symlinks to a victim: the victim stays as it was."""
    dest = etc / "nix.conf"
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    old_temp = f"{dest}.fleetforge-new"
    pyinfra_temp = Path(f"/tmp/pyinfra-{hashlib.sha1(old_temp.encode()).hexdigest()}")
    planted = [Path(old_temp)] + ([] if pyinfra_temp.exists() else [pyinfra_temp])
    for link in planted:
        link.symlink_to(victim)
    try:
        out = write(dest, "new\n")
        assert out.returncode == 0, out.stderr
        assert victim.read_text() == "precious\n" and dest.read_text() == "new\n"
        assert all(link.is_symlink() for link in planted)
    finally:
        for link in planted:
            link.unlink()


def test_the_write_never_follows_a_symlink_swapped_in_for_the_temp_file(etc, tmp_path):
    """An attacker who won the race anyway (a ``dd`` on PATH that first swaps the new temporary
    file for a symlink to a victim): the write refuses (O_NOFOLLOW), the victim is untouched."""
    dest, victim = etc / "nix.conf", tmp_path / "victim"
    victim.write_text("precious\n")
    spy = tmp_path / "spy"
    spy.mkdir()
    (spy / "dd").write_text(
        '#!/bin/sh\nfor a; do case $a in of=*) rm -f -- "${a#of=}"; ln -s '
        f'{victim} "${{a#of=}}";; esac; done\nexec {shutil.which("dd")} "$@"\n'
    )
    (spy / "dd").chmod(0o755)
    out = write(dest, "planted?\n", env={"PATH": f"{spy}:{os.environ['PATH']}"})
    assert out.returncode == 1 and "Too many levels of symbolic links" in out.stderr, out.stderr
    assert victim.read_text() == "precious\n" and not dest.exists() and leftovers(etc) == []


def test_a_directory_others_can_swap_names_in_is_refused(etc, tmp_path):
    dest = etc / "nix.conf"
    dest.write_text("old\n")
    etc.chmod(0o777)
    out = write(dest, "new\n")
    assert out.returncode == 1
    assert out.stderr.strip() == f"fleetforge: writing {dest} failed: {etc} is writable by group or others (mode 777)"
    assert dest.read_text() == "old\n" and leftovers(etc) == []
    etc.chmod(0o1777)  # sticky, like /tmp: others cannot rename or remove root's files there
    assert write(dest, "new\n").returncode == 0 and dest.read_text() == "new\n"


@root_only
def test_a_directory_another_user_owns_is_refused_unless_they_ran_sudo(etc):
    dest = etc / "nix.conf"
    os.chown(etc, 65534, 65534)
    out = write(dest, "new\n")
    assert out.returncode == 1 and not dest.exists() and leftovers(etc) == []
    assert out.stderr.strip().endswith(f"{etc} is owned by uid 65534, not by root or the deploying user")
    assert write(dest, "new\n", env={"SUDO_UID": "65534"}).returncode == 0  # the login user behind sudo


def test_new_file_gets_644_and_a_set_mode_is_applied(etc):
    dest = etc / "sub" / "new.conf"
    assert write(dest, "x", backup=f"{dest}.bak").returncode == 0
    assert (dest.stat().st_mode & 0o7777, dest.read_text()) == (0o644, "x")  # no newline added
    assert not Path(f"{dest}.bak").exists()
    assert write(dest, "y\n", mode="640").returncode == 0
    assert dest.stat().st_mode & 0o7777 == 0o640


@root_only
def test_existing_mode_and_owner_are_kept_and_the_backup_is_exact(etc):
    dest = etc / "nix.conf"
    dest.write_text("access-tokens = github.com=SECRET123\n")
    dest.chmod(0o600)
    os.chown(dest, 65534, 4)
    backup = Path(f"{dest}.fleetforge-20260101T000000Z.bak")
    out = write(dest, "access-tokens = github.com=SECRET123\nmax-jobs = 1\n", backup=str(backup))
    assert out.returncode == 0, out.stderr
    for path in (dest, backup):
        st = path.stat()
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o600, 65534, 4), path
    assert backup.read_text() == "access-tokens = github.com=SECRET123\n"
    assert write(dest, "z\n", user="root", group="root", mode="0644").returncode == 0
    st = dest.stat()
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o644, 0, 0)


def test_stale_temp_files_of_a_killed_run_are_removed(etc):
    dest = etc / "a.conf"
    stale, fresh = etc / ".a.conf.fleetforge-AAAAAAAAAA", etc / ".a.conf.fleetforge-BBBBBBBBBB"
    for path in (stale, fresh):
        path.write_text("partial")
    old = time.time() - (STALE_TEMP_MINUTES + 5) * 60
    os.utime(stale, (old, old))
    assert write(dest, "x\n").returncode == 0
    assert not stale.exists() and fresh.exists()  # a concurrent run's file is not touched


@pytest.fixture
def small_fs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=755", "tmpfs", str(mount)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_leaves_nothing_and_names_path_and_cause(small_fs):
    dest = small_fs / "60-fleetforge.conf"
    dest.write_text("old\n")
    out = write(dest, "x" * 200_000, backup=f"{dest}.fleetforge-20260101T000000Z.bak")
    assert out.returncode == 1
    assert out.stderr.startswith(
        f"fleetforge: writing {dest} failed: dd: error writing '{small_fs}/.60-fleetforge.conf"
    )
    assert out.stderr.rstrip().endswith("No space left on device")
    assert sorted(p.name for p in small_fs.iterdir()) == ["60-fleetforge.conf"]  # no temp file, no backup
    assert dest.read_text() == "old\n"


def test_a_read_only_file_system_is_reported(small_fs):
    dest = small_fs / "60-fleetforge.conf"
    dest.write_text("old\n")
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    out = write(dest, "new\n")
    assert out.returncode == 1
    assert out.stderr.startswith(f"fleetforge: writing {dest} failed: mktemp: ")
    assert out.stderr.rstrip().endswith("Read-only file system")
    assert sorted(p.name for p in small_fs.iterdir()) == ["60-fleetforge.conf"]


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_file_and_backup_are_fsynced_before_the_rename_and_the_directory_after(etc, tmp_path):
    dest = etc / "zram-generator.conf"
    dest.write_text("old\n")
    command = write_file_command(str(dest), "new\n", backup=f"{dest}.bak")
    trace = tmp_path / "trace"
    subprocess.run(
        ["strace", "-f", "-qq", "-y", "-e", "trace=fsync,rename,renameat,renameat2", "-o", str(trace),
         "sh", "-c", command.get_raw_value()],
        input=command.connector_arguments["_stdin"], text=True, check=True, timeout=60,
    )  # fmt: skip
    calls = [line.split(None, 1)[1] for line in trace.read_text().splitlines() if "= 0" in line]
    fsyncs = [c for c in calls if c.startswith("fsync(")]
    rename = next(i for i, c in enumerate(calls) if c.startswith("rename"))
    synced_before = [c for c in calls[:rename] if c.startswith("fsync(")]
    assert any(f"<{dest}.bak>" in c for c in synced_before)
    assert any(TEMP_NAME.search(c) for c in synced_before)  # the new file, under its temporary name
    assert any(f"<{etc}>" in c for c in calls[rename + 1 :] if c.startswith("fsync("))
    assert len(fsyncs) == 3 and f"{dest}" in calls[rename]


def test_through_pyinfra_local_connector_content_and_failure(etc, tmp_path):
    """The operation as pyinfra runs it: stdin through the connector, exact bytes written (no
    newline appended), and a failing write reported by pyinfra with the path and cause."""
    good, bad = etc / "good.conf", etc / "missing-parent-is-a-file" / "x.conf"
    (etc / "missing-parent-is-a-file").write_text("a file, not a directory\n")
    deploy = tmp_path / "deploy.py"
    deploy.write_text(
        textwrap.dedent(f"""
        from fleetforge.operations import managed_file
        managed_file(name="good", dest={str(good)!r}, content="a\\nno newline at the end", current=None)
        managed_file(name="bad", dest={str(bad)!r}, content="x\\n", current=None)
        """)
    )
    out = subprocess.run(
        [str(BIN / "pyinfra"), "-y", "@local", str(deploy)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert good.read_bytes() == b"a\nno newline at the end"
    assert f"fleetforge: writing {bad} failed: mkdir: cannot create directory" in text
    assert leftovers(etc) == []
