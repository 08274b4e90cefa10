"""One model version (`?id=N`): lineage, stage, monitoring alerts and reviews, reproductions, model card,
promotion requests."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import tracking
from tracking.explore import escape_markdown
from tracking.governance import Action, why_not
from tracking.ml import Assessment
from tracking.registry import request_promotion, set_stage, stage_blockers, update_version_text
from ui.address import query_id
from ui.data import get_store
from ui.explore import error_box, show_written
from ui.frame import in_frame
from ui.lifecycle import version_status
from ui.registry import (
    WORDS,
    cached_card,
    cached_request_blockers,
    cached_requests,
    cached_version,
    card_files,
    groups_frame,
    number,
    reasons,
    requests_frame,
    stage_badge,
    when,
)

user = in_frame()

version_id = query_id("model version")
found = cached_version(version_id) if version_id else None
if found is None:
    st.title("Model version")
    st.warning(f"There is no model version {version_id}." if version_id else "No version chosen.")
    st.page_link("pages/models.py", label="All models", icon=":material/inventory_2:")
    st.stop()
version, origin = found
store = get_store()

st.title(escape_markdown(version.label))
stage_badge(version.stage)
st.caption(f"Registered by {escape_markdown(version.created_by)} on {when(version.created_at)} · stage since "
           f"{when(version.stage_changed_at)} · model file sha256 `{version.artifact_sha256}`")  # fmt: skip
st.page_link("pages/models.py", label=f"All versions of {escape_markdown(version.model)}", query_params={"model": version.model},
             icon=":material/arrow_back:")  # fmt: skip

st.subheader("Lineage")
run, sweep, dataset = origin["run"], origin["sweep"], origin["dataset"]
links = st.columns(2)
links[0].page_link("pages/run.py", label=f"Run {escape_markdown(run['name'])} #{run['id']}", query_params={"id": str(run["id"])},
                   icon=":material/play_circle:")  # fmt: skip
if sweep:
    links[1].page_link("pages/sweep.py", label=f"Sweep {escape_markdown(sweep['name'])} #{sweep['id']}",
                       query_params={"id": str(sweep["id"])}, icon=":material/tune:")  # fmt: skip
else:
    links[1].caption("Not from a sweep.")
st.markdown(
    f"- **Dataset:** {escape_markdown(dataset['name'])} · {dataset['rows']:,} rows · sha256 `{dataset['sha256']}`\n"
    if dataset
    else "- **Dataset:** not recorded\n"
)
st.markdown(f"- **Code version:** {escape_markdown(origin['code_version'] or 'not recorded')}")

st.subheader("Stage")
stage_blocked = stage_blockers(user, version)
buttons = st.columns([1, 1, 4])
moves = {"staging": ("Move to staging", ":material/science:"), "archived": ("Archive", ":material/archive:")}
for column, (stage, (label, icon)) in zip(buttons, moves.items(), strict=False):
    if column.button(label, icon=icon, disabled=bool(stage_blocked) or version.stage == stage, key=f"to_{stage}"):
        try:
            set_stage(store, version.id, stage, actor=user)
            st.rerun()
        except tracking.TrackingError as err:
            error_box(err)
reasons(stage_blocked, buttons[2])
if version.stage != "production":
    st.caption("Production is reached only through an approved promotion request (below).")

version_status(cached_card(version.id))

st.subheader("Model card")
card_blocked = why_not(user, Action.model_edit)
if not card_blocked:
    with st.form(f"card_{version.id}"):
        description = st.text_area("Description", version.description)
        intended_use = st.text_area("Intended use", version.intended_use)
        limitations = st.text_area("Limitations", version.limitations)
        if st.form_submit_button("Save model card", icon=":material/save:"):
            try:
                update_version_text(store, version.id, description=description, intended_use=intended_use,
                                    limitations=limitations, actor=user)  # fmt: skip
                st.rerun()
            except tracking.TrackingError as err:
                error_box(err)
else:
    for title, text in (("Description", version.description), ("Intended use", version.intended_use),
                        ("Limitations", version.limitations)):  # fmt: skip
        st.markdown(f"**{title}**")
        if text:
            show_written(text)
        else:  # an if statement, not an expression: Streamlit's magic would draw the expression's value
            st.markdown("_Not written yet._")
    reasons([card_blocked])

evaluation = version.evaluation or {}
if "error" in evaluation or "candidate_scores" not in evaluation:
    st.warning(f"No held-out scores: {escape_markdown(evaluation.get('error', 'the version was not scored'))}")
else:
    scores = Assessment.from_json(evaluation)
    st.markdown(f"**Held-out scores** on {scores.n_test:,} rows the model never trained on")
    st.dataframe(
        pd.DataFrame([{"metric": WORDS.get(k, k), "value": number(v)} for k, v in scores.candidate_scores.items()]),
        hide_index=True,
    )
    if scores.groups:
        metric = "accuracy" if scores.task_type == "classification" else "mae"
        st.markdown(f"**By {escape_markdown(scores.sensitive)}**")
        st.dataframe(groups_frame(scores, metric).drop(columns=[f"production {WORDS[metric]}"]), hide_index=True)
markdown, html = card_files(version.id)
downloads = st.columns([1, 1, 2])
name = f"model-card-{version.model}-v{version.version}".replace(" ", "_").replace("/", "_")
downloads[0].download_button("Model card (HTML)", html, file_name=f"{name}.html", mime="text/html",
                             on_click="ignore", icon=":material/download:")  # fmt: skip
downloads[1].download_button("Model card (Markdown)", markdown, file_name=f"{name}.md", mime="text/markdown",
                             on_click="ignore", icon=":material/download:")  # fmt: skip

st.subheader("Promotion to production")
requests = cached_requests(version_id=version.id)
request_blocked = cached_request_blockers(version, user)
with st.form(f"promote_{version.id}"):
    reasons(request_blocked)  # first, above the disabled form
    justification = st.text_area("Justification", disabled=bool(request_blocked),
                                 placeholder="Why this version should replace the one in production")  # fmt: skip
    submitted = st.form_submit_button("Request promotion to production", type="primary",
                                      disabled=bool(request_blocked), icon=":material/publish:")  # fmt: skip
if submitted:
    created, failure = None, None
    with st.status("Scoring the candidate and the production model on the same held-out rows…") as status:
        try:
            created = request_promotion(store, version.id, justification, actor=user)
            status.update(label="Gates evaluated.", state="complete")
        except tracking.TrackingError as err:
            status.update(label="The request was not made.", state="error")
            failure = err
    if created is not None:
        st.switch_page("pages/request.py", query_params={"id": str(created.id)})
    error_box(failure)

if requests:
    frame, config = requests_frame(requests)
    st.dataframe(frame.drop(columns=["model", "version"]), hide_index=True, column_config=config)
    for request in requests:
        st.page_link("pages/request.py", label=f"Request {request.id} · {request.status}",
                     query_params={"id": str(request.id)}, icon=":material/approval:")  # fmt: skip
else:
    st.caption("No promotion requests for this version yet.")
