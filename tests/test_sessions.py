"""Sessions that hold: a lockout that parallel guesses cannot race, names unique without regard to case,
one-time sign-in tickets for the session cookie."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import argon2
import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

import tracking
from tests.governance import PASSWORD, make_accounts
from tests.migrations import store_at_revision
from tracking.governance._access import FREE_FAILURES, authenticate, create_user, get_user, set_disabled, set_role
from tracking.governance._sessions import open_session, session_user, sign_in
from tracking.governance._tickets import issue_sign_in_ticket, redeem_sign_in_ticket
from tracking.store._tables import SignInFailure, SignInTicket, User, UserSession, utcnow


class _CheckedPasswords:
    """Counts argon2 password checks; each check waits until every guess is either checking or answered.

    That holds each check open while the other guesses arrive: the worst case for a lock read before the
    check and written after it, where every guess would get its password checked."""

    def __init__(self, guesses: int) -> None:
        self.guesses, self.calls, self.answered_unchecked = guesses, 0, 0
        self._verify = argon2.PasswordHasher.verify
        self._moved = threading.Condition()
        self._checked = threading.local()

    def __call__(self, hasher: argon2.PasswordHasher, hashed: str, password: str) -> bool:
        with self._moved:
            self.calls += 1
            self._checked.flag = True
            self._moved.notify_all()
            self._moved.wait_for(lambda: self.calls + self.answered_unchecked >= self.guesses, timeout=60)
        return self._verify(hasher, hashed, password)

    def answered(self) -> None:
        with self._moved:
            if not getattr(self._checked, "flag", False):
                self.answered_unchecked += 1
                self._moved.notify_all()


def _guess_all_at_once(store: tracking.Store, name: str, passwords: list[str]) -> list[str]:
    checked = _CheckedPasswords(len(passwords))
    start = threading.Barrier(len(passwords))

    def guess(password: str) -> str:
        start.wait()
        try:
            return f"in as {authenticate(store, name, password).name}"
        except tracking.PermissionDenied as err:
            return str(err)
        finally:
            checked.answered()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            argon2.PasswordHasher, "verify", lambda hasher, hashed, password: checked(hasher, hashed, password)
        )
        with ThreadPoolExecutor(len(passwords)) as pool:
            outcomes = list(pool.map(guess, passwords))
    return [*outcomes, checked.calls]


# -- the lockout ---------------------------------------------------------------------------------------


@pytest.mark.file_backends
@pytest.mark.parametrize("guesses", [16, 64])
def test_sessions_parallel_guesses_check_no_more_passwords_than_the_allowance(store, guesses):
    make_accounts(store)
    passwords = [f"wrong-guess-{i}" for i in range(guesses - 1)] + [PASSWORD]  # the right one comes last
    *outcomes, checked = _guess_all_at_once(store, "viewer", passwords)
    assert checked <= FREE_FAILURES
    refused = [o for o in outcomes if o.startswith("Too many failed sign-ins for 'viewer'")]
    assert len(refused) == guesses - checked  # every guess beyond the allowance refused without a check
    signed_in = outcomes.count("in as viewer")  # when the right password was among the ones checked
    assert outcomes.count("Wrong account name or password.") == checked - signed_in


@pytest.mark.file_backends
def test_sessions_after_a_lock_runs_out_one_more_guess_is_checked(store):
    make_accounts(store)
    _guess_all_at_once(store, "viewer", [f"wrong-guess-{i}" for i in range(8)])
    with store.connect(write=True) as conn:  # the lock runs out
        conn.execute(update(SignInFailure).values(locked_until=utcnow() - timedelta(seconds=1)))
    *outcomes, checked = _guess_all_at_once(store, "viewer", [f"again-{i}" for i in range(8)])
    assert checked == 1 and outcomes.count("Wrong account name or password.") == 1


def test_sessions_a_success_resets_the_count(file_store):
    make_accounts(file_store)
    for _ in range(FREE_FAILURES - 1):
        with pytest.raises(tracking.PermissionDenied, match="Wrong"):
            authenticate(file_store, "viewer", "guess-guess")
    assert authenticate(file_store, "viewer", PASSWORD).name == "viewer"
    with file_store.connect() as conn:
        assert conn.execute(select(SignInFailure)).first() is None


def test_sessions_the_lock_holds_for_the_name_in_any_case(file_store):
    make_accounts(file_store)
    for name in ("viewer", "VIEWER", "Viewer"):
        with pytest.raises(tracking.PermissionDenied, match="Wrong"):
            authenticate(file_store, name, "guess-guess")
    with pytest.raises(tracking.PermissionDenied, match="Too many failed sign-ins"):
        authenticate(file_store, "vIEWER", PASSWORD)


# -- names without regard to case ----------------------------------------------------------------------


def test_sessions_a_name_differing_only_in_case_is_taken_with_one_sentence(store):
    create_user(store, None, "admin", "admin", PASSWORD)
    admin = tracking.authenticate(store, "admin", PASSWORD)
    with pytest.raises(tracking.ValidationError) as taken:
        create_user(store, admin, "ADMIN", "viewer", PASSWORD)
    assert str(taken.value) == (
        "An account named 'admin' already exists (account names do not depend on case, so 'ADMIN' is 'admin')."
    )
    assert [u.name for u in tracking.list_users(store)] == ["admin"]


def test_sessions_the_database_refuses_names_differing_only_in_case(store):
    create_user(store, None, "admin", "admin", PASSWORD)
    with pytest.raises(IntegrityError), store.connect(write=True) as conn:  # past the library's own check
        conn.execute(
            User.__table__.insert().values(
                name="Admin", role="viewer", password_hash="x", disabled=False, created_at=utcnow(),
                password_changed_at=utcnow())
        )  # fmt: skip


def test_sessions_sign_in_and_account_calls_take_the_name_in_any_case(file_store):
    users = make_accounts(file_store)
    _token, user = sign_in(file_store, "ENGINEER", PASSWORD)
    assert user.name == "engineer" and get_user(file_store, "Engineer").id == users["engineer"].id
    with pytest.raises(tracking.ValidationError, match="last admin"):  # "ADMIN" is the same, last, admin
        set_role(file_store, users["admin"], "ADMIN", "viewer")
    set_disabled(file_store, users["admin"], "VIEWER")
    assert get_user(file_store, "viewer").disabled


def test_sessions_upgrade_refuses_accounts_differing_only_in_case_with_one_sentence(tmp_path):
    old = store_at_revision(f"sqlite:///{tmp_path / 'old.db'}", tmp_path, "0006")
    with old.connect(write=True) as conn:
        for name in ("admin", "ADMIN"):
            conn.execute(
                User.__table__.insert().values(
                    name=name, role="admin", password_hash="x", disabled=False, created_at=utcnow(),
                    password_changed_at=utcnow())
            )  # fmt: skip
    from tracking.store._db import migrate

    with pytest.raises(RuntimeError, match=r"differ only in case \('admin'\)"):
        migrate(old)
    old.dispose()


# -- sessions and sign-in tickets ----------------------------------------------------------------------


def test_sessions_open_session_gives_a_token_only_its_hash_is_kept(file_store):
    users = make_accounts(file_store)
    token = open_session(file_store, users["viewer"])
    assert session_user(file_store, token) == users["viewer"]
    with file_store.connect() as conn:
        assert token not in conn.execute(select(UserSession.token_sha256)).scalars().all()


def test_sessions_a_ticket_opens_one_session_once(file_store):
    users = make_accounts(file_store)
    ticket = issue_sign_in_ticket(file_store, users["engineer"])
    with file_store.connect() as conn:
        assert ticket not in conn.execute(select(SignInTicket.ticket_sha256)).scalars().all()
    token = redeem_sign_in_ticket(file_store, ticket)
    assert session_user(file_store, token) == users["engineer"]
    assert redeem_sign_in_ticket(file_store, ticket) is None  # used up
    assert redeem_sign_in_ticket(file_store, "forged") is None and redeem_sign_in_ticket(file_store, None) is None


@pytest.mark.file_backends
def test_sessions_a_ticket_raced_by_many_requests_opens_one_session(store):
    users = make_accounts(store)
    ticket = issue_sign_in_ticket(store, users["engineer"])
    start = threading.Barrier(16)

    def redeem(_: int) -> str | None:
        start.wait()
        return redeem_sign_in_ticket(store, ticket)

    with ThreadPoolExecutor(16) as pool:
        tokens = [t for t in pool.map(redeem, range(16)) if t is not None]
    assert len(tokens) == 1
    with store.connect() as conn:
        assert len(conn.execute(select(UserSession.id)).all()) == 1


def test_sessions_an_expired_ticket_or_a_disabled_account_opens_nothing(file_store):
    users = make_accounts(file_store)
    late = issue_sign_in_ticket(file_store, users["engineer"])
    with file_store.connect(write=True) as conn:
        conn.execute(update(SignInTicket).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert redeem_sign_in_ticket(file_store, late) is None
    ticket = issue_sign_in_ticket(file_store, users["viewer"])
    set_disabled(file_store, users["admin"], "viewer")
    assert redeem_sign_in_ticket(file_store, ticket) is None
    with file_store.connect() as conn:
        assert conn.execute(select(UserSession.id)).first() is None
