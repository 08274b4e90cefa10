"""The webhook events and their outbox: a pending delivery per subscribed endpoint, queued with the change.

The registry's and the reviews' events are queued by the audit trail itself: `record` calls
`queue_for_audit`, which maps the audit action to a webhook event (`AUDIT_EVENTS`) and, when enabled
endpoints subscribe to it, inserts their deliveries in the same transaction as the change and its audit
event, so an event is queued exactly when its change commits. A failure to queue is logged and never
fails the change (the insert runs in a savepoint). Events without an audit action (a monitoring alert)
are queued by `queue_event` in a short transaction of their own. Sending is `_delivery`'s job, on a
thread of its own that the commit wakes.

Every body is one JSON object:

    {"id": "<event id>", "event": "promotion.approved", "created_at": "2026-11-29T14:00:00.000000Z",
     "actor": "paul", "object": {"type": "promotion_request", "id": "3"},
     "model": {"name": "loan", "version": 2, "version_id": 5, "stage": "production"},
     "data": {...}}

`model` is the model version the event concerns (null when none does); for audited events `data` holds
the audit event's `before`, `after` and `audit_seq`.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import insert, orm, select
from sqlalchemy.exc import SQLAlchemyError

from tracking._errors import TrackingError
from tracking.governance._delivery import start_deliverer
from tracking.governance._json import json_safe
from tracking.store import (
    ModelVersion,
    PromotionRequest,
    RegisteredModel,
    Review,
    Store,
    WebhookDelivery,
    WebhookEndpoint,
    connection_store,
    utcnow,
)

logger = logging.getLogger(__name__)

EVENTS: dict[str, str] = {
    "version.registered": "a model version was registered",
    "promotion.requested": "a promotion to production was requested",
    "promotion.approved": "a promotion request was approved (the version is in production)",
    "promotion.rejected": "a promotion request was rejected",
    "promotion.overridden": "an admin approved a promotion request whose gates failed",
    "version.stage_changed": "a version moved between stages (none, staging, production, archived)",
    "monitoring.alert": "monitoring found drift or a quality breach in a production version",
    "review.opened": "a review of a version was opened",
}
TEST_EVENT = "webhook.test"
# audit action -> webhook event
AUDIT_EVENTS: dict[str, str] = {
    "version.register": "version.registered",
    "promotion.request": "promotion.requested",
    "promotion.approve": "promotion.approved",
    "promotion.reject": "promotion.rejected",
    "promotion.override": "promotion.overridden",
    "version.stage": "version.stage_changed",
    "review.open": "review.opened",
}
ALERT_REPEAT_HOURS = 24.0


def queue_for_audit(conn: Any, fields: Mapping[str, Any]) -> None:
    """Queue the webhook deliveries of an audit event, inside the transaction that records it.

    Args:
        conn: the change's open write transaction (a Connection or Session).
        fields: the audit event as stored: seq, recorded_at, actor, action, object_type, object_id, and
            before/after as canonical JSON text.
    """
    name = AUDIT_EVENTS.get(fields["action"])
    if name is None:
        return
    try:
        endpoints = _subscribed(conn, name)
        if not endpoints:
            return
        with conn.begin_nested():  # a savepoint: whatever goes wrong here, the change itself commits
            data = {"before": json.loads(fields["before"]), "after": json.loads(fields["after"]),
                    "audit_seq": fields["seq"]}  # fmt: skip
            body = event_body(conn, name, fields["recorded_at"], fields["actor"], fields["object_type"],
                         fields["object_id"], data)  # fmt: skip
            insert_deliveries(conn, endpoints, name, body)
    except Exception:  # never fail the change: the event is lost for webhooks, the audit trail keeps it
        logger.exception("could not queue webhook deliveries of %s %s", fields["action"], fields["object_id"])
        return
    wake_after_commit(conn)


def queue_event(
    store: Store,
    name: str,
    *,
    actor: str | None,
    object_type: str,
    object_id: Any,
    data: Mapping[str, Any],
    dedup_key: str | None = None,
    repeat_hours: float = ALERT_REPEAT_HOURS,
) -> int:
    """Queue an event that no audited change carries (a monitoring alert), in a transaction of its own;
    how many deliveries were queued. Never raises for a store problem: the caller's work goes on.

    Args:
        store: the store.
        name: the event, one of `EVENTS`.
        actor: who caused it, or None (monitoring).
        object_type: what it concerns (`model_version`).
        object_id: which one.
        data: the event's details (JSON).
        dedup_key: an event with this key queued in the last `repeat_hours` hours is not queued again.
        repeat_hours: see `dedup_key`.
    """
    try:
        with store.connect() as conn:  # a read first: most stores have no endpoint for most events
            if not _subscribed(conn, name):
                return 0
        with store.connect(write=True) as conn:
            if dedup_key is not None:
                since = utcnow() - timedelta(hours=repeat_hours)
                recent = conn.execute(
                    select(WebhookDelivery.id)
                    .where(WebhookDelivery.dedup_key == dedup_key, WebhookDelivery.created_at >= since)
                    .limit(1)
                ).first()
                if recent is not None:
                    return 0
            endpoints = _subscribed(conn, name)
            body = event_body(conn, name, now_stamp(), actor, object_type, object_id, data)
            count = insert_deliveries(conn, endpoints, name, body, dedup_key)
            wake_after_commit(conn)
    except (TrackingError, SQLAlchemyError):
        logger.warning("could not queue the webhook event %s of %s %s", name, object_type, object_id, exc_info=True)
        return 0
    return count


def now_stamp() -> str:
    """Now, as the audit trail writes times (ISO 8601 UTC with microseconds)."""
    return utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _subscribed(conn: Any, name: str) -> list[int]:
    """Enabled endpoints that subscribe to the event (filtered here: a handful of rows, on both backends)."""
    rows = conn.execute(select(WebhookEndpoint.id, WebhookEndpoint.events).where(WebhookEndpoint.enabled.is_(True)))
    return [row.id for row in rows if name in (row.events or [])]


def event_body(conn: Any, name: str, created_at: str, actor: str | None, object_type: str, object_id: Any,
          data: Mapping[str, Any]) -> dict[str, Any]:  # fmt: skip
    return {
        "event": name,
        "created_at": created_at,
        "actor": actor,
        "object": {"type": object_type, "id": str(object_id)},
        "model": _model(conn, object_type, object_id),
        "data": dict(data),
    }


def _model(conn: Any, object_type: str, object_id: Any) -> dict[str, Any] | None:
    """The model version an event concerns: its model's name, number, id and current stage."""
    try:
        key = int(object_id)
    except (TypeError, ValueError):
        return None
    owners = {"promotion_request": PromotionRequest, "review": Review}
    if object_type in owners:
        table = owners[object_type]
        key = conn.execute(select(table.version_id).where(table.id == key)).scalar()
    elif object_type != "model_version":
        return None
    row = conn.execute(
        select(ModelVersion.id, ModelVersion.version, ModelVersion.stage, RegisteredModel.name)
        .join(RegisteredModel, RegisteredModel.id == ModelVersion.model_id)
        .where(ModelVersion.id == key)
    ).first()
    if row is None:
        return None
    stage = getattr(row.stage, "value", row.stage)
    return {"name": row.name, "version": row.version, "version_id": row.id, "stage": stage}


def insert_deliveries(
    conn: Any, endpoints: list[int], name: str, body: dict[str, Any], dedup_key: str | None = None
) -> int:
    """One pending delivery per endpoint, sharing one event id and one body."""
    if not endpoints:
        return 0
    event_id = uuid.uuid4().hex
    text = json.dumps(json_safe({"id": event_id, **body}), sort_keys=True, separators=(",", ":"), default=str)
    now = utcnow()
    conn.execute(
        insert(WebhookDelivery),
        [{"endpoint_id": endpoint, "event": name, "event_id": event_id, "dedup_key": dedup_key, "body": text,
          "status": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now} for endpoint in endpoints],
    )  # fmt: skip
    return len(endpoints)


def wake_after_commit(conn: Any) -> None:
    """Wake (or start) this process's deliverer for the store when the transaction commits (not if it rolls back)."""
    store = connection_store(conn)
    connection = conn.connection() if isinstance(conn, orm.Session) else conn
    sa_event.listen(connection, "commit", lambda _conn: _wake(store), once=True)


def _wake(store: Store) -> None:
    try:
        start_deliverer(store).wake()
    except Exception:  # raising here would fail the commit; the poll or `webhooks deliver` sends it later
        logger.exception("could not start the webhook deliverer")
