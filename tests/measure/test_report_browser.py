"""The report in a real browser: headless Chromium loads it from a ``file://`` URL, with no
console message, and draws it; and the checks themselves fire on a page that is broken.

Needs the Debian package ``chromium`` (the tests fail, not skip, without it). The screenshot is
also copied to ``/tmp/fleetforge-report.png`` to look at.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fleetforge.measure.report import CSP, write_report
from tests.measure.browser import BrowserRun, console_problems, read_png, run_chromium
from tests.measure.test_report import HOSTILE_HOST, parse, sample_hosts

SIZE = (1280, 2000)
SCREENSHOT_COPY = Path("/tmp/fleetforge-report.png")
# A blank page inflates to 1-3 distinct rows (every row alike; the first may be filtered
# differently), one line of text to a few dozen; the report's text, dots and grid lines make
# most of its 2000 rows differ. A quarter is far from both, so a page that failed to draw
# (blank, or only a heading) fails this, while the report passes with room to spare.
MIN_DISTINCT_ROWS = SIZE[1] // 4


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> tuple[BrowserRun, Path]:
    """The sample report (2 hosts, 3 disks, swap measured on one host) loaded once: DOM, stderr,
    screenshot."""
    work = tmp_path_factory.mktemp("report-browser")
    page = write_report(sample_hosts(), work / "report.html")
    shot = work / "report.png"
    run = run_chromium(page.as_uri(), work, screenshot=shot, size=SIZE)
    if shot.exists():
        shutil.copyfile(shot, SCREENSHOT_COPY)
    return run, shot


def test_the_report_loads_with_every_chart_and_host(loaded):
    run, _ = loaded
    dom = parse(run.dom)
    charts = dom.find_all("figure", "chart")
    assert len(charts) == 3
    assert [h.text() for h in dom.find_all("h2")] == ["vm-blk-1", HOSTILE_HOST]
    assert {c.attrs["data-host"] for c in charts} == {"vm-blk-1", HOSTILE_HOST}
    swaps = dom.find_all("figure", "swap-chart")  # not a disk chart: the count above stays per disk
    assert [s.attrs["data-host"] for s in swaps] == ["vm-blk-1"] and len(swaps[0].find_all("circle")) == 10
    assert not dom.find_all("script")  # the hostile host name stayed text in the live DOM


def test_the_report_logs_nothing_to_the_console(loaded):
    run, _ = loaded
    assert console_problems(run.stderr) == []


def test_the_screenshot_is_a_drawn_page_of_the_window_size(loaded):
    _, shot = loaded
    png = read_png(shot)
    assert (png.width, png.height) == SIZE
    assert png.distinct_rows >= MIN_DISTINCT_ROWS, f"only {png.distinct_rows} distinct rows: a blank page?"


def test_the_checks_catch_a_console_error_a_blocked_script_and_a_blank_page(tmp_path):
    pages = {
        "error": '<!DOCTYPE html><p>x</p><script>console.error("boom")</script>',
        "blocked": f'<!DOCTYPE html><meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<p>x</p><script>console.log("ran")</script>',
        "blank": "<!DOCTYPE html><title>blank</title>",
    }
    runs = {}
    for name, text in pages.items():
        (tmp_path / f"{name}.html").write_text(text)
        shot = tmp_path / f"{name}.png" if name == "blank" else None
        runs[name] = run_chromium((tmp_path / f"{name}.html").as_uri(), tmp_path, screenshot=shot, size=SIZE)
    error = console_problems(runs["error"].stderr)
    assert len(error) == 1 and '"boom"' in error[0]
    blocked = console_problems(runs["blocked"].stderr)
    assert blocked and "Content Security Policy" in blocked[0] and '"ran"' not in runs["blocked"].stderr
    assert console_problems(runs["blank"].stderr) == []  # a quiet page passes: the check is not always on
    blank = read_png(tmp_path / "blank.png")
    assert (blank.width, blank.height) == SIZE and blank.distinct_rows < MIN_DISTINCT_ROWS
