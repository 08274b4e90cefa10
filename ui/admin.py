"""Pieces of the admin pages (users, audit).

A disabled button shows the library's own reason (`tracking.why_not` and the `*_blockers` functions); the store
refuses the change anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time

import pandas as pd
import streamlit as st

import tracking
from tracking.explore import escape_markdown
from tracking.governance import ROLE_LABELS, Action, AuditRecord, UserRecord, canonical
from tracking.store import Role

ROLES = [role.value for role in Role]
# Groups of audit actions to pick from (`promotion.` matches every action under it); exact ones are typed.
ACTION_GROUPS = sorted({action.value.split(".")[0] + "." for action in Action})


def role_label(role: str) -> str:
    """A role as people read it ("data scientist")."""
    return ROLE_LABELS[Role(role)]


def users_frame(users: list[UserRecord]) -> pd.DataFrame:
    """Accounts as a table: name, role, whether disabled, when created (UTC)."""
    return pd.DataFrame(
        [
            {"account": u.name, "role": u.role_label, "disabled": u.disabled, "created (UTC)": u.created_at}
            for u in users
        ],
        columns=["account", "role", "disabled", "created (UTC)"],
    )


def password_twice(key: str) -> tuple[str, str]:
    """Two password fields (inside a form): the password and its repetition."""
    password = st.text_input("Password", type="password", key=f"{key}_password", help="At least 8 characters.")
    return password, st.text_input("Repeat the password", type="password", key=f"{key}_repeat")


def apply_change(done: str, change: Callable[[], object]) -> None:
    """Make one change; on success say so (as text) after a fresh run, else show the library's sentence."""
    try:
        change()
    except tracking.TrackingError as err:
        st.error(escape_markdown(err))
        return
    notice(escape_markdown(done))
    st.rerun()


def notice(text: str | None = None) -> None:
    """Keep a success message for the next run (`st.rerun` drops this run's output), or show the kept one."""
    if text is not None:
        st.session_state["admin_notice"] = text
    elif kept := st.session_state.pop("admin_notice", None):
        st.success(kept, icon=":material/check_circle:")


# -- audit ---------------------------------------------------------------------------------------------


# an audited object type -> the dashboard page that shows one
PAGES = {"run": "run", "sweep": "sweep", "model_version": "version", "promotion_request": "request"}


def events_frame(events: list[AuditRecord]) -> pd.DataFrame:
    """Audit events as a table, newest first as given; before/after as compact JSON; `open` links to the object's
    page where it has one."""
    return pd.DataFrame(
        [
            {"seq": e.seq, "recorded (UTC)": e.recorded_at.replace("T", " ").rstrip("Z")[:23], "actor": e.actor,
             "action": e.action, "object type": e.object_type, "object id": e.object_id,
             "before": "" if e.before is None else canonical(e.before),
             "after": "" if e.after is None else canonical(e.after), "hash": e.hash[:12],
             "open": f"{PAGES[e.object_type]}?id={e.object_id}" if e.object_type in PAGES else None}
            for e in events
        ],
        columns=["seq", "recorded (UTC)", "actor", "action", "object type", "object id", "before", "after", "hash",
                 "open"],
    )  # fmt: skip


def day_bounds(first: date | None, last: date | None) -> tuple[datetime | None, datetime | None]:
    """Two picked days as UTC bounds: the start of the first and the end of the last (None: open)."""
    since = datetime.combine(first, time.min, UTC) if first else None
    return since, datetime.combine(last, time.max, UTC) if last else None


def parse_day(text: str) -> date | None:
    """A `YYYY-MM-DD` date from the address, or None when absent or malformed."""
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None
