"""Pieces of the pages about a model's life after training: monitoring alerts on Home, reproducing a run and
where a reproduced or retrained run came from on the run page, a version's alerts and reviews on its page.

Reads are cached on the store's change marker like `ui.data`. The alerts are cached for a minute on the
store alone: the model server logs requests without marking the store changed, and the Home page should
not re-measure drift (about a second per busy model) every time a sweep writes a metric.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

import tracking
from tracking.explore import escape_markdown, parse_ids
from tracking.governance import UserRecord
from tracking.production import (
    DEFAULT_TOLERANCE,
    ModelCard,
    ReproductionRecord,
    breach_summary,
    list_reproductions,
    reproduce_blockers,
    reproduce_run,
)
from tracking.store import RunRecord
from ui.data import get_store, marker
from ui.explore import error_box
from ui.registry import reasons, when

OUTCOME_COLORS = {"matched": "green", "differs": "orange", "failed": "red", "retrained": "green", "skipped": "gray"}
MAX_ALERTS = 8  # per model on Home; the Monitoring page lists them all


# -- cached reads ------------------------------------------------------------------------------------


@st.cache_data(show_spinner="Checking the models in production…", max_entries=4, ttl=60)
def _alerts(url: str) -> list[tuple[str, str]]:
    return breach_summary(get_store())


@st.cache_data(show_spinner=False, max_entries=32)
def _attempts(url: str, change: int, run_id: int) -> list[ReproductionRecord]:
    return list_reproductions(get_store(), run_id=run_id)


def cached_attempts(run_id: int) -> list[ReproductionRecord]:
    """Reproduction and retrain attempts of one original run, newest first."""
    return _attempts(get_store().url, marker(), run_id)


@st.cache_data(show_spinner=False, max_entries=32)
def _reproduce_blockers(url: str, change: int, run: RunRecord, user: UserRecord) -> list[str]:
    return reproduce_blockers(get_store(), user, run)  # cached: it rebuilds the run's recipe


# -- Home ----------------------------------------------------------------------------------------------


def alerts_banner() -> None:
    """A warning per model in production with monitoring alerts, listing them, and a link to its Monitoring page;
    nothing when there are none. (Links in the warning's own text would open a new tab, signed out.)"""
    by_model: dict[str, list[str]] = {}
    for model, sentence in _alerts(get_store().url):
        by_model.setdefault(model, []).append(sentence)
    for model, sentences in by_model.items():
        count = len(sentences)
        lines = "\n".join(f"- {escape_markdown(sentence)}" for sentence in sentences[:MAX_ALERTS])
        more = f"\n- … and {count - MAX_ALERTS} more on its Monitoring page." if count > MAX_ALERTS else ""
        st.warning(f"**{count} monitoring alert{'s' if count != 1 else ''} on {escape_markdown(model)}** in production\n\n"
                   f"{lines}{more}", icon=":material/warning:")  # fmt: skip
        st.page_link("pages/monitoring.py", label=f"Open the monitoring of {escape_markdown(model)}", query_params={"model": model},
                     icon=":material/monitor_heart:")  # fmt: skip


# -- the run page ----------------------------------------------------------------------------------------


def origin_note(run: RunRecord) -> None:
    """Where a run made by a reproduction or a retrain came from, with a link to the original run."""
    for tag in ("reproduces", "retrained_from"):
        origin = str(run.tags.get(tag, "")).strip()
        if not parse_ids(origin) or str(parse_ids(origin)[0]) != origin:
            continue
        attempt = next((a for a in cached_attempts(int(origin)) if a.new_run_id == run.id), None)
        if tag == "reproduces":
            text = f"This run reproduces run #{origin} from its record (same params, seed and dataset version)."
        else:
            changed = str(run.tags.get("retrain_changes", "")).replace(",", ", ") or "nothing recorded"
            model = str(run.tags.get("retrained_model", "")) or "its model"
            text = f"This run retrains run #{origin}, the production run of {escape_markdown(model)} (changed: {escape_markdown(changed)})."
        if attempt is not None:
            text += f" Made by **{escape_markdown(attempt.created_by)}** on {when(attempt.created_at)}: **{attempt.outcome}**."
        st.info(text, icon=":material/history:")
        st.page_link("pages/run.py", label=f"Original run #{origin}", query_params={"id": origin},
                     icon=":material/arrow_upward:")  # fmt: skip


def reproduce_panel(run: RunRecord, user: UserRecord) -> None:
    """Reproduce the run (disabled with the reason when it cannot be), then its reproductions."""
    st.subheader("Reproduce")
    st.caption(
        "Retrain this run from its record (params, seed, dataset version, and its sweep's model, folds and main "
        "metric) and compare every recorded cv\\_\\* and test\\_\\* metric. It trains, so it takes about as long "
        "as the run did."
    )
    blocked = _reproduce_blockers(get_store().url, marker(), run, user)
    left, right = st.columns([1, 3], vertical_alignment="bottom")
    tolerance = left.number_input(
        "Tolerance", min_value=0.0, value=DEFAULT_TOLERANCE, step=DEFAULT_TOLERANCE, format="%g",
        key=f"reproduce_tolerance_{run.id}", disabled=bool(blocked),
        help="The largest absolute difference a metric may show and still match.",
    )  # fmt: skip
    clicked = right.button("Reproduce", type="primary", icon=":material/replay:", disabled=bool(blocked),
                           key=f"reproduce_{run.id}")  # fmt: skip
    reasons(blocked)
    if clicked:
        _reproduce(run, float(tolerance), user)
    st.subheader("Reproductions of this run")
    reproductions_list(run.id)


def _reproduce(run: RunRecord, tolerance: float, user: UserRecord) -> None:
    attempt, failure = None, None
    with st.status(f"Retraining run {run.id} from its record…", expanded=True) as status:
        st.write("Reloading its dataset version and training with the recorded params and seed.")
        try:
            attempt = reproduce_run(get_store(), run.id, tolerance=tolerance, actor=user)
        except tracking.TrackingError as err:
            failure = err
            status.update(label="The run was not reproduced.", state="error")
        else:
            state = "error" if attempt.outcome == "failed" else "complete"
            status.update(label=f"Reproduction {attempt.outcome}.", state=state, expanded=False)
    if failure is not None:
        error_box(failure)
    elif attempt is not None:
        show = {"matched": st.success, "differs": st.warning}.get(attempt.outcome, st.error)
        show(f"**{attempt.outcome.capitalize()}.** {escape_markdown(attempt.summary)}")


def reproductions_list(run_id: int) -> None:
    """The run's reproductions, newest first: when, by whom, outcome, summary, the new run, the per-metric table."""
    attempts = [a for a in cached_attempts(run_id) if a.kind == "reproduce"]
    if not attempts:
        st.caption("None yet.")
    for attempt in attempts:
        with st.container(border=True):
            head, link = st.columns([4, 1], vertical_alignment="center")
            tolerance = f" · tolerance {attempt.tolerance:g}" if attempt.tolerance is not None else ""
            head.markdown(
                f":{OUTCOME_COLORS.get(attempt.outcome, 'gray')}-badge[{attempt.outcome}] "
                f"{when(attempt.created_at)} by **{escape_markdown(attempt.created_by)}**{tolerance}  \n{escape_markdown(attempt.summary)}"
            )
            if attempt.new_run_id is not None:
                link.page_link("pages/run.py", label=f"Run #{attempt.new_run_id}",
                               query_params={"id": str(attempt.new_run_id)}, icon=":material/play_circle:")  # fmt: skip
            table = attempt.details.get("metrics")
            if table:
                with st.expander("Per-metric comparison"):
                    st.dataframe(metrics_frame(table), hide_index=True, width="stretch")


def metrics_frame(table: list[dict]) -> pd.DataFrame:
    """A reproduction's per-metric table: recorded, reproduced, the difference, and whether it matched."""
    return pd.DataFrame(
        [{"metric": row["key"], "recorded": row["recorded"], "reproduced": row["reproduced"],
          "difference": row["difference"], "matched": "✓" if row["within_tolerance"] else "✗ differs"}
         for row in table],
        columns=["metric", "recorded", "reproduced", "difference", "matched"],
    )  # fmt: skip


# -- the version page ----------------------------------------------------------------------------------


def version_status(card: ModelCard) -> None:
    """A version's monitoring alerts and open reviews (from its model card), and its run's reproductions."""
    version, status = card.version, card.monitoring
    st.subheader("Monitoring")
    if status.breaches:
        count = len(status.breaches)
        lines = "\n".join(f"- {escape_markdown(b.sentence)}" for b in status.breaches)
        st.warning(f"**{count} alert{'s' if count != 1 else ''} for {escape_markdown(version.label)}**\n\n{lines}",
                   icon=":material/warning:")  # fmt: skip
    st.caption(escape_markdown(status.summary))
    for note in status.notes:
        st.caption(f":material/info: {escape_markdown(note)}")
    for review in status.open_reviews:
        st.markdown(f"**Open review {review.id}**, opened by **{escape_markdown(review.opened_by)}** on "
                    f"{when(review.created_at)}: {escape_markdown(review.reason)}")  # fmt: skip
    if not status.open_reviews:
        st.caption("No open reviews.")
    if version.stage == "production":
        st.page_link("pages/monitoring.py", label=f"Monitoring and reviews of {escape_markdown(version.model)}",
                     query_params={"model": version.model}, icon=":material/monitor_heart:")  # fmt: skip
    st.subheader(f"Reproductions of run #{version.run_id}")
    reproductions_list(version.run_id)
