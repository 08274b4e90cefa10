"""Approvals: promotion requests waiting for a decision, then the decided ones (`?status=...`)."""

from __future__ import annotations

import streamlit as st

from tracking.explore import escape_markdown
from ui.explore import seed, sync_url
from ui.frame import in_frame
from ui.registry import cached_requests, gates_passed, requests_frame, when

in_frame()

st.title("Approvals")
st.caption(
    "A version reaches production only through a request that a product owner or admin approves. "
    "Open a request to compare the candidate with the version in production and decide."
)

st.subheader("Waiting for a decision")
pending = cached_requests(status="pending")
if not pending:
    st.info("No request is waiting for a decision.", icon=":material/done_all:")
for request in pending:
    with st.container(border=True):
        what, who, gates, link = st.columns([3, 3, 2, 2], vertical_alignment="center")
        against = (
            f"against production v{request.baseline_version}" if request.baseline_version else "first in production"
        )
        what.markdown(f"**{escape_markdown(request.label)}**  \n{against}")
        who.markdown(f"requested by **{escape_markdown(request.requested_by)}**  \n{when(request.created_at)}")
        failed = len(request.failed_gates)
        mark = ":green[:material/check_circle:]" if not failed else f":red[:material/cancel: **{failed} failed**]"
        gates.markdown(f"{mark} gates passed {gates_passed(request)}")
        link.page_link("pages/request.py", label=f"Review request {request.id}", query_params={"id": str(request.id)},
                       icon=":material/approval:")  # fmt: skip

st.subheader("Decided")
statuses = ["all", "approved", "rejected", "withdrawn", "stale"]
wanted = str(st.query_params.get("status", ""))
seed({"approvals_status": wanted if wanted in statuses else "all"})
status = st.selectbox("Status", statuses, key="approvals_status")
sync_url({"status": "" if status == "all" else status})
decided = [r for r in cached_requests(status=None if status == "all" else status) if r.status != "pending"]
if not decided:
    st.caption("No decided requests" + ("." if status == "all" else f" with status {status}."))
else:
    frame, config = requests_frame(decided)
    st.dataframe(frame, hide_index=True, column_config=config)
