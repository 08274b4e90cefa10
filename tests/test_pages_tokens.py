"""The access tokens page: a token is shown once, works as TRACKING_TOKEN, lists with its last use and can be
revoked; admins see every account's tokens."""

from __future__ import annotations

import pytest

import tracking
from tests.pages import button, no_exception, open_page
from tracking.governance._tokens import verify_token


def _create(at, name: str):
    at.text_input(key="token_name").set_value(name)
    return no_exception(next(b for b in at.button if b.label == "Create token").click().run())


def test_pages_tokens_create_shows_the_token_once_and_it_works():
    at = _create(open_page("data_scientist", "pages/tokens.py"), "laptop scripts")
    (shown,) = [c.value for c in at.code]
    token = shown.removeprefix("export TRACKING_TOKEN=")
    store = tracking.open_store()
    assert token.startswith("trk_") and verify_token(store, token).name == "data_scientist"
    assert list(at.dataframe[0].value["name"]) == ["laptop scripts"]
    assert not no_exception(at.run()).code  # shown once: gone on the next run


def test_pages_tokens_revoke_and_admins_see_every_account():
    at = _create(open_page("data_scientist", "pages/tokens.py"), "to revoke")
    token = at.code[0].value.removeprefix("export TRACKING_TOKEN=")
    admin = open_page("admin", "pages/tokens.py")
    assert admin.dataframe[0].value.empty
    no_exception(admin.toggle(key="tokens_everyone").set_value(True).run())
    assert list(admin.dataframe[0].value["account"]) == ["data_scientist"]
    no_exception(button(admin, "Revoke token").click().run())
    assert [s.value for s in admin.success] == ["Token 'to revoke' revoked."]
    with pytest.raises(tracking.PermissionDenied, match="was revoked"):
        verify_token(tracking.open_store(), token)


def test_pages_tokens_a_viewer_has_no_admin_toggle():
    at = open_page("viewer", "pages/tokens.py")
    assert not at.toggle and at.dataframe[0].value.empty
