"""Webhooks: admins register HTTP endpoints for registry and monitoring events, send test events, read the
deliveries, disable or remove endpoints."""

from __future__ import annotations

import streamlit as st

import tracking
from tracking.explore import escape_markdown
from tracking.governance import (
    Action,
    add_webhook,
    list_deliveries,
    list_webhooks,
    remove_webhook,
    send_test_blockers,
    send_test_event,
    set_webhook_enabled,
    why_not,
)
from ui.admin import apply_change, notice
from ui.data import get_store
from ui.frame import in_frame
from ui.webhooks import deliveries_frame, event_checkboxes, keep_secret, show_secret_once, webhooks_frame

user = in_frame()
store = get_store()


st.title("Webhooks")
st.caption(
    "HTTP endpoints told of registry and monitoring events: each delivery is JSON, signed with the endpoint's "
    "secret, sent in the background and retried with backoff; a change never waits for it."
)
if reason := why_not(user, Action.webhook_manage):
    st.info(reason)
    st.stop()
notice()
show_secret_once()

webhooks = list_webhooks(store, user)
st.dataframe(webhooks_frame(webhooks), hide_index=True)

add, manage = st.columns(2, gap="large")
with add:
    st.subheader("Add a webhook")
    with st.form("add_webhook", clear_on_submit=True):
        url = st.text_input(
            "URL", placeholder="https://hooks.example.com/tracking", help="http:// or https://", key="webhook_url"
        )
        description = st.text_input("Description", help="What the endpoint is for (optional).", key="webhook_about")
        st.markdown("**Events**")
        events = event_checkboxes("webhook_event")
        if st.form_submit_button("Add webhook", type="primary"):
            try:
                new = add_webhook(store, user, url, events, description)
            except tracking.TrackingError as err:
                st.error(escape_markdown(err))
            else:
                keep_secret(new.webhook.id, new.secret)
                notice(f"Webhook {new.webhook.id} added.")
                st.rerun()

with manage:
    st.subheader("Test, disable or remove")
    if not webhooks:
        st.info("No webhooks yet.")
    else:
        labels = {w.id: f"{w.id}: {w.host}" + ("" if w.enabled else " (disabled)") for w in webhooks}
        chosen_id = st.selectbox("Webhook", list(labels), format_func=labels.get, key="webhook_chosen")
        chosen = next(w for w in webhooks if w.id == chosen_id)
        test, toggle, remove = st.columns(3)
        blockers = send_test_blockers(user, chosen)
        if test.button("Send test event", disabled=bool(blockers), help=" ".join(blockers) or None):
            apply_change(f"A test event is on its way to webhook {chosen.id}.",
                    lambda: send_test_event(store, user, chosen.id))  # fmt: skip
        if toggle.button("Enable" if not chosen.enabled else "Disable"):
            apply_change(f"Webhook {chosen.id} {'enabled' if not chosen.enabled else 'disabled'}.",
                    lambda: set_webhook_enabled(store, user, chosen.id, not chosen.enabled))  # fmt: skip
        if remove.button("Remove", help="Removes the endpoint, its secret and its deliveries."):
            apply_change(f"Webhook {chosen.id} removed.", lambda: remove_webhook(store, user, chosen.id))

st.subheader("Recent deliveries")
st.button("Refresh", icon=":material/refresh:", help="Deliveries go out in the background: read them again.")
st.dataframe(deliveries_frame(list_deliveries(store, user, limit=50)), hide_index=True)
