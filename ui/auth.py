"""Signing in: the first-admin form on a store without accounts, the sign-in form (and single sign-on when
`[auth]` is configured, see `ui.sso`), the signed-in user.

The session belongs to the browser, not the tab: its token travels in an HttpOnly cookie that the
session routes set (`ui.session_routes`), and every script run reads it (`st.context.cookies`) and
asks the store whether the session still lives. So a reload, a second tab, a pasted link or a link
from a table stay signed in, and a sign-out, a disabled account or a timeout end it in every tab at
their next click.

Under Streamlit's AppTest there is no browser: no cookie reaches the script and no route can set one
(AppTest cannot seed `st.context.cookies`). Only then, when the run has no browser connection at all,
the session token lives in the session state instead, so page tests run signed in.
"""

from __future__ import annotations

import html

import streamlit as st

import tracking
from tracking.explore import escape_markdown
from tracking.governance import (
    UserRecord,
    authenticate,
    create_user,
    has_accounts,
    issue_sign_in_ticket,
    open_session,
    session_user,
    sign_out,
)
from ui.data import get_store
from ui.session_routes import COOKIE, SESSION_PATH, SIGN_OUT_PATH, base_path
from ui.sso import sso_account, sso_buttons, sso_providers

_TOKEN = "session_token"  # AppTest only (see the module docstring)
_RUN_USER = "_signed_in_this_run"  # `menu_user` -> `require_user`, within one script run
_UNSET = object()


def _browserless() -> bool:
    """Whether this run has no browser connection (AppTest): a browser's connection always has a `Host` header."""
    return st.context.headers.get("host") is None


def _token() -> str | None:
    if _browserless():
        return st.session_state.get(_TOKEN)
    return st.context.cookies.get(COOKIE)


def current_user() -> UserRecord | None:
    """The signed-in account of this browser, or None."""
    token = _token()
    user = session_user(get_store(), token)
    if user is None and token:
        st.session_state.pop(_TOKEN, None)
        st.session_state["session_ended"] = True
    return user


def menu_user() -> UserRecord | None:
    """The signed-in account for the menu, looked up once per script run: the page's `require_user`, later in the
    same run, takes it instead of asking the store again."""
    user = current_user()
    st.session_state[_RUN_USER] = user
    return user


def require_user() -> UserRecord:
    """The signed-in account; otherwise show the first-admin or sign-in form and stop the page."""
    store = get_store()
    found = st.session_state.pop(_RUN_USER, _UNSET)  # set by this run's menu (the frame always draws it first)
    user = current_user() if found is _UNSET else found
    refusal = None
    if user is None and has_accounts(store):  # signed in at the identity provider (st.login): map and open
        user, refusal = sso_account(store)
        if user is not None:
            st.session_state.pop("session_ended", None)
            start_session(user)
    if user is not None:
        _sidebar(user)
        return user
    st.title("Experiment tracking")
    if not has_accounts(store):
        _first_admin(store)
    else:
        _sign_in(store, refusal)
    st.stop()


def start_session(user: UserRecord) -> None:
    """Sign this browser in as `user`, an account already checked (password or single sign-on); stops the run.

    The browser posts a one-time ticket to the session route, which sets the session cookie and brings it
    back to the address it is on, signed in. Without a browser (AppTest) the session token goes into the
    session state and the script reruns.
    """
    store = get_store()
    if _browserless():
        st.session_state[_TOKEN] = open_session(store, user)
        st.rerun()  # the same page and query parameters, now signed in
    _post_and_leave(SESSION_PATH, {"ticket": issue_sign_in_ticket(store, user)}, "Signing in…")


def end_session() -> None:
    """Sign this browser out: the session ends in the store (so in every tab) and its cookie is cleared; stops the run.

    After a single sign-on Streamlit's identity goes too (else it would sign this browser straight back in): the
    browser leaves for the provider's sign-out page, and the dead session cookie is refused at the next visit.
    """
    token = _token()
    if token:
        sign_out(get_store(), token)
    st.session_state.pop(_TOKEN, None)
    if st.user.get("is_logged_in"):
        st.logout()
        st.stop()
    if _browserless():
        st.rerun()
    _post_and_leave(SIGN_OUT_PATH, {}, "Signing out…")


def _post_and_leave(path: str, fields: dict[str, str], note: str) -> None:
    """Have the browser post `fields` to a session route (a same-origin form, as the route requires), with the
    address it is on as where to come back to; the button is there for a browser that blocks the script."""
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(value, quote=True)}">'
        for name, value in fields.items()
    )
    home = html.escape(base_path() + "/", quote=True)
    st.html(
        f'<form id="tracking-session-form" method="post" action="{html.escape(base_path() + path, quote=True)}">'
        f'{hidden}<input type="hidden" name="next" value="{home}">'
        f'<p>{note}</p><button type="submit">Continue</button></form>'
        "<script>"
        'const form = document.getElementById("tracking-session-form");'
        "form.elements.next.value = window.location.pathname + window.location.search;"
        "form.submit();"
        "</script>",
        unsafe_allow_javascript=True,
    )
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
        submitted = st.form_submit_button("Create admin and sign in", type="primary")
    if not submitted:
        return
    if password != repeat:
        st.error("The two passwords differ.")
        return
    try:
        create_user(store, None, name.strip(), "admin", password)
        user = authenticate(store, name.strip(), password)
    except tracking.TrackingError as err:
        st.error(escape_markdown(err))
        return
    start_session(user)


def _sign_in(store: tracking.Store, refusal: str | None = None) -> None:
    st.subheader("Sign in")
    if refusal:
        st.error(escape_markdown(refusal))
    if providers := sso_providers():
        sso_buttons(providers)
        st.caption("or with this store's account name and password:")
    if st.session_state.pop("session_ended", False):
        st.info("Your session ended (signed out, or it timed out after a while without activity). Sign in again.")
    with st.form("sign_in"):
        name = st.text_input("Account name")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return
    try:
        user = authenticate(store, name.strip(), password)
    except tracking.TrackingError as err:
        st.error(escape_markdown(err))
        return
    start_session(user)


def _sidebar(user: UserRecord) -> None:
    with st.sidebar:
        # An account name is letters, digits and "_.@-" (checked at creation): nothing markdown can turn into a fetch.
        st.caption(f"Signed in as **{user.name}** ({user.role_label})")
        signing_out = st.button("Sign out", key="sign_out", icon=":material/logout:")
    if signing_out:
        end_session()
