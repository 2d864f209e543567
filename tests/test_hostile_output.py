"""Hostile host output never changes the structure of what fleetforge writes or runs.

Captured real probe outputs (``tests/facts/probe.HostProbe``) are edited the way a compromised
host or hypervisor could print them, then fed through the real path: ``HostProbe().process``,
the planner and the renderers, or pyinfra with the ``@fake`` connector replaying them. What is
checked: the probe refuses what cannot be written safely (``FactProcessError`` naming the field
and the value's ``repr``); udev rules keep their lines and keys; disko.nix and the NixOS modules
parse (``nix-instantiate --parse``) to exactly the clean file's expression; rollback commands
split (``shlex``) into the expected argv.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pyinfra.api.exceptions import FactProcessError

from fleetforge.components import desired_files
from fleetforge.facts.layout import DiskStateFact
from fleetforge.facts.probe import HostProbe
from fleetforge.hoststate import parse_state, rollback_commands
from fleetforge.layout.disko import render_disko
from fleetforge.layout.plan import layout_for
from fleetforge.nixos.modules import render_modules
from fleetforge.paths import MANAGED_FILES, SYSCTL_CONF, UDEV_RULES
from fleetforge.planner import plan_host
from fleetforge.render import render
from fleetforge.settings import HostSettings
from tests.components.helpers import snap
from tests.conftest import load_fixture

REPO = Path(__file__).resolve().parent.parent
NIX_INSTANTIATE = shutil.which("nix-instantiate")
# Accepted by the probe (no control characters) but hostile in every syntax it could reach.
NASTY = 'ff" */ ${builtins.abort "x"} \'\' # \\ \u2028 \u202e`$(touch MARKER)`'


def output(name: str = "qemu-nvme-efi") -> list[str]:
    return list(load_fixture(name)["output"])


def edit_lsblk(lines: list[str], disk: str, **fields) -> list[str]:
    """``lines`` with the lsblk JSON entry of ``disk`` updated by ``fields`` (host output)."""
    start, end = lines.index("@@lsblk") + 1, lines.index("@@queue")
    tree = json.loads("\n".join(lines[start:end]))
    entry = next(dev for dev in tree["blockdevices"] if dev["name"] == disk)
    entry.update(fields)
    return lines[:start] + json.dumps(tree, indent=3).splitlines() + lines[end:]


def edit_lines(lines: list[str], old: str, new: str) -> list[str]:
    assert any(old in line for line in lines), old
    return [line.replace(old, new) for line in lines]


def refused(lines: list[str]) -> str:
    with pytest.raises(FactProcessError) as info:
        HostProbe().process(lines)
    return str(info.value)


def nix(*args: str) -> subprocess.CompletedProcess:
    if NIX_INSTANTIATE is None:
        pytest.fail("nix-instantiate is missing: apt-get install nix-bin", pytrace=False)
    return subprocess.run([NIX_INSTANTIATE, *args], capture_output=True, text=True, timeout=60)


def parsed(path: Path) -> str:
    out = nix("--parse", str(path))
    assert out.returncode == 0, out.stderr
    return out.stdout


# ------------------------------------------------------------------ the probe refuses


def after(lines: list[str], section: str, line: str, replace: bool = False) -> list[str]:
    """``lines`` with ``line`` put first in ``section`` (replacing its first line if asked)."""
    i = lines.index(section) + 1
    return lines[:i] + [line] + lines[i + replace :]


@pytest.mark.parametrize(
    ("edit", "field", "value"),
    [
        (lambda o: edit_lsblk(o, "vda", name='vda", RUN+="/bin/sh'), "lsblk name", 'vda", RUN+="/bin/sh'),
        (lambda o: edit_lsblk(o, "vda", name="vda\nRUN"), "lsblk name", "vda\nRUN"),
        (lambda o: edit_lsblk(o, "vda", name="vd*"), "lsblk name", "vd*"),
        (lambda o: edit_lsblk(o, "vda", name="vda/../sda"), "lsblk name", "vda/../sda"),
        (lambda o: edit_lsblk(o, "vda", path="/dev/vda\nx"), "lsblk path of vda", "/dev/vda\nx"),
        (lambda o: edit_lsblk(o, "vda", serial="ff-root\nin (import ./evil.nix)"), "disks[0].serial",
         "ff-root\nin (import ./evil.nix)"),
        (lambda o: edit_lsblk(o, "nvme0n1", model="QEMU\rNVMe"), "disks[1].model", "QEMU\rNVMe"),
        (lambda o: edit_lines(o, "|[mq-deadline] none|1|", '|[mq-deadline] none"|1|'), "queue/scheduler of vda",
         'none"'),
        (lambda o: after(o, "@@virt", 'kvm"', replace=True), "virtualization", 'kvm"'),
        (lambda o: edit_lines(o, 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"', 'PRETTY_NAME="Debian\x1b[2J"'),
         "os.pretty_name", "Debian\x1b[2J"),
        (lambda o: after(o, "@@zram", "zram0/../x|268435456|[lz4] zstd"), "zram device", "zram0/../x"),
        (lambda o: after(o, "@@sysctl", "-pvm.x=1"), "sysctl key", "-pvm.x"),
        (lambda o: after(o, "@@tools", "pm rm -rf /"), "package manager", "rm -rf /"),
    ],
    ids=["quote-in-name", "newline-in-name", "glob-in-name", "slash-in-name", "path", "serial-newline",
         "model-cr", "scheduler-quote", "virt", "pretty-name-escape", "zram-name", "sysctl-key-option",
         "package-manager"],
)  # fmt: skip
def test_the_probe_refuses_host_output_that_cannot_be_written_safely(edit, field, value):
    message = refused(edit(output()))
    assert message.startswith("HostProbe: ") and field in message and repr(value) in message, message


def fake_inventory(path: Path, hosts: dict[str, list[str]]) -> Path:
    """A pyinfra inventory of ``@fake`` hosts, each replaying its probe output."""
    entries = [
        (name, {"fake_delay": 0, "fake_responses": {"fleetforge-probe": lines}}) for name, lines in hosts.items()
    ]
    path.write_text(f"fleet = {entries!r}\n")
    return path


def test_pyinfra_fails_the_host_whose_disk_name_would_add_a_udev_key_and_tunes_the_other(tmp_path):
    name = 'vda", RUN+="/bin/touch MARKER'
    inventory = fake_inventory(
        tmp_path / "inventory.py", {"@fake/good": output(), "@fake/bad": edit_lsblk(output(), "vda", name=name)}
    )
    out = subprocess.run(
        ["pyinfra", "-y", "--dry", "--fail-percent", "100", str(inventory), str(REPO / "deploys/vps.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert "[@fake/good] plan: vda mq-deadline/ra 4096" in text
    assert "HostProbe: lsblk name: expected a kernel block device name" in text and repr(name) in text
    assert not (tmp_path / "MARKER").exists()


def test_by_id_links_of_other_characters_are_not_used():
    lines = edit_lines(output(), "/dev/disk/by-id/virtio-ff-root|", '/dev/disk/by-id/virtio-ff"root|')
    vda = HostProbe().process(lines).disk("vda")
    assert vda.by_id_path is None and vda.path == "/dev/vda"  # the layout then names /dev/vda


def disk_state_output() -> list[str]:
    return list(
        json.loads((REPO / "tests/facts/layout.DiskStateFact/vdb-laid-out-hybrid-swap.json").read_text())["output"]
    )


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('"node": "/dev/vdb1"', '"node": "/dev/vdb1; reboot"', "sfdisk node"),
        ("@@device\n/dev/vdb", "@@device\n/dev/vdb x", "device"),
        ('"serial": "ff-data"', '"serial": "ff-data\\nx"', "serial"),
        ('"name": "disk-main-root"', '"name": "disk-main-root\\u001b[2J"', "partitions[2].label"),
        ("top level 5 path @swap", "top level 5 path @swap\nID 999 gen 1 top level 5 path @forged\n.bak", "btrfs"),
    ],
    ids=["node", "device", "serial-newline", "label-escape", "subvolume-name-with-newline"],
)
def test_disk_state_refuses_host_output_that_cannot_be_used_safely(old, new, field):
    text = "\n".join(disk_state_output())
    assert old in text
    with pytest.raises(FactProcessError, match=re.escape(field)):
        DiskStateFact().process(text.replace(old, new).split("\n"))


# ------------------------------------------------------------------ udev rules

_UDEV_PAIR = re.compile(r'\s*([A-Z_]+(?:\{[^}"]*\})?)\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*(?:,|$)')
RULE_KEYS = ["ACTION", "SUBSYSTEM", "ENV{DEVTYPE}", "KERNEL", "ATTR{queue/scheduler}", "ATTR{queue/read_ahead_kb}"]


def udev_rules(text: str) -> list[list[tuple[str, str, str]]]:
    """Rules as ``[(key, operator, value), ...]`` per udev(7): ``#`` lines are comments, a rule is
    comma-separated ``KEY op "value"`` pairs on one line; anything else fails the test."""
    rules = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        pos, pairs = 0, []
        while pos < len(line):
            match = _UDEV_PAIR.match(line, pos)
            assert match and match.end() > pos, f"not udev rule syntax: {line[pos:]!r}"
            pairs.append(match.groups())
            pos = match.end()
        rules.append(pairs)
    return rules


def test_udev_rules_keep_their_lines_and_keys_whatever_the_disks_report():
    lines = edit_lsblk(output(), "vda", serial=NASTY, model=NASTY)
    facts = HostProbe().process(lines)
    plan = plan_host("h", facts, HostSettings())
    text = desired_files(plan, facts)[UDEV_RULES]
    assert len(text.splitlines()) == 2 + 2 * len(facts.disks)
    rules = udev_rules(text)
    assert [[key for key, _, _ in rule] for rule in rules] == [RULE_KEYS] * 2
    assert [rule[3][2] for rule in rules] == ["vda", "nvme0n1"]


@pytest.mark.parametrize("name", ['vda", RUN+="/bin/sh -c reboot', "vda\nRUN", "vd*", "vda|sd*"])
def test_the_udev_renderer_refuses_a_name_the_probe_would_have_refused(name):
    facts = HostProbe().process(output())
    plan = plan_host("h", facts, HostSettings())
    bad = plan.model_copy(update={"disks": [plan.disks[0].model_copy(update={"name": name})]})
    with pytest.raises(ValueError, match="udev rules: refusing value"):
        render("udev-io.rules.j2", disks=bad.disks)


# ------------------------------------------------------------------ disko.nix and NixOS modules


def test_disko_nix_from_a_hostile_serial_parses_to_the_clean_files_expression(tmp_path):
    clean = layout_for("h", HostProbe().process(output()), None)
    hostile = layout_for("h", HostProbe().process(edit_lsblk(output(), "vda", serial=NASTY, model=NASTY)), None)
    (tmp_path / "clean.nix").write_text(render_disko(clean))
    (tmp_path / "hostile.nix").write_text(render_disko(hostile))
    assert NASTY.split("\u2028")[0].replace("\\", "\\\\") in (tmp_path / "hostile.nix").read_text()  # in a comment
    assert parsed(tmp_path / "hostile.nix") == parsed(tmp_path / "clean.nix")


@pytest.mark.parametrize("text", ['x\nin builtins.abort "pwned"', 'x\rin builtins.abort "pwned"', "*/ x\n/*"])
def test_disko_comments_stay_comments_even_for_text_the_probe_never_lets_through(tmp_path, text):
    clean = layout_for("h", HostProbe().process(output()), None)
    hostile = clean.model_copy(update={"serial": text, "model": text, "host": text, "boot_reason": text})
    (tmp_path / "clean.nix").write_text(render_disko(clean))
    (tmp_path / "hostile.nix").write_text(render_disko(hostile))
    assert parsed(tmp_path / "hostile.nix") == parsed(tmp_path / "clean.nix")
    evaluated = nix("--eval", "--strict", "--json", str(tmp_path / "hostile.nix"))
    assert evaluated.returncode == 0 and json.loads(evaluated.stdout) == clean.disko_config(), evaluated.stderr


def test_nixos_modules_with_a_hostile_host_name_parse_to_the_clean_expression(tmp_path):
    facts = HostProbe().process(edit_lsblk(output(), "vda", serial=NASTY, model=NASTY))
    plan = plan_host("h", facts, HostSettings())
    for label, host in (("clean", "h"), ("hostile", 'h\nin builtins.abort "pwned" #')):
        for path, content in render_modules(plan.model_copy(update={"host": host}), facts).items():
            target = tmp_path / label / Path(path).name
            target.parent.mkdir(exist_ok=True)
            target.write_text(content)
    for module in (tmp_path / "clean").iterdir():
        hostile = parsed(tmp_path / "hostile" / module.name).replace(f"{tmp_path}/hostile/", f"{tmp_path}/clean/")
        assert hostile == parsed(module), module.name  # default.nix imports ./sysctl.nix...: paths differ


def test_fleetforge_disko_prints_a_parseable_file_for_a_hostile_host(tmp_path):
    """End to end: pyinfra's @fake connector replays the hostile probe output to the CLI."""
    hostile = edit_lsblk(output(), "vda", serial=NASTY)
    bad_name = edit_lsblk(output(), "vda", serial="ff\nin import ./evil.nix")
    inventory = fake_inventory(tmp_path / "inventory.py", {"@fake/hostile": hostile, "@fake/newline": bad_name})
    out = subprocess.run(
        [sys.executable, "-m", "fleetforge.cli", "disko", str(inventory)], cwd=tmp_path,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 1  # the host whose serial holds a newline fails alone
    assert "host @fake/newline" in out.stderr and "disks[0].serial" in out.stderr
    assert repr("ff\nin import ./evil.nix") in out.stderr
    (tmp_path / "printed.nix").write_text(out.stdout)
    (tmp_path / "clean.nix").write_text(render_disko(layout_for("@fake/hostile", HostProbe().process(output()), None)))
    assert parsed(tmp_path / "printed.nix") == parsed(tmp_path / "clean.nix")
    assert not (tmp_path / "MARKER").exists()


# ------------------------------------------------------------------ rollback commands


def test_rollback_commands_keep_every_host_value_one_word():
    pre = snap(
        sysctl={"vm.swappiness": "1; touch MARKER", "-p": "x", "kernel.x": "a\nb"},
        disks={"vda": {"scheduler": "none$(touch MARKER)", "read_ahead_kb": 128},
               "vdb; touch MARKER": {"scheduler": "none", "read_ahead_kb": 1},
               "vdc": {"scheduler": "mq-deadline", "read_ahead_kb": 256}},
    )  # fmt: skip
    post = snap(sysctl={"vm.swappiness": "60"}, disks={})
    cmds, problems = rollback_commands(pre, post)
    # in the components' order (fleetforge.components.COMPONENTS): disks, then sysctls
    assert [shlex.split(c) for c in cmds] == [
        ["echo", "128", ">", "/sys/block/vda/queue/read_ahead_kb"],
        ["echo", "mq-deadline", ">", "/sys/block/vdc/queue/scheduler"],
        ["echo", "256", ">", "/sys/block/vdc/queue/read_ahead_kb"],
        ["sysctl", "-q", "-w", "vm.swappiness=1; touch MARKER"],
    ]
    assert problems == [
        "disk vda: scheduler 'none$(touch MARKER)' is not restored: not a scheduler name",
        "disk 'vdb; touch MARKER' is not restored: not a kernel block device name",
        "sysctl '-p' = 'x' is not restored: not a sysctl key and value",
        "sysctl 'kernel.x' = 'a\\nb' is not restored: not a sysctl key and value",
    ]


def test_rollback_moves_only_fleetforges_own_backups():
    bak = f"{SYSCTL_CONF}.fleetforge-20260101T000000Z.bak"
    state = f"F {'a' * 64} {SYSCTL_CONF}\nB {bak}\nB {SYSCTL_CONF}.fleetforge-mine; x.bak\nD /etc/sysctl.d\n"
    files, backups, dirs, _, _ = parse_state(state)
    assert backups == [bak] and dirs == ["/etc/sysctl.d"] and files[SYSCTL_CONF] == "a" * 64
    pre = snap(files={**dict.fromkeys(MANAGED_FILES), SYSCTL_CONF: "b" * 64})
    cmds, _ = rollback_commands(pre, snap(files=files, backups=backups))
    assert shlex.split(cmds[0]) == ["mv", "-f", bak, SYSCTL_CONF]


@pytest.mark.parametrize(
    "line",
    [f"F {'a' * 64} /etc/passwd", "F nothex /etc/sysctl.d/60-fleetforge.conf", "D /etc", "X y", "Z extra",
     "G system-1-link\x1b[2J"],
)  # fmt: skip
def test_state_lines_that_are_not_fleetforges_are_refused(line):
    with pytest.raises(ValueError, match="unexpected line"):
        parse_state(line + "\n")


def test_nix_attribute_names_are_quoted_unless_plain_identifiers(tmp_path):
    from fleetforge.nixos.modules import to_nix

    value = {"max-jobs": 1, "a\n": 2, "if": 3, "b = 1; c": 4, "${x}": 5}
    (tmp_path / "a.nix").write_text(to_nix(value))
    assert to_nix(value).splitlines()[1] == "  max-jobs = 1;"
    evaluated = nix("--eval", "--strict", "--json", str(tmp_path / "a.nix"))
    assert evaluated.returncode == 0 and json.loads(evaluated.stdout) == value, evaluated.stderr
