"""``managed_files``' one command, run for real by ``sh`` here, content on stdin as pyinfra sends
it (``batch_command``): several files and their follow-ups in one round trip.

- only changed files are written (each backed up), each file's follow-up runs right after it and
  only when the file changed or the live state drifted; follow-ups never read the batch's stdin;
- the first failing step stops the batch: the files before it are written, nothing after it is
  attempted, and stderr names the step, what was done and what was not;
- titles, paths and contents an attacker chose (quotes, ``$(...)``, newlines) stay data: the
  command's structure does not change and nothing else runs.
"""

import os
import shlex
import subprocess
from pathlib import Path

import pytest
from pyinfra.api import StringCommand

from fleetforge.models import ManagedFile
from fleetforge.operations import FileStep, backup_path, batch_command


def run(steps: list[FileStep]) -> subprocess.CompletedProcess:
    command = batch_command(steps)
    assert command is not None
    return subprocess.run(
        ["sh", "-c", command.get_raw_value()], input=command.connector_arguments["_stdin"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def logger(log: Path, word: str) -> tuple[StringCommand, ...]:
    """A follow-up that appends ``word`` and whatever it finds on stdin to ``log``."""
    return (StringCommand("sh", "-c", shlex.quote(f"printf '%s:' {word} >> {log}; cat >> {log}; echo >> {log}")),)


def current(path: Path) -> ManagedFile | None:
    return ManagedFile(sha256="0" * 64, content=path.read_text()) if path.exists() else None


@pytest.fixture
def etc(tmp_path):
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir(mode=0o755)
        (tmp_path / name).chmod(0o755)
    return tmp_path


def test_changed_files_are_written_each_followed_by_its_follow_up_in_order(etc):
    log = etc / "log"
    (etc / "b" / "same.conf").write_text("same\n")
    (etc / "c" / "old.conf").write_text("old\n")
    steps = [
        FileStep("A", str(etc / "a" / "new.conf"), "new\n", None, logger(log, "A"), "apply A"),
        FileStep("B", str(etc / "b" / "same.conf"), "same\n", current(etc / "b" / "same.conf"), logger(log, "B"), "B"),
        FileStep("C", str(etc / "c" / "old.conf"), "changed\n", current(etc / "c" / "old.conf"), logger(log, "C"), "C"),
    ]
    out = run(steps)
    assert out.returncode == 0, out.stderr
    assert (etc / "a" / "new.conf").read_text() == "new\n"
    assert (etc / "c" / "old.conf").read_text() == "changed\n"
    assert Path(backup_path(str(etc / "c" / "old.conf"))).read_text() == "old\n"  # the replaced file, kept
    assert not Path(backup_path(str(etc / "b" / "same.conf"))).exists()  # unchanged: not rewritten
    # A then C (B is up to date and did not drift); neither saw the batch's stdin (the contents)
    assert log.read_text() == "A:\nC:\n"
    assert oct((etc / "a" / "new.conf").stat().st_mode & 0o777) == "0o644"


def test_drift_alone_runs_the_follow_up_without_writing(etc):
    log = etc / "log"
    (etc / "a" / "f").write_text("x\n")
    step = FileStep("A", str(etc / "a" / "f"), "x\n", current(etc / "a" / "f"), logger(log, "A"), "A", ("k: 1 -> 2",))
    command = batch_command([step])
    assert command is not None and command.connector_arguments["_stdin"] == ""  # no file on stdin
    assert run([step]).returncode == 0
    assert log.read_text() == "A:\n"
    assert batch_command([FileStep("A", step.dest, "x\n", step.current, step.follow_up, "A")]) is None


def test_a_failing_step_stops_the_batch_and_names_what_was_and_was_not_done(etc):
    log = etc / "log"
    (etc / "b").chmod(0o777)  # refused by the writer: others could swap names in it
    steps = [
        FileStep("first file", str(etc / "a" / "f"), "1\n", None, logger(log, "A"), "apply first"),
        FileStep("second file", str(etc / "b" / "f"), "2\n", None, logger(log, "B"), "apply second"),
        FileStep("third file", str(etc / "c" / "f"), "3\n", None, logger(log, "C"), "apply third"),
    ]
    out = run(steps)
    assert out.returncode == 1
    assert f"writing {etc}/b/f failed: {etc}/b is writable by group or others (mode 777)" in out.stderr
    assert (
        'stopped at "second file" (failed); done before it: first file, apply first; '
        "not attempted: apply second, third file, apply third" in out.stderr
    ), out.stderr
    assert (etc / "a" / "f").read_text() == "1\n" and not (etc / "b" / "f").exists() and not (etc / "c" / "f").exists()
    assert log.read_text() == "A:\n"
    assert sorted(p.name for p in (etc / "b").iterdir()) == []  # no temporary file left


def test_a_failing_follow_up_is_named_with_its_command_and_output(etc):
    ok = StringCommand("true")
    boom = (ok, StringCommand("sh", "-c", shlex.quote("echo no such unit >&2; exit 3")), ok)
    steps = [
        FileStep("A", str(etc / "a" / "f"), "1\n", None, boom, "apply A"),  # its 2nd of 3 commands fails
        FileStep("B", str(etc / "b" / "f"), "2\n", None),
    ]
    out = run(steps)
    assert out.returncode == 1
    assert "fleetforge: apply A: `sh -c 'echo no such unit >&2; exit 3'` failed: no such unit" in out.stderr
    assert 'stopped at "apply A" (failed); done before it: A; not attempted: B' in out.stderr
    assert (etc / "a" / "f").read_text() == "1\n" and not (etc / "b" / "f").exists()


HOSTILE = [
    "x'; touch PWNED; '",
    "$(touch PWNED)",
    "`touch PWNED`",
    "a\nw evil /tmp/PWNED '' '' '' '' 0",
    "-rf *",
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_titles_paths_and_contents_stay_data(etc, text, monkeypatch):
    monkeypatch.chdir(etc)
    dest = etc / "a" / text.replace("/", "_")
    steps = [
        FileStep(text, str(dest), text + "\n" + text, None, (), ""),
        FileStep("next " + text, str(etc / "b" / "f"), "", None),  # an empty file after it
    ]
    out = run(steps)
    assert out.returncode == 0, out.stderr
    assert dest.read_text() == text + "\n" + text
    assert (etc / "b" / "f").read_text() == ""
    assert not any(name == "PWNED" for _, _, files in os.walk(etc) for name in files)  # touch never ran
    assert not Path("/tmp/PWNED").exists()
