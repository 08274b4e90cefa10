"""Access tokens: scripts, workers and the CLI act as your account with one (`TRACKING_TOKEN`). Create one (it is
shown once), see your tokens with their last use, revoke them; admins see and revoke every account's."""

from __future__ import annotations

import streamlit as st

import tracking
from tracking.governance import Action, create_token, list_tokens, revoke_token, why_not
from ui.admin import notice
from ui.data import get_store
from ui.frame import in_frame
from ui.tokens import token_label, tokens_frame

user = in_frame()
store = get_store()

st.title("Access tokens")
st.caption(
    "A script, a worker or the CLI acts as your account with a token: `export TRACKING_TOKEN=...`. Only its hash "
    "is stored; revoke a token you no longer use. Sweep workers get a token of their own, valid for their sweep."
)
notice()
if shown := st.session_state.pop("token_shown", None):
    st.success("Copy the token now: it is shown only this once.", icon=":material/key:")
    st.code(f"export TRACKING_TOKEN={shown}", language="bash")

with st.form("create_token", clear_on_submit=True):
    name = st.text_input("Token name", key="token_name", help="What it is for, e.g. 'laptop scripts'.")
    days = st.number_input("Days until it expires", min_value=1, max_value=365, value=30, key="token_days")
    if st.form_submit_button("Create token", type="primary"):
        try:
            token, _made = create_token(store, user, name, days)
        except tracking.TrackingError as err:
            st.error(str(err))
        else:
            st.session_state["token_shown"] = token
            st.rerun()

admin = why_not(user, Action.user_manage) is None
everyone = admin and st.toggle("Every account's tokens", key="tokens_everyone")
tokens = list_tokens(store, user, everyone=everyone)
st.dataframe(tokens_frame(tokens), hide_index=True)
active = [t for t in tokens if t.state == "active"]
if active:
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    chosen = left.selectbox("Token to revoke", active, format_func=token_label, key="token_revoke")
    if right.button("Revoke token", help="It stops working at once, also for a run in progress."):
        try:
            revoke_token(store, user, chosen.id)
        except tracking.TrackingError as err:
            st.error(str(err))
        else:
            notice(f"Token {chosen.name!r} revoked.")
            st.rerun()
