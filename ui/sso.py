"""Single sign-on in the browser: Streamlit's `st.login` against the OpenID Connect providers of `[auth]` in
`.streamlit/secrets.toml`, and the identity it signed in mapped to an account by the library (`sso_user`).

Streamlit keeps the signed-in identity in its own cookie (`st.user`), shared by every tab of the browser;
the dashboard session is opened from it by `ui.auth`, like a password sign-in. The rules (which account,
refused or created as a viewer, disabled) live in `tracking.governance`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

import tracking
from tracking.governance import UserRecord, sso_user


def sso_providers() -> dict[str, str]:
    """The providers of `[auth]` (the name `st.login` takes -> the name shown), empty without `[auth]`.

    A provider is a `[auth.NAME]` section, or `client_id` & co. directly in `[auth]` (`st.login()`'s default).
    Its optional `display_name` is what the button says; else the section's name, capitalized.
    """
    if not st.secrets.load_if_toml_exists() or not isinstance(st.secrets.get("auth"), Mapping):
        return {}
    auth = st.secrets["auth"]
    found = {"default": str(auth.get("display_name", "SSO"))} if "client_id" in auth else {}
    for key, section in auth.items():
        if isinstance(section, Mapping) and "client_id" in section:
            found[key] = str(section.get("display_name", key[:1].upper() + key[1:]))
    return found


def sso_buttons(providers: dict[str, str]) -> None:
    """One "Sign in with <provider>" button per provider; a click leaves for the provider's sign-in page."""
    for key, shown in providers.items():
        if st.button(f"Sign in with {shown}", key=f"sso_{key}", icon=":material/key:"):
            st.login(key)


def sso_identity() -> dict[str, Any] | None:
    """The claims of the identity `st.login` signed this browser in as, or None."""
    if not sso_providers() or not st.user.get("is_logged_in"):
        return None
    return {key: value for key, value in st.user.to_dict().items() if key not in ("tokens", "is_logged_in")}


def sso_account(store: tracking.Store) -> tuple[UserRecord | None, str | None]:
    """The account of this browser's signed-in identity, or why it may not sign in; (None, None) without one."""
    claims = sso_identity()
    if claims is None:
        return None, None
    try:
        return sso_user(store, str(claims.get("iss") or ""), str(claims.get("sub") or ""), claims), None
    except tracking.TrackingError as err:
        return None, str(err)
