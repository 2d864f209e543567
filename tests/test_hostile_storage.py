"""A compromised host (or hypervisor) against the btrfs, podman, nix-settings and queue parts of the
probe, and against the files and commands built from them.

Every attack goes through the real parse path: a captured probe output
(``qemu-virtio-blk-vda-bios``) with lines of one section replaced, parsed by
``HostProbe().process``; what parses is planned (``plan_host``) and rendered
(``component.file`` / ``nixos_options``) and the result is checked structurally (``tomllib`` for
storage.conf, field counts for tmpfiles.d, ``shlex.split`` for restore commands).

Written as an attack review; the holes it found are closed: a graphroot pattern that backtracked
exponentially (a 66-character path hung the controller), storage.conf rewritten line by line
without checking it still means the same TOML, a single-quoted graphroot the probe missed, an
empty or FUSE fstype failing the whole probe, hardware-queue counts read with ``int()``, a btrfs
fsid listed twice, non-ASCII digits run by restore.
"""

import base64
import hashlib
import json
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
from pyinfra.api.exceptions import FactProcessError

from fleetforge.components.btrfs_read_ahead import BtrfsReadAhead
from fleetforge.components.podman import Podman
from fleetforge.errors import PlanError
from fleetforge.facts.probe import HostProbe
from fleetforge.paths import STORAGE_CONF
from fleetforge.planner import plan_host
from fleetforge.verify import READ_FILES, parse_live, run_checks
from tests.components.helpers import settings, snap
from tests.conftest import FIXTURES, load_fixture

FIXTURE = "qemu-virtio-blk-vda-bios"
BASE: list[str] = load_fixture(FIXTURE)["output"]
REPO = Path(__file__).resolve().parent.parent
FSID = "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
FSID2 = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
PODMAN = Podman()
BTRFS = BtrfsReadAhead()
# the podman section as the probe prints it for a host whose graphroot is on btrfs, empty store
PODMAN_ON_BTRFS = ["version podman version 4.3.1", "conf /etc/containers/storage.conf", "fstype btrfs"]
DEFAULT_RUNROOT = "/run/containers/storage"
DEFAULT_GRAPHROOT = "/var/lib/containers/storage"


# -- building hostile probe output ------------------------------------------------------------------


def with_section(name: str, lines: list[str], output: list[str] | None = None) -> list[str]:
    """``output`` (the captured probe by default) with the body of section ``@@name`` replaced."""
    out = list(BASE if output is None else output)
    start = out.index(f"@@{name}")
    end = next(i for i in range(start + 1, len(out)) if out[i].startswith("@@") and out[i] != "@@end-file")
    return out[: start + 1] + list(lines) + out[end:]


def with_file(path: str, content: str, output: list[str] | None = None) -> list[str]:
    """``output`` with ``path`` present in the ``files`` section, holding ``content`` (the host's own file)."""
    out = list(BASE if output is None else output)
    i = out.index(f"absent {path}")
    sha = hashlib.sha256(content.encode()).hexdigest()
    body = base64.b64encode(content.encode()).decode()
    return out[:i] + [f"file {path} {sha}", body, "@@end-file"] + out[i + 1 :]


def with_hw_queues(value: str, disk: str = "vda") -> list[str]:
    """The captured output with the 7th queue field (nr_hw_queues) of ``disk`` replaced."""
    out = list(BASE)
    i = next(i for i, line in enumerate(out) if line.startswith(f"{disk}|"))
    parts = out[i].split("|")
    parts[6] = value
    out[i] = "|".join(parts)
    return out


def probe(output: list[str]):
    return HostProbe().process(output)


def storage_conf_for(current: str, podman_lines: list[str] = PODMAN_ON_BTRFS) -> tuple[str, object]:
    """(storage.conf fleetforge writes, plan) for a host whose own storage.conf is ``current``."""
    try:  # what the probe's sed would have read from this file's [storage] table
        table = tomllib.loads(current).get("storage", {})
    except tomllib.TOMLDecodeError:
        table = {}
    sets = [f"set {k} {v}" for k, v in table.items() if k in ("driver", "graphroot", "runroot") and isinstance(v, str)]
    lines = [podman_lines[0], "conf /etc/containers/storage.conf", *sets, *podman_lines[1:]] if sets else podman_lines
    facts = probe(with_file(STORAGE_CONF, current, with_section("podman", lines)))
    plan = plan_host("h", facts, settings())
    text = PODMAN.file(plan, facts)
    assert text is not None, "graphroot on btrfs: fleetforge writes storage.conf"
    return text, plan


def rewrite_or_refusal(current: str) -> str | None:
    """The storage.conf fleetforge writes for ``current``, or ``None`` if it refuses the host's file
    with an error naming storage.conf or the probe's storage field (probe, plan or render), which
    is also safe."""
    try:
        return storage_conf_for(current)[0]
    except (FactProcessError, PlanError, ValueError) as exc:
        named = "storage.conf" in str(exc) or str(exc).startswith("HostProbe: storage ")
        if isinstance(exc, tomllib.TOMLDecodeError) or not named:
            raise
        return None


def expected_conf(current: str) -> dict:
    """What the rewrite must mean: the host's file as TOML with ``storage.driver`` the planned one
    and runroot/graphroot added only if it had none; every other key where it was."""
    conf = tomllib.loads(current)
    storage = conf.setdefault("storage", {})
    storage["driver"] = "btrfs"
    storage.setdefault("runroot", DEFAULT_RUNROOT)
    storage.setdefault("graphroot", DEFAULT_GRAPHROOT)
    return conf


def test_the_unchanged_capture_parses_and_plans_nothing_for_these_components():
    facts = probe(BASE)  # baseline: the helpers above change nothing by themselves
    assert facts.btrfs == [] and facts.podman.graphroot_fstype == "ext4"
    assert probe(with_section("btrfs", [])) == facts
    plan = plan_host("h", facts, settings())
    assert BTRFS.file(plan, facts) is None and PODMAN.file(plan, facts) is None


# -- @@btrfs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lines, field",
    [
        ([f"{FSID}/../x|btrfs-1|4096|vdb"], "btrfs fsid"),
        (["../../../etc|btrfs-1|4096|vdb"], "btrfs fsid"),
        ([f"{FSID} x|btrfs-1|4096|vdb"], "btrfs fsid"),
        ([f"{FSID.upper()}|btrfs-1|4096|vdb"], "btrfs fsid"),  # sysfs prints it lowercase (%pU)
        ([f"{FSID}\u2028|btrfs-1|4096|vdb"], "btrfs fsid"),
        ([FSID, "|btrfs-1|4096|vdb"], "bad btrfs line"),  # a newline in the fsid: two lines
        ([f"{FSID}|btrfs-1/../../x|4096|vdb"], "bdi of btrfs"),
        ([f"{FSID}|..|4096|vdb"], "bdi of btrfs"),
        ([f"{FSID}|btrfs 1|4096|vdb"], "bdi of btrfs"),
        ([f"{FSID}|btrfs-1|4096|vdb;reboot"], "device of btrfs"),
        ([f"{FSID}|btrfs-1|4096|$(reboot) `id`"], "device of btrfs"),
        ([f"{FSID}|btrfs-1|4096|vdb ../../dev/sda"], "device of btrfs"),
        ([f"{FSID}|btrfs-1|4096|vdb*"], "device of btrfs"),
        ([f"{FSID}|btrfs-1|4096|vdb|vdc"], "bad btrfs line"),
        ([f"{FSID}|btrfs-1|-4096|vdb"], "bad btrfs line"),
        ([f"{FSID}|btrfs-1|4096; reboot|vdb"], "bad btrfs line"),
        ([f"{FSID}|btrfs-1|0x1000|vdb"], "bad btrfs line"),
    ],
)
def test_btrfs_lines_that_are_not_what_they_claim_fail_the_host_naming_the_field(lines, field):
    with pytest.raises(FactProcessError, match=field):
        probe(with_section("btrfs", lines))


def test_btrfs_device_list_separators_other_than_space_still_yield_only_kernel_names():
    # str.split() also splits on tab and U+2028: each piece is still checked as a kernel name
    facts = probe(with_section("btrfs", [f"{FSID}|btrfs-1|4096|vdb\tvda1\u2028"]))
    assert facts.btrfs[0].devices == ["vdb", "vda1"]
    with pytest.raises(FactProcessError, match="device of btrfs"):
        probe(with_section("btrfs", [f"{FSID}|btrfs-1|4096|vdb\u2028../sda"]))


def test_btrfs_tmpfiles_has_one_seven_field_w_line_per_filesystem():
    huge = "9" * 40  # a huge read_ahead_kb from the host is a number, not text
    lines = [f"{FSID}|btrfs-1|{huge}|vdb ", f"{FSID2}|btrfs-2|128|vda1 vdb "]
    facts = probe(with_section("btrfs", lines))
    plan = plan_host("h", facts, settings())
    text = BTRFS.file(plan, facts)
    body = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert [line.split()[0] for line in body] == ["w", "w"]
    assert all(len(line.split()) == 7 for line in body)
    assert [line.split()[1] for line in body] == [f"/sys/fs/btrfs/{f}/bdi/read_ahead_kb" for f in (FSID, FSID2)]
    assert all(line.split()[6].isdigit() for line in body)
    # every other line is a comment: the reason/source comments stayed one line each
    assert len(text.splitlines()) == 3 + 2 * 2
    rules = BTRFS.nixos_options(plan, facts)["systemd"]["tmpfiles"]["rules"]
    assert rules == body


def test_the_same_btrfs_fsid_twice_is_refused():
    with pytest.raises(FactProcessError, match="btrfs fsid"):
        probe(with_section("btrfs", [f"{FSID}|btrfs-1|4096|vdb", f"{FSID}|btrfs-2|8192|vda1"]))


# -- @@queue: nr_hw_queues --------------------------------------------------------------------------


def test_queue_lines_of_other_field_counts_are_refused_and_an_old_six_field_line_is_none():
    with pytest.raises(FactProcessError, match="bad queue line"):
        probe(with_hw_queues("1|2"))
    with pytest.raises(FactProcessError, match="bad queue line"):
        probe(with_hw_queues("1\u2028|2"))  # U+2028 is not a line break in the probe's output
    six = [line.rsplit("|", 1)[0] if line.startswith("vda|") else line for line in BASE]
    assert probe(six).disk("vda").nr_hw_queues is None
    assert probe(with_hw_queues("4")).disk("vda").nr_hw_queues == 4


@pytest.mark.parametrize("value", ["many", "-1", "+3", "1_000", "\u0663", " 4", "1e3"])
def test_a_hw_queue_count_that_is_not_a_decimal_number_is_refused_naming_the_field(value):
    with pytest.raises(FactProcessError, match="nr_hw_queues"):
        probe(with_hw_queues(value))


def test_a_huge_hw_queue_count_is_refused_naming_the_field():
    with pytest.raises(FactProcessError, match="nr_hw_queues of vda: expected a count"):
        probe(with_hw_queues("9" * 30))


# -- @@nix-settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["max-jobs = 4", "max jobs", "Max-Jobs", "max_jobs", "-max-jobs", "a=b", "max\u2028jobs", "jobs\u00e9"]
)
def test_nix_setting_names_of_other_characters_are_refused(name):
    with pytest.raises(FactProcessError, match="nix setting name"):
        probe(with_section("nix-settings", ["cores", name]))


def test_nix_setting_names_are_only_names_and_blank_lines_are_skipped():
    facts = probe(with_section("nix-settings", ["max-jobs", "", "  cores  ", "max-jobs"]))
    assert facts.nix.setting_names == ["cores", "max-jobs"]


# -- @@podman: parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, field",
    [
        ('set graphroot /x" driver="vfs', "storage graphroot"),
        ("set graphroot /x]\n[storage.options]", "storage graphroot"),
        ("set graphroot /x]", "storage graphroot"),
        ("set graphroot /x # comment", "storage graphroot"),
        ("set graphroot /x#y", "storage graphroot"),
        ("set graphroot /x'y", "storage graphroot"),
        ("set graphroot /x\\y", "storage graphroot"),
        ("set graphroot /x\u2028driver = 1", "storage graphroot"),
        ("set graphroot var/lib/containers", "storage graphroot"),
        ("set graphroot /$(reboot)", "storage graphroot"),
        ('set runroot /run"', "storage runroot"),
        ('set driver "vfs"', "storage driver"),
        ("set driver vfs'", "storage driver"),
        ("set driver btrfs;reboot", "storage driver"),
        ("set driver Overlay", "storage driver"),
        ("set driver vfs\u202e", "storage driver"),
        ("fstype ext4 x", "graphroot fstype"),
        ("fstype ext4;reboot", "graphroot fstype"),
        ("store ../../x-images 1", "podman store"),
        ("store overlay-images/../../etc 1", "podman store"),
        ("store overlay-images -1", "podman store"),
        ("store overlay-images 1 2", "podman store"),
        ("conf /tmp/evil.conf", "storage.conf path"),
        ("conf /etc/containers/storage.conf\u2028/etc/passwd", "storage.conf path"),
        ("version podman version 4.3.1\x1b[2J", "podman.version"),
    ],
)
def test_podman_lines_that_are_not_what_they_claim_fail_the_host_naming_the_field(line, field):
    lines = ["version podman version 4.3.1", *line.split("\n")]
    with pytest.raises(FactProcessError, match=field):
        probe(with_section("podman", lines))


def test_a_huge_store_count_is_a_number_and_the_refusal_is_one_line():
    facts = probe(with_section("podman", [*PODMAN_ON_BTRFS, f"store overlay-images {'9' * 40}"]))
    assert [(s.driver, s.images) for s in facts.podman.stores] == [("overlay", int("9" * 40))]
    with pytest.raises(PlanError) as err:
        plan_host("h", facts, settings())
    assert "\n" not in str(err.value) and "9" * 40 in str(err.value)


def test_a_parsed_graphroot_lands_in_storage_conf_as_one_toml_string():
    # the host's file has no graphroot: the probe's value is written through render.toml_string
    graphroot = "/srv/../srv/c+@.d/"
    text, _ = storage_conf_for("[storage]\n", [*PODMAN_ON_BTRFS, f"set graphroot {graphroot}", "set runroot /run/r-1"])
    assert tomllib.loads(text) == {"storage": {"driver": "btrfs", "runroot": "/run/r-1", "graphroot": graphroot}}


def test_a_long_graphroot_with_one_bad_character_is_refused_quickly():
    code = (
        "import json, sys\n"
        "from pyinfra.api.exceptions import FactProcessError\n"
        "from fleetforge.facts.probe import HostProbe\n"
        f"out = json.load(open({str(FIXTURES / (FIXTURE + '.json'))!r}))['output']\n"
        "i = out.index('@@podman')\n"
        "out.insert(i + 1, 'set graphroot /' + 'a' * 64 + '!')\n"
        "try:\n"
        "    HostProbe().process(out)\n"
        "except FactProcessError as exc:\n"
        "    print('refused:', exc)\n"
    )
    try:
        done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:
        pytest.fail("parsing one 66-character graphroot did not finish in 5 s")
    assert "refused: HostProbe: storage graphroot" in done.stdout, done.stderr


@pytest.mark.parametrize("line", ["fstype ", "fstype fuse.mergerfs"])
def test_an_empty_or_fuse_fstype_does_not_fail_the_whole_probe(line):
    facts = probe(with_section("podman", ["version podman version 4.3.1", line]))
    assert facts.podman.graphroot_fstype in (None, "fuse.mergerfs")


# -- storage.conf: the host's own file, rewritten --------------------------------------------------


@pytest.mark.parametrize(
    "current",
    [
        '[storage]\ndriver="overlay"\n',
        "[storage]\n driver = 'overlay'\n",
        '[storage]\n\tdriver\t=\t"overlay" # site\nrunroot = "/run/r"\n',
        '[storage] # site comment\n  driver = "overlay"\ngraphroot = "/srv/c"\n',
        '# top\r\n[storage]\r\ndriver = "overlay"\r\n\r\n[storage.options]\r\nmountprogram = "/usr/bin/x"\r\n',
        '[storage.options.overlay]\nmountopt = "nodev"\n[storage]\ndriver = "vfs"\n',
        '[storage]\nnote = "/run/a # not a comment"\ngraphroot = "/g"\n',
        '[storage.options]\nadditionalimagestores = [\n  "/ro",\n]\n',
        "",
    ],
)
def test_storage_conf_rewrite_keeps_the_hosts_keys_and_has_exactly_one_driver(current):
    text, _ = storage_conf_for(current)
    assert tomllib.loads(text) == expected_conf(current)
    assert sum(line.split("=")[0].strip() == "driver" for line in text.splitlines()) == 1


@pytest.mark.parametrize(
    "current",
    [
        pytest.param('[storage]\n"driver" = "overlay"\n', id="quoted-driver-key"),
        pytest.param("[storage]\n'driver' = \"overlay\"\n", id="literal-driver-key"),
        pytest.param('[storage]\n"graphroot" = "/srv/c"\n', id="quoted-graphroot-key"),
        pytest.param('[ storage ]\ndriver = "overlay"\n', id="spaced-table-header"),
        pytest.param('["storage"]\ndriver = "overlay"\n', id="quoted-table-header"),
        pytest.param("[storage]\ndriver.x = 1\n", id="dotted-driver-key"),
        pytest.param('[storage]\nfoo = [\n  [1, 2],\n]\nrunroot = "/run/x"\n', id="nested-array-line-starts-with-["),
        pytest.param('[storage]\nrunroot = """\n[x]\n"""\n', id="multiline-string-line-starts-with-["),
        pytest.param('[storage]\nrunroot = """\ndriver = "x"\n"""\n', id="multiline-string-holds-driver-line"),
        pytest.param('[storage]\ndriver = "overlay"\n# x\u2028graphroot = "/evil"\n', id="u2028-in-comment"),
        pytest.param('[storage]\nrunroot = "/run/a\x85driver = 1"\n', id="nel-in-string"),
        pytest.param("foo = 1\n[storage.options]\nx = 1\n", id="root-key-moves-into-storage"),
    ],
)
def test_storage_conf_rewrite_of_other_valid_toml_keeps_its_meaning(current):
    text = rewrite_or_refusal(current)
    if text is not None:  # a fix may also refuse such a file, naming it (then nothing is written)
        assert tomllib.loads(text) == expected_conf(current)


def test_the_planned_graphroot_is_the_one_storage_conf_sets():
    # what the probe prints for this file: no 'set graphroot' (single quotes), fstype of the default path
    current = "[storage]\ngraphroot = '/srv/c'\n"
    text = rewrite_or_refusal(current)
    if text is not None:
        _, plan = storage_conf_for(current)
        assert tomllib.loads(text)["storage"]["graphroot"] == plan.podman.graphroot == "/srv/c"


def test_a_storage_conf_that_is_not_utf8_or_not_base64_fails_the_host():
    out = with_section("podman", PODMAN_ON_BTRFS)
    i = out.index(f"absent {STORAGE_CONF}")
    bad = out[:i] + [f"file {STORAGE_CONF} {'0' * 64}", base64.b64encode(b"\xff\xfe").decode(), "@@end-file"]
    with pytest.raises(FactProcessError, match="bad content"):
        probe(bad + out[i + 1 :])
    with pytest.raises(FactProcessError, match="bad content"):
        probe(out[:i] + [f"file {STORAGE_CONF} {'0' * 64}", "not base64!", "@@end-file"] + out[i + 1 :])


# -- restore(): snapshot values written back -------------------------------------------------------


@pytest.mark.parametrize(
    "item, value",
    [
        ("btrfs ../../x read_ahead_kb", "4096"),
        (f"btrfs {FSID}/../../../etc read_ahead_kb", "4096"),
        (f"btrfs {FSID} x read_ahead_kb", "4096"),
        (f"btrfs {FSID.upper()} read_ahead_kb", "4096"),
        (f"btrfs {FSID}\n read_ahead_kb", "4096"),
        (f"btrfs {FSID} read_ahead_kb", "1; rm -rf /"),
        (f"btrfs {FSID} read_ahead_kb", "$(reboot)"),
        (f"btrfs {FSID} read_ahead_kb", "4096\n"),
        (f"btrfs {FSID} read_ahead_kb", "-1"),
        (f"btrfs {FSID} read_ahead_kb", ""),
        (f"btrfs {FSID} read_ahead_kb", None),
    ],
)
def test_restore_reports_a_snapshot_item_or_value_it_cannot_write_safely(item, value):
    cmds, problems = BTRFS.restore(snap(checks={item: value}), snap(checks={item: "8192"}), [])
    assert cmds == []
    assert problems == [f"{item!r} = {value!r} is not restored: not a btrfs fsid and a number"]


def test_restore_writes_a_recorded_number_back_as_one_redirect():
    item = f"btrfs {FSID} read_ahead_kb"
    cmds, problems = BTRFS.restore(snap(checks={item: "4096"}), snap(checks={item: "8192"}), [])
    assert problems == []
    assert [shlex.split(c) for c in cmds] == [["echo", "4096", ">", f"/sys/fs/btrfs/{FSID}/bdi/read_ahead_kb"]]
    assert BTRFS.restore(snap(checks={item: "4096"}), snap(checks={item: "4096"}), []) == ([], [])


@pytest.mark.parametrize("value", ["\u0664\u0660\u0669\u0666", "\u00b2", "\uff14\uff10\uff19\uff16"])
def test_restore_reports_non_ascii_digits(value):
    item = f"btrfs {FSID} read_ahead_kb"
    cmds, problems = BTRFS.restore(snap(checks={item: value}), snap(checks={item: "8192"}), [])
    assert cmds == [] and len(problems) == 1


# -- verify: podman:driver ------------------------------------------------------------------------


def test_verify_reads_the_podman_driver_from_the_last_line_and_reports_hostile_text_as_repr(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    podman = bin_dir / "podman"  # a host's podman printing a warning, then a hostile "driver"
    podman.write_text("#!/bin/sh\necho 'WARN[0000] something' >&2\nprintf 'btrfs\\033[2K\\rOK\\n'\n")
    podman.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}

    class Host:  # runs verify's command here, with the fake podman first on PATH
        def run(self, command):
            done = subprocess.run(command, shell=True, capture_output=True, timeout=30, env=env)
            return SimpleNamespace(rc=done.returncode, stdout=done.stdout.decode(), stderr=done.stderr.decode())

    nonce = "0123456789abcdef"
    live = parse_live(Host().run(shlex.join(["sh", "-c", READ_FILES, "v", nonce, "podman:driver"])).stdout, nonce)
    # one value, from the last line only (the warning went to stderr, merged, then dropped by tail)
    assert list(live) == ["podman:driver"] and live["podman:driver"].startswith("btrfs\x1b[2K")
    assert "WARN" not in live["podman:driver"]
    plan = plan_host("h", probe(with_section("podman", PODMAN_ON_BTRFS)), settings())
    (result,) = run_checks("h", Host(), list(PODMAN.checks(plan, False)))
    assert result.severity == "fail" and result.actual.startswith("btrfs\x1b[2K")
    line = result.line()
    assert "\x1b" not in line and "\r" not in line and "\n" not in line


def test_fixture_is_json_with_output_lines():
    # guards the helpers: the capture they edit is what HostProbe printed, one string per line
    data = json.loads((FIXTURES / f"{FIXTURE}.json").read_text())
    assert all(isinstance(line, str) and "\n" not in line for line in data["output"])
