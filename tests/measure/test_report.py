"""The measurement report, from HostMeasurements of the shape ``fleetforge tune --measure`` writes
(samples of the test VMs' size, decisions made by the real rule), read back with the stdlib HTML
parser: what a reader finds in it, and that nothing a host sends can become markup."""

from __future__ import annotations

import os
import stat
from dataclasses import asdict
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fleetforge.components.sysctl import swappiness_for_ratio
from fleetforge.measure import report, report_svg
from fleetforge.measure.decide import Samples, decide
from fleetforge.measure.report import CSP, render_report, write_report
from fleetforge.measure.results import (
    ComparisonRecord,
    DecisionRecord,
    DiskMeasurement,
    HostMeasurement,
    Sample,
    Series,
    Skipped,
    SwapMeasurement,
)

HOSTILE_HOST = "<script>alert(1)</script>"
HOSTILE_REASON = '"><img src=x onerror=alert(1)>'
HOSTILE_MOUNT = "/srv/</figure><script>x()</script>"

Runs = dict[str, tuple[list[float], list[float] | None]]


def make_series(knob: str, workload: str, unit: str, baseline: str, runs: Runs, decides: bool) -> Series:
    """A series whose decision is the real rule's verdict on ``runs`` (candidate: values, p99s)."""
    n = len(runs[baseline][0])
    samples = [
        Sample(candidate=c, round=r, value=values[r], p99_ms=p99[r] if p99 else None)
        for r in range(n)
        for c, (values, p99) in runs.items()
    ]
    base = Samples(baseline, runs[baseline][0], runs[baseline][1] or ())
    others = [Samples(c, v, p or ()) for c, (v, p) in runs.items() if c != baseline]
    d = decide(base, others, unit=unit)
    record = DecisionRecord(
        chosen=d.chosen,
        changed=d.changed,
        reason=d.reason,
        comparisons=[ComparisonRecord(**asdict(c)) for c in d.comparisons],
    )
    return Series(
        knob=knob,
        workload=workload,
        unit=unit,
        decides=decides,
        baseline=baseline,
        candidates=list(runs),
        samples=samples,
        decision=record,
    )


RANDREAD: Runs = {  # none wins clearly: "changed"
    "mq-deadline": ([44100, 43800, 44900, 43500, 44400], [1.41, 1.38, 1.45, 1.40, 1.43]),
    "none": ([61200, 60800, 61900, 60500, 61400], [0.91, 0.88, 0.93, 0.90, 0.95]),
}
RANDWRITE: Runs = {  # overlapping: "no significant difference"
    "mq-deadline": ([23100, 22400, 23800, 22900, 23300], [2.31, 2.45, 2.24, 2.38, 2.29]),
    "none": ([23300, 22700, 23500, 22600, 23900], [2.28, 2.40, 2.35, 2.26, 2.42]),
}
SEQREAD: Runs = {
    "mq-deadline": ([1843.0, 1811.0, 1867.0, 1829.0, 1852.0], [3.82, 3.91, 3.77, 3.85, 3.88]),
    "none": ([1857.0, 1822.0, 1849.0, 1871.0, 1838.0], [3.79, 3.86, 3.90, 3.74, 3.81]),
}


def _scheduler(workload: str, unit: str, runs: Runs, decides: bool = False) -> Series:
    return make_series("scheduler", workload, unit, "mq-deadline", runs, decides)


def _read_ahead(buffered_mib: dict[str, list[float]]) -> Series:  # no p99: throughput only
    runs: Runs = {c: (v, None) for c, v in buffered_mib.items()}
    return make_series("read_ahead_kb", "seqread-buffered", "MiB/s", "128", runs, decides=True)


READ_AHEAD_KEPT = {  # 1024 and 4096 are within the noise of 128
    "128": [912.0, 935.0, 898.0, 921.0, 907.0],
    "1024": [925.0, 901.0, 940.0, 915.0, 929.0],
    "4096": [918.0, 930.0, 905.0, 936.0, 911.0],
}
READ_AHEAD_WON = {  # btrfs: larger read-ahead reads a cold file much faster
    "128": [402.0, 415.0, 397.0, 409.0, 411.0],
    "1024": [655.0, 671.0, 648.0, 662.0, 659.0],
    "4096": [702.0, 688.0, 715.0, 694.0, 709.0],
}


ZRAM_US = [11.8, 12.4, 11.5, 12.9, 12.1]  # lz4 zram: 4 KiB direct reads one at a time
FILE_US = [98.4, 104.1, 95.7, 101.3, 99.2]  # the same from the test file on vda (virtio)
R = round(99.2 / 12.1, 2)  # 8.2: median file / median zram


def sample_swap(**changes) -> SwapMeasurement:
    """``vm-blk-1``'s swap measurement (r 8.2, swappiness 178, live zram swap 3.12 : 1)."""
    fields = {
        "algorithm": "lz4",
        "file_disk": "vda",
        "zram_read_us": ZRAM_US,
        "file_read_us": FILE_US,
        "r": R,
        "swappiness": swappiness_for_ratio(R),
        "compression_ratio": 3.12,
        "compression_note": "312 MiB stored in 100 MiB",
    }
    return SwapMeasurement(**(fields | changes))


def sample_hosts() -> list[HostMeasurement]:
    """Two hosts, three measured disks: ``vm-blk-1`` (vda ext4 root with four series, vdb btrfs
    with two; vdc skipped; swap measured) and a host whose name, mount and skip reason are hostile
    markup (no swap measured)."""
    vda = DiskMeasurement(
        disk="vda",
        mount="/",
        fstype="ext4",
        read_ahead_path="/sys/block/vda/queue/read_ahead_kb",
        series=[
            _scheduler("randread", "IOPS", RANDREAD, decides=True),
            _scheduler("randwrite", "IOPS", RANDWRITE),
            _scheduler("seqread", "MiB/s", SEQREAD),
            _read_ahead(READ_AHEAD_KEPT),
        ],
    )
    vdb = DiskMeasurement(
        disk="vdb",
        mount="/srv",
        fstype="btrfs",
        read_ahead_path="/sys/class/bdi/btrfs-1/read_ahead_kb",
        series=[_scheduler("randread", "IOPS", RANDREAD, decides=True), _read_ahead(READ_AHEAD_WON)],
    )
    common = {"kernel": "6.1.0-28-amd64", "fio_version": "fio-3.33", "runtime_s": 1.0, "file_mib": 256}
    first = HostMeasurement(
        host="vm-blk-1",
        measured_at="2026-12-06T19:30:00Z",
        fio_installed_by_fleetforge=False,
        repeats=5,
        disks=[vda, vdb],
        skipped=[Skipped(disk="vdc", reason="no mounted filesystem")],
        restored=["vda scheduler mq-deadline (left by an interrupted run)"],
        swap=sample_swap(),
        **common,
    )
    hostile_disk = vdb.model_copy(update={"mount": HOSTILE_MOUNT})
    second = HostMeasurement(
        host=HOSTILE_HOST,
        measured_at="2026-12-06T19:41:12Z",
        fio_installed_by_fleetforge=True,
        repeats=5,
        disks=[hostile_disk],
        skipped=[Skipped(disk="vdz", reason=HOSTILE_REASON)],
        **common,
    )
    return [first, second]


class Node:
    """An element of the parsed page: tag, attributes, children (elements and text)."""

    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    @property
    def classes(self) -> list[str]:
        return (self.attrs.get("class") or "").split()

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self):
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.iter()

    def find_all(self, tag: str, cls: str | None = None) -> list[Node]:
        return [n for n in self.iter() if n.tag == tag and (cls is None or cls in n.classes)]


VOID = {"meta", "link", "br", "img", "input", "hr", "source", "area", "base", "col", "embed", "wbr"}


class TreeBuilder(HTMLParser):
    """A lenient tree of the page (stdlib ``html.parser``; character references decoded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = self.current = Node("#root", {}, None)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Node(tag, dict(attrs), self.current))

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse(page: str) -> Node:
    builder = TreeBuilder()
    builder.feed(page)
    builder.close()
    return builder.root


def fmt(value: float) -> str:
    """The report's number format, as its docstring states it."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


@pytest.fixture(scope="module")
def hosts() -> list[HostMeasurement]:
    return sample_hosts()


@pytest.fixture(scope="module")
def page(hosts) -> Node:
    return parse(render_report(hosts))


def series_blocks(chart: Node) -> list[Node]:
    return chart.find_all("div", "series")


def test_one_chart_per_host_and_disk_in_order(hosts, page):
    charts = page.find_all("figure", "chart")
    assert [(c.attrs["data-host"], c.attrs["data-disk"]) for c in charts] == [
        ("vm-blk-1", "vda"),
        ("vm-blk-1", "vdb"),
        (HOSTILE_HOST, "vdb"),
    ]
    vda = charts[0]
    titles = [h.children[0] for h in vda.find_all("h4")]
    assert titles == [
        "scheduler · randread · IOPS",
        "scheduler · randread · p99 ms",
        "scheduler · randwrite · IOPS",
        "scheduler · randwrite · p99 ms",
        "scheduler · seqread · MiB/s",
        "scheduler · seqread · p99 ms",
        "read_ahead_kb · seqread-buffered · MiB/s",  # no latencies: no p99 panel
    ]
    assert "vda · / · ext4" in vda.find_all("figcaption")[0].text()
    assert "plan: scheduler → none (changed), read_ahead_kb → 128 (kept)" in vda.text()


def test_host_heading_says_how_it_was_measured_what_was_skipped_and_restored(page):
    first = page.find_all("section", "host")[0]
    assert first.find_all("h2")[0].text() == "vm-blk-1"
    heading = first.find_all("dl", "meta")[0]  # the host's own; the swap figure has another
    meta = {dt.text(): dd.text() for dt, dd in zip(heading.find_all("dt"), heading.find_all("dd"), strict=True)}
    assert meta == {
        "measured": "2026-12-06 19:30:00 UTC",
        "kernel": "6.1.0-28-amd64",
        "fio": "fio-3.33",
        "repeats": "5",
        "runtime per job": "1 s",
        "test file": "256 MiB",
    }
    assert "vdc — no mounted filesystem" in first.find_all("div", "skipped")[0].text()
    assert "vda scheduler mq-deadline (left by an interrupted run)" in first.find_all("div", "restored")[0].text()
    second = page.find_all("section", "host")[1]
    assert "fio-3.33 (installed by fleetforge)" in second.text() and not second.find_all("div", "restored")


def test_every_sample_is_a_dot_whose_tooltip_gives_its_number(hosts, page):
    charts = page.find_all("figure", "chart")
    disks = [d for h in hosts for d in h.disks]
    dots = 0
    for chart, disk in zip(charts, disks, strict=True):
        for block, series in zip(series_blocks(chart), disk.series, strict=True):
            panels = {p.attrs["data-metric"]: p for p in block.find_all("div", "panel")}
            expected = {
                "value": [f"{s.candidate} · round {s.round}: {fmt(s.value)} {series.unit}" for s in series.samples],
                "p99": [f"{s.candidate} · round {s.round}: {fmt(s.p99_ms)} ms" for s in series.samples if s.p99_ms],
            }
            for metric, panel in panels.items():
                titles = [c.find_all("title")[0].text() for c in panel.find_all("circle")]
                assert sorted(titles) == sorted(expected[metric])
                dots += len(titles)
            assert ("p99" in panels) == bool(expected["p99"])
    assert dots == 5 * (2 + 2 + 2 + 2 + 2 + 2 + 3) + 5 * (2 + 2 + 3) + 5 * (2 + 2 + 3)
    assert "61,200 IOPS" in page.text() and "0.91 ms" in page.text() and "912 MiB/s" in page.text()


def test_the_chosen_candidate_is_marked_once_per_panel_and_the_baseline_is_planned(hosts, page):
    chart = page.find_all("figure", "chart")[0]
    for block, series in zip(series_blocks(chart), hosts[0].disks[0].series, strict=True):
        for panel in block.find_all("div", "panel"):
            chosen = panel.find_all("g", "chosen")
            assert [g.attrs["data-candidate"] for g in chosen] == [series.decision.chosen]
            assert chosen[0].find_all("rect")  # the green band behind the row
            assert chosen[0].find_all("circle")[0].attrs["fill"] == report.CHOSEN
            tags = {
                g.attrs["data-candidate"]: "".join(t.text() for t in g.find_all("text", "tag"))
                for g in panel.find_all("g", "cand")
            }
            assert "chosen" in tags[series.decision.chosen] and "planned" in tags[series.baseline]
            assert sum("chosen" in t for t in tags.values()) == 1
    randread, randwrite = series_blocks(chart)[:2]
    assert randread.find_all("p", "reason")[0].text().startswith("changed to none — none 61,200 IOPS p99 0.91 ms vs")
    kept = randwrite.find_all("p", "reason")[0].text()
    assert kept.startswith("kept mq-deadline — measured: no significant difference; kept mq-deadline")
    assert "not beyond the noise" in randwrite.find_all("ul", "comparisons")[0].text()


def test_axes_start_at_zero_and_cover_every_dot(page):
    for svg in page.find_all("svg"):
        if not svg.find_all("circle") or svg.parent.tag != "div":
            continue
        ticks = [t.text() for t in svg.find_all("text", "muted") if t.attrs.get("text-anchor") == "middle"]
        assert ticks[0] == "0" and 3 <= len(ticks) <= 6
        xs = [float(c.attrs["cx"]) for c in svg.find_all("circle")]
        assert min(xs) >= report_svg.LABEL_W and max(xs) <= report_svg.WIDTH - report_svg.VALUE_W


@pytest.mark.parametrize(
    "maximum, expected", [(61900, (80000, 20000)), (1.45, (1.5, 0.5)), (912, (1000, 250)), (0, (1.0, 0.25))]
)
def test_axis_steps_are_round_numbers(maximum, expected):
    top, step = report_svg.axis(maximum)
    assert (top, step) == pytest.approx(expected) and top >= maximum and 2 <= round(top / step) <= 5


def test_hostile_host_text_stays_text(page):
    raw = render_report(sample_hosts())
    assert "<script" not in raw and "<img" not in raw and "onerror=alert" not in raw.replace("onerror=alert(1)&gt;", "")
    elements = list(page.iter())
    assert not [n.tag for n in elements if n.tag in {"script", "img", "iframe", "object", "embed", "link"}]
    assert not [(n.tag, a) for n in elements for a in n.attrs if a.startswith("on")]
    hostile = page.find_all("section", "host")[1]
    assert hostile.attrs["data-host"] == HOSTILE_HOST and hostile.find_all("h2")[0].text() == HOSTILE_HOST
    assert f"vdz — {HOSTILE_REASON}" in hostile.find_all("div", "skipped")[0].text()
    assert f"vdb · {HOSTILE_MOUNT} · btrfs" in hostile.find_all("figcaption")[0].text()
    assert len(hostile.find_all("figure", "chart")) == 1  # the mount's </figure> closed nothing


def test_a_hostile_or_long_candidate_name_is_escaped_and_cut_with_the_full_name_in_its_tooltip():
    name = '"><svg onload=alert(1)>' + "x" * 40
    series = make_series(
        "scheduler",
        "randread",
        "IOPS",
        "none",
        {"none": ([1.0, 2.0, 3.0, 2.5], None), name: ([9.0, 9.5, 9.2, 9.4], None)},
        True,
    )
    disk = DiskMeasurement(disk="vda", mount="/", fstype="ext4", read_ahead_path="/x", series=[series])
    host = sample_hosts()[0].model_copy(update={"disks": [disk], "swap": None})
    tree = parse(render_report([host]))
    row = [g for g in tree.find_all("g", "cand") if g.attrs["data-candidate"] == name][0]
    label = row.find_all("text", "name")[0]
    assert label.find_all("title")[0].text() == name and label.children[-1] == name[: report_svg.MAX_NAME - 1] + "…"
    assert "chosen" in row.classes  # 9 beats 2 beyond the noise (p = 1/70)
    panels = [s for s in tree.find_all("svg") if s.parent.tag == "div"]
    assert len(panels) == 1 and len(panels[0].find_all("svg")) == 2  # its rows' label boxes; none injected
    assert len(tree.find_all("svg")) == 3 + 1 + 2  # with the legend's three


def swap_facts(figure: Node) -> dict[str, str]:
    dl = figure.find_all("dl", "swap")[0]
    return {dt.text(): dd.text() for dt, dd in zip(dl.find_all("dt"), dl.find_all("dd"), strict=True)}


def test_a_host_with_swap_has_one_swap_figure_with_every_sample_r_and_swappiness(page):
    first, second = page.find_all("section", "host")
    (figure,) = first.find_all("figure", "swap-chart")
    assert figure.attrs["data-host"] == "vm-blk-1" and "chart" not in figure.classes
    assert not second.find_all("figure", "swap-chart")  # the host without swap has none
    assert len(page.find_all("figure", "swap-chart")) == 1
    (panel,) = figure.find_all("div", "panel")
    rows = panel.find_all("g", "cand")
    assert [g.attrs["data-candidate"] for g in rows] == ["zram lz4", "file on vda"]
    assert not panel.find_all("g", "chosen")  # neither row is a decision's winner
    for row, name, values in zip(rows, ["zram lz4", "file on vda"], [ZRAM_US, FILE_US], strict=True):
        titles = [c.find_all("title")[0].text() for c in row.find_all("circle")]
        assert titles == [f"{name} · round {i}: {fmt(v)} µs" for i, v in enumerate(values)]
        median = row.find_all("line", "median")[0].find_all("title")[0].text()
        assert median == f"median {fmt(sorted(values)[2])} µs"
    ticks = [t.text() for t in panel.find_all("text", "muted") if t.attrs.get("text-anchor") == "middle"]
    assert ticks[0] == "0" and float(ticks[-1]) >= max(FILE_US)
    assert swap_facts(figure) == {
        "algorithm": "lz4",
        "file disk": "vda",
        "r": "8.2 (median file read / median zram read)",
        "swappiness": "178 (200·r/(1+r))",
        "live zram swap compression": "3.12 : 1 (312 MiB stored in 100 MiB)",
    }
    assert swappiness_for_ratio(8.2) == 178 == round(200 * 8.2 / 9.2)
    assert "vm.swappiness 178 from r = 8.2" in figure.find_all("figcaption")[0].text()


def test_without_a_live_zram_ratio_the_swap_figure_gives_its_note():
    swap = sample_swap(compression_ratio=None, compression_note="no zram swap active")
    host = sample_hosts()[0].model_copy(update={"swap": swap})
    figure = parse(render_report([host])).find_all("figure", "swap-chart")[0]
    assert swap_facts(figure)["live zram swap compression"] == "no zram swap active"


def test_hostile_swap_strings_stay_text():
    hostile = {
        "algorithm": '<script>alert("alg")</script>',
        "file_disk": '"><img src=x onerror=alert(2)>',
        "compression_note": "</figure></section><script>alert(3)</script>",
    }
    host = sample_hosts()[0].model_copy(update={"swap": sample_swap(**hostile)})
    raw = render_report([host])
    assert "<script" not in raw and "<img" not in raw and "</figure></section><" not in raw
    tree = parse(raw)
    assert not [n.tag for n in tree.iter() if n.tag in {"script", "img"}]
    assert not [(n.tag, a) for n in tree.iter() for a in n.attrs if a.startswith("on")]
    (figure,) = tree.find_all("figure", "swap-chart")
    facts = swap_facts(figure)
    assert facts["algorithm"] == hostile["algorithm"] and facts["file disk"] == hostile["file_disk"]
    assert facts["live zram swap compression"] == f"3.12 : 1 ({hostile['compression_note']})"
    names = [g.attrs["data-candidate"] for g in figure.find_all("g", "cand")]
    assert names == [f"zram {hostile['algorithm']}", f"file on {hostile['file_disk']}"]
    assert len(tree.find_all("section", "host")) == 1 and len(tree.find_all("figure", "chart")) == 2


def test_the_page_forbids_loading_and_running_anything(page):
    metas = [m.attrs for m in page.find_all("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy"]
    assert metas == [{"http-equiv": "Content-Security-Policy", "content": CSP}]
    assert CSP == "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    style = "".join(s.text() for s in page.find_all("style"))
    assert "url(" not in style and "@import" not in style
    assert not [n.attrs for n in page.iter() if {"src", "href", "xlink:href"} & set(n.attrs)]


def test_no_measurements_is_a_page_that_says_so():
    tree = parse(render_report([]))
    assert "No measurements." in tree.text() and not tree.find_all("figure")


def test_write_report_replaces_an_existing_page_atomically_and_leaves_no_temp_file(tmp_path, hosts):
    target = tmp_path / "report.html"
    target.write_text("old page")
    assert write_report(hosts, str(target)) == target
    assert target.read_text(encoding="utf-8") == render_report(hosts)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    nested = write_report(hosts, tmp_path / "new" / "dir" / "r.html")
    assert nested.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_a_failed_write_keeps_the_old_page_and_removes_its_temp_file(tmp_path, hosts, monkeypatch):
    target = tmp_path / "report.html"
    target.write_text("old page")
    seen: list[Path] = []

    def failing_replace(src, dst):
        seen.append(Path(src))
        assert Path(src).parent == tmp_path and Path(src).read_text(encoding="utf-8") == render_report(hosts)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        write_report(hosts, target)
    assert seen and not seen[0].exists()
    assert target.read_text() == "old page" and sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
