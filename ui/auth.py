"""Signing in: the first-admin form on a store without accounts, the sign-in form (and single sign-on when
`[auth]` is configured, see `ui.sso`), the signed-in user.

Only the session token lives in the browser session (`st.session_state`); the store checks it on
every rerun, so a timed-out session or a disabled account stops at the next click. `_start_session_for`
is the one place that opens it, for a password and a single sign-on alike.
"""

from __future__ import annotations

import streamlit as st

import tracking
from tracking.governance import (
    UserRecord,
    authenticate,
    create_user,
    has_accounts,
    open_session,
    session_user,
    sign_out,
)
from ui.data import get_store
from ui.sso import sso_account, sso_buttons, sso_providers

_TOKEN = "session_token"


def current_user() -> UserRecord | None:
    """The signed-in account of this browser session, or None."""
    token = st.session_state.get(_TOKEN)
    user = session_user(get_store(), token)
    if user is None and token:
        del st.session_state[_TOKEN]
        st.session_state["session_ended"] = True
    return user


def require_user() -> UserRecord:
    """The signed-in account; otherwise show the first-admin or sign-in form and stop the page."""
    store = get_store()
    user = current_user()
    refusal = None
    if user is None and has_accounts(store):  # signed in at the identity provider (st.login): map and open
        user, refusal = sso_account(store)
        if user is not None:
            _start_session_for(user)
            st.session_state.pop("session_ended", None)
    if user is not None:
        _sidebar(user)
        return user
    st.title("Experiment tracking")
    if not has_accounts(store):
        _first_admin(store)
    else:
        _sign_in(store, refusal)
    st.stop()


def _first_admin(store: tracking.Store) -> None:
    st.subheader("Create the first admin")
    st.write(
        "This store has no accounts yet. The first account is an admin: it adds the others "
        "(data scientists, engineers, product owners, viewers) on the **Users** page."
    )
    with st.form("first_admin"):
        name = st.text_input("Account name")
        password = st.text_input("Password", type="password", help="At least 8 characters.")
        repeat = st.text_input("Repeat the password", type="password")
        if st.form_submit_button("Create admin and sign in", type="primary"):
            if password != repeat:
                st.error("The two passwords differ.")
                return
            try:
                create_user(store, None, name.strip(), "admin", password)
                _start(store, name.strip(), password)
            except tracking.TrackingError as err:
                st.error(str(err))


def _sign_in(store: tracking.Store, refusal: str | None = None) -> None:
    st.subheader("Sign in")
    if refusal:
        st.error(refusal)
    if providers := sso_providers():
        sso_buttons(providers)
        st.caption("or with this store's account name and password:")
    if st.session_state.pop("session_ended", False):
        st.info("Your session ended (it times out after a while without activity). Sign in again.")
    with st.form("sign_in"):
        name = st.text_input("Account name")
        password = st.text_input("Password", type="password")
        if st.form_submit_button("Sign in", type="primary"):
            try:
                _start(store, name.strip(), password)
            except tracking.TrackingError as err:
                st.error(str(err))


def _start(store: tracking.Store, name: str, password: str) -> None:
    _start_session_for(authenticate(store, name, password))
    st.rerun()  # the same page and query parameters, now signed in


def _start_session_for(user: UserRecord) -> None:
    """Open the dashboard session of an account already authenticated (by password or single sign-on)."""
    st.session_state[_TOKEN] = open_session(get_store(), user)


def _sidebar(user: UserRecord) -> None:
    with st.sidebar:
        st.caption(f"Signed in as **{user.name}** ({user.role_label})")
        if st.button("Sign out", key="sign_out", icon=":material/logout:"):
            sign_out(get_store(), st.session_state.pop(_TOKEN))
            if st.user.get("is_logged_in"):
                st.logout()  # else the single sign-on identity would sign this browser straight back in
                st.stop()  # the browser leaves for the provider's sign-out page
            else:
                st.rerun()
