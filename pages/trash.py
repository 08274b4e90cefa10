"""Trash: the runs, sweeps and experiments moved there, with Restore and (admins) Purge for good."""

from __future__ import annotations

import streamlit as st

import tracking
from tracking.explore import escape_markdown
from tracking.governance import Action, why_not
from ui.data import get_store
from ui.frame import in_frame
from ui.trash import act, trash_frame

user = in_frame()
store = get_store()

st.title("Trash")
st.caption(
    "Runs, sweeps and experiments in the trash are hidden from every list, filter, comparison, report and count. "
    "Restore brings back exactly what went; purge deletes it for good with its metrics, artifacts and Optuna trials."
)
entries = tracking.list_trash(store)
if not entries:
    st.info("The trash is empty. Move a run or a sweep here from its page (**Move to trash**).")
    st.stop()

st.dataframe(trash_frame(entries), hide_index=True)
cannot_restore, cannot_purge = why_not(user, Action.run_trash), why_not(user, Action.trash_purge)
chosen = st.selectbox("Entry", entries, format_func=lambda e: f"{e.id}: {e.label}, {e.runs} run(s)", key="trash_entry")
restore, purge, empty = st.columns([1, 1, 2], vertical_alignment="bottom")
if restore.button("Restore", icon=":material/restore_from_trash:", disabled=bool(cannot_restore),
                  help=escape_markdown(cannot_restore) if cannot_restore else None):  # fmt: skip
    act(lambda: tracking.restore_trashed(store, chosen.id, actor=user), f"Restored {chosen.label}.")
with purge.popover("Purge…", icon=":material/delete_forever:", disabled=bool(cannot_purge),
                   help=escape_markdown(cannot_purge) if cannot_purge else None):  # fmt: skip
    st.write(f"Delete {escape_markdown(chosen.label)} and its {chosen.runs} run(s) for good? This cannot be undone.")
    if st.button("Purge for good", type="primary", key="purge_one"):
        act(lambda: tracking.purge_trashed(store, chosen.id, actor=user), f"Purged {chosen.label}.")
with empty.popover("Empty the trash…", disabled=bool(cannot_purge)):
    st.write(f"Delete all {len(entries)} entries for good? This cannot be undone.")
    if st.button("Empty the trash", type="primary", key="purge_all"):
        act(lambda: tracking.empty_trash(store, actor=user), "The trash is empty.")
for reason in {cannot_restore, cannot_purge} - {None}:
    st.caption(escape_markdown(reason))
