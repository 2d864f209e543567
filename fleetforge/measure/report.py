"""The measurement report: one static, self-contained HTML page of what ``fleetforge tune
--measure`` measured on each host (``HostMeasurement``, see ``fleetforge.measure.results``).

Page shape: per host a ``<section class="host">`` with its name, measurement time, kernel, fio
version, repeats, runtime per fio job, test file size, the skipped disks with their reasons and
the items restored from an interrupted run; per measured disk exactly one
``<figure class="chart" data-host="…" data-disk="…">`` holding one block per series (one knob
under one fio workload). A block has a panel of the workload's metric (IOPS or MiB/s, higher is
better) and, when fio measured latencies, one of the p99 completion latency in milliseconds
(lower is better), then the decision: its reason and every challenger's figures. A host whose
swap-in cost was measured (``HostMeasurement.swap``) also has one
``<figure class="swap-chart" data-host="…">`` after its disks: a panel of the single 4 KiB read
latencies in µs from the test zram device and from the test file (one row each), then the
compression algorithm, the file's disk, r (median file read / median zram read), the swappiness
it gives (200*r/(1+r)) and the compression ratio of the host's live zram swap, or why there is
none.

A panel (``fleetforge.measure.report_svg``) is an inline SVG dot plot: one row per candidate
(``<g class="cand">``), one dot per sample (``<circle>`` with a ``<title>`` tooltip: candidate,
round, number, unit), the median as a vertical tick with its number at the right, and an axis
from 0 with a few labelled ticks. The chosen candidate's row has the class ``chosen``, is green
and labelled "chosen"; the baseline (the value the rules plan) is labelled "planned". Numbers
are shown with thousands separators and whole units from 100 up, with 3 significant digits
below 100.

Everything that comes from a host (host and disk names, mounts, reasons, candidate names, the
zram algorithm and compression note, and the like) is untrusted and HTML-escaped, attributes
included. The page has no scripts, and a Content-Security-Policy meta tag (``CSP``) forbids
loading or running anything but its own inline styles and ``data:`` images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from fleetforge.measure.report_svg import CHOSEN, OTHER, Row, panel
from fleetforge.measure.report_svg import esc as _e
from fleetforge.measure.results import DiskMeasurement, HostMeasurement, Series, SwapMeasurement, write_atomic

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
Metric = Literal["value", "p99"]


_STYLE = """
body{font:14px/1.45 system-ui,"DejaVu Sans",sans-serif;color:#1f2328;background:#fff;
 max-width:1220px;margin:20px auto;padding:0 16px}
h1{font-size:22px;margin:0 0 6px}
h2{font-size:18px;margin:34px 0 6px;padding-bottom:4px;border-bottom:2px solid #d0d7de;
 overflow-wrap:anywhere}
.legend{display:flex;flex-wrap:wrap;align-items:center;gap:4px 18px;font-size:13px;color:#424a53;
 margin:4px 0 12px}
.legend svg{vertical-align:middle}
dl.meta{display:flex;flex-wrap:wrap;gap:2px 20px;margin:0 0 8px}
dl.meta div{display:flex;gap:6px}
dl.meta dt{color:#59636e}
dl.meta dd{margin:0;font-weight:600;overflow-wrap:anywhere}
.notes{margin:4px 0;font-size:13px}
.notes ul{margin:2px 0;padding-left:20px}
figure.chart,figure.swap-chart{margin:14px 0;padding:10px 14px;border:1px solid #d0d7de;border-radius:6px}
figcaption{font-weight:600;font-size:15px;overflow-wrap:anywhere}
figcaption .plan{display:block;font-weight:400;font-size:13px;color:#424a53}
.series{margin-top:10px;padding-top:8px;border-top:1px solid #eaeef2}
.panels{display:flex;flex-wrap:wrap;gap:6px 28px}
.panel{flex:1 1 520px;max-width:580px;min-width:0}
.panel h4{margin:0;font-size:13px}
.panel h4 small{font-weight:400;color:#59636e;margin-left:6px}
.panel h4 .plan{color:#0550ae}
.panel svg{display:block;width:100%;height:auto}
svg text{font-family:system-ui,"DejaVu Sans",sans-serif;font-size:11px;fill:#1f2328}
svg text.name{font-size:12px;font-weight:600}
svg text.tag{font-size:10px;fill:#59636e}
svg .chosen text.tag{fill:#1a7f37;font-weight:700}
svg text.muted{fill:#59636e}
.reason{margin:4px 0 2px;font-size:13px;overflow-wrap:anywhere}
.reason b{color:#59636e}
.reason.changed b{color:#1a7f37}
.swap-chart .panels{margin-top:10px}
dl.swap{margin:8px 0 0;font-size:13px}
dl.swap dd span{font-weight:400;color:#59636e}
ul.comparisons{margin:0;padding-left:20px;font-size:12px;color:#424a53;overflow-wrap:anywhere}
"""


#: the report's CSS, public for pages that embed ``host_section``
STYLE = _STYLE


def _rows(series: Series, metric: Metric) -> list[Row]:
    """The candidates in their measured order, plus any that only appear in the samples, each
    with ``(round, number)`` of its samples that have the ``metric``."""
    names = dict.fromkeys([*series.candidates, *(s.candidate for s in series.samples)])
    rows = []
    for name in names:
        tags = [t for t, on in (("planned", name == series.baseline), ("chosen", name == series.decision.chosen)) if on]
        if metric == "value":
            points = [(s.round, s.value) for s in series.samples if s.candidate == name]
        else:
            points = [(s.round, s.p99_ms) for s in series.samples if s.candidate == name and s.p99_ms is not None]
        rows.append(Row(name, points, tags, chosen=name == series.decision.chosen))
    return rows


def _panel(series: Series, metric: Metric) -> str:
    """A panel of ``series``: title and SVG dot plot of ``metric`` (the series' value, or p99 ms)."""
    label = series.unit if metric == "value" else "p99 ms"
    return panel(
        _rows(series, metric),
        metric=metric,
        title=f"{series.knob} · {series.workload} · {label}",
        unit=series.unit if metric == "value" else "ms",
        note="higher is better" if metric == "value" else "lower is better",
        plan=series.decides,
    )


def _decision(series: Series) -> str:
    """The decision under a series' panels: verdict, reason, and each challenger's figures."""
    d = series.decision
    verdict = f"changed to {d.chosen}" if d.changed else f"kept {d.chosen}"
    if d.changed and not series.decides:  # an informational workload: the plan follows another one
        verdict = f"{d.chosen} wins this workload (it does not decide the plan)"
    out = [f'<p class="reason {"changed" if d.changed else "kept"}"><b>{_e(verdict)}</b> — {_e(d.reason)}</p>']
    if d.comparisons:
        out.append('<ul class="comparisons">')
        for c in d.comparisons:
            p99 = f", p99 {c.p99_change:+.1%}" if c.p99_change is not None else ""
            p = "p < 0.001" if c.p_value < 0.0005 else f"p = {c.p_value:.3f}"
            out.append(f"<li>{_e(f'{c.candidate}: mean {c.gain:+.1%}, {p}{p99} — {c.why}')}</li>")
        out.append("</ul>")
    return "".join(out)


def _series(series: Series) -> str:
    """One series' block: the metric panel, the p99 panel if latencies were measured, the decision."""
    panels = [_panel(series, "value")]
    if any(s.p99_ms is not None for s in series.samples):
        panels.append(_panel(series, "p99"))
    return (
        f'<div class="series" data-knob="{_e(series.knob)}" data-workload="{_e(series.workload)}">'
        f'<div class="panels">{"".join(panels)}</div>{_decision(series)}</div>'
    )


def _chart(host: str, disk: DiskMeasurement) -> str:
    """The one ``figure.chart`` of a disk: caption (disk, mount, filesystem, plan) and its series."""
    plan = [
        f"{s.knob} → {s.decision.chosen} ({'changed' if s.decision.changed else 'kept'})"
        for s in disk.series
        if s.decides
    ]
    caption = f"{disk.disk} · {disk.mount} · {disk.fstype}"
    detail = f"plan: {', '.join(plan) or 'nothing decided'} · read-ahead file {disk.read_ahead_path}"
    body = "".join(_series(s) for s in disk.series) or '<p class="notes">no series measured</p>'
    return (
        f'<figure class="chart" data-host="{_e(host)}" data-disk="{_e(disk.disk)}">'
        f'<figcaption>{_e(caption)}<span class="plan">{_e(detail)}</span></figcaption>{body}</figure>'
    )


def _swap(host: str, swap: SwapMeasurement) -> str:
    """A host's ``figure.swap-chart``: its zram and file read latencies (µs, one row each), r, the
    swappiness r gives, and the compression of the host's live zram swap."""
    rows = [
        Row(f"zram {swap.algorithm}", list(enumerate(swap.zram_read_us)), ["test zram device"]),
        Row(f"file on {swap.file_disk}", list(enumerate(swap.file_read_us)), ["test file"]),
    ]
    title = "swap-in vs file read · 4 KiB, one at a time · µs"
    drawn = panel(rows, metric="read_us", title=title, unit="µs", note="lower is faster")
    if swap.compression_ratio is None:
        compression = (swap.compression_note or "not measured", "")
    else:
        compression = (f"{swap.compression_ratio:.2f} : 1", swap.compression_note)
    facts = [  # (name, value, how it is made)
        ("algorithm", swap.algorithm, ""),
        ("file disk", swap.file_disk, ""),
        ("r", f"{swap.r:g}", "median file read / median zram read"),
        ("swappiness", str(swap.swappiness), "200·r/(1+r)"),
        ("live zram swap compression", *compression),
    ]
    caption = f"swap · zram {swap.algorithm} vs a file on {swap.file_disk}"
    detail = f"vm.swappiness {swap.swappiness} from r = {swap.r:g}, unless host data pins it"
    return (
        f'<figure class="swap-chart" data-host="{_e(host)}">'
        f'<figcaption>{_e(caption)}<span class="plan">{_e(detail)}</span></figcaption>'
        f'<div class="panels">{drawn}</div><dl class="meta swap">'
        + "".join(
            f"<div><dt>{k}</dt><dd>{_e(v)}{f' <span>({_e(how)})</span>' if how else ''}</dd></div>"
            for k, v, how in facts
        )
        + "</dl></figure>"
    )


def _host(m: HostMeasurement) -> str:
    """A host's section: heading, how it was measured, skipped disks, restored items, charts."""
    fio = m.fio_version + (" (installed by fleetforge)" if m.fio_installed_by_fleetforge else "")
    meta = [
        ("measured", m.measured_at.replace("T", " ").replace("Z", " UTC")),
        ("kernel", m.kernel),
        ("fio", fio),
        ("repeats", m.repeats),
        ("runtime per job", f"{m.runtime_s:g} s"),
        ("test file", f"{m.file_mib} MiB"),
    ]
    out = [
        f'<section class="host" data-host="{_e(m.host)}"><h2>{_e(m.host)}</h2><dl class="meta">',
        *(f"<div><dt>{k}</dt><dd>{_e(v)}</dd></div>" for k, v in meta),
        "</dl>",
    ]
    if m.skipped:
        items = "".join(f"<li><b>{_e(s.disk)}</b> — {_e(s.reason)}</li>" for s in m.skipped)
        out.append(f'<div class="notes skipped">Skipped disks:<ul>{items}</ul></div>')
    if m.restored:
        items = "".join(f"<li>{_e(r)}</li>" for r in m.restored)
        out.append(f'<div class="notes restored">Restored (left by an interrupted run):<ul>{items}</ul></div>')
    out.extend(_chart(m.host, d) for d in m.disks)
    if not m.disks:
        out.append('<p class="notes">no disk measured</p>')
    if m.swap is not None:
        out.append(_swap(m.host, m.swap))
    out.append("</section>")
    return "".join(out)


def host_section(m: HostMeasurement) -> str:
    """One host's ``<section class="host">`` exactly as this report draws it (heading, how it was
    measured, skipped disks, restored items, disk and swap charts), for pages that embed it (the
    fleet report, ``fleetforge.report``). Needs ``STYLE`` on the page; everything from the host is
    escaped. Pure: raises nothing for a valid model."""
    return _host(m)


def legend() -> str:
    """The legend of ``host_section``'s charts (dot colours, median tick, labels) as one ``<div>``."""
    return _legend()


def _legend() -> str:
    """The legend under the page title: dot colours, median tick, the labels, tooltips."""

    def dot(colour: str) -> str:
        return f'<svg width="12" height="12" viewBox="0 0 12 12"><circle cx="6" cy="6" r="4" fill="{colour}"/></svg>'

    tick = (
        '<svg width="8" height="16" viewBox="0 0 8 16">'
        '<line x1="4" x2="4" y1="1" y2="15" stroke="#111" stroke-width="2.5"/></svg>'
    )
    items = [
        f"{dot(CHOSEN)} sample of the chosen candidate (green row)",
        f"{dot(OTHER)} sample of another candidate",
        f"{tick} median",
        "<b>planned</b>: the value the rules plan, kept unless a candidate wins beyond the noise without a worse p99",
        "hover a dot for its number",
    ]
    return '<div class="legend">' + "".join(f"<span>{i}</span>" for i in items) + "</div>"


def render_report(measurements: Sequence[HostMeasurement]) -> str:
    """The report of ``measurements`` (hosts in the given order) as one HTML document.

    The page is static and self-contained: inline CSS and SVG only, no scripts, nothing loaded
    from anywhere (enforced by the ``CSP`` meta tag). Pure: raises nothing for valid models.
    """
    disks = sum(len(m.disks) for m in measurements)
    summary = f"{len(measurements)} host{'s' * (len(measurements) != 1)}, {disks} disk{'s' * (disks != 1)} measured"
    hosts = "".join(_host(m) for m in measurements) or "<p>No measurements.</p>"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>fleetforge measurements</title><style>{_STYLE}</style></head>\n<body>"
        f"<h1>fleetforge tune --measure</h1><p>{summary}</p>{_legend()}\n{hosts}\n</body></html>\n"
    )


def write_report(measurements: Sequence[HostMeasurement], path: str | Path) -> Path:
    """Write ``render_report(measurements)`` to ``path`` atomically and return it as a ``Path``.

    The page goes to a temporary file in the same directory (created if missing), is fsynced and
    renamed over ``path`` (mode 0644), and the directory is fsynced: readers see the old page or
    the new one, never a part. Raises ``OSError`` when the directory or file cannot be written;
    the temporary file is removed then and an existing page stays as it was.
    """
    return write_atomic(path, render_report(measurements))
