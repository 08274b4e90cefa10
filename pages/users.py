"""Users: the accounts of this store; admins add accounts, change roles, disable them and reset passwords."""

from __future__ import annotations

import streamlit as st

from tracking.explore import escape_markdown
from tracking.governance import Action, create_user, list_users, reset_password, set_disabled, set_role, why_not
from ui.admin import ROLES, apply_change, notice, password_twice, role_label, users_frame
from ui.data import get_store
from ui.frame import in_frame
from ui.sso import sso_admin

user = in_frame()
store = get_store()


st.title("Users")
notice()
users = list_users(store)
st.dataframe(users_frame(users), hide_index=True)
if why_not(user, Action.user_manage):
    st.info("Only admins manage accounts.")
    st.stop()

add, change = st.columns(2, gap="large")
with add:
    st.subheader("Add an account")
    with st.form("add_user", clear_on_submit=True):
        name = st.text_input("Account name", key="new_name", help="Letters, digits, '_', '.', '@' or '-'.").strip()
        role = st.selectbox("Role", ROLES, index=ROLES.index("data_scientist"), format_func=role_label, key="new_role")
        password, repeat = password_twice("new")
        if st.form_submit_button("Add account", type="primary"):
            if password != repeat:
                st.error("The two passwords differ.")
            else:
                apply_change(
                    f"Account {name} added as {role_label(role)}.",
                    lambda: create_user(store, user, name, role, password),
                )

with change:
    st.subheader("Change an account")
    names = [u.name for u in users]
    chosen = users[names.index(st.selectbox("Account", names, key="users_account"))]
    own = " This is your own account." if chosen.name == user.name else ""
    left, right = st.columns([2, 1], vertical_alignment="bottom")
    new_role = left.selectbox(
        "Role",
        ROLES,
        index=ROLES.index(chosen.role),
        format_func=role_label,
        key=f"users_role_{chosen.id}_{chosen.role}",
    )
    if right.button("Change role", disabled=new_role == chosen.role):
        apply_change(
            f"{chosen.name} is now {role_label(new_role)}.", lambda: set_role(store, user, chosen.name, new_role)
        )
    if chosen.disabled:
        if st.button(f"Enable {escape_markdown(chosen.name)}", help="The account can sign in again."):
            apply_change(f"{chosen.name} can sign in again.", lambda: set_disabled(store, user, chosen.name, False))
    elif st.button(
        f"Disable {escape_markdown(chosen.name)}", help="The account can no longer sign in; its sessions end." + own
    ):
        apply_change(f"{chosen.name} is disabled.", lambda: set_disabled(store, user, chosen.name, True))
    with st.form("reset_password", clear_on_submit=True):
        st.markdown(f"**New password for {escape_markdown(chosen.name)}**")
        password, repeat = password_twice("reset")
        if st.form_submit_button("Reset password", help="The account's sessions end." + own):
            if password != repeat:
                st.error("The two passwords differ.")
            else:
                apply_change(
                    f"The password of {chosen.name} was reset.",
                    lambda: reset_password(store, user, chosen.name, password),
                )

sso_admin(store, user, apply_change)
