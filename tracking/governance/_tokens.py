"""Access tokens: how scripts, sweep workers and the CLI act as an account on a store with accounts.

A token is 32 random bytes (`trk_` + URL-safe base64), shown once when created; the store keeps only
its sha256, so a copy of the database reveals no usable token. A personal token is named, expires
(30 days by default, a year at most), can be revoked, and lists with its last use. A sweep token is
made for the workers a launch starts: it may only log and tag the runs of its sweep, expires with the
sweep (or after `TRACKING_SWEEP_TOKEN_HOURS`), and reaches the workers through their environment.

`verify_token` is a credential check: it issues the actor record that `authorize` accepts, and
`authorize` re-reads the token (revoked? expired?) inside every change it checks.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from tracking._errors import NotFoundError, PermissionDenied, ValidationError
from tracking._settings import number_setting, setting
from tracking.governance._access import (
    Action,
    UserRecord,
    authorize,
    has_accounts,
    issue,
    local_actor,
    token_refusal,
    verified_row,
)
from tracking.governance._audit import record
from tracking.store import AccessToken, Store, Sweep, User, bump_change_counter, utcnow

PREFIX = "trk_"
DEFAULT_DAYS = 30
MAX_DAYS = 365
MAX_NAME = 100
_TOUCH_EVERY = timedelta(seconds=60)  # last use is written at most once a minute per token


@dataclass(frozen=True)
class TokenRecord:
    """An access token as listed (never the token itself)."""

    id: int
    name: str
    user: str
    sweep_id: int | None
    created_by: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def state(self) -> str:
        """`active`, `revoked` or `expired`."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= utcnow() else "active"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(moment: datetime | None) -> datetime | None:
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


def _token_record(row: Any) -> TokenRecord:
    return TokenRecord(
        int(row.id), row.name, row.user, row.sweep_id, row.created_by, _aware(row.created_at),
        _aware(row.expires_at), _aware(row.last_used_at), _aware(row.revoked_at),
    )  # fmt: skip


_COLUMNS = (
    AccessToken.id, AccessToken.name, User.name.label("user"), AccessToken.sweep_id, AccessToken.created_by,
    AccessToken.created_at, AccessToken.expires_at, AccessToken.last_used_at, AccessToken.revoked_at,
)  # fmt: skip


def _new_token(conn: Any, user_id: int, name: str, by: str, expires: datetime, sweep_id: int | None) -> tuple[str, int]:
    token = PREFIX + secrets.token_urlsafe(32)
    token_id = conn.execute(
        insert(AccessToken).returning(AccessToken.id),
        {"user_id": user_id, "name": name, "token_sha256": _digest(token), "sweep_id": sweep_id, "created_by": by,
         "created_at": utcnow(), "expires_at": expires},
    ).scalar_one()  # fmt: skip
    record(conn, by, "token.create", "access_token", int(token_id), None,
           {"name": name, "account": by, "sweep": sweep_id, "expires_at": expires.isoformat()})  # fmt: skip
    bump_change_counter(conn)
    return token, int(token_id)


def _need_accounts(store: Store) -> None:
    if not has_accounts(store):
        raise ValidationError(
            f"This store has no accounts, so it needs no access tokens: scripts write as {local_actor()!r}."
        )


def create_token(
    store: Store, actor: UserRecord | None, name: str, days: float = DEFAULT_DAYS
) -> tuple[str, TokenRecord]:
    """Create a personal access token for the signed-in account; the token (shown only now) and its record.

    Args:
        actor: an account signed in with its password or a dashboard session (a token cannot make tokens).
        name: what the token is for, e.g. "laptop scripts".
        days: days until it expires, at most `MAX_DAYS`.

    Raises:
        ValidationError: no accounts on this store, an empty or too long name, or a bad lifetime.
        PermissionDenied: nobody signed in, or the actor is itself a token.
    """
    _need_accounts(store)
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME:
        raise ValidationError(f"Give the token a name of 1 to {MAX_NAME} characters (what it is for).")
    if not 0 < days <= MAX_DAYS:
        raise ValidationError(f"A token lives between a moment and {MAX_DAYS} days, not {days:g} days.")
    if actor is None or actor.token_id is not None:
        raise PermissionDenied(
            "Create access tokens signed in with your password: on the dashboard's Access tokens page, or with "
            "TRACKING_USER (and TRACKING_PASSWORD) set for `python -m tracking tokens create`."
        )
    with store.connect(write=True) as conn:
        if verified_row(conn, actor).disabled:
            raise PermissionDenied(f"The account {actor.name!r} is disabled, so it cannot create access tokens.")
        token, token_id = _new_token(conn, actor.id, name, actor.name, utcnow() + timedelta(days=days), None)
    return token, get_token(store, token_id)


def create_sweep_token(store: Store, actor: UserRecord | None, sweep_id: int, name: str = "") -> str | None:
    """A token for the workers of one sweep, or None on a store without accounts (it needs none).

    It may only log and tag that sweep's runs; it expires when the sweep ends or after
    `TRACKING_SWEEP_TOKEN_HOURS`, whichever comes first.

    Raises:
        PermissionDenied: the actor may not launch sweeps (a sweep token cannot make another).
    """
    if not has_accounts(store):
        return None
    hours = number_setting("TRACKING_SWEEP_TOKEN_HOURS")
    with store.connect(write=True) as conn:
        who = authorize(conn, actor, Action.sweep_launch)
        if conn.execute(select(Sweep.id).where(Sweep.id == sweep_id)).first() is None:
            raise NotFoundError(f"There is no sweep {sweep_id}.")
        label = (name or "").strip()[:MAX_NAME] or f"sweep {sweep_id} workers"
        token, _ = _new_token(conn, actor.id, label, who, utcnow() + timedelta(hours=hours), sweep_id)
    return token


def expire_sweep_tokens(conn: Any, sweep_id: int) -> None:
    """End the tokens of a sweep that just ended (inside the caller's write transaction)."""
    now = utcnow()
    conn.execute(
        update(AccessToken)
        .where(AccessToken.sweep_id == sweep_id, AccessToken.expires_at > now, AccessToken.revoked_at.is_(None))
        .values(expires_at=now)
    )


def get_token(store: Store, token_id: int) -> TokenRecord:
    """One token's record. Raises NotFoundError."""
    with store.connect() as conn:
        row = conn.execute(
            select(*_COLUMNS).join(User, User.id == AccessToken.user_id).where(AccessToken.id == token_id)
        ).first()
    if row is None:
        raise NotFoundError(f"There is no access token {token_id}.")
    return _token_record(row)


def list_tokens(store: Store, actor: UserRecord | None, everyone: bool = False) -> list[TokenRecord]:
    """The actor's access tokens (with `everyone`, an admin's view of all accounts' tokens), newest first.

    Raises:
        PermissionDenied: nobody signed in on a store with accounts, or `everyone` asked by a non-admin.
    """
    with store.connect() as conn:
        if actor is None and conn.execute(select(User.id).limit(1)).first() is None:
            return []
        if everyone or actor is None:
            authorize(conn, actor, Action.user_manage)
        else:
            _own(conn, actor)
        query = select(*_COLUMNS).join(User, User.id == AccessToken.user_id)
        if not everyone:
            query = query.where(AccessToken.user_id == actor.id)
        return [_token_record(row) for row in conn.execute(query.order_by(AccessToken.id.desc()))]


def revoke_token(store: Store, actor: UserRecord | None, token_id: int) -> TokenRecord:
    """Revoke an access token at once (its own account's, or anyone's for an admin).

    Raises:
        NotFoundError: no such token.
        PermissionDenied: nobody signed in, or the token belongs to another account and the actor is no admin.
    """
    with store.connect(write=True) as conn:
        row = conn.execute(
            select(AccessToken.user_id, AccessToken.revoked_at).where(AccessToken.id == token_id)
        ).first()
        if row is None:
            raise NotFoundError(f"There is no access token {token_id}.")
        own = actor is not None and row.user_id == actor.id
        who = _own(conn, actor) if own else authorize(conn, actor, Action.user_manage)
        if row.revoked_at is None:
            conn.execute(update(AccessToken).where(AccessToken.id == token_id).values(revoked_at=utcnow()))
            record(conn, who, "token.revoke", "access_token", token_id, {"revoked": False}, {"revoked": True})
            bump_change_counter(conn)
    return get_token(store, token_id)


def verify_token(store: Store, token: str) -> UserRecord:
    """The account an access token stands for (the actor record `authorize` accepts); notes its last use.

    Raises:
        PermissionDenied: an unknown, revoked or expired token, or a disabled account.
    """
    digest = _digest((token or "").strip())
    with store.connect() as conn:
        row = conn.execute(
            select(
                AccessToken.id.label("token_id"), AccessToken.user_id, AccessToken.sweep_id, AccessToken.expires_at,
                AccessToken.revoked_at, AccessToken.last_used_at, User.id, User.name, User.role, User.disabled,
                User.created_at,
            ).join(User, User.id == AccessToken.user_id).where(AccessToken.token_sha256 == digest)
        ).first()  # fmt: skip
    refusal = token_refusal(row)
    if refusal:
        raise PermissionDenied(refusal)
    if row.disabled:
        raise PermissionDenied(f"The account {row.name!r} is disabled, so its access tokens no longer work.")
    now = utcnow()
    if row.last_used_at is None or now - _aware(row.last_used_at) > _TOUCH_EVERY:
        with store.connect(write=True) as conn:
            conn.execute(update(AccessToken).where(AccessToken.id == row.token_id).values(last_used_at=now))
    return issue(row, token_id=int(row.token_id), sweep_id=row.sweep_id)


def actor_from_env(store: Store) -> UserRecord | None:
    """The account `TRACKING_TOKEN` stands for, or None when it is unset or the store has no accounts.

    Raises:
        PermissionDenied: the token is unknown, revoked or expired.
    """
    token = setting("TRACKING_TOKEN")
    if not token or not has_accounts(store):
        return None
    return verify_token(store, token)


def _own(conn: Any, actor: UserRecord) -> str:
    """The name of an actor acting on its own token (any verified record of the account; not a sweep token)."""
    if actor.sweep_id is not None:
        raise PermissionDenied(f"This access token is scoped to sweep {actor.sweep_id}; it cannot manage tokens.")
    if verified_row(conn, actor).disabled:
        raise PermissionDenied(f"The account {actor.name!r} is disabled.")
    return actor.name
