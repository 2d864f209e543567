"""The fleet report's charts, inline SVG drawn here: a rollout's timeline and a host's drift history.

Timeline (``timeline``): one row per host (and a ``run`` row for phases of the whole run), time
since the run's start on the x axis; each phase a bar (``<g class="phase">`` with ``data-host``,
``data-phase``, ``data-wave``, ``data-status`` and a ``<title>`` tooltip) coloured by its name
(``PHASE_COLOURS``) and carrying its letter (``PHASE_LETTERS``) when wide enough; a failed phase
has a red outline and a "✕" after it, an unfinished one a dashed outline, a skipped one no fill.
Each wave starts at a dashed vertical line labelled ``wave N`` and its name (``wave 0 · canary``,
``wave 2 · batch3``; ``wave_label``).

Drift (``drift_chart``): one lane on a time axis shared by every host; each verify a mark whose
shape says its result without colour (``ok`` circle, ``warn`` triangle, ``fail`` cross,
``unreachable`` hollow square), a strip in the mark's colour until the next verify, and deploys
as small diamonds under the lane.

Every text that comes from a record (host names, summaries) is HTML-escaped, attributes included.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from fleetforge.measure.report_svg import esc as _e
from fleetforge.report.fleet import DriftMark, natural, utc
from fleetforge.runs.models import Phase, RunRecord

PHASE_COLOURS = {
    "snapshot": "#8250df",
    "deploy": "#0969da",
    "verify": "#1b7c83",
    "health": "#9a6700",
    "rollback": "#bc4c00",
}
PHASE_LETTERS = {"snapshot": "S", "deploy": "D", "verify": "V", "health": "H", "rollback": "R"}
OTHER_PHASE = "#8c959f"  # connect, probe, plan, measure
FAILED = "#cf222e"
MARK_COLOURS = {"ok": "#1a7f37", "warn": "#bf8700", "fail": FAILED, "unreachable": "#6e7781"}
DEPLOY_MARK = "#0969da"

T_WIDTH, T_LABEL, T_RIGHT, T_HEAD, T_ROW, T_BAR, T_AXIS = 1160, 190, 24, 34, 24, 14, 28
D_WIDTH, D_PAD, D_MID, D_AXIS, D_HEIGHT = 560, 12, 16, 40, 58
_ELAPSED_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
_STEPS = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400)


def phase_colour(name: str) -> str:
    return PHASE_COLOURS.get(name, OTHER_PHASE)


def shape(mark: str, x: float, y: float, size: float = 5) -> str:
    """The SVG of one verify mark centred at ``(x, y)`` (``mark``: ok, warn, fail, unreachable)."""
    c = MARK_COLOURS.get(mark, MARK_COLOURS["unreachable"])
    s = size
    if mark == "ok":
        return f'<circle cx="{x:.1f}" cy="{y:g}" r="{s:g}" fill="{c}"/>'
    if mark == "warn":
        pts = f"{x:.1f},{y - s - 1:g} {x + s + 1:.1f},{y + s:g} {x - s - 1:.1f},{y + s:g}"
        return f'<polygon points="{pts}" fill="{c}" stroke="#1f2328" stroke-width="0.8"/>'
    if mark == "fail":
        d = f"M{x - s:.1f} {y - s:g}L{x + s:.1f} {y + s:g}M{x - s:.1f} {y + s:g}L{x + s:.1f} {y - s:g}"
        return f'<path d="{d}" stroke="{c}" stroke-width="3" stroke-linecap="round" fill="none"/>'
    side = 2 * s - 2
    box = f'x="{x - s + 1:.1f}" y="{y - s + 1:g}" width="{side:g}" height="{side:g}"'
    return f'<rect {box} fill="#fff" stroke="{c}" stroke-width="2"/>'


def time_ticks(start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, str]]:
    """Calendar ticks between ``start`` and ``end`` (UTC, at most about 5): multiples of a step
    from 1 minute to 30 days since the epoch, labelled ``05-04 13:00`` or ``2026-05-04``."""
    span = max((end - start).total_seconds(), 1.0)
    step = next((s for s in _STEPS if span / s <= 5), _STEPS[-1] * max(1, math.ceil(span / _STEPS[-1] / 5)))
    first = -(-int(start.timestamp()) // step) * step
    fmt = "%m-%d %H:%M" if step < 86400 else "%Y-%m-%d"
    out = []
    for t in range(first, int(end.timestamp()) + 1, step):
        at = dt.datetime.fromtimestamp(t, dt.UTC)
        out.append((at, at.strftime(fmt)))
    return out


def drift_chart(
    marks: Sequence[DriftMark], span: tuple[dt.datetime, dt.datetime], deploys: Sequence[tuple[dt.datetime, str]] = ()
) -> str:
    """``<svg class="drift">`` of one host's verifies (``marks``, oldest first) on ``span``;
    ``deploys``: ``(time, tooltip)`` of its real deploys. Each mark is a ``<g class="mark <mark>">``
    with ``data-at`` (ISO 8601 UTC) and a tooltip: time, run, summary."""
    start, end = span
    total = max((end - start).total_seconds(), 1.0)

    def x(t: dt.datetime) -> float:
        return D_PAD + (D_WIDTH - 2 * D_PAD) * min(max((utc(t) - start).total_seconds() / total, 0.0), 1.0)

    out = [
        f'<svg class="drift" viewBox="0 0 {D_WIDTH} {D_HEIGHT}" width="{D_WIDTH}" height="{D_HEIGHT}" '
        'role="img" aria-label="verify results over time">',
        f'<line x1="{D_PAD}" x2="{D_WIDTH - D_PAD}" y1="{D_MID}" y2="{D_MID}" stroke="#d0d7de" stroke-width="4"/>',
    ]
    for i, m in enumerate(marks):
        x2 = x(marks[i + 1].at) if i + 1 < len(marks) else D_WIDTH - D_PAD
        out.append(
            f'<rect x="{x(m.at):.1f}" y="{D_MID - 2}" width="{max(x2 - x(m.at), 0):.1f}" height="4" '
            f'fill="{MARK_COLOURS[m.mark]}" fill-opacity="0.45"/>'
        )
    for at, tip in deploys:
        dx = x(at)
        out.append(
            f'<path class="deploy" d="M{dx:.1f} {D_MID + 8}l4 5l-4 5l-4 -5z" fill="{DEPLOY_MARK}">'
            f"<title>{_e(tip)}</title></path>"
        )
    for m in marks:
        tip = f"{utc(m.at):%Y-%m-%d %H:%M:%S} UTC · {m.command} run #{m.run_id} · {m.summary}"
        out.append(
            f'<g class="mark {m.mark}" data-at="{utc(m.at).isoformat()}" data-mark="{m.mark}">'
            f"<title>{_e(tip)}</title>{shape(m.mark, x(m.at), D_MID)}</g>"
        )
    out.append(f'<line x1="{D_PAD}" x2="{D_WIDTH - D_PAD}" y1="{D_AXIS}" y2="{D_AXIS}" stroke="#8c959f"/>')
    for at, label in time_ticks(start, end):
        tx = x(at)
        out.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{D_AXIS}" y2="{D_AXIS + 4}" stroke="#8c959f"/>')
        if 34 <= tx <= D_WIDTH - 34:  # a label there would be cut by the edge
            out.append(f'<text class="muted" x="{tx:.1f}" y="{D_AXIS + 15}" text-anchor="middle">{label}</text>')
    out.append("</svg>")
    return "".join(out)


def elapsed_axis(total: float) -> tuple[float, float]:
    """``(top, step)`` in seconds of an elapsed-time axis covering ``total`` seconds in at most
    8 steps of a clock-friendly size (1 s to 1 day, then whole days): ``(960, 120)`` for 15 min
    40 s. However long the run (a record's times may span centuries), the axis has 8 steps."""
    day = _ELAPSED_STEPS[-1]
    step = next((s for s in _ELAPSED_STEPS if total / s <= 8), day * math.ceil(total / day / 8))
    return max(step, math.ceil(total / step - 1e-9) * step), step


def elapsed(seconds: float, step: float) -> str:
    """An elapsed-time tick label on an axis of ``step``: ``45 s``, ``1:30``, ``4 min``, ``2 h``."""
    if step < 60:
        return f"{seconds:g} s" if seconds < 60 else f"{int(seconds) // 60}:{int(seconds) % 60:02d}"
    if step < 3600:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"


def _rows(run: RunRecord, hosts: set[str] | None) -> list[str | None]:
    """The timeline's rows: ``None`` (the run's own phases) first, then hosts by wave, start, name."""
    first: dict[str | None, tuple] = {}
    for p in run.phases:
        if p.host is not None and hosts is not None and p.host not in hosts:
            continue
        key = (p.wave if p.wave is not None else 10**6, utc(p.started_at))
        first[p.host] = min(first.get(p.host, key), key)
    named = sorted((h for h in first if h is not None), key=lambda h: (*first[h], natural(h)))
    return ([None] if None in first else []) + named


def _bar(p: Phase, y: float, x0: float, x1: float, seconds: float | None) -> str:
    """One phase bar at row top ``y`` from ``x0`` to ``x1``."""
    colour, w = phase_colour(p.name), max(x1 - x0, 3.0)
    wave = "" if p.wave is None else str(p.wave)
    took = "unfinished" if seconds is None else f"{seconds:.0f} s"
    tip = f"{p.host or 'run'} · {p.name}" + (f" · wave {wave}" if wave else "")
    tip += f" · {utc(p.started_at):%H:%M:%S} UTC, {took} · {p.status}"
    attrs = {"fill": colour, "stroke": colour, "stroke-width": "1"}
    if p.status == "failed":
        attrs.update(stroke=FAILED, **{"stroke-width": "2.5"})
    elif p.status == "unfinished":
        attrs.update({"fill-opacity": "0.45", "stroke-dasharray": "4 2"})
    elif p.status == "skipped":
        attrs.update(fill="#ffffff")
    rect = " ".join(f'{k}="{v}"' for k, v in attrs.items())
    out = [
        f'<g class="phase {_e(p.name)} {p.status}" data-host="{_e(p.host or "")}" data-phase="{_e(p.name)}" '
        f'data-wave="{wave}" data-status="{p.status}"><title>{_e(tip)}</title>',
        f'<rect x="{x0:.1f}" y="{y + (T_ROW - T_BAR) / 2:g}" width="{w:.1f}" height="{T_BAR}" rx="2" {rect}/>',
    ]
    letter = PHASE_LETTERS.get(p.name, p.name[:1].upper())
    if w >= 12:
        fill = colour if p.status == "skipped" else "#ffffff"
        out.append(
            f'<text class="letter" x="{x0 + w / 2:.1f}" y="{y + 16:g}" text-anchor="middle" fill="{fill}">'
            f"{_e(letter)}</text>"
        )
    if p.status == "failed":  # a red badge on the bar's top right corner, over the next bar
        out.append(
            f'<g class="flag"><circle cx="{x0 + w:.1f}" cy="{y + 6:g}" r="6.5" fill="{FAILED}" stroke="#fff"/>'
            f'<text x="{x0 + w:.1f}" y="{y + 9.5:g}" text-anchor="middle" fill="#fff">✕</text></g>'
        )
    elif p.status == "unfinished":
        out.append(f'<text class="flag" x="{x0 + w + 3:.1f}" y="{y + 17:g}" fill="#59636e">…</text>')
    out.append("</g>")
    return "".join(out)


def timeline(run: RunRecord, hosts: set[str] | None = None) -> str:
    """``<svg class="timeline">`` of ``run``'s phases (see the module docstring); ``hosts``: draw
    only these hosts' rows (the run's own phases always). Empty string when there is no phase."""
    rows = _rows(run, hosts)
    phases = [p for p in run.phases if p.host in rows]
    if not phases:
        return ""
    t0 = min([utc(run.started_at), *(utc(p.started_at) for p in phases)])
    ends = [utc(t) for p in phases for t in (p.started_at, p.ended_at) if t is not None]
    t_end = max([*ends, *([utc(run.ended_at)] if run.ended_at else [])])
    top, step = elapsed_axis(max((t_end - t0).total_seconds(), 1.0))
    plot = T_WIDTH - T_LABEL - T_RIGHT

    def x(t: dt.datetime) -> float:
        return T_LABEL + plot * (utc(t) - t0).total_seconds() / top

    axis_y = T_HEAD + T_ROW * len(rows)
    height = axis_y + T_AXIS
    out = [
        f'<svg class="timeline" viewBox="0 0 {T_WIDTH} {height}" width="{T_WIDTH}" height="{height}" role="img" '
        f'aria-label="rollout timeline, run {run.id}">'
    ]
    for i in range(round(top / step) + 1):
        tx = T_LABEL + plot * i * step / top
        grid = "#8c959f" if i == 0 else "#eaeef2"
        out.append(
            f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{T_HEAD - 2}" y2="{axis_y + 4}" stroke="{grid}"/>'
            f'<text class="muted" x="{tx:.1f}" y="{axis_y + 17}" text-anchor="middle">{elapsed(i * step, step)}</text>'
        )
    out.append(f'<text class="muted" x="6" y="{axis_y + 17}">time since start</text>')
    waves_of: dict[str | None, set[int]] = {}
    for p in phases:
        if p.wave is not None:
            waves_of.setdefault(p.host, set()).add(p.wave)
    for i, host in enumerate(rows):
        y = T_HEAD + i * T_ROW
        if i % 2:
            out.append(f'<rect x="0" y="{y}" width="{T_WIDTH}" height="{T_ROW}" fill="#f6f8fa"/>')
        name = "run" if host is None else host
        cut = name if len(name) <= 22 else name[:21] + "…"
        tag = ",".join(f"w{w}" for w in sorted(waves_of.get(host, ())))
        out.append(
            f'<g class="row" data-host="{_e(host or "")}"><svg x="0" y="{y}" width="{T_LABEL - 34}" height="{T_ROW}">'
            f'<text class="name{" muted" if host is None else ""}" x="6" y="16">'
            f"<title>{_e(name)}</title>{_e(cut)}</text></svg>"
            f'<text class="tag" x="{T_LABEL - 8}" y="{y + 16}" text-anchor="end">{tag}</text></g>'
        )
        mine = sorted((p for p in phases if p.host == host), key=lambda p: p.status in ("failed", "unfinished"))
        for p in mine:  # flagged bars last: their flags stay on top
            end = p.ended_at if p.ended_at is not None else t_end
            out.append(_bar(p, y, x(p.started_at), x(end), p.seconds))
    out.extend(_waves(phases, run.waves, x, axis_y))
    out.append("</svg>")
    return "".join(out)


def wave_label(wave: int, names: Sequence[str] = ()) -> str:
    """``wave 0 · canary``, ``wave 1``, ``wave 2 · batch3``: the number, then the wave's name
    (``RunRecord.waves``) where it says more than the number."""
    name = names[wave] if 0 <= wave < len(names) else ""
    if wave == 0:
        return "wave 0 · canary" + (f" ({name})" if name and name != "canary" else "")
    return f"wave {wave}" + (f" · {name}" if name and name != f"wave{wave}" else "")


def _waves(phases: Sequence[Phase], names: Sequence[str], x, axis_y: float) -> list[str]:
    """Each wave's boundary: a dashed line at its first phase's start, labelled at the top."""
    starts: dict[int, dt.datetime] = {}
    for p in phases:
        if p.wave is not None:
            starts[p.wave] = min(starts.get(p.wave, utc(p.started_at)), utc(p.started_at))
    out = []
    for i, (wave, at) in enumerate(sorted(starts.items())):
        wx = x(at)
        label = _e(wave_label(wave, names))
        out.append(
            f'<g class="wave" data-wave="{wave}"><line x1="{wx:.1f}" x2="{wx:.1f}" y1="{2 if i % 2 else 14}" '
            f'y2="{axis_y}" stroke="#1f2328" stroke-width="1.2" stroke-dasharray="5 3"/>'
            f'<text class="wave" x="{wx + 4:.1f}" y="{11 if i % 2 else 25}">{label}</text></g>'
        )
    return out
