"""The ISO push with hostile file names and planted symbolic links, run for real.

``IsoDir``'s script runs with ``sh`` over a directory holding names with a newline, a backslash,
quotes, ``$(...)``, bytes that are not UTF-8, and symbolic links; then the whole deploy
(``deploys/iso_bundle.py``) runs as root with pyinfra's ``@local`` connector against such a
directory: nothing is written through a link, odd names are pruned exactly (one quoted word
each, nothing runs), a name that is not UTF-8 is reported and left alone, no temporary entry is
left, and a directory other users can write to is refused with nothing written.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from fleetforge.bundle.manifest import BundleIndex, IndexEntry
from fleetforge.bundle.plan import plan_push
from fleetforge.facts.iso_dir import SCRIPT, IsoDir, IsoDirState, RemoteFile

REPO = Path(__file__).resolve().parent.parent
ODD = ["a\nb.iso", "back\\slash.iso", "x'; touch MARKER; '.iso", "$(touch MARKER).iso", " lead\tand\rtrail "]
NOT_UTF8 = b"\xff\xfe.iso"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def iso_dir_state(directory: Path) -> IsoDirState:
    out = subprocess.run(
        ["sh", "-c", SCRIPT, "fleetforge-iso-dir", str(directory)], capture_output=True, text=True, check=True
    )
    return IsoDir().process(out.stdout.splitlines())


def hostile_dir(root: Path) -> Path:
    """``root/isos`` with odd names, one name that is not UTF-8 and planted symbolic links to
    ``root/victim`` and ``root/secret`` at the names the old push wrote to."""
    isos = root / "isos"
    isos.mkdir(mode=0o755)
    (root / "victim").write_text("victim\n")
    (root / "secret").write_text("a b c d\n")  # four fields, like a sums line
    for i, name in enumerate(ODD):
        (isos / name).write_bytes(b"odd %d" % i)
    (isos / os.fsdecode(NOT_UTF8)).write_bytes(b"not utf-8")
    os.symlink(root / "victim", isos / ".alpha.iso.fleetforge-tmp")
    os.symlink(root / "victim", isos / ".fleetforge-sums.tmp")
    os.symlink(root / "secret", isos / ".fleetforge-sums")
    os.symlink(root / "victim", isos / "linked.iso")
    return isos


def test_iso_dir_reads_odd_names_exactly_and_skips_links(tmp_path):
    state = iso_dir_state(hostile_dir(tmp_path))
    assert state.files == {
        name: RemoteFile(size_bytes=len(b"odd %d" % i), sha256=sha(b"odd %d" % i)) for i, name in enumerate(ODD)
    }
    assert state.unreadable_names == [repr(NOT_UTF8)]
    assert (state.dir_owner_uid, state.dir_mode, state.runner_uid) == (os.getuid(), 0o755, os.getuid())
    assert not (tmp_path / "MARKER").exists()


@pytest.mark.parametrize(
    ("hex_name", "problem"),
    [("2f6574632f706173737764", "not a file name"), ("2e2e", "not a file name"), ("zz", "non-hexadecimal")],
)
def test_a_host_that_lies_about_a_name_fails(hex_name, problem):
    lines = ["@@df", "10 5 5", "@@exists", "yes", "@@files", f"1 {'a' * 64} {hex_name}", "@@done"]
    with pytest.raises(Exception, match=problem):
        IsoDir().process(lines)


def entry(name: str, data: bytes) -> IndexEntry:
    return IndexEntry(
        name=name, size_bytes=len(data), sha256=sha(data), sha512=hashlib.sha512(data).hexdigest(),
        blake2b=hashlib.blake2b(data).hexdigest(),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("owner", "mode", "verdict"),
    [(0, 0o755, "ok"), (0, 0o1777, "ok"), (0, 0o775, "refuse"), (0, 0o757, "refuse"), (1000, 0o755, "refuse")],
)
def test_a_directory_other_users_can_write_to_is_refused(owner, mode, verdict):
    state = IsoDirState(
        exists=True, fs_size_bytes=1000, fs_used_bytes=0, fs_avail_bytes=1000, files={},
        dir_owner_uid=owner, dir_mode=mode, runner_uid=0,
    )  # fmt: skip
    plan = plan_push(BundleIndex(files={"a.iso": entry("a.iso", b"a")}), state)
    assert plan.verdict == verdict, plan.reason
    if verdict == "refuse":
        assert "another user could swap" in plan.reason or "not root or the deploying user" in plan.reason


def push(root: Path, isos: Path, *data: str) -> subprocess.CompletedProcess:
    """``pyinfra -y @local deploys/iso_bundle.py`` as root (this test's user), cwd ``root``."""
    args = ["--data", f"iso_dir={isos}", "--data", f"iso_bundle={root / 'bundle'}"]
    for item in data:
        args += ["--data", item]
    return subprocess.run(
        ["pyinfra", "-y", "@local", str(REPO / "deploys/iso_bundle.py"), *args],
        cwd=root, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "bundle").mkdir()
    files = {"alpha.iso": b"alpha " * 100, "beta.iso": b"beta " * 50}
    for name, data in files.items():
        (tmp_path / "bundle" / name).write_bytes(data)
    BundleIndex(files={name: entry(name, data) for name, data in files.items()}).save(tmp_path / "bundle")
    return files


@pytest.mark.skipif(os.getuid() != 0, reason="the push writes as root; run as root (the dev container is)")
def test_push_never_writes_through_a_link_and_prunes_odd_names_exactly(tmp_path, bundle):
    isos = hostile_dir(tmp_path)
    result = push(tmp_path, isos, "iso_prune=true")
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    assert (tmp_path / "victim").read_text() == "victim\n" and (tmp_path / "secret").read_text() == "a b c d\n"
    assert f"left alone {NOT_UTF8!r} in {isos}: the name is not UTF-8" in log
    names = sorted(os.listdir(isos))  # str names; the one that is not UTF-8 as surrogates
    assert names == sorted(
        [".alpha.iso.fleetforge-tmp", ".fleetforge-sums", ".fleetforge-sums.tmp", "alpha.iso", "beta.iso",
         "linked.iso", os.fsdecode(NOT_UTF8)]
    )  # fmt: skip  # links are not files of the directory: left as they are, never followed
    assert not (isos / ".fleetforge-sums").is_symlink()
    for name, data in bundle.items():
        assert (isos / name).read_bytes() == data and not (isos / name).is_symlink()
        assert (isos / name).stat().st_mode & 0o777 == 0o644
    sums = (isos / ".fleetforge-sums").read_text().splitlines()
    assert sorted(line.split()[0] for line in sums) == ["alpha.iso", "beta.iso"]  # not the secret's line
    assert not (tmp_path / "MARKER").exists() and not (isos / "MARKER").exists()
    again = push(tmp_path, isos)
    assert again.returncode == 0 and "0 file(s) to send (0 bytes), 2 up to date" in again.stdout + again.stderr


@pytest.mark.skipif(os.getuid() != 0, reason="the push writes as root; run as root (the dev container is)")
def test_push_into_a_world_writable_directory_is_refused_and_writes_nothing(tmp_path, bundle):
    isos = tmp_path / "isos"
    isos.mkdir()
    isos.chmod(0o777)
    result = push(tmp_path, isos)
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "refused: the ISO directory is writable by group or others (mode 0777) without the sticky bit" in log
    assert os.listdir(isos) == []
