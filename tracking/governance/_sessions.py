"""Dashboard sessions: a random token per signed-in browser, only its sha256 in the store, ended by sign-out,
an idle timeout, the 12-hour limit or a disabled account."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import delete, insert, select, update

from tracking.governance._access import UserRecord, _aware, authenticate, issue, session_minutes
from tracking.store import Store, User, UserSession, utcnow

SESSION_ABSOLUTE = timedelta(hours=12)
_TOUCH_EVERY = timedelta(seconds=60)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(store: Store, user: UserRecord) -> str:
    """Open a session for an account already checked (by password, single sign-on or a sign-in ticket); its token.

    The token is random and secret; the store keeps only its sha256. `session_user` turns it back into the
    account while the session lives (idle timeout, 12 hours at most, ended by `sign_out` or disabling).
    """
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with store.connect(write=True) as conn:
        conn.execute(insert(UserSession).values(token_sha256=_token_hash(token), user_id=user.id, created_at=now,
                                                last_seen=now))  # fmt: skip
    return token


def sign_in(store: Store, name: str, password: str) -> tuple[str, UserRecord]:
    """Authenticate and open a session; the session token (keep it secret) and the account."""
    user = authenticate(store, name, password)
    return open_session(store, user), user


def session_user(store: Store, token: str | None) -> UserRecord | None:
    """The account of a live session, or None once it ended, timed out or its account was disabled."""
    if not token:
        return None
    now = utcnow()
    with store.connect() as conn:
        row = conn.execute(
            select(
                UserSession.id.label("session_id"),
                UserSession.created_at.label("session_created"),
                UserSession.last_seen,
                User.id,
                User.name,
                User.role,
                User.disabled,
                User.created_at,
            )
            .join(User, User.id == UserSession.user_id)
            .where(UserSession.token_sha256 == _token_hash(token))
        ).first()
    if row is None:
        return None
    idle = now - _aware(row.last_seen)
    if (
        row.disabled
        or idle > timedelta(minutes=session_minutes())
        or now - _aware(row.session_created) > SESSION_ABSOLUTE
    ):
        sign_out(store, token)
        return None
    if idle > _TOUCH_EVERY:  # a write per minute of activity, not one per page view
        with store.connect(write=True) as conn:
            conn.execute(update(UserSession).where(UserSession.id == row.session_id).values(last_seen=now))
    return issue(row)


def sign_out(store: Store, token: str) -> None:
    """End a session."""
    with store.connect(write=True) as conn:
        conn.execute(delete(UserSession).where(UserSession.token_sha256 == _token_hash(token)))
