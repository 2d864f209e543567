"""The fleet report in a real browser: headless Chromium loads it from a ``file://`` URL with no
console message, shows every host, and draws the rollout timeline in the phase colours.

Needs the Debian package ``chromium`` (the tests fail, not skip, without it). The screenshot is
also copied to ``/tmp/fleetforge-fleet-report.png`` to look at.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from fleetforge.report.fleet import Entry, fleet_view
from fleetforge.report.html import render_fleet, write_fleet
from fleetforge.report.svg import FAILED, PHASE_COLOURS
from tests.measure.browser import BrowserRun, console_problems, read_png, run_chromium
from tests.measure.test_report import parse, sample_hosts
from tests.report.pixels import colour_counts, rgb
from tests.report.records import HOSTILE_HOST, INVENTORY, at, sample_runs

SIZE = (1280, 2600)  # tall enough for the four cards and the rollout below them
SCREENSHOT_COPY = Path("/tmp/fleetforge-fleet-report.png")
# a legend swatch is 22 x 14 px; one timeline bar of a minute is about 60 x 14 px, and the
# sample rollout has 2-4 bars of each phase: well above twice a swatch
MIN_PHASE_PIXELS = 2 * 22 * 14


def _load(work: Path, runs, name: str) -> tuple[BrowserRun, Counter]:
    views = fleet_view([Entry(h, ("ovh",)) for h in INVENTORY], runs)
    measured = {"vm-blk-1": sample_hosts()[0]}
    page = render_fleet(views, runs, inventory="/srv/fleet/inventory.py", measurements=measured, generated=at(0, 3))
    path = write_fleet(page, work / f"{name}.html")
    shot = work / f"{name}.png"
    run = run_chromium(path.as_uri(), work, screenshot=shot, size=SIZE)
    png = read_png(shot)  # well-formed, and the window's size
    assert (png.width, png.height) == SIZE
    if name == "fleet":
        shutil.copyfile(shot, SCREENSHOT_COPY)
    return run, colour_counts(shot)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> dict[str, tuple[BrowserRun, Counter]]:
    """The sample fleet's page and the same inventory with an empty store, each loaded once."""
    work = tmp_path_factory.mktemp("fleet-browser")
    return {"fleet": _load(work, sample_runs(), "fleet"), "empty": _load(work, [], "empty")}


def test_the_page_shows_every_host_and_no_script_ran(loaded):
    run, _ = loaded["fleet"]
    dom = parse(run.dom)
    assert [c.attrs["data-host"] for c in dom.find_all("article", "card")] == [*INVENTORY, HOSTILE_HOST]
    assert [h.text() for h in dom.find_all("h3")] == [*INVENTORY, HOSTILE_HOST]
    assert len(dom.find_all("figure", "rollout")) == 1 and len(dom.find_all("figure", "chart")) == 2
    assert not dom.find_all("script") and not dom.find_all("img")  # hostile strings stayed text
    empty = parse(loaded["empty"][0].dom)
    assert [c.attrs["data-host"] for c in empty.find_all("article", "card")] == list(INVENTORY)
    assert "no runs recorded yet" in empty.text()


def test_nothing_is_logged_to_the_console(loaded):
    assert console_problems(loaded["fleet"][0].stderr) == []
    assert console_problems(loaded["empty"][0].stderr) == []


def test_the_timeline_is_drawn_in_the_phase_colours(loaded):
    _, fleet = loaded["fleet"]
    _, empty = loaded["empty"]
    for name, colour in PHASE_COLOURS.items():
        drawn, legend_only = fleet[rgb(colour)], empty[rgb(colour)]
        assert drawn >= MIN_PHASE_PIXELS, f"{name} ({colour}): only {drawn} pixels"
        assert legend_only < drawn / 2, f"{name}: the page without rollouts has {legend_only} of {drawn} pixels"
    assert fleet[rgb(FAILED)] > empty[rgb(FAILED)] + 200  # the failed deploy's outline and badge, the fail mark
    assert len(fleet) > 200  # text antialiasing and charts: a drawn page, not a few flat colours
