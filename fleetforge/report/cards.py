"""One host's card on the fleet report: ``<article class="card" data-host=… data-state=…>``.

Card shape: a header (name, verify state badge, last deploy badge, groups); a hardware list
(vCPUs, RAM, disks, virtualization, firmware, OS, kernel, from the newest record that has it);
the last deploy (when, who, status, dry or not, what changed); the drift chart and the newest
verify's failing and warning checks (expected vs actual); the warnings; and the plan, one row per
value with its reason and source (``<details class="plan">``, the sources counted in its summary).

Everything from a record (host names, check items and values, errors, plan values, reasons and
sources, warnings, users) is untrusted and HTML-escaped here, attributes included.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from fleetforge.measure.report_svg import esc as _e
from fleetforge.report.fleet import HostView, Seen, when
from fleetforge.report.svg import drift_chart
from fleetforge.runs.models import Hardware

#: the text (with a symbol, so it reads without colour) of each verify state
STATE_LABELS = {
    "ok": "✓ verify ok",
    "warn": "▲ verify warning",
    "fail": "✕ verify failing",
    "unreachable": "□ unreachable at verify",
    "unverified": "– never verified",
}
_PLANNED_KEYS = {"value", "reason", "source"}


def size(n: int) -> str:
    """Bytes as ``512 MiB``, ``1.9 GiB``, ``40 GiB``, ``1.8 TiB``; a size past what a float holds
    (a host's answer, any ``int`` a record may hold) as ``9.09e+387 TiB``."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale if n < 2**1000 else Decimal(n) / scale:.3g} {unit}"
    return f"{n} B"


def _hardware(seen: Seen | None) -> str:
    if seen is None or seen.record.hardware is None:
        return '<p class="none">hardware: not probed yet</p>'
    hw: Hardware = seen.record.hardware
    disks = [
        f"{d.name} {size(d.size_bytes)} {d.transport}{' rotational' if d.rotational else ''}" for d in hw.disks
    ] or ["none recorded"]
    items = [
        ("vCPUs", str(hw.logical_cpus)),
        ("RAM", size(hw.mem_total_bytes)),
        ("disks", ", ".join(disks)),
        ("virtualization", hw.virtualization or "none detected"),
        ("firmware", hw.firmware or "unknown"),
        ("OS", hw.os or "unknown"),
        ("kernel", hw.kernel or "unknown"),
    ]
    rows = "".join(f'<div><dt>{k}</dt><dd data-key="{k}">{_e(v)}</dd></div>' for k, v in items)
    return f'<dl class="meta hw">{rows}</dl><p class="from">hardware {_from(seen)}</p>'


def _from(seen: Seen) -> str:
    return f"from {_e(seen.run.command)} run #{seen.run.id} · {when(seen.at)}"


def _deploy(view: HostView) -> str:
    seen = view.deploy
    if seen is None:
        return '<div class="deploy"><h4>Last deploy</h4><p class="none">never deployed</p></div>'
    run, rec = seen.run, seen.record
    dry = "dry run (nothing changed on purpose)" if run.dry else "real"
    facts = [
        ("when", when(seen.at)),
        ("who", run.user),
        ("status", rec.status),
        ("kind", f"{run.command} · {dry}"),
        ("target", run.target or "–"),
    ]
    out = [f'<div class="deploy" data-status="{_e(rec.status)}" data-dry="{str(run.dry).lower()}"><h4>Last deploy</h4>']
    out.append('<dl class="meta">' + "".join(f"<div><dt>{k}</dt><dd>{_e(v)}</dd></div>" for k, v in facts) + "</dl>")
    if rec.error:
        out.append(f'<p class="error">✕ {_e(rec.error)}</p>')
    if rec.changed:
        out.append('<p>changed:</p><ul class="changed">' + "".join(f"<li>{_e(c)}</li>" for c in rec.changed) + "</ul>")
    elif not run.dry:
        out.append('<p class="none">nothing changed</p>')
    if view.real_deploy is not None:
        real = view.real_deploy
        out.append(
            f'<p class="from">last real deploy: {when(real.at)} by {_e(real.run.user)}, {_e(real.record.status)}</p>'
        )
    out.append("</div>")
    return "".join(out)


def _verify(view: HostView, span: tuple[dt.datetime, dt.datetime] | None) -> str:
    out = ['<div class="verify"><h4>Verify and drift</h4>']
    if span is not None and view.drift:
        deploys = []
        if view.deploy is not None and not view.deploy.run.dry:
            deploys.append((view.deploy.at, f"deploy run #{view.deploy.run.id} · {when(view.deploy.at)}"))
        if view.real_deploy is not None:
            deploys.append(
                (view.real_deploy.at, f"deploy run #{view.real_deploy.run.id} · {when(view.real_deploy.at)}")
            )
        out.append(drift_chart(view.drift, span, deploys))
        counts = Counter(m.mark for m in view.drift)
        out.append(f'<p class="from">{len(view.drift)} verifies: ' + ", ".join(f"{n} {k}" for k, n in counts.items()))
        if since := _streak(view):
            out.append(f" · <b>not ok since {when(since)}</b>")
        out.append("</p>")
    seen = view.verify
    if seen is None:
        out.append('<p class="none">no verify recorded</p></div>')
        return "".join(out)
    rec = seen.record
    out.append(f'<p class="from">newest verify {_from(seen)}: {_e(rec.status)}</p>')
    if rec.error:
        out.append(f'<p class="error">✕ {_e(rec.error)}</p>')
    bad = [c for c in rec.checks if c.severity != "ok"]
    if bad:
        out.append('<table class="checks"><tr><th>check</th><th>expected</th><th>actual</th><th>result</th></tr>')
        for c in bad:
            sign = "✕ fail" if c.severity == "fail" else "▲ warn"
            actual = "(missing)" if c.actual is None else c.actual
            out.append(
                f'<tr class="{c.severity}"><td>{_e(c.item)}</td><td>{_e(c.expected)}</td>'
                f"<td>{_e(actual)}</td><td>{sign}</td></tr>"
            )
        out.append("</table>")
    elif rec.checks:
        out.append(f'<p class="ok">✓ all {len(rec.checks)} checks pass</p>')
    out.append("</div>")
    return "".join(out)


def _streak(view: HostView) -> dt.datetime | None:
    """When the current run of non-ok verifies began, or ``None`` when the newest is ok."""
    since = None
    for m in reversed(view.drift):
        if m.mark == "ok":
            break
        since = m.at
    return since


def _warnings(view: HostView) -> str:
    found = list(view.latest.record.warnings) if view.latest is not None else []
    lines = [*found, *view.notes]
    if not lines:
        return ""
    items = "".join(f"<li>▲ {_e(w)}</li>" for w in lines)
    return f'<div class="warnings"><h4>Warnings</h4><ul>{items}</ul></div>'


def planned_rows(plan: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """``(item, value, reason, source)`` of every planned value: as ``fleetforge plan`` lists them
    when ``plan`` is a valid ``TuningPlan`` JSON, else every ``{"value", "reason", "source"}``
    object found in it, named by its path."""
    from pydantic import ValidationError

    from fleetforge import components
    from fleetforge.models import TuningPlan

    try:
        parsed = TuningPlan.model_validate(plan)
    except ValidationError:
        return list(_walk(plan, ()))
    return [tuple(str(c) for c in row) for row in components.rows(parsed, lambda key: False)]


def _walk(node: Any, path: tuple[str, ...]) -> Iterator[tuple[str, str, str, str]]:
    if isinstance(node, dict):
        if _PLANNED_KEYS <= node.keys():
            yield " · ".join(path) or "value", str(node["value"]), str(node["reason"]), str(node["source"])
            return
        for key, value in node.items():
            yield from _walk(value, (*path, str(key)) if key != "value" else path)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            label = next(
                (str(item[k]) for k in ("name", "key", "fsid") if isinstance(item, dict) and k in item), str(i)
            )
            yield from _walk(item, (*path[:-1], f"{path[-1]} {label}" if path else label))


def source_kind(source: str) -> str:
    """What kind of source a planned value has: host data, measured, fleetforge default,
    detected, or documented (a document a person can open)."""
    low = source.lower()
    if low.startswith("host data"):
        return "host data"
    if low.startswith("measured"):
        return "measured"
    if "fleetforge default" in low:
        return "fleetforge default"
    if low.startswith("detected"):
        return "detected"
    return "documented"


def _plan(seen: Seen | None) -> str:
    if seen is None or seen.record.plan is None:
        return '<p class="none">plan: none recorded</p>'
    rows = planned_rows(seen.record.plan)
    kinds = Counter(source_kind(r[3]) for r in rows)
    summary = f"plan: {len(rows)} values · sources: " + (
        ", ".join(f"{n} {k}" for k, n in kinds.most_common()) or "none"
    )
    body = "".join(
        f'<tr data-source="{_e(source_kind(s))}"><td>{_e(i)}</td><td>{_e(v)}</td><td>{_e(r)}</td>'
        f'<td><span class="kind">{_e(source_kind(s))}</span> {_e(s)}</td></tr>'
        for i, v, r, s in rows
    )
    return (
        f'<details class="plan"><summary>{_e(summary)} <span class="from">({_from(seen)})</span></summary>'
        f"<table><tr><th>item</th><th>value</th><th>reason</th><th>source</th></tr>{body}</table></details>"
    )


def card(view: HostView, span: tuple[dt.datetime, dt.datetime] | None) -> str:
    """The host's card (see the module docstring); ``span``: the drift charts' shared time axis."""
    state = view.state
    badges = [f'<span class="badge {state}">{STATE_LABELS[state]}</span>']
    if view.deploy is not None:
        rec = view.deploy.record
        dry = " (dry)" if view.deploy.run.dry else ""
        badges.append(f'<span class="badge deploy">deploy: {_e(rec.status)}{dry} · {when(view.deploy.at)}</span>')
    if not view.in_inventory:
        badges.append('<span class="badge warn">records only</span>')
    groups = f'<span class="groups">groups: {_e(", ".join(view.groups))}</span>' if view.groups else ""
    return (
        f'<article class="card" id="host-{_e(view.name)}" data-host="{_e(view.name)}" data-state="{state}">'
        f"<header><h3>{_e(view.name)}</h3>{''.join(badges)}{groups}</header>"
        f'<div class="cols"><div>{_hardware(view.hardware)}{_deploy(view)}</div>'
        f"<div>{_verify(view, span)}{_warnings(view)}</div></div>{_plan(view.plan)}</article>"
    )


def cards(views: Sequence[HostView], span: tuple[dt.datetime, dt.datetime] | None) -> str:
    return "".join(card(v, span) for v in views)
