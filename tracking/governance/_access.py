"""Accounts, roles, sign-in sessions and the permission check behind every state-changing call.

Passwords are hashed with argon2id (argon2-cffi) and never stored, logged or returned. A store
without any account is a personal store: state changes are allowed and recorded under the operating
system's user name. Once the first account exists (it must be an admin), every state-changing call
needs a signed-in account whose current role allows it; the role is read from the store inside the
transaction that makes the change, so a role changed or an account disabled a moment ago counts.

The actor of a change is a `UserRecord` issued by one of the library's credential checks (a password
in `authenticate`, a dashboard session in `session_user`, an access token in `verify_token`): each
carries a proof made with a key of this process, and `authorize` refuses a record without a valid
one, so a record built by hand (or a name passed by the caller) never acts for an account.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tracking._errors import NotFoundError, PermissionDenied, ValidationError
from tracking._settings import number_setting, setting
from tracking.governance._audit import record
from tracking.store import (
    AccessToken,
    AuditChain,
    Role,
    SignInFailure,
    Store,
    User,
    UserSession,
    bump_change_counter,
    utcnow,
)

ROLE_LABELS = {
    Role.viewer: "viewer",
    Role.data_scientist: "data scientist",
    Role.engineer: "engineer",
    Role.product_owner: "product owner",
    Role.admin: "admin",
}


_PLURALS = {role: f"{label}s" for role, label in ROLE_LABELS.items()}


class Action(StrEnum):
    """Every state-changing action; `PERMISSIONS` says which roles may take it."""

    sweep_launch = "sweep.launch"
    sweep_cancel = "sweep.cancel"
    sweep_resume = "sweep.resume"
    run_annotate = "run.annotate"
    report_share = "report.share"
    version_register = "version.register"
    model_edit = "model.edit"
    version_stage = "version.stage"
    promotion_request = "promotion.request"
    promotion_decide = "promotion.decide"
    promotion_override = "promotion.override"
    policy_edit = "policy.edit"
    user_manage = "user.manage"
    model_serve = "model.serve"
    feedback_import = "feedback.import"
    review_open = "review.open"
    review_close = "review.close"
    model_retrain = "model.retrain"
    run_reproduce = "run.reproduce"
    webhook_manage = "webhook.manage"
    run_import = "run.import"
    run_log = "run.log"
    run_trash = "run.trash"
    trash_purge = "trash.purge"


_BUILDERS = frozenset({Role.data_scientist, Role.engineer, Role.admin})
_WRITERS = _BUILDERS | {Role.product_owner}
PERMISSIONS: dict[Action, frozenset[Role]] = {
    Action.sweep_launch: _BUILDERS,
    Action.sweep_cancel: _BUILDERS,
    Action.sweep_resume: _BUILDERS,
    Action.run_annotate: _WRITERS,
    Action.report_share: _WRITERS,
    Action.version_register: _BUILDERS,
    Action.model_edit: _WRITERS,
    Action.version_stage: _BUILDERS,
    Action.promotion_request: _BUILDERS,
    Action.promotion_decide: frozenset({Role.product_owner, Role.admin}),
    Action.promotion_override: frozenset({Role.admin}),
    Action.policy_edit: frozenset({Role.admin}),
    Action.user_manage: frozenset({Role.admin}),
    Action.model_serve: _BUILDERS,
    Action.feedback_import: _BUILDERS,
    Action.review_open: _WRITERS,
    Action.review_close: frozenset({Role.product_owner, Role.admin}),
    Action.model_retrain: _BUILDERS,
    Action.run_reproduce: _BUILDERS,
    Action.webhook_manage: frozenset({Role.admin}),
    Action.run_import: _BUILDERS,
    Action.run_log: _BUILDERS,
    Action.run_trash: _BUILDERS,
    Action.trash_purge: frozenset({Role.admin}),
}
DESCRIPTIONS: dict[Action, str] = {
    Action.sweep_launch: "launch sweeps",
    Action.sweep_cancel: "cancel sweeps",
    Action.sweep_resume: "resume sweeps",
    Action.run_annotate: "tag runs and write notes",
    Action.report_share: "save and share reports",
    Action.version_register: "register model versions",
    Action.model_edit: "edit model descriptions and model cards",
    Action.version_stage: "move versions to staging or archive them",
    Action.promotion_request: "request promotions to production",
    Action.promotion_decide: "approve or reject promotion requests",
    Action.promotion_override: "approve a request whose gates failed (override)",
    Action.policy_edit: "edit promotion policies",
    Action.user_manage: "manage accounts and roles",
    Action.model_serve: "serve models",
    Action.feedback_import: "import ground-truth labels",
    Action.review_open: "open a review of a production version",
    Action.review_close: "close reviews of production versions",
    Action.model_retrain: "retrain models",
    Action.run_reproduce: "reproduce runs",
    Action.webhook_manage: "manage webhooks",
    Action.run_import: "import runs from other trackers (MLflow)",
    Action.run_log: "log runs (params, metrics, artifacts)",
    Action.run_trash: "move runs, sweeps and experiments to the trash or restore them",
    Action.trash_purge: "purge the trash, apply retention or collect unreferenced files",
}
# What a sweep-scoped access token may do, and only on the runs of its sweep.
SCOPED_ACTIONS = frozenset({Action.run_log, Action.run_annotate})

MIN_PASSWORD = 8
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
FREE_FAILURES = 3  # failed sign-ins before the account name is locked out for a while
MAX_LOCK_SECONDS = 900


_PROOF_KEY = secrets.token_bytes(32)  # this process's own: only records issued here carry a valid proof


@dataclass(frozen=True)
class UserRecord:
    """An account. As the actor of a change it must come from a credential check (see the module docstring):
    `token_id` names the access token it was issued for, `sweep_id` the sweep such a token is scoped to."""

    id: int
    name: str
    role: str
    disabled: bool
    created_at: datetime
    token_id: int | None = None
    sweep_id: int | None = None
    proof: bytes = field(default=b"", repr=False, compare=False)

    @property
    def role_label(self) -> str:
        return ROLE_LABELS[Role(self.role)]

    def may(self, action: Action) -> bool:
        """Whether this account's role allows the action (`why_not` says why not; the store re-checks on every
        change)."""
        return why_not(self, action) is None


def _hasher() -> PasswordHasher:
    if setting("TRACKING_TEST_FAST_HASHES") == "1":  # the test suite's profile: see SETTINGS
        return PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    return PasswordHasher()  # argon2id with the library's current recommended cost


def hash_password(password: str) -> str:
    """An argon2id hash of the password."""
    return _hasher().hash(password)


def _verify(stored: str | None, password: str) -> bool:
    hasher = _hasher()
    try:
        # An unknown account still pays for one hash, so timing does not tell which names exist.
        # An account without a password ("": it signs in only through SSO) pays the same and never matches.
        return bool(hasher.verify(stored or _dummy_hash(), password)) and bool(stored)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy_hash() -> str:
    """A hash of a random password: what an unknown account name is checked against."""
    return hash_password(secrets.token_hex(16))


def session_minutes() -> float:
    """Minutes of inactivity after which a dashboard session ends (`TRACKING_SESSION_MINUTES`, default 30)."""
    return number_setting("TRACKING_SESSION_MINUTES")


def _record(row: Any) -> UserRecord:
    """An account to read (lists, look-ups): it carries no proof, so it cannot act."""
    return UserRecord(row.id, row.name, str(row.role), bool(row.disabled), row.created_at)


def _named(name: str) -> Any:
    """The condition that finds an account by name: names do not depend on case (`ADMIN` is `admin`)."""
    return func.lower(User.name) == name.lower()


def _proof(user_id: int, name: str, token_id: int | None, sweep_id: int | None) -> bytes:
    message = f"{user_id}\x00{name}\x00{token_id}\x00{sweep_id}".encode()
    return hmac.new(_PROOF_KEY, message, hashlib.sha256).digest()


def issue(row: Any, token_id: int | None = None, sweep_id: int | None = None) -> UserRecord:
    """The actor record of an account whose credential was just checked (for the library's credential checks
    only: `authenticate`, `session_user`, `verify_token`)."""
    proof = _proof(int(row.id), row.name, token_id, sweep_id)
    return UserRecord(row.id, row.name, str(row.role), bool(row.disabled), row.created_at, token_id, sweep_id, proof)


def is_issued(actor: UserRecord) -> bool:
    """Whether `actor` came from one of this process's credential checks (not built by hand or altered)."""
    expected = _proof(actor.id, actor.name, actor.token_id, actor.sweep_id)
    return isinstance(actor.proof, bytes) and hmac.compare_digest(actor.proof, expected)


def has_accounts(store: Store) -> bool:
    """Whether any account exists (until then the store is personal and the first account must be an admin)."""
    with store.connect() as conn:
        return conn.execute(select(User.id).limit(1)).first() is not None


@functools.cache  # asked in every write transaction; without USER set, getuser() reads the password database
def local_actor() -> str:
    """The name recorded for changes on a store without accounts: the operating system's user."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "local"


_ANY_ACCOUNT = select(User.id).limit(1)  # built once: every write of a run asks it


def authorize(conn: Any, actor: UserRecord | None, action: Action, *, sweep_id: int | None = None) -> str:
    """Check, inside the caller's transaction, that `actor` may take `action`; the name to record.

    Args:
        sweep_id: the sweep the change touches (a run's sweep), which a sweep-scoped token must match.

    Raises:
        PermissionDenied: no credential on a store with accounts; a record not issued by a credential check;
            a revoked or expired token, or one scoped to another sweep; a disabled account, or a role that
            does not allow the action (the sentence `why_not` gives).
    """
    if actor is None:
        if conn.execute(_ANY_ACCOUNT).first() is not None:
            raise PermissionDenied(
                f"Sign in to {DESCRIPTIONS[action]}: this store has accounts (from a script or worker, set "
                "TRACKING_TOKEN to an access token from `python -m tracking tokens create`; the CLI also takes "
                "TRACKING_USER and TRACKING_PASSWORD)."
            )
        return local_actor()
    row = verified_row(conn, actor)
    if actor.sweep_id is not None and (action not in SCOPED_ACTIONS or sweep_id != actor.sweep_id):
        raise PermissionDenied(
            f"This access token is scoped to sweep {actor.sweep_id}: it may only log and tag that sweep's runs, "
            f"not {DESCRIPTIONS[action]}{f' for sweep {sweep_id}' if sweep_id is not None else ''}."
        )
    refusal = why_not(replace(actor, role=str(row.role), disabled=bool(row.disabled)), action)
    if refusal:
        raise PermissionDenied(refusal)
    return actor.name


def verified_row(conn: Any, actor: UserRecord) -> Any:
    """The account row behind an issued actor record, read inside the caller's transaction.

    Raises:
        PermissionDenied: the record was not issued by a credential check, its account is gone, or the token
            it was issued for has been revoked or has expired.
    """
    if not is_issued(actor):
        raise PermissionDenied(
            f"The account record for {actor.name!r} was not issued by a sign-in or an access token, so it cannot "
            "act: sign in, or set TRACKING_TOKEN to an access token."
        )
    row = conn.execute(select(User.name, User.role, User.disabled).where(User.id == actor.id)).first()
    if row is None or row.name != actor.name:
        raise PermissionDenied(f"There is no account {actor.name!r} on this store; sign in again.")
    if actor.token_id is not None:
        token = conn.execute(
            select(AccessToken.user_id, AccessToken.expires_at, AccessToken.revoked_at).where(
                AccessToken.id == actor.token_id
            )
        ).first()
        refusal = token_refusal(token, actor.id)
        if refusal:
            raise PermissionDenied(refusal)
    return row


def token_refusal(token: Any, user_id: int | None = None) -> str | None:
    """Why an access token row (user_id, expires_at, revoked_at) no longer works, or None while it does."""
    if token is None or (user_id is not None and token.user_id != user_id):
        return "This access token is not valid; create one with `python -m tracking tokens create`."
    if token.revoked_at is not None:
        return (
            f"This access token was revoked on {_aware(token.revoked_at):%Y-%m-%d %H:%M} UTC; create a new one with "
            "`python -m tracking tokens create`."
        )
    if _aware(token.expires_at) <= utcnow():
        return (
            f"This access token expired on {_aware(token.expires_at):%Y-%m-%d %H:%M} UTC; create a new one with "
            "`python -m tracking tokens create`."
        )
    return None


def why_not(actor: UserRecord | None, action: Action) -> str | None:
    """Why `actor` may not take `action` (the sentence a page shows on a disabled button and the library
    raises), or None when the account's role allows it. Built from `PERMISSIONS` and `DESCRIPTIONS`.

    The store re-checks the current role inside every change (`authorize`); this asks the record in hand.
    """
    if actor is None:
        return f"Sign in to {DESCRIPTIONS[action]}."
    if actor.disabled:
        return _disabled(actor.name, action)
    if Role(actor.role) in PERMISSIONS[action]:
        return None
    allowed = [_PLURALS[role] for role in Role if role in PERMISSIONS[action]]
    who = f"only {allowed[0]}" if len(allowed) == 1 else ", ".join(allowed[:-1]) + f" and {allowed[-1]}"
    return f"Your role ({ROLE_LABELS[Role(actor.role)]}) may not {DESCRIPTIONS[action]}; {who} can."


def _disabled(name: str, action: Action) -> str:
    return f"The account {name!r} is disabled, so it cannot {DESCRIPTIONS[action]}."


def require(store: Store, actor: UserRecord | None, action: Action) -> str:
    """`authorize` in a transaction of its own: a quick check before slow work (the change re-checks)."""
    with store.connect() as conn:
        return authorize(conn, actor, action)


# --- accounts ---


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationError(
            f"The account name {name!r} is not allowed: use 1 to 64 letters, digits, '_', '.', '@' or '-', "
            "starting with a letter or digit."
        )
    return name


def _check_password(name: str, password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise ValidationError(f"The password must have at least {MIN_PASSWORD} characters.")
    if password.strip().lower() == name.lower():
        raise ValidationError("The password must not be the account name.")
    return password


def _role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise ValidationError(f"Unknown role {role!r}; the roles are: {', '.join(r.value for r in Role)}.") from None


def create_user(store: Store, actor: UserRecord | None, name: str, role: str, password: str) -> UserRecord:
    """Create an account. On a store without accounts anyone may create the first one, which must be an admin.

    Raises:
        ValidationError: bad name, role or password, or the name is taken.
        PermissionDenied: the actor is not an admin.
    """
    name, chosen = _check_name(name), _role(role)
    _check_password(name, password)
    hashed = hash_password(password)
    with store.connect(write=True) as conn:
        # The audit chain's row lock first: two "first admins" racing on PostgreSQL cannot both be first.
        conn.execute(select(AuditChain.id).where(AuditChain.id == 1).with_for_update())
        first = conn.execute(select(User.id).limit(1)).first() is None
        if first:
            if chosen != Role.admin:
                raise ValidationError("The first account must be an admin (it manages the others).")
            by = name
        else:
            by = authorize(conn, actor, Action.user_manage)
        taken = conn.execute(select(User.name).where(_named(name))).scalar_one_or_none()
        if taken is not None:
            same = "" if taken == name else f" (account names do not depend on case, so {name!r} is {taken!r})"
            raise ValidationError(f"An account named {taken!r} already exists{same}.")
        now = utcnow()
        conn.execute(
            insert(User).values(name=name, role=chosen, password_hash=hashed, disabled=False, created_at=now,
                                password_changed_at=now)
        )  # fmt: skip
        record(conn, by, "user.create", "user", name, None, {"name": name, "role": chosen.value})
        bump_change_counter(conn)
    return get_user(store, name)


def get_user(store: Store, name: str) -> UserRecord:
    """One account by name (in any case: `ADMIN` finds `admin`). Raises NotFoundError."""
    with store.connect() as conn:
        row = conn.execute(select(User).where(_named(name))).first()
    if row is None:
        raise NotFoundError(f"There is no account named {name!r}.")
    return _record(row)


def list_users(store: Store) -> list[UserRecord]:
    """Every account, by name."""
    with store.connect() as conn:
        return [_record(row) for row in conn.execute(select(User).order_by(User.name))]


def _admins_left(conn: Any, without: str) -> int:
    return int(
        conn.execute(
            select(func.count()).where(User.role == Role.admin, User.disabled.is_(False), User.name != without)
        ).scalar_one()
    )


def set_role(store: Store, actor: UserRecord | None, name: str, role: str) -> UserRecord:
    """Change an account's role; the last enabled admin keeps theirs."""
    chosen = _role(role)
    with store.connect(write=True) as conn:
        by = authorize(conn, actor, Action.user_manage)
        row = _user_row(conn, name)
        name = row.name  # as stored, whatever case it was asked in
        if row.role == Role.admin and chosen != Role.admin and _admins_left(conn, name) == 0:
            raise ValidationError(f"{name} is the last admin; make another account admin first.")
        conn.execute(update(User).where(User.id == row.id).values(role=chosen))
        record(conn, by, "user.set_role", "user", name, {"role": str(row.role)}, {"role": chosen.value})
        bump_change_counter(conn)
    return get_user(store, name)


def set_disabled(store: Store, actor: UserRecord | None, name: str, disabled: bool = True) -> UserRecord:
    """Disable (or enable again) an account; disabling ends its sessions. The last admin stays enabled."""
    with store.connect(write=True) as conn:
        by = authorize(conn, actor, Action.user_manage)
        row = _user_row(conn, name)
        name = row.name
        if disabled and row.role == Role.admin and _admins_left(conn, name) == 0:
            raise ValidationError(f"{name} is the last admin; make another account admin first.")
        conn.execute(update(User).where(User.id == row.id).values(disabled=disabled))
        if disabled:
            conn.execute(delete(UserSession).where(UserSession.user_id == row.id))
        record(conn, by, "user.disable" if disabled else "user.enable", "user", name,
               {"disabled": bool(row.disabled)}, {"disabled": disabled})  # fmt: skip
        bump_change_counter(conn)
    return get_user(store, name)


def reset_password(store: Store, actor: UserRecord | None, name: str, password: str) -> None:
    """Set a new password (an admin for anyone, or an account for itself); the account's sessions end."""
    _check_password(name, password)
    hashed = hash_password(password)
    with store.connect(write=True) as conn:
        # A token cannot set a password.
        own = actor is not None and actor.name.lower() == name.lower() and actor.token_id is None
        if own:
            if verified_row(conn, actor).disabled:
                raise PermissionDenied(f"The account {name!r} is disabled.")
            by = name
        else:
            by = authorize(conn, actor, Action.user_manage)
        row = _user_row(conn, name)
        conn.execute(update(User).where(User.id == row.id).values(password_hash=hashed, password_changed_at=utcnow()))
        conn.execute(delete(UserSession).where(UserSession.user_id == row.id))
        conn.execute(delete(SignInFailure).where(SignInFailure.name == _throttle_key(name)))
        record(conn, by, "user.reset_password", "user", row.name, None, {"password": "changed"})
        bump_change_counter(conn)


def _user_row(conn: Any, name: str) -> Any:
    row = conn.execute(select(User).where(_named(name))).first()
    if row is None:
        raise NotFoundError(f"There is no account named {name!r}.")
    return row


# --- signing in ---


def authenticate(store: Store, name: str, password: str) -> UserRecord:
    """Check a name (in any case) and password, slowed down after repeated failures; the account.

    Every attempt reserves its place in the account name's failure count before the password is checked,
    in one statement, and the attempt that uses up the allowance sets the lock in the same transaction.
    So however many guesses arrive at once, at most `FREE_FAILURES` passwords are checked before the lock,
    and one more each time a lock runs out; a success resets the count.

    Raises:
        PermissionDenied: wrong name or password, a disabled account, or too many recent failures.
    """
    key, now = _throttle_key(name), utcnow()
    with store.connect(write=True) as conn:
        attempt = conn.execute(_reserve_attempt(store, key, now)).scalar_one_or_none()
        if attempt is None:  # locked: refused without checking the password
            locked_until = conn.execute(
                select(SignInFailure.locked_until).where(SignInFailure.name == key)
            ).scalar_one()
        elif attempt >= FREE_FAILURES:
            lock = now + timedelta(seconds=min(MAX_LOCK_SECONDS, 5 * 2 ** (attempt - FREE_FAILURES)))
            conn.execute(update(SignInFailure).where(SignInFailure.name == key).values(locked_until=lock))
        # Only names an account could have are looked up (Python's lower() maps a few non-ASCII letters to ASCII).
        row = conn.execute(select(User).where(_named(name))).first() if _NAME.fullmatch(name) else None
    if attempt is None:
        wait = int((_aware(locked_until) - now).total_seconds()) + 1
        raise PermissionDenied(f"Too many failed sign-ins for {name!r}; try again in {wait} s.")
    # Checked outside the transaction: the slow hash holds no lock, and the count is already reserved.
    ok = _verify(row.password_hash if row is not None else None, password)
    if not ok or row is None or row.disabled:
        raise PermissionDenied("Wrong account name or password.")  # counted by the reservation above
    with store.connect(write=True) as conn:
        conn.execute(delete(SignInFailure).where(SignInFailure.name == key))
        if _hasher().check_needs_rehash(row.password_hash):
            conn.execute(update(User).where(User.id == row.id).values(password_hash=hash_password(password)))
    return issue(row)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _throttle_key(name: str) -> str:
    """The failure count's key: one per account name, whatever its case (known names or not)."""
    return name.lower()[:200]


def _reserve_attempt(store: Store, key: str, now: datetime) -> Any:
    """One statement that counts an attempt unless the name is locked; returns the attempt's number, or no row.

    An upsert with a condition: concurrent attempts queue on the row (PostgreSQL re-checks the condition on the
    row as the one before left it; SQLite writes one transaction at a time), so no two get the same number and
    none passes a lock that an earlier attempt set.
    """
    dialect_insert = postgresql_insert if store.dialect == "postgresql" else sqlite_insert
    statement = dialect_insert(SignInFailure).values(name=key, failures=1, locked_until=None)
    return statement.on_conflict_do_update(
        index_elements=[SignInFailure.name],
        set_={"failures": SignInFailure.failures + 1},
        where=or_(SignInFailure.locked_until.is_(None), SignInFailure.locked_until <= now),
    ).returning(SignInFailure.failures)
