"""Pieces of the registry pages (models, version, approvals, request) and the run page's Register panel.

Cached reads are keyed on the store's change marker like `ui.data`; the tables and sentences turn the
stored held-out comparison (`tracking.ml._assess.Assessment`) into plain words for the person who approves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st

import tracking
from tracking.explore import escape_markdown
from tracking.governance import Action, UserRecord
from tracking.ml import Assessment
from tracking.production import ModelCard, card_html, card_markdown, model_card
from tracking.registry import (
    FAILED,
    MAIN_METRIC,
    NOT_APPLICABLE,
    PASSED,
    ModelRecord,
    RequestRecord,
    VersionRecord,
    approve_promotion,
    decision_blockers,
    gate_state,
    get_request,
    get_version,
    lineage,
    list_models,
    list_requests,
    list_versions,
    register_blockers,
    register_version,
    reject_promotion,
    request_blockers,
    withdraw_blockers,
    withdraw_promotion,
)
from tracking.store import RunRecord
from ui.data import get_store, marker
from ui.explore import error_box

STAGE_COLORS = {"none": "gray", "staging": "blue", "production": "green", "archived": "orange"}
STATUS_COLORS = {"pending": "blue", "approved": "green", "rejected": "red", "withdrawn": "gray", "stale": "orange"}
HEADLINE = {"classification": ("f1_macro", "accuracy", "roc_auc"), "regression": ("rmse", "mae", "r2")}
WORDS = {
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "f1_macro": "F1 (macro average)",
    "roc_auc": "ROC AUC",
    "log_loss": "Log loss",
    "rmse": "RMSE",
    "mae": "Mean absolute error",
    "r2": "R²",
}
NEW_MODEL = "+ A new registered model"  # an option is plain text: no :material: icon, and emoji can draw as a box


# -- cached reads ------------------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=4)
def _models(url: str, change: int) -> list[ModelRecord]:
    return list_models(get_store())


def cached_models() -> list[ModelRecord]:
    """Every registered model, by name."""
    return _models(get_store().url, marker())


@st.cache_data(show_spinner=False, max_entries=32)
def _versions(url: str, change: int, model: str | None, run_id: int | None) -> list[VersionRecord]:
    return list_versions(get_store(), model=model, run_id=run_id)


def cached_versions(model: str | None = None, run_id: int | None = None) -> list[VersionRecord]:
    """Versions of one registered model (or registered from one run), newest first."""
    return _versions(get_store().url, marker(), model, run_id)


@st.cache_data(show_spinner=False, max_entries=16)
def _version(url: str, change: int, version_id: int) -> tuple[VersionRecord, dict[str, Any]] | None:
    try:
        return get_version(get_store(), version_id), lineage(get_store(), version_id)
    except tracking.NotFoundError:
        return None


def cached_version(version_id: int) -> tuple[VersionRecord, dict[str, Any]] | None:
    """A version and its lineage, or None."""
    return _version(get_store().url, marker(), version_id)


@st.cache_data(show_spinner=False, max_entries=32)
def _register_blockers(url: str, change: int, run_id: int, user: UserRecord) -> list[str]:
    return register_blockers(get_store(), user, run_id)


@st.cache_data(show_spinner=False, max_entries=32)
def _request_blockers(url: str, change: int, version: VersionRecord, user: UserRecord) -> list[str]:
    return request_blockers(get_store(), user, version)


def cached_request_blockers(version: VersionRecord, user: UserRecord) -> list[str]:
    """`request_blockers`, read once per store change (the version page reruns often)."""
    return _request_blockers(get_store().url, marker(), version, user)


@st.cache_data(show_spinner=False, max_entries=16)
def _requests(url: str, change: int, status: str | None, version_id: int | None) -> list[RequestRecord]:
    return list_requests(get_store(), status=status, version_id=version_id)


def cached_requests(status: str | None = None, version_id: int | None = None) -> list[RequestRecord]:
    """Promotion requests, newest first."""
    return _requests(get_store().url, marker(), status, version_id)


@st.cache_data(show_spinner=False, max_entries=16)
def _request(url: str, change: int, request_id: int) -> RequestRecord | None:
    try:
        return get_request(get_store(), request_id)
    except tracking.NotFoundError:
        return None


def cached_request(request_id: int) -> RequestRecord | None:
    """One promotion request, or None."""
    return _request(get_store().url, marker(), request_id)


@st.cache_data(show_spinner="Reading the model card…", max_entries=8, ttl=60)
def _card(url: str, change: int, version_id: int) -> tuple[ModelCard, str, str]:
    # also kept at most a minute: its monitoring section reads logged requests, which do not change the marker
    card = model_card(get_store(), version_id)
    return card, card_markdown(card), card_html(card)


def cached_card(version_id: int) -> ModelCard:
    """The version's model card (its monitoring alerts at most a minute old)."""
    return _card(get_store().url, marker(), version_id)[0]


def card_files(version_id: int) -> tuple[str, str]:
    """The version's model card as (Markdown, HTML)."""
    return _card(get_store().url, marker(), version_id)[1:]


# -- small pieces ------------------------------------------------------------------------------------


def when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "—"


def stage_badge(stage: str) -> None:
    st.badge(stage, color=STAGE_COLORS.get(stage, "gray"))


def status_badge(status: str) -> None:
    st.badge(status, color=STATUS_COLORS.get(status, "gray"))


def number(value: float | None, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def headline_scores(evaluation: Mapping[str, Any] | None) -> dict[str, float | None]:
    """The main held-out metrics of a version's stored evaluation (empty if it could not be scored)."""
    if not evaluation or "candidate_scores" not in evaluation:
        return {}
    scores = evaluation["candidate_scores"]
    return {f"held-out {key}": scores.get(key) for key in HEADLINE.get(evaluation.get("task_type"), ())}


def versions_frame(versions: list[VersionRecord]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Versions as a table with links to each version and its run, and its column config."""
    rows = [
        {"version": v.version, "open": f"version?id={v.id}", "stage": v.stage, "run": f"run?id={v.run_id}",
         **headline_scores(v.evaluation), "created by": v.created_by, "created": v.created_at}
        for v in versions
    ]  # fmt: skip
    config = {
        "open": st.column_config.LinkColumn("open", display_text="Open version", width="small"),
        "run": st.column_config.LinkColumn("run", display_text=r"run\?id=(\d+)", width="small"),
        "created": st.column_config.DatetimeColumn("created (UTC)", format="YYYY-MM-DD HH:mm"),
    }
    for key in rows[0] if rows else ():
        if key.startswith("held-out"):
            config[key] = st.column_config.NumberColumn(key, format="%.3f")
    return pd.DataFrame(rows), config


def requests_frame(requests: list[RequestRecord]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Requests as a table with a link to each, and its column config."""
    rows = [
        {"request": f"request?id={r.id}", "model": r.model, "version": r.version, "status": r.status,
         "gates passed": gates_passed(r), "requested by": r.requested_by, "requested": r.created_at,
         "decided by": r.decided_by, "decided": r.decided_at, "comment": r.comment}
        for r in requests
    ]  # fmt: skip
    config = {
        "request": st.column_config.LinkColumn("request", display_text=r"request\?id=(\d+)", width="small"),
        "requested": st.column_config.DatetimeColumn("requested (UTC)", format="YYYY-MM-DD HH:mm"),
        "decided": st.column_config.DatetimeColumn("decided (UTC)", format="YYYY-MM-DD HH:mm"),
    }
    return pd.DataFrame(rows), config


def gates_passed(request: RequestRecord) -> str:
    """ "4/4", "3/3 (3 not applicable)", "4/4, 2 metrics worse without a gate": passed of the gates that apply."""
    states = [gate_state(g) for g in request.gates]
    applicable = sum(state != NOT_APPLICABLE for state in states)
    text = f"{states.count(PASSED)}/{applicable}"
    if applicable < len(states):
        text += f" ({len(states) - applicable} not applicable)"
    uncovered = sum(not w.covered for w in request.worse_metrics)
    if uncovered:
        text += f", {uncovered} metric{'s' if uncovered != 1 else ''} worse without a gate"
    return text


def reasons(lines: list[str], where: Any = st) -> None:
    """Why a button is disabled, beside it."""
    for line in lines:
        where.caption(f":material/block: {escape_markdown(line)}")


# -- the run page's Register panel --------------------------------------------------------------------


def register_panel(run: RunRecord, user: UserRecord) -> None:
    """Register the run's model as a new version, and list the versions registered from it."""
    blocked = _register_blockers(get_store().url, marker(), run.id, user)
    st.subheader("Register model")
    reasons(blocked)  # first: the form below is disabled
    names = [m.name for m in cached_models()]
    choice = st.selectbox(
        "Registered model", [*names, NEW_MODEL], key=f"register_model_{run.id}", disabled=bool(blocked)
    )
    name = choice
    if choice == NEW_MODEL:
        name = st.text_input("New model name", key=f"register_name_{run.id}", disabled=bool(blocked),
                             placeholder=run.experiment)  # fmt: skip
    description = st.text_area("Description of this version", key=f"register_description_{run.id}",
                               disabled=bool(blocked), height=80)  # fmt: skip
    if st.button("Register model", type="primary", icon=":material/inventory_2:", disabled=bool(blocked)):
        try:
            version = register_version(get_store(), run.id, name or "", description, actor=user)
            st.success(f"Registered as {escape_markdown(version.label)}.", icon=":material/check_circle:")
            st.page_link("pages/version.py", label=f"Open {escape_markdown(version.label)}", query_params={"id": str(version.id)},
                         icon=":material/open_in_new:")  # fmt: skip
        except tracking.TrackingError as err:
            error_box(err)
    registered = cached_versions(run_id=run.id)
    st.subheader("Versions registered from this run")
    if not registered:
        st.caption("None yet.")
    for version in registered:
        st.page_link("pages/version.py", label=f"{escape_markdown(version.label)} · {version.stage}",
                     query_params={"id": str(version.id)}, icon=":material/inventory_2:")  # fmt: skip


# -- the comparison, in words ------------------------------------------------------------------------


def _better(direction: str, delta: float) -> bool:
    return delta > 0 if direction == "maximize" else delta < 0


def verdict(direction: str, delta: float, low: float, high: float) -> str:
    """Better / worse / about the same, in words, from the change and its interval."""
    if not math.isfinite(delta):
        return "cannot tell"
    if delta == 0:
        return "the same"
    clear = math.isfinite(low) and math.isfinite(high) and (low > 0 or high < 0)
    word = "better" if _better(direction, delta) else "worse"
    return word if clear else f"slightly {word}, within chance"


def comparison_frame(assessment: Assessment) -> pd.DataFrame:
    """Metric, production, candidate, change, interval and the verdict in words."""
    share = f"{assessment.confidence * 100:g}% interval"
    rows = [
        {"metric": WORDS.get(d.metric, d.metric), "production": number(d.baseline), "candidate": number(d.candidate),
         "change": number(d.delta, signed=True), share: f"{number(d.low, True)} to {number(d.high, True)}",
         "candidate is": verdict(d.direction, d.delta, d.low, d.high),
         "better when": "higher" if d.direction == "maximize" else "lower"}
        for d in assessment.deltas
    ]  # fmt: skip
    return pd.DataFrame(rows)


def metric_sentences(assessment: Assessment) -> list[str]:
    """One plain sentence per main metric of the task."""
    lines = []
    for metric in HEADLINE.get(assessment.task_type, (MAIN_METRIC.get(assessment.task_type, ""),)):
        d = assessment.delta(metric)
        if d is None or not math.isfinite(d.delta):
            continue
        name = WORDS.get(metric, metric)
        word = verdict(d.direction, d.delta, d.low, d.high)
        if word == "the same":
            lines.append(f"**{name}** is {number(d.candidate)} for both models.")
            continue
        share = f"{assessment.confidence * 100:g}%"
        interval = f"{share} interval of the change: {number(d.low, True)} to {number(d.high, True)}"
        how = (
            f"**{word}**, and not by chance ({interval})"
            if "chance" not in word
            else f"**{word.split(',')[0]}**, but that may be chance ({interval}, which includes no change)"
        )
        lines.append(
            f"**{name}** is {number(d.candidate)} for the candidate against {number(d.baseline)} in production: "
            f"{abs(d.delta):.3f} {'higher' if d.delta > 0 else 'lower'}, so {how}."
        )
    return lines


def groups_frame(assessment: Assessment, metric: str) -> pd.DataFrame:
    """One row per sensitive group: its size and both models' value of `metric`."""
    label = WORDS.get(metric, metric)
    rows = [
        {assessment.sensitive or "group": g.group, "held-out rows": g.n,
         f"production {label}": number((g.baseline or {}).get(metric)), f"candidate {label}": number(g.candidate.get(metric))}
        for g in assessment.groups
    ]  # fmt: skip
    return pd.DataFrame(rows)


def largest_gap(assessment: Assessment, metric: str, model: str) -> str | None:
    """ "0.042 (female 0.812, male 0.854)": the largest gap of `metric` between groups for one model."""
    values = []
    for g in assessment.groups:
        scores = g.candidate if model == "candidate" else g.baseline
        value = (scores or {}).get(metric, math.nan)
        if math.isfinite(value):
            values.append((value, g.group))
    if len(values) < 2:
        return None
    (low, low_group), (high, high_group) = min(values), max(values)
    return f"{high - low:.3f} ({escape_markdown(low_group)} {low:.3f}, {escape_markdown(high_group)} {high:.3f})"


def change_lines(changes: Mapping[str, Any]) -> tuple[list[str], pd.DataFrame | None]:
    """What differs between the production run and the candidate's run: sentences and a params table."""
    dataset, code, params = changes.get("dataset") or {}, changes.get("code_version") or {}, changes.get("params") or {}
    lines = []
    if dataset.get("changed"):
        lines.append(f"**Data changed:** production trained on {_dataset(dataset.get('production'))}, "
                     f"the candidate on {_dataset(dataset.get('candidate'))}.")  # fmt: skip
    if code.get("changed"):
        lines.append(f"**Code changed:** from {escape_markdown(code.get('production') or '—')} "
                     f"to {escape_markdown(code.get('candidate') or '—')}.")  # fmt: skip
    table = None
    if params:
        lines.append(f"**{len(params)} parameter{'s' if len(params) != 1 else ''} changed** (below).")
        table = pd.DataFrame(
            [{"parameter": k, "production": str(v.get("production")), "candidate": str(v.get("candidate"))}
             for k, v in params.items()]
        )  # fmt: skip
    if not lines:
        lines.append("**Nothing changed:** same dataset version, same code version and same parameters.")
    else:
        same = [
            what for what, part in (("dataset version", dataset), ("code version", code)) if not part.get("changed")
        ]
        if same:
            lines.append(f"Unchanged: {' and '.join(same)}.")
    return lines, table


def _dataset(ref: Mapping[str, Any] | None) -> str:
    if not ref:
        return "an unrecorded dataset"
    return f"{escape_markdown(ref.get('name'))} (version {str(ref.get('hash'))[:12]})"


GATE_MARKS = {
    PASSED: ":green[:material/check_circle: **passed**]",
    FAILED: ":red[:material/cancel: **FAILED**]",
    NOT_APPLICABLE: ":gray[:material/do_not_disturb_on: **not applicable**]",
}


def gate_checklist(request: RequestRecord) -> None:
    """The summary line, then passed / FAILED / not applicable (in words and colour, not only a symbol), the
    requirement and one sentence per gate; then every metric that got worse beyond its interval, gate or not."""
    gates, worse = request.gates, request.worse_metrics
    st.markdown(f"**{escape_markdown(request.gate_summary)}**")
    st.markdown(
        "\n".join(
            f"- {GATE_MARKS[gate_state(g)]} · **{escape_markdown(g['label'])}** — {escape_markdown(g['detail'])}"
            for g in gates
        )
    )
    if worse:
        lines = [
            f"- {':orange[:material/warning:]' if w.covered else ':red[:material/warning:]'} "
            f"{escape_markdown(w.sentence(WORDS.get(w.metric, w.metric)))}"
            for w in worse
        ]
        st.markdown("**Got worse than production, beyond the interval of the change:**\n" + "\n".join(lines))


# -- the decision ------------------------------------------------------------------------------------


def outcome(request: RequestRecord, production: VersionRecord | None) -> None:
    """How a decided request ended, and which version is in production now."""
    by = f"by **{escape_markdown(request.decided_by or '—')}** on {when(request.decided_at)}"
    comment = f": “{escape_markdown(request.comment)}”" if request.comment else "."
    if request.status == "approved":
        st.success(f"Approved {by}{comment}", icon=":material/check_circle:")
        if request.override_justification:
            st.warning(
                f"Approved over a failed gate. Override justification: “{escape_markdown(request.override_justification)}”"
            )
    elif request.status == "rejected":
        st.error(f"Rejected {by}{comment}", icon=":material/cancel:")
    elif request.status == "withdrawn":
        st.info(f"Withdrawn {by}.", icon=":material/undo:")
    elif request.status == "stale":
        st.warning(
            "This request went stale: the production version changed after its gates were evaluated, so its "
            "comparison no longer holds. Request the promotion again from the version page."
        )
    else:
        return
    if production is not None:
        st.page_link("pages/version.py", label=f"In production now: {escape_markdown(production.label)}",
                     query_params={"id": str(production.id)}, icon=":material/verified:")  # fmt: skip
    else:
        st.caption(f"No version of {escape_markdown(request.model)} is in production.")


def decision_panel(request: RequestRecord, user: UserRecord) -> None:
    """Approve / Reject with a required comment (disabled with the reasons), an admin's override, Withdraw."""
    if request.status != "pending":
        st.caption(f"The request is {request.status}; there is nothing left to decide.")
        return
    store = get_store()
    approve_blocked = decision_blockers(request, user)
    reject_blocked = decision_blockers(request, user, verdict="reject")
    overriding = bool(request.failed_gates) and user.may(Action.promotion_override)
    with st.form(f"decide_{request.id}"):
        reasons(approve_blocked)  # first: the form below is disabled
        comment = st.text_area("Comment (required)", disabled=bool(reject_blocked),
                               help="Kept with the decision in the audit trail.")  # fmt: skip
        override = None
        if overriding:
            st.warning(
                f"{len(request.failed_gates)} gate(s) failed. As an admin you may approve anyway: write why, and "
                "the justification is recorded with the decision."
            )
            override = st.text_area("Override justification")
        approve_col, reject_col, _ = st.columns([1, 1, 4])
        approve = approve_col.form_submit_button("Approve", type="primary", icon=":material/check:",
                                                 disabled=bool(approve_blocked))  # fmt: skip
        reject = reject_col.form_submit_button("Reject", icon=":material/close:", disabled=bool(reject_blocked))
    if approve or reject:
        try:
            if approve:
                approve_promotion(store, request.id, comment, actor=user, override_justification=override or None)
            else:
                reject_promotion(store, request.id, comment, actor=user)
            st.rerun()
        except tracking.TrackingError as err:
            error_box(err)
    if not withdraw_blockers(request, user) and st.button(
        "Withdraw", icon=":material/undo:", help="Take the request back; nobody decides it."
    ):
        try:
            withdraw_promotion(store, request.id, actor=user)
            st.rerun()
        except tracking.TrackingError as err:
            error_box(err)
