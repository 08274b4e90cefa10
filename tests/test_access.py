"""Accounts: argon2 hashes, the first admin, roles, sign-in throttling, sessions that time out."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import argon2
import pytest
from sqlalchemy import select, update

import tracking
from tests.governance import PASSWORD, first_admin, make_accounts
from tracking.governance._access import (
    authenticate,
    create_user,
    has_accounts,
    list_users,
    reset_password,
    set_disabled,
    set_role,
)
from tracking.governance._audit import events_csv, list_events
from tracking.governance._sessions import session_user, sign_in, sign_out
from tracking.store._tables import SignInFailure, User, UserSession, utcnow


def _hashes(store):
    with store.connect() as conn:
        return dict(conn.execute(select(User.name, User.password_hash)).all())


def test_access_passwords_are_stored_as_argon2id_hashes_only(store):
    create_user(store, None, "root", "admin", PASSWORD)
    stored = _hashes(store)["root"]
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_access_hashes_use_the_argon2_default_cost_outside_the_test_suite(file_store, monkeypatch):
    # The suite hashes with a cheap profile (TRACKING_TEST_FAST_HASHES, set in conftest.py); this test pays full price.
    monkeypatch.delenv("TRACKING_TEST_FAST_HASHES")
    create_user(file_store, None, "root", "admin", PASSWORD)
    cost = re.fullmatch(r"\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$[^$]+\$[^$]+", _hashes(file_store)["root"])
    default = argon2.PasswordHasher()
    assert cost, _hashes(file_store)["root"]
    assert tuple(map(int, cost.groups())) == (default.memory_cost, default.time_cost, default.parallelism)
    assert authenticate(file_store, "root", PASSWORD).name == "root"


def test_access_first_account_must_be_an_admin_and_needs_no_sign_in(store):
    assert not has_accounts(store)
    with pytest.raises(tracking.ValidationError, match="first account must be an admin"):
        create_user(store, None, "ana", "data_scientist", PASSWORD)
    admin = first_admin(store)
    assert admin.role == "admin" and has_accounts(store)
    with pytest.raises(tracking.PermissionDenied, match="Sign in"):
        create_user(store, None, "mallory", "admin", PASSWORD)


@pytest.mark.parametrize(
    ("name", "password", "message"),
    [
        ("bad name!", PASSWORD, "not allowed"),
        ("", PASSWORD, "not allowed"),
        ("ana", "short", "at least 8"),
        ("ana-lyst", "ANA-LYST", "must not be the account name"),
    ],
)
def test_access_bad_names_and_passwords_are_refused(file_store, name, password, message):
    with pytest.raises(tracking.ValidationError, match=message):
        create_user(file_store, None, name, "admin", password)
    assert list_users(file_store) == []


def test_access_duplicate_name_and_unknown_role_are_refused(file_store):
    admin = first_admin(file_store)
    with pytest.raises(tracking.ValidationError, match="already exists"):
        create_user(file_store, admin, "root", "viewer", PASSWORD)
    with pytest.raises(tracking.ValidationError, match="Unknown role"):
        create_user(file_store, admin, "eve", "superuser", PASSWORD)


def test_access_last_admin_cannot_be_demoted_or_disabled(file_store):
    admin = first_admin(file_store)
    with pytest.raises(tracking.ValidationError, match="last admin"):
        set_role(file_store, admin, "root", "viewer")
    with pytest.raises(tracking.ValidationError, match="last admin"):
        set_disabled(file_store, admin, "root")
    create_user(file_store, admin, "second", "admin", PASSWORD)
    assert set_role(file_store, admin, "root", "viewer").role == "viewer"


def test_access_role_change_takes_effect_on_the_next_call(file_store):
    users = make_accounts(file_store)
    ds = users["data_scientist"]
    set_role(file_store, users["admin"], "data_scientist", "viewer")
    with pytest.raises(tracking.PermissionDenied, match="viewer"):
        tracking.create_sweep(file_store, tracking.SweepSpec(task="iris", model="knn"), actor=ds)


def test_access_wrong_password_and_unknown_name_get_the_same_answer(file_store):
    make_accounts(file_store)
    with pytest.raises(tracking.PermissionDenied) as wrong:
        authenticate(file_store, "viewer", "not-the-password")
    with pytest.raises(tracking.PermissionDenied) as unknown:
        authenticate(file_store, "nobody", "not-the-password")
    assert str(wrong.value) == str(unknown.value) == "Wrong account name or password."


def test_access_repeated_failures_lock_the_name_for_a_while(file_store):
    make_accounts(file_store)
    for _ in range(3):
        with pytest.raises(tracking.PermissionDenied, match="Wrong"):
            authenticate(file_store, "viewer", "guess-guess")
    with pytest.raises(tracking.PermissionDenied, match="Too many failed sign-ins"):
        authenticate(file_store, "viewer", PASSWORD)  # even the right password waits out the lock
    with file_store.connect(write=True) as conn:  # the lock expires
        conn.execute(update(SignInFailure).values(locked_until=utcnow() - timedelta(seconds=1)))
    assert authenticate(file_store, "viewer", PASSWORD).name == "viewer"
    with file_store.connect() as conn:
        assert conn.execute(select(SignInFailure)).first() is None  # a success clears the count


def test_access_disabled_account_cannot_sign_in_and_loses_its_sessions(file_store):
    users = make_accounts(file_store)
    token, _ = sign_in(file_store, "engineer", PASSWORD)
    set_disabled(file_store, users["admin"], "engineer")
    assert session_user(file_store, token) is None
    with pytest.raises(tracking.PermissionDenied):
        authenticate(file_store, "engineer", PASSWORD)
    set_disabled(file_store, users["admin"], "engineer", disabled=False)
    assert authenticate(file_store, "engineer", PASSWORD).name == "engineer"


def test_access_session_times_out_after_idle_minutes(file_store, monkeypatch):
    make_accounts(file_store)
    token, user = sign_in(file_store, "viewer", PASSWORD)
    assert session_user(file_store, token) == user
    monkeypatch.setenv("TRACKING_SESSION_MINUTES", "5")
    with file_store.connect(write=True) as conn:
        conn.execute(update(UserSession).values(last_seen=utcnow() - timedelta(minutes=6)))
    assert session_user(file_store, token) is None
    with file_store.connect() as conn:
        assert conn.execute(select(UserSession)).first() is None  # the ended session is gone


def test_access_sign_out_ends_the_session_and_the_token_is_not_stored(file_store):
    make_accounts(file_store)
    token, _ = sign_in(file_store, "viewer", PASSWORD)
    with file_store.connect() as conn:
        assert token not in conn.execute(select(UserSession.token_sha256)).scalars().all()
    sign_out(file_store, token)
    assert session_user(file_store, token) is None
    assert session_user(file_store, "forged-token") is None


def test_access_reset_password_by_admin_or_self_only(file_store):
    users = make_accounts(file_store)
    with pytest.raises(tracking.PermissionDenied):
        reset_password(file_store, users["viewer"], "engineer", "a-new-password")
    reset_password(file_store, users["viewer"], "viewer", "my-new-password")
    reset_password(file_store, users["admin"], "engineer", "a-new-password")
    assert authenticate(file_store, "viewer", "my-new-password").name == "viewer"
    assert authenticate(file_store, "engineer", "a-new-password").name == "engineer"


def test_access_passwords_and_hashes_never_reach_logs_or_the_audit_export(file_store, caplog):
    caplog.set_level(logging.DEBUG)
    users = make_accounts(file_store)
    reset_password(file_store, users["admin"], "viewer", "another-secret-1")
    with pytest.raises(tracking.PermissionDenied):
        authenticate(file_store, "viewer", "wrong-secret-2")
    exported = events_csv(list_events(file_store))
    logged = caplog.text
    for secret in (PASSWORD, "another-secret-1", "wrong-secret-2", *_hashes(file_store).values()):
        assert secret not in exported
        assert secret not in logged
    assert "user.reset_password" in exported
