"""The report's panels (``fleetforge.measure.report``): inline SVG dot plots, drawn here.

A panel is a titled ``<div class="panel">`` holding one SVG: one row per ``Row``
(``<g class="cand">``), one dot per sample (``<circle>`` with a ``<title>`` tooltip: row name,
round, number, unit), the median as a vertical tick with its number at the right, and an axis
from 0 with a few labelled ticks. A ``chosen`` row has the class ``chosen``, a green band and
green dots; the others are slate blue. Numbers are shown with thousands separators and whole
units from 100 up, with 3 significant digits below 100.

Row names, tags, titles and units may come from a host: all of it is HTML-escaped here,
attributes included.
"""

from __future__ import annotations

import html
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 560  # SVG user units; drawn at about 1:1 in a panel 520-580 px wide
LABEL_W = 150  # row names and their tags
VALUE_W = 78  # medians, at the right
ROW_H = 34
HEAD_H = 16  # the "median" column header
AXIS_H = 26
MAX_NAME = 18  # longer row names are cut (the full name is in the tooltip)
CHOSEN, OTHER = "#1a7f37", "#4a5b7a"


@dataclass(frozen=True)
class Row:
    """One row of a panel: ``name`` (shown cut to ``MAX_NAME``, in full in tooltips and in
    ``data-candidate``), its samples as ``(round, number)``, small ``tags`` under the name
    (``"planned"``, ``"chosen"``), and whether it is the chosen row."""

    name: str
    points: Sequence[tuple[int, float]]
    tags: Sequence[str] = ()
    chosen: bool = False


def esc(text: object) -> str:
    """``text`` escaped for HTML text and quoted attribute values alike."""
    return html.escape(str(text), quote=True)


def fmt(value: float) -> str:
    """A sample's number: ``61,200`` from 100 up, 3 significant digits below (``0.912``)."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def tick(value: float) -> str:
    """An axis label: ``0``, ``20k``, ``1.5M``, ``0.5``."""
    if value >= 1e6:
        return f"{value / 1e6:g}M"
    if value >= 1e4:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def axis(maximum: float) -> tuple[float, float]:
    """``(top, step)`` of an axis from 0 covering ``maximum`` in 2-5 steps of 1, 2, 2.5 or 5
    times a power of ten (``(80000, 20000)`` for 61900); ``(1, 0.25)`` when all is 0."""
    if maximum <= 0:
        return 1.0, 0.25
    raw = maximum / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    return max(step, math.ceil(maximum / step - 1e-9) * step), step


def _x(value: float, top: float) -> float:
    """The SVG x of ``value`` on an axis from 0 to ``top``."""
    return LABEL_W + (WIDTH - VALUE_W - LABEL_W) * value / top


def _row(row: Row, unit: str, y: float, top: float) -> str:
    """One row of a panel: band and labels, dots, median tick and figure."""
    colour = CHOSEN if row.chosen else OTHER
    name = row.name if len(row.name) <= MAX_NAME else row.name[: MAX_NAME - 1] + "…"
    mid = y + ROW_H / 2
    out = [f'<g class="cand{" chosen" if row.chosen else ""}" data-candidate="{esc(row.name)}">']
    if row.chosen:
        band = f'x="0" y="{y:g}" width="{WIDTH}" height="{ROW_H}"'
        out.append(f'<rect {band} fill="{CHOSEN}" fill-opacity="0.11"/>')  # light: the grid shows through
    # the labels in a nested <svg>, which clips them: a wide name cannot run into the dots
    out.append(f'<svg x="0" y="{y:g}" width="{LABEL_W - 8}" height="{ROW_H}">')
    out.append(f'<text class="name" x="6" y="14"><title>{esc(row.name)}</title>{esc(name)}</text>')
    if row.tags:
        out.append(f'<text class="tag" x="6" y="27">{esc(" · ".join(row.tags))}</text>')
    out.append("</svg>")
    for rnd, v in row.points:
        tip = f"{row.name} · round {rnd}: {fmt(v)} {unit}"
        out.append(
            f'<circle cx="{_x(v, top):.1f}" cy="{mid + (rnd % 3 - 1) * 5:g}" r="4" fill="{colour}" '
            f'fill-opacity="0.6" stroke="{colour}"><title>{esc(tip)}</title></circle>'
        )
    if row.points:
        median = statistics.median(v for _, v in row.points)
        x = _x(median, top)
        out.append(
            f'<line class="median" x1="{x:.1f}" x2="{x:.1f}" y1="{mid - 12:g}" y2="{mid + 12:g}" '
            f'stroke="#111" stroke-width="2.5"><title>{esc(f"median {fmt(median)} {unit}")}</title></line>'
        )
        out.append(f'<text x="{WIDTH - 6}" y="{mid + 4:g}" text-anchor="end">{fmt(median)}</text>')
    else:
        out.append(f'<text class="muted" x="{LABEL_W + 8}" y="{mid + 4:g}">no samples</text>')
    out.append("</g>")
    return "".join(out)


def panel(rows: Sequence[Row], *, metric: str, title: str, unit: str, note: str, plan: bool = False) -> str:
    """A ``<div class="panel" data-metric=metric>``: heading ``title`` with a small ``note``
    (and "feeds the plan" if ``plan``), then the SVG dot plot of ``rows`` in ``unit``."""
    numbers = [v for r in rows for _, v in r.points]
    top, step = axis(max(numbers, default=0.0))
    feeds = ' <small class="plan">feeds the plan</small>' if plan else ""
    height = HEAD_H + ROW_H * len(rows) + AXIS_H
    axis_y = HEAD_H + ROW_H * len(rows)
    out = [
        f'<div class="panel" data-metric="{esc(metric)}"><h4>{esc(title)}<small>{esc(note)}</small>{feeds}</h4>',
        f'<svg viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="{esc(title)}">',
        f'<text class="muted" x="{WIDTH - 6}" y="11" text-anchor="end">median</text>',
    ]
    for i in range(round(top / step) + 1):
        tx = _x(i * step, top)
        grid = "#8c959f" if i == 0 else "#eaeef2"
        out.append(
            f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{HEAD_H}" y2="{axis_y + 4}" stroke="{grid}"/>'
            f'<text class="muted" x="{tx:.1f}" y="{axis_y + 17}" text-anchor="middle">{tick(i * step)}</text>'
        )
    out.append(f'<text class="muted" x="{WIDTH - 6}" y="{axis_y + 17}" text-anchor="end">{esc(unit)}</text>')
    out.extend(_row(r, unit, HEAD_H + i * ROW_H, top) for i, r in enumerate(rows))
    out.append("</svg></div>")
    return "".join(out)
