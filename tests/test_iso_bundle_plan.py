"""``IsoDir`` (captured real outputs from the test VMs, malformed output, the sums shortcut run
for real with ``sh``) and ``plan_push`` (what to send, disk thresholds 85 % / 90 %)."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from pyinfra.api.exceptions import FactProcessError

from fleetforge.bundle.manifest import BundleIndex, IndexEntry
from fleetforge.bundle.plan import plan_push
from fleetforge.facts.iso_dir import SCRIPT, IsoDir, IsoDirState, RemoteFile

FIXTURES = Path(__file__).parent / "facts" / "iso_dir.IsoDir"


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.json")))
def test_captured_outputs_parse_to_the_reviewed_fact(name):
    fixture = json.loads((FIXTURES / f"{name}.json").read_text())
    assert IsoDir().process(fixture["output"]).to_json() == fixture["fact"]


def _in_section(section, change):
    """A mangle that applies ``change`` to each line of ``section``."""

    def mangle(out):
        start = out.index(section) + 1
        end = next(i for i in range(start, len(out)) if out[i].startswith("@@"))
        return out[:start] + [change(line) for line in out[start:end]] + out[end:]

    return mangle


@pytest.mark.parametrize(
    "mangle",
    [
        lambda out: out[:-1],  # truncated: no @@done
        _in_section("@@df", lambda line: "x y z"),
        _in_section("@@files", lambda line: line.replace(line.split()[1], "nothex", 1)),
        _in_section("@@files", lambda line: line + "zz"),  # a name that is not hex
        _in_section("@@files", lambda line: f"{line} extra"),
        _in_section("@@dir", lambda line: "root 755 0"),
    ],
    ids=["truncated", "df-not-numbers", "bad-sha256", "name-not-hex", "extra-field", "owner-not-a-number"],
)
def test_malformed_output_fails_that_host(mangle):
    output = json.loads((FIXTURES / "with-files-and-sums.json").read_text())["output"]
    with pytest.raises(FactProcessError):
        IsoDir().process(mangle(list(output)))


def run_fact(directory: Path) -> IsoDirState:
    out = subprocess.run(
        ["sh", "-c", SCRIPT, "fleetforge-iso-dir", str(directory)], capture_output=True, text=True, check=True
    )
    return IsoDir().process(out.stdout.splitlines())


def test_the_sums_list_spares_hashing_until_a_file_changes(tmp_path):
    iso = tmp_path / "a.iso"
    iso.write_bytes(b"\0" * 1000)
    stat = iso.stat()
    fake = "f" * 64
    (tmp_path / ".fleetforge-sums").write_text(f"a.iso {stat.st_size} {int(stat.st_mtime)} {fake}\n")
    assert run_fact(tmp_path).files == {"a.iso": RemoteFile(size_bytes=1000, sha256=fake)}  # taken from the list
    iso.write_bytes(b"\1" * 1000)
    os.utime(iso, (stat.st_mtime + 5, stat.st_mtime + 5))
    real = subprocess.run(["sha256sum", str(iso)], capture_output=True, text=True, check=True).stdout[:64]
    assert run_fact(tmp_path).files["a.iso"].sha256 == real  # changed: hashed again


def entry(name, size, sha):
    return IndexEntry(name=name, size_bytes=size, sha256=sha, sha512="0" * 128, blake2b="0" * 128)


def state(used, avail, files=None):
    return IsoDirState(
        exists=True, fs_size_bytes=used + avail, fs_used_bytes=used, fs_avail_bytes=avail, files=files or {}
    )


INDEX = BundleIndex(files={"a.iso": entry("a.iso", 50, "a" * 64), "b.iso": entry("b.iso", 30, "b" * 64)})


def test_only_missing_or_different_files_are_sent():
    have = {"a.iso": RemoteFile(size_bytes=50, sha256="a" * 64), "b.iso": RemoteFile(size_bytes=30, sha256="c" * 64)}
    plan = plan_push(INDEX, state(500, 500, have))
    assert [e.name for e in plan.send] == ["b.iso"] and plan.send_bytes == 30 and plan.up_to_date == 1
    assert plan.used_after_percent == pytest.approx(50.0)  # the old b.iso is replaced, not added to


@pytest.mark.parametrize(
    ("used", "verdict"),
    [(770, "ok"), (771, "warn"), (820, "warn"), (821, "refuse")],  # after = used + 80 of 1000
)
def test_disk_thresholds_warn_above_85_and_refuse_above_90_percent(used, verdict):
    plan = plan_push(INDEX, state(used, 1000 - used))
    assert plan.verdict == verdict
    if verdict == "refuse":
        assert plan.reason == f"refused: the filesystem would be {(used + 80) / 10:.1f}% used (limit 90%)"


def test_pruning_is_only_planned_when_asked_and_frees_space():
    have = {"old.iso": RemoteFile(size_bytes=400, sha256="d" * 64)}
    assert plan_push(INDEX, state(880, 120, have)).verdict == "refuse"
    plan = plan_push(INDEX, state(880, 120, have), prune=True)
    assert plan.prune == ["old.iso"] and plan.verdict == "ok"


def test_a_file_larger_than_the_free_space_is_refused_even_below_90_percent():
    big = BundleIndex(files={"big.iso": entry("big.iso", 300, "e" * 64)})
    have = {"big.iso": RemoteFile(size_bytes=290, sha256="f" * 64)}  # replacing keeps use low, but the copy needs room
    plan = plan_push(big, state(500, 250, have))
    assert plan.verdict == "refuse" and "does not fit" in plan.reason
