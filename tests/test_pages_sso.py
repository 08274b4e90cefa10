"""Single sign-on in the pages (AppTest): the provider's button, `st.user` mapped to an account and a session
opened, a refusal shown, and the Users page's policy and unlink controls. The browser flow against a real
provider is in test_e2e_sso.py."""

from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

import tracking
from tests.conftest import ROOT
from tests.governance import make_accounts
from tests.pages import no_exception, shown_text, signed_in_app
from tracking.governance import list_events, list_sso_links, sso_new_accounts, sso_user

ISSUER = "https://id.example.com"
AUTH = {
    "auth": {
        "redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "tests-only-cookie-secret-of-enough-length",
        "okta": {
            "client_id": "x",
            "client_secret": "y",
            "server_metadata_url": f"{ISSUER}/.well-known/openid-configuration",
        },
    }
}


def _identity(email: str, subject: str = "sub-1") -> dict[str, object]:
    """What `st.user` holds after `st.login` (the ID token's claims)."""
    return {"is_logged_in": True, "iss": ISSUER, "sub": subject, "email": email, "email_verified": True,
            "exp": time.time() + 600}  # fmt: skip


def _app(user: dict[str, object] | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.secrets.update(AUTH)
    at.user.update(user or {})
    return at


def _signed_in_as(at: AppTest) -> str:
    return next((c.value for c in at.sidebar.caption if c.value.startswith("Signed in as")), "")


def test_pages_sso_sign_in_page_offers_the_provider_beside_the_password_form():
    make_accounts(tracking.open_store())
    at = no_exception(_app().run())
    assert [b.label for b in at.button] == ["Sign in with Okta", "Sign in"]  # the second submits the form


def test_pages_sso_no_provider_button_without_auth():
    make_accounts(tracking.open_store())
    at = no_exception(AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run())
    assert not [b for b in at.button if b.label.startswith("Sign in with")]


def test_pages_sso_signed_in_identity_opens_a_session_as_its_account(monkeypatch):
    make_accounts(tracking.open_store())
    monkeypatch.setenv("TRACKING_SSO_CLAIM", "preferred_username")
    at = no_exception(_app({**_identity("ds@example.com"), "preferred_username": "data_scientist"}).run())
    assert _signed_in_as(at) == "Signed in as **data_scientist** (data scientist)"
    assert at.session_state["session_token"]


def test_pages_sso_refused_identity_sees_why_on_the_sign_in_page():
    make_accounts(tracking.open_store())
    at = no_exception(_app(_identity("nobody@example.com")).run())
    assert _signed_in_as(at) == ""
    assert "There is no account named 'nobody@example.com'" in shown_text(at.error[0].value)
    assert [b.label for b in at.button] == ["Sign in with Okta", "Sign in"]


def test_pages_users_admin_sets_the_sso_policy_and_unlinks_an_identity():
    store = tracking.open_store()
    make_accounts(store)
    sso_user(store, ISSUER, "sub-ds", _identity("data_scientist"))
    at = signed_in_app("admin")
    at.secrets.update(AUTH)
    at = no_exception(at.switch_page("pages/users.py").run())
    assert list(at.dataframe[1].value["account"]) == ["data_scientist"]
    at.radio(key="sso_policy_refuse").set_value("viewer").run()
    no_exception(at.button(key="sso_policy_save").click().run())
    assert sso_new_accounts(store) == "viewer"
    no_exception(at.button(key="sso_unlink").click().run())
    assert list_sso_links(store) == []
    assert [e.action for e in list_events(store, action="user.sso_unlink")] == ["user.sso_unlink"]
