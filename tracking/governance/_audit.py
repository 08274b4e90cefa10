"""The audit trail: every state change appends an event in the same transaction as the change.

Events are hash-chained: each event's hash covers its own fields and the hash before it, and the
one-row `audit_chain` table holds the last sequence number and hash. Appending locks that row, so
events get gap-free sequence numbers in commit order on SQLite and PostgreSQL alike. `verify_chain`
recomputes the chain and reports any edited, deleted, inserted or reordered event, and a trail cut
short at its end (the head no longer matches).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update

from tracking.governance._outbox import queue_for_audit
from tracking.store import AuditChain, AuditEvent, Store

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    recorded_at: str
    actor: str
    action: str
    object_type: str
    object_id: str
    before: Any
    after: Any
    hash: str


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    head: str
    problems: list[str]


def canonical(value: Any) -> str:
    """JSON with sorted keys and no whitespace; non-finite numbers become null (JSON has none)."""
    return json.dumps(_finite(value), sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _digest(prev_hash: str, seq: int, recorded_at: str, actor: str, action: str, object_type: str,
            object_id: str, before: str, after: str) -> str:  # fmt: skip
    material = json.dumps([prev_hash, seq, recorded_at, actor, action, object_type, object_id, before, after])
    return hashlib.sha256(material.encode()).hexdigest()


def record(
    conn: Any,
    actor: str,
    action: str,
    object_type: str,
    object_id: Any,
    before: Any = None,
    after: Any = None,
) -> int:
    """Append one event inside the caller's write transaction (a Connection or Session); its sequence number.

    Args:
        conn: the open write transaction that makes the change itself.
        actor: who made the change (an account name).
        action: what happened, e.g. `version.register`.
        object_type: the kind of thing changed, e.g. `model_version`.
        object_id: which one.
        before: its state before (JSON-able), or None.
        after: its state after (JSON-able), or None.
    """
    seq, prev = conn.execute(
        update(AuditChain).where(AuditChain.id == 1).values(seq=AuditChain.seq + 1)
        .returning(AuditChain.seq, AuditChain.head)
    ).one()  # fmt: skip
    fields = {
        "seq": int(seq),
        "recorded_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": str(object_id),
        "before": canonical(before),
        "after": canonical(after),
    }
    digest = _digest(prev, **fields)
    conn.execute(insert(AuditEvent).values(**fields, prev_hash=prev, hash=digest))
    conn.execute(update(AuditChain).where(AuditChain.id == 1).values(head=digest))
    queue_for_audit(conn, fields)  # webhooks subscribed to this action: queued in this same transaction
    return int(seq)


def list_events(
    store: Store,
    *,
    actor: str | None = None,
    action: str | None = None,
    object_type: str | None = None,
    object_id: str | int | Sequence[str | int] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> list[AuditRecord]:
    """Audit events, newest first, filtered by any of actor, action (a prefix such as `promotion.`
    matches every action under it), object (one id, or a list of ids) and time range (UTC)."""
    query = select(AuditEvent).order_by(AuditEvent.seq.desc())
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if action:
        query = query.where(
            AuditEvent.action.startswith(action) if action.endswith(".") else AuditEvent.action == action
        )
    if object_type:
        query = query.where(AuditEvent.object_type == object_type)
    if isinstance(object_id, list | tuple):
        query = query.where(AuditEvent.object_id.in_([str(one) for one in object_id]))
    elif object_id is not None and str(object_id) != "":
        query = query.where(AuditEvent.object_id == str(object_id))
    if since is not None:
        query = query.where(AuditEvent.recorded_at >= _stamp(since))
    if until is not None:
        query = query.where(AuditEvent.recorded_at <= _stamp(until))
    if limit:
        query = query.limit(limit)
    with store.session_scope() as session:
        return [_record(row) for row in session.execute(query).scalars()]


def _stamp(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record(row: AuditEvent) -> AuditRecord:
    return AuditRecord(
        row.seq, row.recorded_at, row.actor, row.action, row.object_type, row.object_id,
        json.loads(row.before), json.loads(row.after), row.hash,
    )  # fmt: skip


def verify_chain(store: Store, batch: int = 5000) -> ChainReport:
    """Recompute the whole chain; every problem found is one sentence naming the event."""
    problems: list[str] = []
    prev, expected, checked = GENESIS, 1, 0
    with store.connect() as conn:
        head_seq, head = conn.execute(select(AuditChain.seq, AuditChain.head).where(AuditChain.id == 1)).one()
        last = 0
        while True:
            rows = conn.execute(
                select(*AuditEvent.__table__.columns).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(batch)
            ).all()
            if not rows:
                break
            for event in rows:
                checked += 1
                if event.seq != expected:
                    problems.append(f"Events {expected} to {event.seq - 1} are missing (deleted).")
                if event.prev_hash != prev:
                    problems.append(f"Event {event.seq} does not follow the event before it (reordered or removed).")
                fields = (event.seq, event.recorded_at, event.actor, event.action, event.object_type,
                          event.object_id, event.before, event.after)  # fmt: skip
                if _digest(event.prev_hash, *fields) != event.hash:
                    problems.append(
                        f"Event {event.seq} ({event.action} by {event.actor}) was edited after it was recorded."
                    )
                prev, expected, last = event.hash, event.seq + 1, event.seq
    if head_seq != last or head != prev:
        problems.append(
            f"The trail ends at event {last} but its head records event {head_seq}: events at the end were removed "
            "or the head was changed."
        )
    return ChainReport(ok=not problems, checked=checked, head=head, problems=problems)


CSV_COLUMNS = ["seq", "recorded_at", "actor", "action", "object_type", "object_id", "before", "after", "hash"]


def events_csv(events: list[AuditRecord]) -> str:
    """Events as CSV (before/after as JSON text); cells that a spreadsheet would run as formulas are quoted."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for event in events:
        row = [event.seq, event.recorded_at, event.actor, event.action, event.object_type, event.object_id,
               canonical(event.before), canonical(event.after), event.hash]  # fmt: skip
        writer.writerow([_cell(value) for value in row])
    return out.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
