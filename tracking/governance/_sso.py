"""Single sign-on: an OpenID Connect identity (issuer, subject) mapped to an account of this store.

SSO only proves who someone is; the account's role in the store decides what they may do, and admins
manage roles here as for any account. An identity is linked to an account on its first sign-in: to the
account whose name equals the identity's claim `TRACKING_SSO_CLAIM` (default `email`) when one exists;
otherwise, when the admin's policy for unknown identities is `viewer`, to a new viewer account of that
name without a password; otherwise it is refused. Later sign-ins follow the link, not the claim, so an
address changed at the provider still reaches the same account. An account created here through SSO has
no password (it cannot sign in with one until an admin sets one), and a disabled account is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from tracking._errors import PermissionDenied, ValidationError
from tracking._settings import setting
from tracking.governance._access import _NAME, Action, UserRecord, _named, _user_row, authorize, issue
from tracking.governance._audit import record
from tracking.store import AuditChain, Role, SsoIdentity, SsoPolicy, Store, User, bump_change_counter, utcnow

NEW_ACCOUNT_POLICIES = ("refuse", "viewer")
"""What the first sign-in of an identity without an account does: refuse it, or create a viewer account."""


@dataclass(frozen=True)
class SsoLink:
    """An identity linked to an account."""

    account: str
    issuer: str
    subject: str
    created_at: datetime
    last_sign_in: datetime


def sso_claim() -> str:
    """The claim whose value names an identity's account on its first sign-in (`TRACKING_SSO_CLAIM`)."""
    return setting("TRACKING_SSO_CLAIM") or "email"


def sso_new_accounts(store: Store) -> str:
    """The admin's policy for identities without an account: `refuse` (the default) or `viewer`."""
    with store.connect() as conn:
        return _policy(conn)


def _policy(conn: Any) -> str:
    value = conn.execute(select(SsoPolicy.new_accounts).where(SsoPolicy.id == 1)).scalar_one_or_none()
    return value or "refuse"


def set_sso_new_accounts(store: Store, actor: UserRecord | None, policy: str) -> str:
    """Set what the first sign-in of an identity without an account does (admins only); the policy.

    Raises:
        ValidationError: the policy is neither `refuse` nor `viewer`.
        PermissionDenied: the actor is not an admin.
    """
    if policy not in NEW_ACCOUNT_POLICIES:
        raise ValidationError(f"Unknown policy {policy!r} for new single sign-on identities: use refuse or viewer.")
    with store.connect(write=True) as conn:
        by = authorize(conn, actor, Action.user_manage)
        before = _policy(conn)
        values = {"new_accounts": policy, "updated_by": by, "updated_at": utcnow()}
        if conn.execute(update(SsoPolicy).where(SsoPolicy.id == 1).values(**values)).rowcount == 0:
            conn.execute(insert(SsoPolicy).values(id=1, **values))
        record(conn, by, "sso.new_accounts", "sso_policy", "new_accounts", {"new_accounts": before},
               {"new_accounts": policy})  # fmt: skip
        bump_change_counter(conn)
    return policy


def sso_user(store: Store, issuer: str, subject: str, claims: dict[str, Any]) -> UserRecord:
    """The account of a signed-in OpenID Connect identity: the linked one, else found or created and linked now.

    Args:
        store: the tracking store.
        issuer: the identity provider (the ID token's `iss`).
        subject: the identity at that provider (its `sub`, stable and never reassigned).
        claims: the ID token's claims (`exp`, and the claim `TRACKING_SSO_CLAIM` names).

    Raises:
        PermissionDenied: the identity has expired, has no account and the policy refuses new ones, names an
            account linked to another identity of the same provider, or its account is disabled.
    """
    if not (isinstance(issuer, str) and issuer and isinstance(subject, str) and subject):
        raise PermissionDenied(
            "The identity provider sent no issuer or subject; single sign-on cannot say who you are."
        )
    expires = claims.get("exp")
    if isinstance(expires, int | float) and datetime.fromtimestamp(expires, UTC) <= utcnow():
        raise PermissionDenied("Your single sign-on has expired; sign in again.")
    with store.connect(write=True) as conn:
        # The audit chain's row lock first: two first sign-ins of one identity racing on PostgreSQL link it once.
        conn.execute(select(AuditChain.id).where(AuditChain.id == 1).with_for_update())
        link = conn.execute(
            select(SsoIdentity.id, SsoIdentity.user_id).where(
                SsoIdentity.issuer == issuer, SsoIdentity.subject == subject
            )
        ).first()
        if link is None:
            row = _link(conn, issuer, subject, claims)
        else:
            row = conn.execute(select(User).where(User.id == link.user_id)).one()
            conn.execute(update(SsoIdentity).where(SsoIdentity.id == link.id).values(last_sign_in=utcnow()))
        if row.disabled:
            raise PermissionDenied(f"The account {row.name!r} is disabled; ask an admin to enable it.")
    return issue(row)  # the identity provider vouched for it


def _link(conn: Any, issuer: str, subject: str, claims: dict[str, Any]) -> Any:
    """Link a new identity to the account its claim names (creating a viewer when the policy says so); the row."""
    claim = sso_claim()
    value = claims.get(claim)
    name = value.strip() if isinstance(value, str) else ""
    if not name:
        raise PermissionDenied(
            f"The identity provider sent no {claim!r} claim, which names your account here; an admin can set "
            "TRACKING_SSO_CLAIM to a claim it sends."
        )
    if claim == "email" and claims.get("email_verified") is False:
        raise PermissionDenied(f"Your identity provider has not verified the e-mail address {name}; verify it there.")
    if conn.execute(select(User.id).limit(1)).first() is None:
        raise PermissionDenied("This store has no accounts yet: create the first admin with a password first.")
    row = conn.execute(select(User).where(_named(name))).first()  # account names do not depend on case
    if row is None:
        row = _create_viewer(conn, name, claim, issuer)
    elif conn.execute(
        select(SsoIdentity.id).where(SsoIdentity.user_id == row.id, SsoIdentity.issuer == issuer)
    ).first():
        raise PermissionDenied(
            f"The account {name!r} is linked to another identity of this provider; an admin can unlink it on the "
            "Users page."
        )
    if not row.disabled:  # a disabled account is refused by the caller, and this transaction rolled back
        now = utcnow()
        conn.execute(insert(SsoIdentity).values(issuer=issuer, subject=subject, user_id=row.id, created_at=now,
                                                last_sign_in=now))  # fmt: skip
        record(conn, row.name, "user.sso_link", "user", row.name, None, {"issuer": issuer, "subject": subject})
        bump_change_counter(conn)
    return row


def _create_viewer(conn: Any, name: str, claim: str, issuer: str) -> Any:
    if _policy(conn) != "viewer":
        raise PermissionDenied(
            f"There is no account named {name!r} here, and single sign-on does not create accounts; ask an admin "
            "to add one."
        )
    if not _NAME.fullmatch(name):
        raise PermissionDenied(
            f"Your {claim} {name!r} cannot be an account name here (1 to 64 letters, digits, '_', '.', '@' or '-'); "
            "ask an admin to add your account."
        )
    now = utcnow()
    conn.execute(
        insert(User).values(name=name, role=Role.viewer, password_hash="", disabled=False, created_at=now,
                            password_changed_at=now)
    )  # fmt: skip
    record(conn, name, "user.create", "user", name, None,
           {"name": name, "role": Role.viewer.value, "sign_in": "sso", "issuer": issuer})  # fmt: skip
    return conn.execute(select(User).where(User.name == name)).one()


def list_sso_links(store: Store) -> list[SsoLink]:
    """Every identity linked to an account, by account name."""
    with store.connect() as conn:
        rows = conn.execute(
            select(User.name, SsoIdentity.issuer, SsoIdentity.subject, SsoIdentity.created_at, SsoIdentity.last_sign_in)
            .join(User, User.id == SsoIdentity.user_id)
            .order_by(User.name, SsoIdentity.issuer)
        )
        return [SsoLink(r.name, r.issuer, r.subject, r.created_at, r.last_sign_in) for r in rows]


def unlink_sso(store: Store, actor: UserRecord | None, name: str) -> int:
    """Remove every identity linked to an account (admins only): its next SSO sign-in is matched by claim again.

    Returns:
        How many identities were unlinked.

    Raises:
        NotFoundError: there is no such account.
        PermissionDenied: the actor is not an admin.
    """
    with store.connect(write=True) as conn:
        by = authorize(conn, actor, Action.user_manage)
        row = _user_row(conn, name)
        count = conn.execute(
            select(func.count()).select_from(SsoIdentity).where(SsoIdentity.user_id == row.id)
        ).scalar_one()
        if count:
            conn.execute(delete(SsoIdentity).where(SsoIdentity.user_id == row.id))
            record(conn, by, "user.sso_unlink", "user", name, {"identities": int(count)}, {"identities": 0})
            bump_change_counter(conn)
    return int(count)
