"""Single sign-on end to end: the dashboard (`streamlit run app.py` with an `[auth]` secrets file of its own)
signs in through a real OpenID Connect provider (panva's certified oidc-provider, `tests/oidc/`, on loopback)
with Debian's Chromium, and lands as the mapped account, as a new viewer, or refused.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import tracking
from tests.e2e import free_port, idle, streamlit_server, wait_for_http
from tests.governance import PASSWORD
from tracking.governance import UserRecord, create_user, list_sso_links, set_sso_new_accounts

pytestmark = pytest.mark.slow

OIDC = Path(__file__).resolve().parent / "oidc"
BUTTON = "Sign in with Test IdP"


@dataclass(frozen=True)
class Dashboard:
    url: str
    issuer: str


def _provider(port: int, redirect_uri: str) -> subprocess.Popen:
    if not (OIDC / "node_modules" / "oidc-provider").is_dir():
        raise RuntimeError("the test provider is not installed: run `npm ci --prefix tests/oidc`")
    node = shutil.which("node") or "node"
    return subprocess.Popen([node, "provider.mjs", str(port), redirect_uri], cwd=OIDC, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)  # fmt: skip


@pytest.fixture
def dashboard(users: dict[str, UserRecord], tmp_path: Path) -> Iterator[Dashboard]:
    """The dashboard with `[auth]` pointing at a local OpenID Connect provider started for this test."""
    idp_port, app_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{idp_port}"
    redirect_uri = f"http://127.0.0.1:{app_port}/oauth2callback"
    secrets = tmp_path / "secrets.toml"  # not the repository's .streamlit/: this server's own
    secrets.write_text(
        f"""[auth]
redirect_uri = "{redirect_uri}"
cookie_secret = "tests-only-cookie-secret-of-enough-length"

[auth.testidp]
display_name = "Test IdP"
client_id = "dashboard"
client_secret = "dashboard-test-secret"
server_metadata_url = "{issuer}/.well-known/openid-configuration"
client_kwargs = {{ prompt = "login" }}
"""
    )
    provider = _provider(idp_port, redirect_uri)
    try:
        wait_for_http(provider, f"{issuer}/.well-known/openid-configuration", "the OpenID Connect provider",
                      timeout=30, every=0.1)  # fmt: skip
        env = {"TRACKING_HOME": os.environ["TRACKING_HOME"]}
        with streamlit_server(env, args=["--secrets.files", str(secrets)], port=app_port) as url:
            yield Dashboard(url, issuer)
    finally:
        provider.terminate()
        provider.wait(timeout=15)


def _sign_in_at_provider(page, login: str) -> None:
    """Click the dashboard's single sign-on button and sign in on the provider's own login form."""
    page.get_by_role("button", name=BUTTON).click()
    page.locator('input[name="login"]').fill(login)
    page.locator('input[name="password"]').fill("any password: the test provider checks none")
    page.get_by_role("button", name="Sign-in").click()


def _open(browser, dashboard: Dashboard):
    page = browser.new_context().new_page()  # a context: the tabs of one browser profile share its cookies
    page.goto(dashboard.url)
    page.get_by_role("button", name=BUTTON).wait_for(timeout=60_000)
    idle(page)
    return page


def test_e2e_sso_signs_in_as_the_account_its_email_names(browser, dashboard, users):
    store = tracking.open_store()
    create_user(store, users["admin"], "alice@example.com", "data_scientist", PASSWORD)
    page = _open(browser, dashboard)
    assert page.get_by_role("button", name="Sign in", exact=True).is_visible()  # the password form stays beside it
    _sign_in_at_provider(page, "alice")
    page.get_by_text("Signed in as alice@example.com (data scientist)").wait_for(timeout=60_000)
    assert [(link.account, link.issuer, link.subject) for link in list_sso_links(store)] == [
        ("alice@example.com", dashboard.issuer, "alice")
    ]
    # Streamlit's identity cookie is the browser's: another tab opens its own dashboard session from it.
    other = page.context.new_page()
    other.goto(dashboard.url)
    other.get_by_text("Signed in as alice@example.com").wait_for(timeout=60_000)
    idle(other)
    other.close()
    # Signing out ends the provider's session too, so the next visit shows the sign-in page again.
    idle(page)
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Yes, sign me out").click()
    page.get_by_role("button", name=BUTTON).wait_for(timeout=60_000)
    assert not page.get_by_text("Signed in as").is_visible()


def test_e2e_sso_unknown_identity_is_refused_by_default(browser, dashboard):
    page = _open(browser, dashboard)
    _sign_in_at_provider(page, "mallory")
    refusal = page.get_by_text("There is no account named")  # the name is escaped: word joiners around its '@'
    refusal.wait_for(timeout=60_000)
    assert "'mallory@example.com' here" in refusal.inner_text().replace("\u2060", "")
    page.get_by_role("button", name=BUTTON).wait_for(timeout=60_000)  # the page draws on after the refusal
    assert not page.get_by_text("Signed in as").is_visible()
    assert list_sso_links(tracking.open_store()) == []


def test_e2e_sso_unknown_identity_lands_as_a_viewer_when_the_admin_allows(browser, dashboard, users):
    set_sso_new_accounts(tracking.open_store(), users["admin"], "viewer")
    page = _open(browser, dashboard)
    _sign_in_at_provider(page, "carol")
    page.get_by_text("Signed in as carol@example.com (viewer)").wait_for(timeout=60_000)
