"""Single sign-on in the browser: Streamlit's `st.login` against the OpenID Connect providers of `[auth]` in
`.streamlit/secrets.toml`, and the identity it signed in mapped to an account by the library (`sso_user`).

Streamlit keeps the signed-in identity in its own cookie (`st.user`), shared by every tab of the browser;
the dashboard session is opened from it by `ui.auth`, like a password sign-in. The rules (which account,
refused or created as a viewer, disabled) live in `tracking.governance`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import streamlit as st

import tracking
from tracking.governance import (
    NEW_ACCOUNT_POLICIES,
    UserRecord,
    list_sso_links,
    set_sso_new_accounts,
    sso_claim,
    sso_new_accounts,
    sso_user,
    unlink_sso,
)

_POLICY_LABELS = {
    "refuse": "Refuse it (an admin adds the account first)",
    "viewer": "Create a viewer account without a password",
}


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


def sso_admin(store: tracking.Store, actor: UserRecord, change: Callable[[str, Callable[[], object]], None]) -> None:
    """The Users page's single sign-on section for admins (shown once `[auth]` is configured or identities are
    linked): the policy for identities without an account, and the linked identities with **Unlink**.

    `change(done, make_change)` makes one change and reports it (the page's own helper).
    """
    links = list_sso_links(store)
    if not sso_providers() and not links:
        return
    st.subheader("Single sign-on")
    st.caption(
        f"A new identity is matched to the account named by its `{sso_claim()}` claim (TRACKING_SSO_CLAIM); later "
        "sign-ins follow the link. The account's role here decides what it may do."
    )
    policy = sso_new_accounts(store)
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    chosen = left.radio(
        "First sign-in of an identity without an account",
        NEW_ACCOUNT_POLICIES,
        index=NEW_ACCOUNT_POLICIES.index(policy),
        format_func=_POLICY_LABELS.__getitem__,
        key=f"sso_policy_{policy}",
    )
    if right.button("Save", key="sso_policy_save", disabled=chosen == policy):
        change(f"New single sign-on identities: {_POLICY_LABELS[chosen].lower()}.",
               lambda: set_sso_new_accounts(store, actor, chosen))  # fmt: skip
    if not links:
        st.caption("No identity is linked to an account yet.")
        return
    st.dataframe(
        pd.DataFrame(
            [{"account": k.account, "issuer": k.issuer, "subject": k.subject, "linked (UTC)": k.created_at,
              "last sign-in (UTC)": k.last_sign_in} for k in links]
        ),
        hide_index=True,
    )  # fmt: skip
    names = sorted({k.account for k in links})
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    name = left.selectbox("Linked account", names, key="sso_unlink_account")
    if right.button("Unlink", key="sso_unlink", help="Its next single sign-on is matched by its claim again."):
        change(f"The identities of {name} were unlinked.", lambda: unlink_sso(store, actor, name))
