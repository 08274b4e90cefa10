"""Single sign-on, library side: an OpenID Connect identity mapped to an account by the rules of `_sso.py`."""

from __future__ import annotations

import time

import pytest

from tests.governance import PASSWORD, make_accounts
from tracking import PermissionDenied, ValidationError
from tracking.governance import (
    authenticate,
    list_events,
    list_sso_links,
    open_session,
    reset_password,
    session_user,
    set_disabled,
    set_role,
    set_sso_new_accounts,
    sign_in,
    sso_new_accounts,
    sso_user,
    unlink_sso,
    verify_chain,
)

ISSUER = "https://id.example.com"


def _claims(email: str, **more: object) -> dict[str, object]:
    """The claims of a fresh ID token for this address."""
    return {"iss": ISSUER, "email": email, "email_verified": True, "exp": time.time() + 600, **more}


def test_sso_first_sign_in_links_the_account_its_claim_names(store):
    users = make_accounts(store)
    user = sso_user(store, ISSUER, "sub-ds", _claims("data_scientist"))
    assert (user.name, user.role) == ("data_scientist", "data_scientist")
    assert [(link.account, link.subject) for link in list_sso_links(store)] == [("data_scientist", "sub-ds")]
    (event,) = list_events(store, action="user.sso_link")
    assert (event.actor, event.object_id, event.after) == ("data_scientist", "data_scientist",
                                                           {"issuer": ISSUER, "subject": "sub-ds"})  # fmt: skip
    assert users["data_scientist"].id == user.id


def test_sso_later_sign_ins_follow_the_link_not_the_claim(store):
    make_accounts(store)
    sso_user(store, ISSUER, "sub-ds", _claims("data_scientist"))
    again = sso_user(store, ISSUER, "sub-ds", _claims("renamed@example.com"))
    assert again.name == "data_scientist"
    assert len(list_events(store, action="user.sso_link")) == 1


def test_sso_the_role_in_the_store_decides(store):
    users = make_accounts(store)
    sso_user(store, ISSUER, "sub-ds", _claims("data_scientist"))
    set_role(store, users["admin"], "data_scientist", "viewer")
    assert sso_user(store, ISSUER, "sub-ds", _claims("data_scientist", role="admin")).role == "viewer"


def test_sso_unknown_identity_is_refused_by_default(store):
    make_accounts(store)
    assert sso_new_accounts(store) == "refuse"
    with pytest.raises(PermissionDenied, match=r"no account named 'new@example\.com'"):
        sso_user(store, ISSUER, "sub-new", _claims("new@example.com"))
    assert list_sso_links(store) == []


def test_sso_unknown_identity_lands_as_a_viewer_without_password_when_the_admin_says_so(store):
    users = make_accounts(store)
    set_sso_new_accounts(store, users["admin"], "viewer")
    user = sso_user(store, ISSUER, "sub-new", _claims("new@example.com"))
    assert (user.name, user.role, user.disabled) == ("new@example.com", "viewer", False)
    created = list_events(store, action="user.create", object_id="new@example.com")
    assert created[0].after == {"name": "new@example.com", "role": "viewer", "sign_in": "sso", "issuer": ISSUER}
    assert [e.action for e in list_events(store, object_id="new@example.com")] == ["user.sso_link", "user.create"]
    assert verify_chain(store).ok
    with pytest.raises(PermissionDenied, match="Wrong account name or password"):
        authenticate(store, "new@example.com", "")
    with pytest.raises(PermissionDenied, match="Wrong account name or password"):
        sign_in(store, "new@example.com", PASSWORD)


def test_sso_account_can_get_a_password_from_an_admin(store):
    users = make_accounts(store)
    set_sso_new_accounts(store, users["admin"], "viewer")
    sso_user(store, ISSUER, "sub-new", _claims("new@example.com"))
    reset_password(store, users["admin"], "new@example.com", PASSWORD)
    assert authenticate(store, "new@example.com", PASSWORD).name == "new@example.com"


def test_sso_policy_is_an_admins_audited_choice(store):
    users = make_accounts(store)
    with pytest.raises(PermissionDenied, match="only admins"):
        set_sso_new_accounts(store, users["data_scientist"], "viewer")
    with pytest.raises(ValidationError, match="use refuse or viewer"):
        set_sso_new_accounts(store, users["admin"], "admin")
    set_sso_new_accounts(store, users["admin"], "viewer")
    set_sso_new_accounts(store, users["admin"], "refuse")
    assert sso_new_accounts(store) == "refuse"
    changes = [(e.actor, e.before, e.after) for e in reversed(list_events(store, action="sso.new_accounts"))]
    assert changes == [
        ("admin", {"new_accounts": "refuse"}, {"new_accounts": "viewer"}),
        ("admin", {"new_accounts": "viewer"}, {"new_accounts": "refuse"}),
    ]


def test_sso_disabled_account_is_refused(store):
    users = make_accounts(store)
    sso_user(store, ISSUER, "sub-ds", _claims("data_scientist"))
    set_disabled(store, users["admin"], "data_scientist", True)
    with pytest.raises(PermissionDenied, match="'data_scientist' is disabled"):
        sso_user(store, ISSUER, "sub-ds", _claims("data_scientist"))


def test_sso_disabled_account_is_not_linked(store):
    users = make_accounts(store)
    set_disabled(store, users["admin"], "engineer", True)
    with pytest.raises(PermissionDenied, match="'engineer' is disabled"):
        sso_user(store, ISSUER, "sub-eng", _claims("engineer"))
    assert list_sso_links(store) == []


def test_sso_claim_setting_picks_the_claim(store, monkeypatch):
    make_accounts(store)
    monkeypatch.setenv("TRACKING_SSO_CLAIM", "preferred_username")
    user = sso_user(store, ISSUER, "sub-eng", _claims("someone@example.com", preferred_username="engineer"))
    assert user.name == "engineer"


def test_sso_missing_claim_is_refused_with_the_setting_named(store, monkeypatch):
    make_accounts(store)
    monkeypatch.setenv("TRACKING_SSO_CLAIM", "preferred_username")
    with pytest.raises(PermissionDenied, match=r"no 'preferred_username' claim.*TRACKING_SSO_CLAIM"):
        sso_user(store, ISSUER, "sub-eng", _claims("engineer"))


def test_sso_unverified_email_is_refused(store):
    make_accounts(store)
    with pytest.raises(PermissionDenied, match="not verified"):
        sso_user(store, ISSUER, "sub-ds", _claims("data_scientist", email_verified=False))


def test_sso_expired_identity_is_refused(store):
    make_accounts(store)
    with pytest.raises(PermissionDenied, match="expired"):
        sso_user(store, ISSUER, "sub-ds", _claims("data_scientist", exp=time.time() - 1))


def test_sso_account_linked_to_another_subject_of_the_issuer_is_refused(store):
    users = make_accounts(store)
    sso_user(store, ISSUER, "sub-ds", _claims("data_scientist"))
    with pytest.raises(PermissionDenied, match="linked to another identity"):
        sso_user(store, ISSUER, "sub-someone-else", _claims("data_scientist"))
    assert unlink_sso(store, users["admin"], "data_scientist") == 1
    assert sso_user(store, ISSUER, "sub-someone-else", _claims("data_scientist")).name == "data_scientist"
    (event,) = list_events(store, action="user.sso_unlink")
    assert (event.actor, event.before) == ("admin", {"identities": 1})


def test_sso_one_account_may_have_identities_at_several_providers(store):
    make_accounts(store)
    sso_user(store, ISSUER, "sub-ds", _claims("data_scientist"))
    other = sso_user(store, "https://login.other.example", "x-1", _claims("data_scientist"))
    assert other.name == "data_scientist"
    assert len(list_sso_links(store)) == 2


def test_sso_unlink_is_for_admins(store):
    users = make_accounts(store)
    with pytest.raises(PermissionDenied, match="only admins"):
        unlink_sso(store, users["engineer"], "data_scientist")


def test_sso_name_that_cannot_be_an_account_is_refused(store):
    users = make_accounts(store)
    set_sso_new_accounts(store, users["admin"], "viewer")
    with pytest.raises(PermissionDenied, match="cannot be an account name"):
        sso_user(store, ISSUER, "sub-x", _claims("has space@example.com"))


def test_sso_on_a_store_without_accounts_is_refused(store):
    with pytest.raises(PermissionDenied, match="create the first admin"):
        sso_user(store, ISSUER, "sub-x", _claims("x@example.com"))


def test_sso_open_session_gives_a_live_dashboard_session(store):
    make_accounts(store)
    user = sso_user(store, ISSUER, "sub-ds", _claims("data_scientist"))
    assert session_user(store, open_session(store, user)).name == "data_scientist"
