"""Webhook endpoints: admins register HTTP endpoints for registry and monitoring events, test them, read
their deliveries, disable or remove them; every change is audited.

An endpoint's secret is made here (`whsec_` and 32 random bytes, URL-safe base64), returned once by
`add_webhook` and never again: the store keeps it, because signing each delivery needs it, but no
read of this module returns it. Lost it? Remove the endpoint and add it again. URLs may carry
credentials of their own (chat services put a token in the path), so the audit trail records only the
URL's scheme and host, and only admins list endpoints and deliveries.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, insert, select, update

from tracking._errors import NotFoundError, ValidationError
from tracking.governance._access import Action, UserRecord, authorize, require, why_not
from tracking.governance._audit import record
from tracking.governance._outbox import EVENTS, TEST_EVENT, event_body, insert_deliveries, now_stamp, wake_after_commit
from tracking.store import Store, WebhookDelivery, WebhookEndpoint, bump_change_counter, utcnow

MAX_URL = 2000
MAX_DESCRIPTION = 500


@dataclass(frozen=True)
class WebhookRecord:
    """An endpoint, without its secret."""

    id: int
    url: str
    events: list[str]
    description: str
    enabled: bool
    created_by: str
    created_at: datetime

    @property
    def host(self) -> str:
        """The URL's scheme and host: what the audit trail records of it."""
        return url_host(self.url)


@dataclass(frozen=True)
class NewWebhook:
    """An endpoint just added, and its secret: the only time the secret is shown."""

    webhook: WebhookRecord
    secret: str


@dataclass(frozen=True)
class DeliveryRecord:
    """One event's delivery to one endpoint, with how its attempts went."""

    id: int
    webhook_id: int
    url: str
    event: str
    event_id: str
    status: str  # "pending", "delivered" or "failed" (gave up)
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    body: str


def url_host(url: str) -> str:
    """`https://hooks.example.com` for `https://hooks.example.com/T0/secret?x=1`: no path, query or credentials."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def check_url(url: str) -> str:
    """The URL, stripped, when it is an absolute http(s) URL with a host.

    Raises:
        ValidationError: anything else (another scheme, no host, spaces, over 2,000 characters).
    """
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname, parts.port  # a malformed port raises ValueError here
    except ValueError:
        host, parts = None, None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise ValidationError(f"The webhook URL {url!r} is not an http:// or https:// address with a host name.")
    if any(ch.isspace() for ch in url) or len(url) > MAX_URL:
        raise ValidationError(f"The webhook URL must be at most {MAX_URL} characters, without spaces.")
    return url


def _check_events(events: Iterable[str]) -> list[str]:
    chosen = set(events or [])
    unknown = sorted(chosen - set(EVENTS))
    if unknown:
        raise ValidationError(f"Unknown webhook event(s) {', '.join(unknown)}; the events are: {', '.join(EVENTS)}.")
    if not chosen:
        raise ValidationError("Choose at least one event for the webhook to receive.")
    return [name for name in EVENTS if name in chosen]


def _record(row: Any) -> WebhookRecord:
    return WebhookRecord(row.id, row.url, list(row.events or []), row.description, bool(row.enabled), row.created_by,
                         row.created_at)  # fmt: skip


def _summary(row: Any) -> dict[str, Any]:
    return {"host": url_host(row.url), "events": list(row.events or []), "enabled": bool(row.enabled)}


def add_webhook(
    store: Store, actor: UserRecord | None, url: str, events: Iterable[str], description: str = ""
) -> NewWebhook:
    """Register an endpoint for some events (admins); the endpoint and its secret, shown this once.

    Raises:
        ValidationError: a URL that is not http(s), no or unknown events, a description over 500 characters.
        PermissionDenied: the actor is not an admin.
    """
    url, chosen = check_url(url), _check_events(events)
    description = (description or "").strip()
    if len(description) > MAX_DESCRIPTION:
        raise ValidationError(f"The description must be at most {MAX_DESCRIPTION} characters.")
    secret = "whsec_" + secrets.token_urlsafe(32)
    with store.connect(write=True) as conn:
        who = authorize(conn, actor, Action.webhook_manage)
        webhook_id = conn.execute(
            insert(WebhookEndpoint)
            .values(url=url, events=chosen, secret=secret, description=description, enabled=True, created_by=who,
                    created_at=utcnow())
            .returning(WebhookEndpoint.id)
        ).scalar_one()  # fmt: skip
        record(conn, who, "webhook.add", "webhook", webhook_id, None,
               {"host": url_host(url), "events": chosen, "description": description})  # fmt: skip
        bump_change_counter(conn)
    return NewWebhook(get_webhook(store, webhook_id), secret)


def get_webhook(store: Store, webhook_id: int) -> WebhookRecord:
    """One endpoint (without its secret). Raises NotFoundError."""
    with store.connect() as conn:
        row = conn.execute(select(WebhookEndpoint).where(WebhookEndpoint.id == webhook_id)).first()
    if row is None:
        raise NotFoundError(f"There is no webhook {webhook_id}.")
    return _record(row)


def list_webhooks(store: Store, actor: UserRecord | None) -> list[WebhookRecord]:
    """Every endpoint, oldest first (admins: their URLs may carry credentials)."""
    require(store, actor, Action.webhook_manage)
    with store.connect() as conn:
        return [_record(row) for row in conn.execute(select(WebhookEndpoint).order_by(WebhookEndpoint.id))]


def _endpoint_row(conn: Any, webhook_id: int) -> Any:
    row = conn.execute(select(WebhookEndpoint).where(WebhookEndpoint.id == webhook_id)).first()
    if row is None:
        raise NotFoundError(f"There is no webhook {webhook_id}.")
    return row


def set_webhook_enabled(store: Store, actor: UserRecord | None, webhook_id: int, enabled: bool) -> WebhookRecord:
    """Disable an endpoint (no new deliveries are queued for it, queued ones wait) or enable it again (admins): the
    waiting deliveries go out."""
    with store.connect(write=True) as conn:
        who = authorize(conn, actor, Action.webhook_manage)
        row = _endpoint_row(conn, webhook_id)
        if bool(row.enabled) != enabled:
            conn.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == webhook_id).values(enabled=enabled))
            record(conn, who, "webhook.enable" if enabled else "webhook.disable", "webhook", webhook_id,
                   {"enabled": bool(row.enabled)}, {"enabled": enabled})  # fmt: skip
            bump_change_counter(conn)
            if enabled:
                wake_after_commit(conn)  # what waited for it goes out now
    return get_webhook(store, webhook_id)


def remove_webhook(store: Store, actor: UserRecord | None, webhook_id: int) -> None:
    """Remove an endpoint with its secret and its deliveries (admins); the audit trail keeps that it existed."""
    with store.connect(write=True) as conn:
        who = authorize(conn, actor, Action.webhook_manage)
        row = _endpoint_row(conn, webhook_id)
        conn.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == webhook_id))
        conn.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == webhook_id))
        record(conn, who, "webhook.remove", "webhook", webhook_id, _summary(row), None)
        bump_change_counter(conn)


def _disabled(webhook_id: int) -> str:
    return f"Webhook {webhook_id} is disabled; enable it before sending a test event."


def send_test_blockers(actor: UserRecord | None, webhook: WebhookRecord) -> list[str]:
    """Why `actor` cannot send a test event to this endpoint now (empty: they can), as `send_test_event` says."""
    if reason := why_not(actor, Action.webhook_manage):
        return [reason]
    return [] if webhook.enabled else [_disabled(webhook.id)]


def send_test_event(store: Store, actor: UserRecord | None, webhook_id: int) -> DeliveryRecord:
    """Queue a `webhook.test` event for one enabled endpoint (admins); its delivery, sent by the deliverer.

    Raises:
        ValidationError: the endpoint is disabled.
    """
    with store.connect(write=True) as conn:
        who = authorize(conn, actor, Action.webhook_manage)
        row = _endpoint_row(conn, webhook_id)
        if not row.enabled:
            raise ValidationError(_disabled(webhook_id))
        body = event_body(conn, TEST_EVENT, now_stamp(), who, "webhook", webhook_id,
                     {"message": f"A test event sent by {who}."})  # fmt: skip
        insert_deliveries(conn, [webhook_id], TEST_EVENT, body)
        delivery_id = conn.execute(
            select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == webhook_id)
            .order_by(WebhookDelivery.id.desc()).limit(1)
        ).scalar_one()  # fmt: skip
        record(conn, who, "webhook.test", "webhook", webhook_id, None, {"delivery": delivery_id})
        wake_after_commit(conn)
    return get_delivery(store, delivery_id)


_DELIVERY_COLUMNS = (
    WebhookDelivery.id, WebhookDelivery.endpoint_id, WebhookEndpoint.url, WebhookDelivery.event,
    WebhookDelivery.event_id, WebhookDelivery.status, WebhookDelivery.attempts, WebhookDelivery.last_status,
    WebhookDelivery.last_error, WebhookDelivery.created_at, WebhookDelivery.next_attempt_at,
    WebhookDelivery.delivered_at, WebhookDelivery.body,
)  # fmt: skip


def get_delivery(store: Store, delivery_id: int) -> DeliveryRecord:
    """One delivery. Raises NotFoundError."""
    with store.connect() as conn:
        row = conn.execute(
            select(*_DELIVERY_COLUMNS)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.id == delivery_id)
        ).first()
    if row is None:
        raise NotFoundError(f"There is no webhook delivery {delivery_id}.")
    return DeliveryRecord(*row)


def list_deliveries(
    store: Store, actor: UserRecord | None, *, webhook_id: int | None = None, limit: int = 50
) -> list[DeliveryRecord]:
    """The newest deliveries (of one endpoint, or of all), newest first (admins)."""
    require(store, actor, Action.webhook_manage)
    query = (
        select(*_DELIVERY_COLUMNS)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    if webhook_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == webhook_id)
    with store.connect() as conn:
        return [DeliveryRecord(*row) for row in conn.execute(query)]
