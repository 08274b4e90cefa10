"""Pieces of the Webhooks page: the endpoints and deliveries as tables, the event checkboxes, the secret shown once."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from tracking.governance import EVENTS, DeliveryRecord, WebhookRecord

_SECRET = "webhook_new_secret"


def webhooks_frame(webhooks: list[WebhookRecord]) -> pd.DataFrame:
    """Endpoints as a table (never their secrets)."""
    columns = ["id", "url", "events", "enabled", "description", "created by", "created (UTC)"]
    return pd.DataFrame(
        [
            {"id": w.id, "url": w.url, "events": ", ".join(w.events), "enabled": w.enabled,
             "description": w.description, "created by": w.created_by, "created (UTC)": w.created_at}
            for w in webhooks
        ],
        columns=columns,
    )  # fmt: skip


def deliveries_frame(deliveries: list[DeliveryRecord]) -> pd.DataFrame:
    """Deliveries as a table, newest first: status, attempts, the last answer or error."""
    columns = ["id", "webhook", "event", "status", "attempts", "last HTTP status", "last error", "queued (UTC)",
               "next attempt (UTC)", "delivered (UTC)"]  # fmt: skip
    return pd.DataFrame(
        [
            {"id": d.id, "webhook": d.webhook_id, "event": d.event, "status": d.status, "attempts": d.attempts,
             "last HTTP status": d.last_status, "last error": d.last_error or "", "queued (UTC)": d.created_at,
             "next attempt (UTC)": d.next_attempt_at if d.status == "pending" else None,
             "delivered (UTC)": d.delivered_at}
            for d in deliveries
        ],
        columns=columns,
    )  # fmt: skip


def event_checkboxes(key: str) -> list[str]:
    """One checkbox per event (inside a form), two columns; the events ticked."""
    columns = st.columns(2)
    return [
        name
        for i, (name, meaning) in enumerate(EVENTS.items())
        if columns[i % 2].checkbox(name, key=f"{key}_{name}", help=meaning.capitalize() + ".")
    ]


def keep_secret(webhook_id: int, secret: str) -> None:
    """Keep a new endpoint's secret for the next run only (`st.rerun` drops this run's output)."""
    st.session_state[_SECRET] = (webhook_id, secret)


def show_secret_once() -> None:
    """Show the kept secret, if any, and forget it: it is never shown again."""
    kept = st.session_state.pop(_SECRET, None)
    if kept is None:
        return
    webhook_id, secret = kept
    st.warning(
        f"The secret of webhook {webhook_id}: copy it now, it is not shown again. The receiver checks each "
        "delivery's `X-Tracking-Signature` header with it.",
        icon=":material/key:",
    )
    st.code(secret, language=None)
