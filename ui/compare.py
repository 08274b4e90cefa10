"""Pieces of the compare page: the side-by-side and champion/challenger tables, and the share panel."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import streamlit as st

import tracking
from tracking.explore import (
    CompareView,
    Comparison,
    ReportRecord,
    champion_challenger,
    comparison_csv,
    comparison_json,
    escape_markdown,
    number_text,
    params_changed,
    report_html,
    save_report,
    update_report,
)
from tracking.governance import Action, UserRecord, why_not
from ui.data import get_store
from ui.explore import error_box

# translucent tints: the light and the dark theme's text both stay readable on them
DIFF_BACKGROUND = "background-color: rgba(255, 189, 69, 0.25)"
BEST_STYLE = "background-color: rgba(33, 195, 84, 0.3); font-weight: 700"
BETTER_STYLE = "color: #1a7a3a; font-weight: 600"
WORSE_STYLE = "color: #b3261e; font-weight: 600"


def seed_choice(key: str, options: Sequence[Any], wanted: Any, multi: bool = False) -> None:
    """Start a select widget on `wanted`, and put it back there when its value left the options."""
    current = st.session_state.get(key)
    if multi:
        valid = isinstance(current, list) and all(v in options for v in current)
        if not valid:
            st.session_state[key] = [v for v in (wanted or []) if v in options]
    elif current not in options:
        st.session_state[key] = wanted if wanted in options else (options[0] if options else None)


def side_by_side_table(comparison: Comparison, only_differences: bool) -> None:
    """Fields down, runs across; rows that differ are tinted, each metric's best value is green and starred."""
    rows = [row for row in comparison.rows if row.differs or not only_differences]
    if not rows:
        st.info("These runs do not differ in any field.")
        return
    way = {"maximize": " ↑", "minimize": " ↓"}
    data = [[number_text(v) + (" ★" if i in row.best else "") for i, v in enumerate(row.values)] for row in rows]
    index = [
        ("duration (s)" if row.field == "duration" else row.field) + way.get(row.direction or "", "") for row in rows
    ]
    frame = pd.DataFrame(data, columns=comparison.short_labels, index=index)

    def style(column: pd.Series) -> list[str]:
        at = comparison.short_labels.index(column.name)
        return [BEST_STYLE if at in row.best else DIFF_BACKGROUND if row.differs else "" for row in rows]

    st.dataframe(
        frame.style.apply(style, axis=0),
        height=min(38 + 35 * len(rows), 800),
        column_config={"_index": st.column_config.TextColumn("field", pinned=True), **run_columns(comparison)},
    )
    st.caption("Tinted rows differ between runs. ★ marks a metric's best value (↑ higher is better, ↓ lower).")


def deltas_table(comparison: Comparison, baseline: int) -> None:
    """Each challenger's metrics minus the baseline's, green when better and red when worse."""
    deltas = champion_challenger(comparison, baseline)
    labels = dict(zip(comparison.ids, comparison.short_labels, strict=True))
    challengers = [labels[i] for i in comparison.ids if i != baseline]
    metrics = comparison.fields("metrics")
    if not metrics:
        st.info("These runs have no metrics to compare.")
        return
    cells = {(labels[d.run_id], d.key): d for d in deltas}
    base = {m: comparison.values(m)[comparison.ids.index(baseline)] for m in metrics}
    text = [[number_text(base[m])] + [_delta_text(cells.get((c, m))) for c in challengers] for m in metrics]
    frame = pd.DataFrame(text, index=metrics, columns=["baseline", *challengers])

    def style(column: pd.Series) -> list[str]:
        if column.name == "baseline":
            return [""] * len(metrics)
        verdicts = [cells.get((column.name, m)) for m in metrics]
        return [
            BETTER_STYLE if d and d.verdict == "better" else WORSE_STYLE if d and d.verdict == "worse" else ""
            for d in verdicts
        ]

    st.dataframe(frame.style.apply(style, axis=0), height=min(38 + 35 * len(metrics), 600),
                 column_config=run_columns(comparison))  # fmt: skip
    full = dict(zip(comparison.ids, comparison.labels, strict=True))
    changed = params_changed(comparison, baseline)
    st.markdown(
        "**Params changed against the baseline**\n\n"
        + "\n".join(
            f"- {escape_markdown(full[i])}: {escape_markdown(', '.join(keys) or 'none')}" for i, keys in changed.items()
        )
    )


def run_columns(comparison: Comparison) -> dict[str, Any]:
    """Column heads of the runs: the name cut short (unique by its id), the full name on hover."""
    return {
        short: st.column_config.TextColumn(short, help=escape_markdown(full))
        for short, full in zip(comparison.short_labels, comparison.labels, strict=True)
    }


def _delta_text(delta: Any) -> str:
    if delta is None or delta.delta is None:
        return ""
    relative = f" ({delta.relative:+.1%})" if delta.relative is not None else ""
    return ("+" if delta.delta >= 0 else "-") + number_text(abs(delta.delta)) + relative


def share_panel(
    comparison: Comparison, view: CompareView, report: ReportRecord | None, live_url: str | None, user: UserRecord
) -> None:
    """The address of this view, the HTML report (title and notes) to download, and saving as a report (as `user`)."""
    st.markdown("**Link to this view** — anyone with access to the dashboard sees the same comparison:")
    st.code(live_url or "(copy the address from the browser's address bar)", language=None)
    st.session_state.setdefault("cmp_title", report.title if report else f"Comparison of {len(comparison.runs)} runs")
    st.session_state.setdefault("cmp_notes", report.notes if report else "")
    title = st.text_input("Report title", key="cmp_title", max_chars=200)
    notes = st.text_area(
        "Notes (markdown)", key="cmp_notes", height=140, placeholder="What should the reader take away?"
    )
    store = get_store()
    export, save, data = st.columns([1, 1, 2], vertical_alignment="bottom")
    export.download_button(
        "Export HTML report",
        lambda: report_html(store, view, title=title or "Comparison", notes=notes, live_url=live_url),
        file_name="comparison-report.html",
        mime="text/html",
        on_click="ignore",
        type="primary",
        icon=":material/description:",
        help="One file with the tables and charts that opens offline, without this server.",
    )
    label = "Update saved report" if report else "Save as report"
    cannot = why_not(user, Action.report_share)
    if save.button(label, icon=":material/bookmark_add:", disabled=bool(cannot),
                   help=escape_markdown(cannot) if cannot else None):  # fmt: skip
        try:
            if report:
                update_report(store, report.id, title=title, notes=notes, view=view, actor=user)
                st.toast(f"Report #{report.id} updated.")
            else:
                saved = save_report(store, title=title, notes=notes, view=view, actor=user)
                st.switch_page("pages/compare.py", query_params={**view.to_query(), "report": str(saved.id)})
        except tracking.TrackingError as err:
            error_box(err)
    with data:
        left, right = st.columns(2)
        left.download_button(
            "Table as CSV",
            lambda: comparison_csv(comparison, view.only_differences),
            file_name="comparison.csv",
            mime="text/csv",
            on_click="ignore",
        )
        right.download_button(
            "Runs as JSON",
            lambda: comparison_json(comparison),
            "comparison.json",
            "application/json",
            on_click="ignore",
        )
