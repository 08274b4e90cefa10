"""One promotion request (`?id=N`): the candidate against production in plain words, the gates, the decision."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from tracking.explore import escape_markdown
from ui.address import query_id
from ui.frame import in_frame
from ui.registry import (
    WORDS,
    cached_request,
    cached_versions,
    change_lines,
    comparison_frame,
    decision_panel,
    gate_checklist,
    groups_frame,
    largest_gap,
    metric_sentences,
    number,
    outcome,
    status_badge,
    when,
)

user = in_frame()

request_id = query_id("promotion request")
request = cached_request(request_id) if request_id else None
if request is None:
    st.title("Promotion request")
    st.warning(f"There is no promotion request {request_id}." if request_id else "No request chosen.")
    st.page_link("pages/approvals.py", label="All requests", icon=":material/approval:")
    st.stop()

st.title(f"Promotion request {request.id}: {escape_markdown(request.label)}")
status_badge(request.status)
against = (
    f"production v{request.baseline_version}" if request.baseline_version else "nothing (no version in production)"
)
st.caption(
    f"Requested by **{escape_markdown(request.requested_by)}** on {when(request.created_at)} · compared against {against}"
)
links = st.columns(3)
links[0].page_link("pages/version.py", label=f"Candidate: {escape_markdown(request.label)}", query_params={"id": str(request.version_id)},
                   icon=":material/inventory_2:")  # fmt: skip
if request.baseline_version_id:
    links[1].page_link("pages/version.py", label=f"Production: {escape_markdown(request.model)} v{request.baseline_version}",
                       query_params={"id": str(request.baseline_version_id)}, icon=":material/verified:")  # fmt: skip
links[2].page_link("pages/approvals.py", label="All requests", icon=":material/approval:")
outcome(request, next((v for v in cached_versions(model=request.model) if v.stage == "production"), None))

st.subheader("Why the requester asks for it")
with st.container(border=True):
    st.markdown(escape_markdown(request.justification))

evaluation = request.evaluation or {}
assessment = request.assessment
st.subheader("Candidate vs production")
for note in evaluation.get("notes") or []:
    st.warning(escape_markdown(note))
if assessment is None:
    st.warning("The candidate could not be scored on held-out data, so there is no comparison.")
elif not assessment.deltas:
    st.info("No version is in production yet: approving makes this the first production version.")
    st.dataframe(
        pd.DataFrame(
            [{"metric": WORDS.get(k, k), "candidate": number(v)} for k, v in assessment.candidate_scores.items()]
        ),
        hide_index=True,
    )
else:
    st.markdown("\n".join(f"- {line}" for line in metric_sentences(assessment)))
    st.dataframe(comparison_frame(assessment), hide_index=True)
    st.caption(
        f"Both models scored on the same {assessment.n_test:,} held-out rows the candidate never trained on; the "
        f"interval of each change comes from {assessment.bootstrap:,} paired resamples of those rows."
    )

if assessment is not None and assessment.groups:
    metric = (request.policy.get("fairness") or {}).get("metric") or (
        "accuracy" if assessment.task_type == "classification" else "mae"
    )
    st.subheader(f"Fairness across {escape_markdown(assessment.sensitive)} groups")
    st.dataframe(groups_frame(assessment, metric), hide_index=True)
    gaps = [(who, largest_gap(assessment, metric, who)) for who in ("candidate", "production")]
    st.markdown(
        "\n".join(
            f"- Largest gap in {escape_markdown(WORDS.get(metric, metric))} for the **{who}**: {gap}"
            for who, gap in gaps
            if gap
        )
    )

st.subheader("What changed since production")
if evaluation.get("changes"):
    lines, params = change_lines(evaluation["changes"])
    st.markdown("\n".join(f"- {line}" for line in lines))
    if params is not None:
        st.dataframe(params, hide_index=True)
else:
    st.caption("Nothing is in production to compare with.")

st.subheader("Policy gates")
gate_checklist(request)

st.subheader("Decision")
decision_panel(request, user)
