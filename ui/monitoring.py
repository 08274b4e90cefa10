"""Pieces of the monitoring page: the cached report, its tables and charts, and the reviews panel.

The report is cached on the store's change marker like `ui.data`, and for at most a minute besides:
the model server writes requests without marking the store changed (it writes several times a second),
so new requests show within a minute, or at once with Refresh.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pandas as pd
import streamlit as st

import tracking
from tracking.explore import escape_markdown, text
from tracking.governance import Action, UserRecord, why_not
from tracking.production import (
    Drift,
    MonitoringReport,
    ReviewRecord,
    close_review,
    list_reviews,
    monitor,
    open_review,
    review_blockers,
)
from tracking.store import utcnow
from ui.data import get_store, marker
from ui.explore import error_box
from ui.registry import WORDS, number, reasons, when

WINDOWS = {"1h": ("the last hour", 1), "24h": ("the last 24 hours", 24), "7d": ("the last 7 days", 24 * 7),
           "30d": ("the last 30 days", 24 * 30)}  # fmt: skip
DEFAULT_WINDOW = "7d"
TESTS = {"ks": "KS", "chi2": "χ²"}
DRIFT_COLORS = {True: "#c62828", False: "#2e7d32"}


# -- cached reads ------------------------------------------------------------------------------------


@st.cache_data(show_spinner="Comparing the recent requests with the training data…", max_entries=16, ttl=60)
def _report(url: str, change: int, model: str, hours: int) -> MonitoringReport:
    return monitor(get_store(), model, since=utcnow() - timedelta(hours=hours))


def cached_report(model: str, window: str) -> MonitoringReport | str:
    """The model's monitoring report over the window, or the one sentence why there is none."""
    try:
        return _report(get_store().url, marker(), model, WINDOWS[window][1])
    except tracking.TrackingError as err:
        return str(err)


def refresh() -> None:
    """Forget the cached reports, so the newest requests are read now."""
    _report.clear()


@st.cache_data(show_spinner=False, max_entries=16)
def _reviews(url: str, change: int, model: str) -> list[ReviewRecord]:
    return list_reviews(get_store(), model=model)


def cached_reviews(model: str) -> list[ReviewRecord]:
    """The reviews of every version of a registered model, newest first."""
    return _reviews(get_store().url, marker(), model)


# -- the report ----------------------------------------------------------------------------------------


def breach_banner(report: MonitoringReport) -> None:
    """The alerts at the top of the page: one line per breach, or that all is well."""
    if report.breaches:
        count = len(report.breaches)
        lines = "\n".join(f"- {escape_markdown(b.sentence)}" for b in report.breaches)
        st.error(f"**{count} alert{'s' if count != 1 else ''} for {escape_markdown(report.label)}**\n\n{lines}",
                 icon=":material/warning:")  # fmt: skip
    elif report.features or report.quality:
        st.success(f"No alerts for {escape_markdown(report.label)}: no drift and no quality bound crossed.",
                   icon=":material/check_circle:")  # fmt: skip
    for note in report.notes:
        st.caption(f":material/info: {escape_markdown(note)}")


def serving_metrics(report: MonitoringReport) -> None:
    """Requests, rows, error rate and latency of the monitored version, as metrics in a row."""
    s = report.serving
    cols = st.columns(5)
    cols[0].metric("Requests", f"{s.requests:,}")
    cols[1].metric("Rows predicted", f"{s.rows:,}")
    cols[2].metric("Errors", f"{s.errors / s.requests:.1%}" if s.requests else "—")
    cols[3].metric("Mean latency", f"{s.latency_mean_ms:.1f} ms" if s.requests else "—")
    cols[4].metric("Worst latency", f"{s.latency_max_ms:.1f} ms" if s.requests else "—")


def serving_figure(report: MonitoringReport) -> Any:
    """Requests (and errors) per minute above the mean and worst latency, per version."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                           subplot_titles=("Requests per minute", "Latency (ms)"))  # fmt: skip
    frame = pd.DataFrame([vars(m) for m in report.serving.minutes])
    for version_id, part in frame.groupby("version_id"):
        name = "this version" if version_id == report.version_id else f"version id {version_id}"
        figure.add_trace(go.Bar(x=part["minute"], y=part["requests"] - part["errors"], name=f"{name}: served"), 1, 1)
        if part["errors"].any():
            figure.add_trace(go.Bar(x=part["minute"], y=part["errors"], name=f"{name}: errors"), 1, 1)
        figure.add_trace(go.Scatter(x=part["minute"], y=part["latency_mean_ms"], name=f"{name}: mean latency",
                                    mode="lines+markers"), 2, 1)  # fmt: skip
        figure.add_trace(go.Scatter(x=part["minute"], y=part["latency_max_ms"], name=f"{name}: worst latency",
                                    mode="lines", line={"dash": "dot"}), 2, 1)  # fmt: skip
    figure.update_layout(barmode="stack", height=420, margin={"t": 40, "b": 20}, legend={"orientation": "h"})
    return figure


def drifted_mark(drift: Drift) -> str:
    return "⚠ drifted" if drift.drifted else "✓ stable"  # text symbols: emoji draw as boxes without an emoji font


def drift_frame(report: MonitoringReport) -> pd.DataFrame:
    """One row per feature: its type, PSI, the test's p-value, the thresholds and the verdict."""
    return pd.DataFrame(
        [{"feature": d.name, "type": d.kind, "PSI": round(d.psi, 4), "test": TESTS[d.test],
          "p-value": f"{d.pvalue:.2g}", "alert when": f"PSI ≥ {d.psi_threshold:g} and p < {d.pvalue_threshold:g}",
          "drifted": drifted_mark(d), "recent rows": d.n_recent}
         for d in sorted(report.features, key=lambda d: -d.psi)]
    )  # fmt: skip


def psi_figure(report: MonitoringReport) -> Any:
    """PSI per feature as bars (red where drifted), with the policy's PSI threshold as a line."""
    import plotly.graph_objects as go

    features = sorted(report.features, key=lambda d: -d.psi)
    figure = go.Figure(go.Bar(x=[text(d.name) for d in features], y=[d.psi for d in features],
                              marker_color=[DRIFT_COLORS[d.drifted] for d in features]))  # fmt: skip
    figure.add_hline(y=report.thresholds["psi"], line_dash="dash", annotation_text="PSI threshold")
    figure.update_layout(title="Population stability index per feature", height=320, margin={"t": 50, "b": 20},
                         yaxis_title="PSI")  # fmt: skip
    return figure


def distribution_figure(drift: Drift, title: str) -> Any:
    """The training and the recent shares of each bin (or category) side by side."""
    import plotly.graph_objects as go

    bins = [text(b) for b in drift.bins]
    figure = go.Figure([go.Bar(x=bins, y=drift.training_share, name="training rows"),
                        go.Bar(x=bins, y=drift.recent_share, name="recent requests")])  # fmt: skip
    figure.update_layout(title=title, barmode="group", height=320, margin={"t": 50, "b": 20}, yaxis_tickformat=".0%")
    return figure


def prediction_sentence(drift: Drift) -> str:
    what = "predicted classes" if drift.kind == "categorical" else "predicted values"
    verdict = "have **drifted**" if drift.drifted else "are **stable**"
    return (
        f"The {what} of the last {drift.n_recent:,} rows {verdict} against the model's predictions on its training "
        f"rows: PSI {drift.psi:.3f}, {TESTS[drift.test]} p-value {drift.pvalue:.2g} (alert when PSI ≥ "
        f"{drift.psi_threshold:g} and p < {drift.pvalue_threshold:g})."
    )


def quality_frame(report: MonitoringReport) -> pd.DataFrame:
    """Each metric on the labelled requests, the held-out score, the policy's bound and the verdict."""
    rows = []
    for q in report.quality:
        bound = "—" if q.threshold is None else f"{'≥' if q.direction == 'maximize' else '≤'} {q.threshold:g}"
        verdict = "—" if q.threshold is None or not math.isfinite(q.value) else "⚠ breached" if q.breached else "✓ met"
        rows.append({"metric": WORDS.get(q.metric, q.metric), "on labelled requests": number(q.value),
                     "held-out": number(q.held_out), "policy bound": bound, "verdict": verdict})  # fmt: skip
    return pd.DataFrame(rows)


# -- reviews -------------------------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=32)
def _review_blockers(url: str, change: int, version_id: int, user: UserRecord) -> list[str]:
    return review_blockers(get_store(), user, version_id)


def review_panel(report: MonitoringReport | None, version_id: int, label: str, model: str, user: UserRecord) -> None:
    """Open a review of the monitored version (with the report's findings); the open reviews, with Close."""
    reviews = cached_reviews(model)
    blocked = _review_blockers(get_store().url, marker(), version_id, user)
    with st.form(f"open_review_{version_id}"):
        reasons(blocked)  # first: the form below is disabled
        reason = st.text_area("Reason", disabled=bool(blocked), placeholder="What needs a look, and why")
        submitted = st.form_submit_button(f"Open a review of {escape_markdown(label)}", icon=":material/rate_review:",
                                          disabled=bool(blocked))  # fmt: skip
    if submitted:
        try:
            open_review(get_store(), version_id, reason, report.findings() if report else None, actor=user)
            st.rerun()
        except tracking.TrackingError as err:
            error_box(err)
    opened = [r for r in reviews if r.status == "open"]
    if not opened:
        st.caption("No open reviews.")
    close_blocked = why_not(user, Action.review_close)
    for review in opened:
        with st.container(border=True):
            st.markdown(f"**Review {review.id} of {escape_markdown(review.label)}**, opened by {escape_markdown(review.opened_by)} on "
                        f"{when(review.created_at)}: {escape_markdown(review.reason)}")  # fmt: skip
            for breach in review.findings.get("breaches", []):
                st.caption(f":material/warning: {escape_markdown(breach.get('sentence', ''))}")
            comment = st.text_input("Closing comment", key=f"review_comment_{review.id}", disabled=bool(close_blocked))
            if st.button("Close review", key=f"close_review_{review.id}", disabled=bool(close_blocked)):
                try:
                    close_review(get_store(), review.id, comment, actor=user)
                    st.rerun()
                except tracking.TrackingError as err:
                    error_box(err)
            reasons([close_blocked] if close_blocked else [])
    closed = [r for r in reviews if r.status == "closed"]
    if closed:
        with st.expander(f"Closed reviews ({len(closed)})"):
            st.dataframe(pd.DataFrame([{"review": r.id, "version": r.label, "opened by": r.opened_by,
                                        "reason": r.reason, "closed by": r.closed_by, "closed": r.closed_at,
                                        "comment": r.comment} for r in closed]), hide_index=True)  # fmt: skip
