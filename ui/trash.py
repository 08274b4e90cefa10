"""The trash's widgets: the "Move to trash" / "Restore" block of the run and sweep pages, and the Trash page's table."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd
import streamlit as st

import tracking
from tracking.explore import escape_markdown
from tracking.governance import Action, UserRecord, why_not
from tracking.runs import TrashRecord, find_trash
from ui.data import get_store

_MOVE = {"run": tracking.trash_run, "sweep": tracking.trash_sweep}


def trash_block(kind: str, object_id: int, user: UserRecord) -> None:
    """On a run's or sweep's page: where it is in the trash, a button that restores it, or one that moves it there."""
    store = get_store()
    entry = find_trash(store, kind, object_id)
    cannot = why_not(user, Action.run_trash)
    if entry is None:
        if st.button("Move to trash", icon=":material/delete:", disabled=bool(cannot), key=f"trash_{kind}",
                     help=escape_markdown(cannot) if cannot else "Hidden from every list; restore it from the Trash."):  # fmt: skip
            act(lambda: _MOVE[kind](store, object_id, actor=user), f"The {kind} is in the trash now.")
        return
    st.warning(f"This {kind} is in the trash{_with(entry, kind, object_id)}: moved by "
               f"{escape_markdown(entry.trashed_by)} on {entry.trashed_at:%Y-%m-%d %H:%M} UTC.",
               icon=":material/delete:")  # fmt: skip
    if st.button("Restore", icon=":material/restore_from_trash:", disabled=bool(cannot), key=f"restore_{kind}",
                 help=escape_markdown(cannot) if cannot else None):  # fmt: skip
        act(lambda: tracking.restore_trashed(store, entry.id, actor=user), f"Restored {entry.label}.")


def _with(entry: TrashRecord, kind: str, object_id: int) -> str:
    return "" if (entry.kind, entry.object_id) == (kind, object_id) else f" with {escape_markdown(entry.label)}"


def act(change: Callable[[], object], done: str) -> None:
    """Make the change as the signed-in user and redraw with a toast, or show the library's one sentence."""
    try:
        change()
    except tracking.TrackingError as err:
        st.error(escape_markdown(err), icon=":material/error:")
        return
    st.toast(escape_markdown(done))
    st.rerun()


def trash_frame(entries: Sequence[TrashRecord]) -> pd.DataFrame:
    """The Trash page's table (names are shown as text, never as markdown)."""
    return pd.DataFrame(
        [{"entry": e.id, "kind": e.kind, "id": e.object_id, "name": e.name, "runs": e.runs,
          "trashed by": e.trashed_by, "trashed at": f"{e.trashed_at:%Y-%m-%d %H:%M} UTC"} for e in entries],
        columns=["entry", "kind", "id", "name", "runs", "trashed by", "trashed at"],
    )  # fmt: skip
