"""Audit: every recorded change, filtered by who, what, which object and when; CSV export; the hash-chain check.

The filters live in the address (`?actor=&action=&type=&object=&from=&to=`), so a filtered view can be shared.
"""

from __future__ import annotations

import streamlit as st

from tracking import TrackingError
from tracking.explore import escape_markdown
from tracking.governance import events_csv, list_events, list_users, verify_chain
from ui.admin import ACTION_GROUPS, day_bounds, events_frame, parse_day
from ui.data import get_store
from ui.explore import seed, sync_url
from ui.frame import in_frame

SHOWN = 1000  # newest events drawn in the table; the CSV holds every matching event

in_frame()
store = get_store()
query = st.query_params
seed(
    {
        "audit_actor": query.get("actor") or None,
        "audit_action": query.get("action") or None,
        "audit_type": query.get("type", ""),
        "audit_object": query.get("object", ""),
        "audit_from": parse_day(query.get("from", "")),
        "audit_to": parse_day(query.get("to", "")),
    }
)

st.title("Audit trail")
st.caption(
    "Every change to sweeps, runs, reports, models, policies and accounts, recorded in the same transaction as "
    "the change and hash-chained, so an edited, deleted or reordered event is detected."
)
who, what, kind, which = st.columns(4)
actors = sorted({u.name for u in list_users(store)} | {st.session_state.audit_actor or ""} - {""})
actor = who.selectbox(
    "Actor", actors, key="audit_actor", index=None, placeholder="Anyone", accept_new_options=True,
    help="An account, or type another name (changes made before the store had accounts carry the OS user).",
)  # fmt: skip
action = what.selectbox(
    "Action", sorted({*ACTION_GROUPS, st.session_state.audit_action or ""} - {""}), key="audit_action", index=None,
    placeholder="Any action", accept_new_options=True,
    help="A group such as `promotion.` (every action in it), or type one action such as `user.create`.",
)  # fmt: skip
object_type = kind.text_input("Object type", key="audit_type", placeholder="e.g. sweep, user, registered_model")
object_id = which.text_input("Object id", key="audit_object", placeholder="e.g. 12 or loan")
first, last, _ = st.columns([1, 1, 2])
since_day = first.date_input("From (UTC)", value=None, key="audit_from")
until_day = last.date_input("To (UTC)", value=None, key="audit_to")
since, until = day_bounds(since_day, until_day)

sync_url(
    {
        "actor": actor or "",
        "action": action or "",
        "type": object_type.strip(),
        "object": object_id.strip(),
        "from": since_day.isoformat() if since_day else "",
        "to": until_day.isoformat() if until_day else "",
    }
)
filters = {"actor": actor, "action": action, "object_type": object_type.strip() or None,
           "object_id": object_id.strip() or None, "since": since, "until": until}  # fmt: skip
events = list_events(store, **filters, limit=SHOWN + 1)
shown = events[:SHOWN]
more = len(events) > SHOWN
st.caption(
    f"The newest {SHOWN:,} of more matching events (the CSV holds them all)."
    if more
    else f"{len(shown):,} matching event{'s' if len(shown) != 1 else ''}, newest first."
)
st.dataframe(
    events_frame(shown),
    hide_index=True,
    column_config={
        "seq": st.column_config.NumberColumn("seq", width="small"),
        "before": st.column_config.TextColumn("before", width="medium"),
        "after": st.column_config.TextColumn("after", width="medium"),
        "hash": st.column_config.TextColumn("hash", help="The first 12 hex digits of the event's chained sha256."),
        "open": st.column_config.LinkColumn("open", display_text="Open", help="The object's page", width="small"),
    },
)

export, check = st.columns([1, 3], vertical_alignment="top")
export.download_button(
    "Download CSV",
    lambda: events_csv(list_events(store, **filters)) if more else events_csv(shown),
    file_name="audit-events.csv",
    mime="text/csv",
    on_click="ignore",
    icon=":material/download:",
    key="audit_csv",
    help="Every event matching the filters, with before/after as JSON.",
)
if check.button("Verify the chain", icon=":material/verified:", help="Recompute every event's hash, oldest first."):
    try:
        report = verify_chain(store)
    except TrackingError as err:  # e.g. the audit key is missing: the sentence says where it should be
        check.error(escape_markdown(err))
        st.stop()
    if report.ok:
        check.success(f"The audit trail is intact: {report.checked:,} events verified; head hash `{report.head}`.")
    else:
        check.error(
            f"The audit trail FAILED verification ({len(report.problems)} problem(s) in {report.checked:,} events):\n"
            + "\n".join(f"- {escape_markdown(problem)}" for problem in report.problems)
        )
