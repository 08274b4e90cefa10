"""Reports: a comparison as one self-contained HTML file, and saved comparisons in the store.

The HTML report opens offline from a file: Plotly's JavaScript is inlined once, nothing is fetched,
and a Content-Security-Policy allows only the report's own scripts (by their sha256) and no network.
Every piece of user text (title, notes, run names, keys, values, tags, the filter) is escaped; the
notes are markdown rendered by a small renderer that escapes first and only then adds emphasis,
code, lists, headings and http(s) links. Every chart is SVG (parallel coordinates too, see
`_report_charts`), so each draws without WebGL and without eval, and long text wraps: the report is
never wider than the window.

A saved report is a title, markdown notes and a `CompareView`; reopening it opens the live
comparison with the same runs and charts.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select

from tracking._errors import NotFoundError, ValidationError
from tracking.explore._compare import (
    MAX_COMPARE,
    CompareView,
    Comparison,
    champion_challenger,
    compare_runs,
    complete_view,
    histories,
    history_keys,
    params_changed,
    side_by_side,
)
from tracking.explore._compare_charts import view_figures
from tracking.explore._report_charts import charts_html
from tracking.governance import Action, UserRecord, authorize, record
from tracking.store import Report, Store, bump_change_counter, iso, utcnow

MAX_TITLE = 200
MAX_NOTES = 50_000
CHART_TITLES = {
    "history": "Metric history",
    "parallel": "Parallel coordinates",
    "scatter": "Scatter",
    "bar": "Metric by run",
    "delta": "Against the baseline",
}


@dataclass(frozen=True)
class ReportRecord:
    id: int
    title: str
    notes: str
    view: CompareView
    owner: str
    created_at: datetime
    updated_at: datetime


# -- saved reports -----------------------------------------------------------------------------------


def save_report(
    store: Store, *, title: str, view: CompareView, notes: str = "", owner: str = "", actor: UserRecord | None = None
) -> ReportRecord:
    """Store a titled comparison with markdown notes (shared by its link).

    Raises:
        ValidationError: an empty or too long title, too long notes, or no runs / too many runs.
        PermissionDenied: the actor may not share reports.
    """
    title, notes = _checked(title, notes, view)
    with store.session_scope(write=True) as session:
        who = authorize(session, actor, Action.report_share)
        row = Report(title=title, notes=notes, state=view.to_dict(), owner=who if actor is not None else (owner or who))
        session.add(row)
        session.flush()
        record(session, who, "report.share", "report", row.id, None, {"title": title, "view": row.state})
        bump_change_counter(session)
        return _record(row)


def update_report(
    store: Store,
    report_id: int,
    *,
    title: str | None = None,
    notes: str | None = None,
    view: CompareView | None = None,
    actor: UserRecord | None = None,
) -> ReportRecord:
    """Change a saved report's title, notes or view. Raises NotFoundError, ValidationError, PermissionDenied."""
    with store.session_scope(write=True) as session:
        who = authorize(session, actor, Action.report_share)
        row = session.get(Report, report_id)
        if row is None:
            raise NotFoundError(f"There is no report {report_id}.")
        before = {"title": row.title, "view": row.state}
        new_view = view or CompareView.from_dict(row.state)
        row.title, row.notes = _checked(
            row.title if title is None else title, row.notes if notes is None else notes, new_view
        )
        row.state, row.updated_at = new_view.to_dict(), utcnow()
        session.add(row)
        record(session, who, "report.update", "report", report_id, before, {"title": row.title, "view": row.state})
        bump_change_counter(session)
        session.flush()
        return _record(row)


def get_report(store: Store, report_id: int) -> ReportRecord:
    """One saved report. Raises NotFoundError."""
    with store.session_scope() as session:
        row = session.get(Report, report_id)
        if row is None:
            raise NotFoundError(f"There is no report {report_id}.")
        return _record(row)


def list_reports(store: Store) -> list[ReportRecord]:
    """Saved reports, most recently changed first."""
    with store.session_scope() as session:
        rows = session.execute(select(Report).order_by(Report.updated_at.desc(), Report.id.desc())).scalars()
        return [_record(row) for row in rows]


def delete_report(store: Store, report_id: int, actor: UserRecord | None = None) -> None:
    """Delete a saved report (its runs stay). Raises NotFoundError, PermissionDenied."""
    with store.connect(write=True) as conn:
        who = authorize(conn, actor, Action.report_share)
        title = conn.execute(select(Report.title).where(Report.id == report_id)).scalar()
        if title is None:
            raise NotFoundError(f"There is no report {report_id}.")
        conn.execute(delete(Report).where(Report.id == report_id))
        record(conn, who, "report.delete", "report", report_id, {"title": title}, None)
        bump_change_counter(conn)


def _checked(title: str, notes: str, view: CompareView) -> tuple[str, str]:
    title = (title or "").strip()
    if not title:
        raise ValidationError("A report needs a title.")
    if len(title) > MAX_TITLE:
        raise ValidationError(f"A report title holds at most {MAX_TITLE} characters.")
    if len(notes or "") > MAX_NOTES:
        raise ValidationError(f"Report notes hold at most {MAX_NOTES:,} characters.")
    if not 1 <= len(view.runs) <= MAX_COMPARE:
        raise ValidationError(f"A report compares 1 to {MAX_COMPARE} runs.")
    return title, notes or ""


def _record(row: Report) -> ReportRecord:
    return ReportRecord(
        row.id, row.title, row.notes, CompareView.from_dict(row.state), row.owner, row.created_at, row.updated_at
    )


def comparison_csv(comparison: Comparison, only_differences: bool = False) -> str:
    """The side-by-side table as CSV text (one column per run)."""
    out = io.StringIO()
    rows = side_by_side(comparison, only_differences)
    writer = csv.DictWriter(out, fieldnames=["field", *comparison.labels, "best"])
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, bool | dict | list) else v for k, v in row.items()})
    return out.getvalue()


def comparison_json(comparison: Comparison) -> str:
    """The compared runs as JSON: each run's record (as `runs --format json`) and every field's best."""
    best = {row.field: [comparison.ids[i] for i in row.best] for row in comparison.rows if row.best}
    directions = {f"metrics.{key}": way for key, way in comparison.directions.items()}
    data = {"runs": [run.to_json() for run in comparison.runs], "best": best, "directions": directions}
    return json.dumps(data, indent=1, ensure_ascii=False)


# -- the HTML export -------------------------------------------------------------------------------


def report_html(
    store: Store,
    view: CompareView,
    *,
    title: str,
    notes: str = "",
    live_url: str | None = None,
    generated_at: datetime | None = None,
) -> str:
    """The comparison as one self-contained HTML document (tables, charts, the filter, title, notes).

    Args:
        view: the runs and chart choices; open choices get the compare page's defaults.
        title: shown as the heading; plain text.
        notes: markdown.
        live_url: the address of the live comparison, shown as a link when it is http(s).
        generated_at: the time stamp printed in the report (default: now).

    Raises:
        ValidationError: no runs, or more than `MAX_COMPARE`.
    """
    comparison = compare_runs(store, view.runs)
    view = complete_view(comparison, view, history_keys(store, comparison.ids))
    points = histories(store, comparison.ids, view.history) if view.history else None
    figures = view_figures(comparison, view, points)
    body = [
        _header(title, comparison, view, live_url, generated_at or datetime.now(UTC)),
        f'<section class="notes">{markdown_html(notes)}</section>' if notes.strip() else "",
        _legend(),
        _runs_table(comparison),
        _side_by_side(comparison, view.only_differences),
        _deltas_table(comparison, view.baseline) if view.baseline is not None and len(comparison.runs) > 1 else "",
        charts_html(figures, CHART_TITLES, escape_html),
        "<footer>Made by the experiment-tracking dashboard. This file needs no server or network.</footer>",
    ]
    return html_document(title, "\n".join(part for part in body if part))


def html_document(title: str, body: str) -> str:
    scripts = re.findall(r"<script>(.*?)</script>", body, flags=re.DOTALL)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in scripts)
    # Only these exact scripts run, and no string becomes code (no 'unsafe-eval'): Plotly draws its SVG charts
    # under this policy (checked in Chromium); WebGL parallel coordinates would need eval, so the report draws
    # them as SVG (see `_report_charts`). Inline styles are Plotly's own way of drawing.
    allowed = hashes or "'none'"
    policy = (
        f"default-src 'none'; script-src {allowed}; style-src 'unsafe-inline'; "
        "img-src data: blob:; font-src data:; connect-src 'none'; form-action 'none'; base-uri 'none'"
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{html.escape(policy)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{escape_html(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
{body}
</body>
</html>
"""


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1200px;
  padding: 0 1rem; color: #222; line-height: 1.45; overflow-wrap: anywhere; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
.meta { color: #555; font-size: .92rem; } code { background: #f3f3f3; padding: 0 .25rem; border-radius: 3px; }
pre { background: #f6f6f6; padding: .6rem; overflow-x: auto; }
table { border-collapse: collapse; font-size: .88rem; margin: .6rem 0; display: block; overflow-x: auto; }
th, td { border: 1px solid #ddd; padding: .25rem .5rem; text-align: left; white-space: nowrap; vertical-align: top; }
th { background: #f5f5f5; } tr.diff td, tr.diff th { background: #fff8e1; }
td.best { background: #d9f2e3 !important; font-weight: 600; } td.better { color: #1a7a3a; font-weight: 600; }
td.worse { color: #b3261e; font-weight: 600; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.legend { font-size: .88rem; color: #444; background: #fafafa; border: 1px solid #eee; padding: .5rem .8rem; }
.swatch { display: inline-block; width: .9rem; height: .9rem; vertical-align: middle; border: 1px solid #ccc; }
.chart { margin: 1rem 0 2rem; } footer { margin-top: 3rem; color: #777; font-size: .85rem; }
"""


def escape_html(value: Any) -> str:
    """Any value as escaped HTML text (None as an empty cell)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return html.escape(f"{value:.6g}")
    return html.escape(str(value), quote=True)


def _header(title: str, comparison: Comparison, view: CompareView, live_url: str | None, when: datetime) -> str:
    facts = [f"Generated {escape_html(iso(when))}", f"{len(comparison.runs)} runs compared"]
    if view.filter.strip():
        facts.append(f"filter used: <code>{escape_html(view.filter)}</code>")
    if comparison.missing:
        facts.append(f"runs not found: {escape_html(', '.join(map(str, comparison.missing)))}")
    link = ""
    if live_url and re.match(r"https?://", live_url):
        link = f'<p class="meta">Live view: <a href="{escape_html(live_url)}" rel="noopener noreferrer">{escape_html(live_url)}</a></p>'
    return f'<header><h1>{escape_html(title)}</h1><p class="meta">{" · ".join(facts)}</p>{link}</header>'


def _legend() -> str:
    return (
        '<p class="legend">How to read this report: <span class="swatch" style="background:#fff8e1"></span> '
        'rows where the runs differ; <span class="swatch" style="background:#d9f2e3"></span> ★ the best value of '
        "a metric (higher or lower is better as noted); against the baseline, "
        '<span style="color:#1a7a3a;font-weight:600">green</span> is better and '
        '<span style="color:#b3261e;font-weight:600">red</span> worse.</p>'
    )


def _runs_table(comparison: Comparison) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("id", "name", "experiment", "sweep", "status", "dataset", "code version"))
    rows = []
    for run in comparison.runs:
        dataset = f"{run.dataset['name']}@{run.dataset['hash'][:8]}" if run.dataset else None
        cells = (run.id, run.name, run.experiment, run.sweep_id, run.status, dataset, (run.code_version or "")[:12])
        rows.append("<tr>" + "".join(f"<td>{escape_html(c)}</td>" for c in cells) + "</tr>")
    return f"<section><h2>Runs</h2><table><tr>{head}</tr>{''.join(rows)}</table></section>"


def _side_by_side(comparison: Comparison, only_differences: bool) -> str:
    head = "<th>field</th>" + "".join(f"<th>{escape_html(label)}</th>" for label in comparison.labels)
    rows = []
    for row in comparison.rows:
        if only_differences and not row.differs:
            continue
        way = {"maximize": " ↑", "minimize": " ↓"}.get(row.direction or "", "")
        cells = []
        for position, value in enumerate(row.values):
            best = position in row.best
            classes = " ".join(
                c for c in ("best" if best else "", "num" if isinstance(value, int | float) else "") if c
            )
            mark = " ★" if best else ""
            cells.append(
                f'<td class="{classes}">{escape_html(value)}{mark}</td>'
                if classes
                else f"<td>{escape_html(value)}</td>"
            )
        diff = ' class="diff"' if row.differs else ""
        rows.append(f"<tr{diff}><th>{escape_html(row.field)}{way}</th>{''.join(cells)}</tr>")
    shown = "only the fields that differ" if only_differences else "every field"
    return f'<section><h2>Side by side</h2><p class="meta">Showing {shown}.</p><table><tr>{head}</tr>{"".join(rows)}</table></section>'


def _deltas_table(comparison: Comparison, baseline: int) -> str:
    deltas = champion_challenger(comparison, baseline)
    labels = dict(zip(comparison.ids, comparison.labels, strict=True))
    metrics = comparison.fields("metrics")
    challengers = [i for i in comparison.ids if i != baseline]
    head = "<th>metric</th><th>baseline</th>" + "".join(f"<th>{escape_html(labels[i])}</th>" for i in challengers)
    by = {(d.run_id, d.key): d for d in deltas}
    rows = []
    for metric in metrics:
        base = comparison.values(metric)[comparison.ids.index(baseline)]
        cells = []
        for run_id in challengers:
            d = by.get((run_id, metric))
            if d is None or d.delta is None:
                cells.append("<td></td>")
                continue
            relative = f" ({d.relative:+.1%})" if d.relative is not None else ""
            verdict = f' class="num {d.verdict}"' if d.verdict in ("better", "worse") else ' class="num"'
            cells.append(f"<td{verdict}>{escape_html(f'{d.delta:+.4g}')}{escape_html(relative)}</td>")
        rows.append(f'<tr><th>{escape_html(metric)}</th><td class="num">{escape_html(base)}</td>{"".join(cells)}</tr>')
    changed = params_changed(comparison, baseline)
    changes = "".join(
        f"<li>{escape_html(labels[i])}: {escape_html(', '.join(changed[i]) or 'no param changed')}</li>"
        for i in challengers
    )
    return (
        f'<section><h2>Champion / challenger</h2><p class="meta">Baseline: {escape_html(labels[baseline])}. '
        f"Each cell is the challenger's value minus the baseline's.</p><table><tr>{head}</tr>{''.join(rows)}</table>"
        f'<p class="meta">Params changed against the baseline:</p><ul>{changes}</ul></section>'
    )


# -- markdown, safely -----------------------------------------------------------------------------

_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^\s)]+)\)")
_INLINE = [
    (re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])"), r"<em>\1</em>"),
    (re.compile(r"(?<!\w)_(?!\s)(.+?)(?<!\s)_(?!\w)"), r"<em>\1</em>"),
]


def markdown_html(text: str) -> str:
    """A safe subset of markdown as HTML: everything is escaped before any tag is added."""
    out: list[str] = []
    lines = (text or "").replace("\r\n", "\n").split("\n")
    paragraph: list[str] = []
    items: list[str] = []
    ordered = False
    i = 0

    def flush() -> None:
        nonlocal paragraph, items
        if paragraph:
            out.append("<p>" + "<br>".join(_inline(line) for line in paragraph) + "</p>")
            paragraph = []
        if items:
            tag = "ol" if ordered else "ul"
            out.append(f"<{tag}>" + "".join(f"<li>{_inline(item)}</li>" for item in items) + f"</{tag}>")
            items = []

    while i < len(lines):
        line = lines[i]
        if line.strip().startswith("```"):
            flush()
            block = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                block.append(lines[i])
                i += 1
            out.append(f"<pre><code>{html.escape(chr(10).join(block))}</code></pre>")
        elif heading := re.match(r"(#{1,6})\s+(.*)", line):
            flush()
            level = min(len(heading.group(1)) + 2, 6)  # the report's own h1/h2 stay above the notes
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif item := re.match(r"\s*([-*+]|\d+[.)])\s+(.*)", line):
            if paragraph or (items and ordered != item.group(1)[0].isdigit()):
                flush()
            ordered = item.group(1)[0].isdigit()
            items.append(item.group(2))
        elif not line.strip():
            flush()
        else:
            if items:
                flush()
            paragraph.append(line)
        i += 1
    flush()
    return "\n".join(out)


def _inline(text: str) -> str:
    out = []
    for part in re.split(r"(`[^`]+`|\[[^\]]+\]\(https?://[^\s)]+\))", text):
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
        elif link := _LINK.fullmatch(part):
            label, url = link.groups()
            out.append(f'<a href="{html.escape(url, quote=True)}" rel="noopener noreferrer">{_emphasis(label)}</a>')
        else:
            out.append(_emphasis(part))
    return "".join(out)


def _emphasis(text: str) -> str:
    escaped = html.escape(text, quote=True)
    for pattern, replacement in _INLINE:
        escaped = pattern.sub(replacement, escaped)
    return escaped
