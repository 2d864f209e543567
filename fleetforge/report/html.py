"""The fleet report: one static, self-contained HTML page of the fleet and its recorded runs.

Page shape, top to bottom: a heading and summary (inventory, hosts, runs, or "no runs recorded
yet"); a legend; **Fleet**, one ``<article class="card">`` per host (``fleetforge.report.cards``);
**Rollouts**, one ``<figure class="rollout" data-run=…>`` per rollout run (newest first, at most
``ROLLOUTS``) holding its timeline (``fleetforge.report.svg.timeline``); **Run history**, a
``<table class="runs">`` of runs (newest first, at most ``HISTORY_ROWS``); **Measured tuning**,
the measurement report's section (``fleetforge.measure.report.host_section``) of every host that
has stored results, or the error that kept them from being read.

The page runs no script and loads nothing: a Content-Security-Policy meta tag (the measurement
report's ``CSP``) allows only its own inline styles and ``data:`` images. Every text that comes
from a record, a host or the inventory is HTML-escaped.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from fleetforge.measure.report import CSP, STYLE, host_section
from fleetforge.measure.report import legend as measure_legend
from fleetforge.measure.report_svg import esc as _e
from fleetforge.measure.results import HostMeasurement, write_atomic
from fleetforge.report.cards import STATE_LABELS, cards
from fleetforge.report.fleet import HostView, drift_span, utc, when
from fleetforge.report.svg import DEPLOY_MARK, FAILED, PHASE_COLOURS, PHASE_LETTERS, shape, timeline
from fleetforge.runs.models import RunRecord

ROLLOUTS = 5
HISTORY_ROWS = 200

_FLEET_STYLE = """
h3{font-size:17px;margin:0;overflow-wrap:anywhere}
h4{font-size:14px;margin:10px 0 4px}
.summary{color:#424a53}
article.card{border:1px solid #d0d7de;border-radius:6px;padding:10px 14px;margin:12px 0}
article.card[data-state=fail]{border-left:6px solid #cf222e}
article.card[data-state=warn]{border-left:6px solid #bf8700}
article.card[data-state=unreachable]{border-left:6px solid #6e7781}
article.card header{display:flex;flex-wrap:wrap;align-items:baseline;gap:4px 10px}
.badge{font-size:12px;border:1px solid #d0d7de;border-radius:10px;padding:0 8px;background:#f6f8fa}
.badge.ok{color:#1a7f37;border-color:#1a7f37}.badge.fail{color:#cf222e;border-color:#cf222e;font-weight:700}
.badge.warn{color:#9a6700;border-color:#bf8700}.badge.unreachable{color:#59636e}
.groups,.from,.none{font-size:12px;color:#59636e}
.cols{display:flex;flex-wrap:wrap;gap:4px 28px}.cols>div{flex:1 1 500px;min-width:0}
dl.meta.hw{margin-top:8px}
.error{color:#cf222e;overflow-wrap:anywhere}
ul.changed,.warnings ul{margin:2px 0;padding-left:20px;font-size:13px;overflow-wrap:anywhere}
.warnings li{color:#9a6700}
svg.drift{display:block;max-width:100%;height:auto}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border-bottom:1px solid #eaeef2;padding:3px 8px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{color:#59636e;font-weight:600}
table.checks tr.fail td:last-child{color:#cf222e;font-weight:700}
table.checks tr.warn td:last-child{color:#9a6700}
table.checks td:last-child,table.checks th:last-child{white-space:nowrap;overflow-wrap:normal}
details.plan{margin-top:8px}
details.plan summary{cursor:pointer;font-size:13px}
.kind{font-size:11px;border:1px solid #d0d7de;border-radius:8px;padding:0 5px;white-space:nowrap}
figure.rollout{margin:14px 0;padding:10px 14px;border:1px solid #d0d7de;border-radius:6px}
figure.rollout svg{display:block;width:100%;height:auto}
svg text.letter{font-size:10px;font-weight:700}
svg .flag text{font-size:10px;font-weight:700}svg text.flag{font-size:13px;font-weight:700}
svg text.wave{font-size:11px;font-weight:600}
table.runs td.exit.bad{color:#cf222e;font-weight:700}
"""


def _swatch(colour: str, letter: str) -> str:
    return (
        f'<svg width="22" height="14" viewBox="0 0 22 14"><rect x="0" y="0" width="22" height="14" rx="2" '
        f'fill="{colour}"/><text x="11" y="11" text-anchor="middle" fill="#fff" font-size="10" '
        f'font-weight="700">{letter}</text></svg>'
    )


def _legend() -> str:
    """Phase colours and letters, the failed and wave marks, the verify marks' shapes."""
    phases = [f"{_swatch(c, PHASE_LETTERS[n])} {n}" for n, c in PHASE_COLOURS.items()]
    failed = (
        f'<svg width="34" height="16" viewBox="0 0 34 16"><rect x="1" y="3" width="22" height="12" fill="#0969da" '
        f'stroke="{FAILED}" stroke-width="2.5"/><circle cx="23" cy="7" r="6.5" fill="{FAILED}" stroke="#fff"/>'
        '<text x="23" y="10.5" text-anchor="middle" fill="#fff" font-size="10" font-weight="700">✕</text></svg>'
        " failed phase"
    )
    wave = (
        '<svg width="10" height="16" viewBox="0 0 10 16"><line x1="5" x2="5" y1="0" y2="16" stroke="#1f2328" '
        'stroke-dasharray="5 3"/></svg> wave starts (wave 0 = canary)'
    )
    marks = [
        f'<svg width="14" height="14" viewBox="0 0 14 14">{shape(m, 7, 7)}</svg> {STATE_LABELS[m].split(" ", 1)[1]}'
        for m in ("ok", "warn", "fail", "unreachable")
    ]
    diamond = f'<path d="M5 1l4 5l-4 5l-4 -5z" fill="{DEPLOY_MARK}"/>'
    deploy = f'<svg width="10" height="12" viewBox="0 0 10 12">{diamond}</svg> deploy'
    items = [*phases, failed, wave, *marks, deploy, "hover a bar or mark for details"]
    return '<div class="legend">' + "".join(f"<span>{i}</span>" for i in items) + "</div>"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{int(seconds) // 60} min {int(seconds) % 60:02d} s"


def _rollouts(runs: Sequence[RunRecord], hosts: set[str] | None, count: int) -> str:
    """The newest ``count`` rollout runs, each a titled timeline."""
    rollouts = [r for r in runs if r.command == "rollout"][::-1][:count]
    if not rollouts:
        return '<p class="none">no rollout recorded</p>'
    out = []
    for run in rollouts:
        exit_text = "unfinished" if run.exit_code is None else f"exit {run.exit_code}"
        caption = f"rollout run #{run.id} · {when(run.started_at)} · {run.user} · {run.target or '–'} · {exit_text}"
        caption += " · dry" if run.dry else ""
        drawn = timeline(run, hosts) or '<p class="none">no phases recorded</p>'
        out.append(
            f'<figure class="rollout" data-run="{run.id}"><figcaption>{_e(caption)}</figcaption>{drawn}</figure>'
        )
    return "".join(out)


def _hosts_cell(run: RunRecord) -> str:
    counts = Counter(h.status for h in run.hosts)
    return f"{len(run.hosts)}" + "".join(f" · {n} {s}" for s, n in counts.most_common())


def _history(runs: Sequence[RunRecord]) -> str:
    """The runs table, newest first (at most ``HISTORY_ROWS``)."""
    shown = list(runs)[::-1][:HISTORY_ROWS]
    head = "".join(f"<th>{c}</th>" for c in ("run", "started", "command", "target", "user", "hosts", "took", "exit"))
    rows = []
    for run in shown:
        code = "unfinished" if run.exit_code is None else str(run.exit_code)
        bad = " bad" if run.exit_code != 0 else ""
        command = run.command + (" (dry)" if run.dry else "")
        cells = [f"#{run.id}", when(run.started_at), command, run.target or "–", run.user, _hosts_cell(run)]
        rows.append(
            f'<tr data-run="{run.id}" data-command="{_e(run.command)}">'
            + "".join(f"<td>{_e(c)}</td>" for c in cells)
            + f'<td>{_duration(run.seconds)}</td><td class="exit{bad}">{_e(code)}</td></tr>'
        )
    more = f'<p class="none">the newest {HISTORY_ROWS} of {len(runs)} runs</p>' if len(runs) > HISTORY_ROWS else ""
    return f'<table class="runs"><tr>{head}</tr>{"".join(rows)}</table>{more}'


def _measured(views: Sequence[HostView], measurements: Mapping[str, HostMeasurement | str]) -> str:
    """The measurement report's section of each host with stored results, in the fleet's order."""
    parts = []
    for view in views:
        found = measurements.get(view.name)
        if isinstance(found, str):
            parts.append(f'<p class="error" data-host="{_e(view.name)}">✕ {_e(found)}</p>')
        elif found is not None:
            parts.append(host_section(found))
    if not parts:
        return '<p class="none">no measured tuning stored (fleetforge tune --measure)</p>'
    return measure_legend() + "".join(parts)


def render_fleet(
    views: Sequence[HostView],
    runs: Sequence[RunRecord],
    *,
    inventory: str,
    measurements: Mapping[str, HostMeasurement | str] | None = None,
    generated: dt.datetime | None = None,
    rollouts: int = ROLLOUTS,
    hosts: set[str] | None = None,
) -> str:
    """The fleet report as one HTML document.

    ``views``: the hosts (``fleetforge.report.fleet.fleet_view``); ``runs``: the runs to show,
    oldest first; ``inventory``: the inventory's path, shown in the summary; ``measurements``:
    ``{host: HostMeasurement or the error reading it}``; ``generated``: when the page is made (UTC,
    default now); ``rollouts``: how many rollout timelines; ``hosts``: draw only these hosts'
    rows in the timelines (``--limit``). Pure apart from reading the clock when ``generated`` is
    not given; raises nothing for valid models.
    """
    generated = utc(generated or dt.datetime.now(dt.UTC))
    n = len(views)
    recorded = f"{len(runs)} run{'s' * (len(runs) != 1)} recorded" if runs else "no runs recorded yet"
    summary = f"inventory {inventory} · {n} host{'s' * (n != 1)} · {recorded} · made {when(generated)}"
    states = Counter(v.state for v in views)
    glance = " · ".join(f"{count} {STATE_LABELS[s].split(' ', 1)[1]}" for s, count in states.most_common())
    body = [
        f'<h1>fleetforge fleet</h1><p class="summary">{_e(summary)}</p><p class="summary glance">{_e(glance)}</p>',
        _legend(),
        f'<h2 id="fleet">Fleet</h2>{cards(views, drift_span(views, runs)) or "<p>No hosts.</p>"}',
        f'<h2 id="rollouts">Rollouts</h2>{_rollouts(runs, hosts, rollouts)}',
        '<h2 id="runs">Run history</h2>' + (_history(runs) if runs else '<p class="none">no runs recorded yet</p>'),
        f'<h2 id="measured">Measured tuning</h2>{_measured(views, measurements or {})}',
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>fleetforge fleet</title><style>{STYLE}{_FLEET_STYLE}</style></head>\n<body>"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def write_fleet(page: str, path: str | Path) -> Path:
    """Write the rendered ``page`` to ``path`` atomically (temporary file in the same directory,
    fsynced, renamed over ``path``, directory fsynced; mode 0644) and return it as a ``Path``.
    Raises ``OSError`` when it cannot be written; an existing page stays as it was then."""
    return write_atomic(path, page)
