"""The fleet report from run records built here (``tests.report.records``), read back with the
stdlib HTML parser: every host, the drift marks at the right time, the rollout's bars per wave
and host, the plan's sources, the last deploy, and no record text that can become markup."""

from __future__ import annotations

import re

import pytest

from fleetforge.measure.report import CSP
from fleetforge.report.cards import planned_rows, source_kind
from fleetforge.report.fleet import Entry, fleet_view
from fleetforge.report.html import render_fleet
from fleetforge.report.svg import D_PAD, D_WIDTH, elapsed_axis, time_ticks, timeline, wave_label
from tests.measure.test_report import Node, parse
from tests.report.records import (
    DRIFT_AT,
    HOSTILE,
    HOSTILE_HOST,
    HOSTILE_USER,
    INVENTORY,
    ROLLOUT_AT,
    T0,
    at,
    sample_runs,
)


def render(runs, entries=INVENTORY) -> str:
    views = fleet_view([Entry(h, ("ovh",)) for h in entries], runs)
    return render_fleet(views, runs, inventory="/srv/fleet/inventory.py", generated=at(0, 3))


@pytest.fixture(scope="module")
def runs():
    return sample_runs()


@pytest.fixture(scope="module")
def page(runs) -> str:
    return render(runs)


@pytest.fixture(scope="module")
def dom(page) -> Node:
    return parse(page)


def card(dom: Node, host: str) -> Node:
    (found,) = [c for c in dom.find_all("article", "card") if c.attrs["data-host"] == host]
    return found


def test_every_inventory_host_then_each_host_known_from_records_only(dom):
    cards = dom.find_all("article", "card")
    assert [c.attrs["data-host"] for c in cards] == [*INVENTORY, HOSTILE_HOST]
    assert [c.find_all("h3")[0].text() for c in cards] == [*INVENTORY, HOSTILE_HOST]
    assert "records only" in card(dom, HOSTILE_HOST).text() and "records only" not in card(dom, "vps-1").text()


def test_hardware_comes_from_the_newest_record_that_has_it(dom):
    shown = {dd.attrs["data-key"]: dd.text() for dd in card(dom, "vps-2").find_all("dd") if "data-key" in dd.attrs}
    assert shown == {
        "vCPUs": "4",
        "RAM": "7.7 GiB",
        "disks": "sda 160 GiB virtio-scsi",
        "virtualization": "kvm",
        "firmware": "bios",
        "OS": "Debian GNU/Linux 12 (bookworm)",
        "kernel": "6.1.0-28-amd64",
    }


def _mark_x(mark: Node) -> float:
    """The centre x of a drift mark's shape (circle cx, the cross's path start + 5, ...)."""
    shape = mark.children[1]
    if shape.tag == "circle":
        return float(shape.attrs["cx"])
    if shape.tag == "path":
        return float(re.match(r"M([\d.]+)", shape.attrs["d"]).group(1)) + 5
    if shape.tag == "polygon":
        return float(shape.attrs["points"].split(",")[0])
    return float(shape.attrs["x"]) + 4


def test_a_verify_failure_is_a_fail_mark_at_its_time_on_the_shared_axis(dom):
    vps2 = card(dom, "vps-2")
    marks = vps2.find_all("g", "mark")
    assert [(m.attrs["data-at"], m.attrs["data-mark"]) for m in marks] == [
        (at(120).isoformat(), "ok"),  # run 4
        ((ROLLOUT_AT + (at(12) - T0)).isoformat(), "ok"),  # the rollout's verify phase of vps-2
        (DRIFT_AT.isoformat(), "fail"),  # run 6
    ]
    # the axis runs from the fleet's first verify (run 4) to the last recorded time (run 8's start), 4 % wider each side
    start, end = at(120), at(0, 3)
    start, end = start - (end - start) * 0.04, end + (end - start) * 0.04
    expected = D_PAD + (D_WIDTH - 2 * D_PAD) * (DRIFT_AT - start) / (end - start)
    assert _mark_x(marks[2]) == pytest.approx(expected, abs=0.2)
    assert marks[2].find_all("path") and not marks[0].find_all("path")  # a cross, not a circle
    assert "vm.swappiness" in marks[2].find_all("title")[0].text()
    assert vps2.attrs["data-state"] == "fail"
    assert "not ok since 2026-05-06 09:00 UTC" in vps2.text()
    (row,) = [r for r in vps2.find_all("tr") if r.attrs.get("class") == "fail"]
    assert [td.text() for td in row.find_all("td")] == ["sysctl vm.swappiness", "180", "60", "✕ fail"]
    ticks = {tuple(t.text() for t in c.find_all("svg", "drift")[0].find_all("text")) for c in dom.find_all("article")}
    assert len(ticks) == 1  # every host's chart has the same time axis


def test_a_host_that_stays_ok_has_only_ok_marks_and_says_all_checks_pass(dom):
    vps1 = card(dom, "vps-1")
    assert {m.attrs["data-mark"] for m in vps1.find_all("g", "mark")} == {"ok"}
    assert vps1.attrs["data-state"] == "ok" and "all 2 checks pass" in vps1.text()


def test_the_rollout_has_one_bar_per_host_and_phase_in_its_wave(dom, runs):
    (figure,) = dom.find_all("figure", "rollout")
    assert figure.attrs["data-run"] == "5"
    bars = {
        (g.attrs["data-host"], g.attrs["data-phase"], g.attrs["data-wave"], g.attrs["data-status"])
        for g in figure.find_all("g", "phase")
    }
    expected = {(p.host or "", p.name, "" if p.wave is None else str(p.wave), p.status) for p in runs[4].phases}
    assert bars == expected and len(bars) == len(runs[4].phases)
    rows = [g.attrs["data-host"] for g in figure.find_all("g", "row")]
    assert rows == ["", "vps-1", "vm-blk-1", "vps-2"]  # the run's own phases, the canary, then wave 1


def _rect(figure: Node, host: str, phase: str) -> tuple[float, float]:
    (g,) = [g for g in figure.find_all("g", "phase") if (g.attrs["data-host"], g.attrs["data-phase"]) == (host, phase)]
    rect = g.find_all("rect")[0]
    return float(rect.attrs["x"]), float(rect.attrs["width"])


def test_bars_are_placed_by_time_and_waves_start_at_their_first_phase(dom):
    (figure,) = dom.find_all("figure", "rollout")
    waves = figure.find_all("g", "wave")
    assert [w.find_all("text")[0].text() for w in waves] == ["wave 0 · canary", "wave 1"]
    line_x = [float(w.find_all("line")[0].attrs["x1"]) for w in waves]
    assert line_x[0] == pytest.approx(_rect(figure, "vps-1", "snapshot")[0], abs=0.1)
    assert line_x[1] == pytest.approx(_rect(figure, "vps-2", "snapshot")[0], abs=0.1)
    d1, d2, dfail = (_rect(figure, h, "deploy") for h in ("vps-1", "vps-2", "vm-blk-1"))
    assert d1[0] + d1[1] <= line_x[1] < d2[0] + 0.1  # the canary's deploy ended before wave 1 began
    assert d1[1] == pytest.approx(d2[1], abs=0.2) and dfail[1] == pytest.approx(d2[1] * 2 / 3, abs=0.2)  # 3, 3, 2 min


def test_a_failed_phase_is_outlined_and_flagged(dom):
    (figure,) = dom.find_all("figure", "rollout")
    failed = [g for g in figure.find_all("g", "phase") if "failed" in g.classes]
    assert [(g.attrs["data-host"], g.attrs["data-phase"]) for g in failed] == [("vm-blk-1", "deploy")]
    assert failed[0].find_all("rect")[0].attrs["stroke"] == "#cf222e"
    assert failed[0].find_all("g", "flag")[0].text() == "✕"
    assert all(not g.find_all("g", "flag") for g in figure.find_all("g", "phase") if "failed" not in g.classes)


def test_the_plan_shows_each_value_with_its_source(dom):
    rows = card(dom, "vps-1").find_all("details", "plan")[0].find_all("tr")[1:]
    cells = {r.find_all("td")[0].text(): [td.text() for td in r.find_all("td")] for r in rows}
    assert cells["zram-size MiB"][1:3] == ["512", "set in host data"]
    assert cells["zram-size MiB"][3] == "host data host data"  # the kind, then the source itself
    assert cells["vm.page-cluster"][3].startswith("documented Documentation/admin-guide/sysctl/vm.rst")
    assert all(r.find_all("td")[3].text().strip() for r in rows)
    summary = card(dom, "vps-1").find_all("summary")[0].text()
    assert "1 host data" in summary and "fleetforge default" in summary
    assert "host data" not in card(dom, "vps-2").find_all("summary")[0].text()


def test_the_last_deploy_says_when_who_status_and_dry(dom):
    vps2 = card(dom, "vps-2").find_all("div", "deploy")[0]
    assert vps2.attrs["data-dry"] == "true" and "bob" in vps2.text() and "dry run" in vps2.text()
    assert "would write /etc/sysctl.d/90-fleetforge.conf" in vps2.text()
    assert "last real deploy: 2026-05-05 09:09 UTC by alice, ok" in vps2.text()
    blk = card(dom, "vm-blk-1").find_all("div", "deploy")[0]
    assert blk.attrs["data-status"] == "failed" and "deploy failed: operation 3 of 7" in blk.text()


def test_warnings_from_records_and_the_ones_the_report_finds(dom, runs):
    assert "hardware does not match the OVH model" in card(dom, HOSTILE_HOST).find_all("div", "warnings")[0].text()
    assert "facts changed (hardware or OS) between run #1" in card(dom, "vm-blk-1").text()
    assert not card(dom, "vps-1").find_all("div", "warnings")
    early = parse(render(runs[:3]))  # probe, plan, deploy: nothing verified after the deploy
    assert "not verified since its last deploy (2026-05-04 10:00 UTC)" in card(early, "vps-1").text()


def test_run_history_newest_first_with_unfinished_runs_and_exit_codes(dom):
    rows = dom.find_all("table", "runs")[0].find_all("tr")[1:]
    assert [r.attrs["data-run"] for r in rows] == ["8", "7", "6", "5", "4", "3", "2", "1"]
    cells = {r.attrs["data-run"]: [td.text() for td in r.find_all("td")] for r in rows}
    assert cells["8"][-2:] == ["–", "unfinished"]
    assert (
        cells["5"][2] == "rollout"
        and cells["5"][5] == "3 · 2 ok · 1 failed"
        and cells["5"][-2:] == ["15 min 00 s", "1"]
    )
    assert cells["7"][2] == "deploy (dry)" and cells["6"][4] == HOSTILE_USER


def test_hostile_record_text_stays_text(page, dom):
    assert "<script" not in page and "<img" not in page
    assert not dom.find_all("script") and not dom.find_all("img")
    assert not [(n.tag, a) for n in dom.iter() for a in n.attrs if a.startswith("on")]
    hostile = card(dom, HOSTILE_HOST)
    assert hostile.attrs["data-host"] == HOSTILE_HOST and hostile.attrs["id"] == f"host-{HOSTILE_HOST}"
    cells = [td.text() for td in hostile.find_all("table", "checks")[0].find_all("td")]
    assert cells == [HOSTILE, HOSTILE_HOST, "(missing)", "▲ warn"]
    plan = {r.find_all("td")[0].text(): r for r in hostile.find_all("details")[0].find_all("tr")[1:]}
    assert [td.text() for td in plan["zram-size MiB"].find_all("td")][2] == HOSTILE
    assert hostile.find_all("p", "error")[0].text() == f"✕ {HOSTILE}"


def test_the_page_forbids_scripts_and_loads(dom):
    (meta,) = [m for m in dom.find_all("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy"]
    assert meta.attrs["content"] == CSP == "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def test_an_empty_store_still_lists_every_inventory_host():
    dom = parse(render([]))
    cards = dom.find_all("article", "card")
    assert [c.attrs["data-host"] for c in cards] == list(INVENTORY)
    assert {c.attrs["data-state"] for c in cards} == {"unverified"}
    assert "no runs recorded yet" in dom.find_all("p", "summary")[0].text()
    assert "no rollout recorded" in dom.text() and not dom.find_all("table", "runs")
    assert not dom.find_all("svg", "drift") and all("never deployed" in c.text() for c in cards)


def test_a_timeline_limited_to_hosts_keeps_only_their_rows(runs):
    drawn = parse(timeline(runs[4], {"vps-2"}))
    assert [g.attrs["data-host"] for g in drawn.find_all("g", "row")] == ["", "vps-2"]
    assert timeline(runs[0]) == ""  # a run without phases draws nothing


def test_a_plan_that_is_no_tuning_plan_still_lists_its_planned_values():
    plan = {"disks": [{"name": "vda", "scheduler": {"value": "none", "reason": "r", "source": "host data"}}]}
    assert planned_rows(plan) == [("disks vda · scheduler", "none", "r", "host data")]
    kinds = ["host data", "measured on vm 2026-12-06 (randread, fio): x", "fleetforge default: y", "detected", "a.rst"]
    assert [source_kind(k) for k in kinds] == ["host data", "measured", "fleetforge default", "detected", "documented"]


def test_waves_are_labelled_by_number_and_a_name_that_says_more():
    assert wave_label(0, ["canary", "wave1"]) == "wave 0 · canary" and wave_label(1, ["canary", "wave1"]) == "wave 1"
    assert wave_label(0, ["batch1", "batch2"]) == "wave 0 · canary (batch1)"
    assert wave_label(1, ["batch1", "batch2"]) == "wave 1 · batch2" and wave_label(3) == "wave 3"


def test_time_axes_use_round_steps():
    assert elapsed_axis(900) == (960, 120) and elapsed_axis(40) == (40, 5)
    ticks = time_ticks(at(120), at(0, 3))
    assert [label for _, label in ticks] == ["2026-05-05", "2026-05-06", "2026-05-07"]
