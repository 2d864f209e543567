"""Text from a host is printed as text: rich markup or emoji codes in a host's os-release reach
``fleetforge plan`` and ``probe`` through the real fact parser (pyinfra ``@fake`` replaying a
captured probe) and print literally, and the other hosts' plans still print."""

import io
import subprocess
import sys
from pathlib import Path

from fleetforge.console import make_console
from tests.probe_edit import fake_inventory, fixture_output, with_os_release

REPO = Path(__file__).resolve().parent.parent
HOSTILE = "Debian [/oops] 12"


def inventory(tmp_path: Path) -> Path:
    good = fixture_output("qemu-virtio-blk-vda-bios")
    bad = with_os_release(with_os_release(good, "PRETTY_NAME", HOSTILE), "VERSION_ID", "12[bold]:fire:")
    return fake_inventory(tmp_path / "inventory.py", {"@fake/bad": (bad, {}), "@fake/good": (good, {})})


def cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fleetforge.cli", *argv], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_plan_prints_hostile_os_release_literally_and_every_host(tmp_path):
    out = cli("plan", str(inventory(tmp_path)))
    assert out.returncode == 0, out.stderr
    assert "MarkupError" not in out.stderr and "Traceback" not in out.stderr
    assert f"{HOSTILE} (kernel " in out.stdout
    assert "@fake/bad: plan" in out.stdout and "@fake/good: plan" in out.stdout
    assert out.stdout.count("vda scheduler") == 2


def test_probe_table_prints_hostile_version_literally(tmp_path):
    out = cli("probe", str(inventory(tmp_path)))
    assert out.returncode == 0, out.stderr
    assert "12[bold]:fire:" in out.stdout and "\N{FIRE}" not in out.stdout
    assert "probe: 2/2 hosts answered" in out.stdout


def test_console_prints_markup_and_emoji_codes_as_text():
    buffer = io.StringIO()
    console = make_console(file=buffer, width=80)
    console.print("[/oops] [red]x[/red] :fire: http://example.org 12")
    assert buffer.getvalue() == "[/oops] [red]x[/red] :fire: http://example.org 12\n"


def test_a_host_whose_plan_fails_does_not_hide_the_others(tmp_path):
    """A plan error on one host (its data does not fit what it reported) is that host's line;
    the others' plans still print; the exit code says bad input (3)."""
    good = fixture_output("qemu-virtio-blk-vda-bios")
    inventory = fake_inventory(
        tmp_path / "inventory.py", {"@fake/huge-zram": (good, {"zram_size": "100G"}), "@fake/good": (good, {})}
    )
    out = cli("plan", str(inventory))
    assert out.returncode == 3, out.stderr
    assert "@fake/good: plan" in out.stdout
    assert "@fake/huge-zram: host @fake/huge-zram: zram_size: expected at most 2x RAM" in out.stdout
