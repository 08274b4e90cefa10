"""One-time sign-in tickets: how a browser that proved who it is gets its session cookie.

A page cannot set an HttpOnly cookie itself. After the password (or single sign-on) check, the page
issues a ticket, valid for a minute and good for one use, and sends the browser with it to the
dashboard's session route, which redeems it for a session (`open_session`) and sets the cookie. Only
the ticket's sha256 is stored, and redeeming deletes it in the same statement that reads it, so two
requests racing with one ticket cannot both open a session.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import delete, insert, select

from tracking.governance._access import UserRecord, _record
from tracking.governance._sessions import open_session
from tracking.store import SignInTicket, Store, User, utcnow

TICKET_SECONDS = 60


def _ticket_hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


def issue_sign_in_ticket(store: Store, user: UserRecord) -> str:
    """A one-time ticket for an account already checked; `redeem_sign_in_ticket` turns it into a session token."""
    ticket = secrets.token_urlsafe(32)
    now = utcnow()
    with store.connect(write=True) as conn:
        conn.execute(delete(SignInTicket).where(SignInTicket.expires_at < now))  # the unused ones of the past
        conn.execute(insert(SignInTicket).values(ticket_sha256=_ticket_hash(ticket), user_id=user.id,
                                                 expires_at=now + timedelta(seconds=TICKET_SECONDS)))  # fmt: skip
    return ticket


def redeem_sign_in_ticket(store: Store, ticket: str | None) -> str | None:
    """Use a ticket up and open its account's session; the session token, or None for a ticket that is unknown,
    used, expired or whose account was disabled meanwhile."""
    if not ticket or len(ticket) > 200:
        return None
    with store.connect(write=True) as conn:
        used = conn.execute(
            delete(SignInTicket)
            .where(SignInTicket.ticket_sha256 == _ticket_hash(ticket))
            .returning(SignInTicket.user_id, SignInTicket.expires_at)
        ).first()
        if used is None or used.expires_at <= utcnow():
            return None
        row = conn.execute(select(User).where(User.id == used.user_id)).first()
        if row is None or row.disabled:
            return None
        return open_session(store, _record(row))
