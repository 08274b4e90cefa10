"""The audit trail: every state change appends an event in the same transaction as the change.

Events are hash-chained: each event's hash covers its own fields and the hash before it, and the
one-row `audit_chain` table holds the last sequence number and hash. Appending locks that row, so
events get gap-free sequence numbers in commit order on SQLite and PostgreSQL alike.

A hash chain alone does not stop someone who can write to the database: they can edit an event and
recompute every later hash and the head. So each event also carries a MAC (HMAC-SHA256 over the store's
id, the event's seq and its hash) made with the audit key, which is kept outside the database
(`_audit_key`), and every committed head is appended to the store's anchor file, also outside the
database (`tracking.store._anchor`). `verify_chain` recomputes the chain, checks every MAC, and compares
the trail with the anchor: an edited, inserted, deleted, reordered, truncated or emptied trail is found
even when its hashes were recomputed. Events recorded before the store had a key (schema 0008) carry no
MAC: they are counted as unauthenticated legacy events, and a missing MAC on any later event is a problem.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update

from tracking._errors import StoreError
from tracking.governance._audit_key import AuditKey, key_source, load_key
from tracking.governance._json import json_safe
from tracking.governance._outbox import queue_for_audit
from tracking.store import (
    AuditChain,
    AuditEvent,
    Store,
    StoreIdentity,
    anchor_records,
    connection_store,
    note_audit_head,
)

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
    seq: int = 0  # the head's sequence number
    store_id: str = ""
    legacy: int = 0  # events recorded before the store had an audit key (no MAC)
    anchors: tuple[str, ...] = ()  # the anchor files compared with the trail (none: nothing outside vouches)
    anchored: int = 0  # the newest event an anchor recorded


def canonical(value: Any) -> str:
    """JSON with sorted keys and no whitespace; non-finite numbers become null (JSON has none)."""
    return json.dumps(json_safe(value), sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


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
    key, store_id = _signer(conn)  # after the head row is locked: one writer at a time sets the key id
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
    mac = key.mac(store_id, int(seq), digest)
    conn.execute(insert(AuditEvent).values(**fields, prev_hash=prev, hash=digest, mac=mac))
    conn.execute(update(AuditChain).where(AuditChain.id == 1).values(head=digest))
    note_audit_head(conn, store_id, int(seq), digest)  # appended to the anchor once the change commits
    queue_for_audit(conn, fields)  # webhooks subscribed to this action: queued in this same transaction
    return int(seq)


def _signer(conn: Any) -> tuple[AuditKey, str]:
    """The audit key and the store id to sign this store's events with (the key made on the first event)."""
    store = connection_store(conn)
    cached = store.audit_cache.get("signer")
    if cached is not None:
        return cached  # type: ignore[return-value]
    identity = conn.execute(select(StoreIdentity.store_id, StoreIdentity.audit_key_id)).first()
    if identity is None:
        raise StoreError(
            f"The store {store.location} has lost its identity row (table store_identity): it was emptied or "
            "damaged; restore it from a backup."
        )
    key = load_key(store, create=identity.audit_key_id is None)
    if key is None:
        raise StoreError(
            f"The audit key {key_source(store)} is missing, but this store's events are signed with key "
            f"{identity.audit_key_id}: copy the key file from where the store was created (or set "
            "TRACKING_AUDIT_KEY_FILE or TRACKING_AUDIT_KEY to it); nothing was changed."
        )
    if identity.audit_key_id is None:
        conn.execute(update(StoreIdentity).where(StoreIdentity.audit_key_id.is_(None)).values(audit_key_id=key.id))
        return key, identity.store_id  # cached once the id is seen committed
    if identity.audit_key_id != key.id:
        raise StoreError(
            f"The audit key {key.source} (id {key.id}) is not the key this store's events are signed with "
            f"(id {identity.audit_key_id}): use the store's key file (TRACKING_AUDIT_KEY_FILE); nothing was changed."
        )
    store.audit_cache["signer"] = (key, identity.store_id)
    return key, identity.store_id


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


MAX_PROBLEMS = 25  # a recomputed chain fails on every later event: the first ones say enough


def verify_chain(store: Store, batch: int = 5000, anchors: Sequence[Path | str] = ()) -> ChainReport:
    """Recompute the whole chain, check every MAC and compare with the anchors; each problem is one sentence.

    Args:
        store: the store.
        batch: events read per query.
        anchors: more anchor files to compare with, besides the store's own (e.g. a file of saved
            `audit anchor` lines).

    Raises:
        StoreError: the trail has signed events but the audit key is not available to check them.
    """
    problems: list[str] = []
    with store.connect() as conn:
        identity = conn.execute(
            select(StoreIdentity.store_id, StoreIdentity.legacy_events, StoreIdentity.audit_key_id)
        ).first()
        chain = conn.execute(select(AuditChain.seq, AuditChain.head).where(AuditChain.id == 1)).first()
        head_seq, head = (int(chain.seq), chain.head) if chain else (0, GENESIS)
        if identity is None:
            problems.append(
                "The store's identity row (table store_identity) is gone: the database was emptied or altered."
            )
        store_id = identity.store_id if identity else ""
        outside = _Anchors(store, store_id, anchors, problems)
        legacy_limit = outside.legacy_events if outside.legacy_events is not None else (
            int(identity.legacy_events) if identity else 0)  # fmt: skip
        key = load_key(store)
        if key is not None and identity is not None and identity.audit_key_id not in (None, key.id):
            problems.append(
                f"The audit key {key.source} (id {key.id}) is not the key this store records (id "
                f"{identity.audit_key_id}): the wrong key is configured, or the store's record of its key was changed."
            )
        scan = _Scan(store, store_id, key, legacy_limit, outside)
        last = 0
        while True:
            rows = conn.execute(
                select(*AuditEvent.__table__.columns).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(batch)
            ).all()
            if not rows:
                break
            for event in rows:
                scan.check(event)
            last = rows[-1].seq
    problems += scan.problems
    if head_seq != scan.last or head != scan.prev:
        problems.append(
            f"The trail ends at event {scan.last} but its head records event {head_seq}: events at the end were "
            "removed or the head was changed."
        )
    if outside.newest is not None and outside.newest[0] > scan.last:
        seq, _hash, at, source = outside.newest
        problems.append(
            f"The trail ends at event {scan.last}, but the anchor {source} recorded event {seq} at {at}: events "
            "at the end were removed (or the whole trail emptied) and the head moved back."
        )
    if len(problems) > MAX_PROBLEMS:
        problems[MAX_PROBLEMS:] = [f"... and {len(problems) - MAX_PROBLEMS} more problems."]
    return ChainReport(
        ok=not problems, checked=scan.checked, head=head, problems=problems, seq=head_seq, store_id=store_id,
        legacy=scan.legacy, anchors=tuple(outside.sources), anchored=outside.newest[0] if outside.newest else 0,
    )  # fmt: skip


class _Anchors:
    """The heads recorded outside the database: the store's anchor file and any others given."""

    def __init__(self, store: Store, store_id: str, extra: Sequence[Path | str], problems: list[str]) -> None:
        self.heads: dict[int, tuple[str, str, str]] = {}  # seq -> (hash, at, source)
        self.newest: tuple[int, str, str, str] | None = None
        self.legacy_events: int | None = None
        self.sources: list[str] = []
        files = [store.anchor] if store.anchor is not None and store.anchor.exists() else []
        for path in [*files, *(Path(p) for p in extra)]:
            self.sources.append(str(path))
            for record in anchor_records(path):
                if record.get("store") != store_id:
                    problems.append(
                        f"The anchor {path} belongs to store {record.get('store')}, not to this store ({store_id}): "
                        "the database was replaced, or the wrong anchor was given."
                    )
                    break
                if record.get("kind") == "store" and self.legacy_events is None:
                    self.legacy_events = int(record.get("legacy_events") or 0)
                seq = int(record["seq"])
                if seq > 0:
                    self.heads.setdefault(seq, (str(record["hash"]), str(record.get("at", "")), str(path)))
                    if self.newest is None or seq > self.newest[0]:
                        self.newest = (seq, *self.heads[seq])


class _Scan:
    """The checks of each event in turn: sequence, link, hash, MAC, and the anchors' record of it."""

    def __init__(self, store: Store, store_id: str, key: AuditKey | None, legacy_limit: int, outside: _Anchors):
        self.store, self.store_id, self.key, self.outside = store, store_id, key, outside
        self.legacy_limit = legacy_limit
        self.prev, self.expected, self.last, self.checked, self.legacy = GENESIS, 1, 0, 0, 0
        self.signed_seen = self.anchor_reported = False
        self.problems: list[str] = []

    def check(self, event: Any) -> None:
        self.checked += 1
        what = f"Event {event.seq} ({event.action} by {event.actor})"
        if event.seq != self.expected:
            self.problems.append(f"Events {self.expected} to {event.seq - 1} are missing (deleted).")
        if event.prev_hash != self.prev:
            self.problems.append(f"Event {event.seq} does not follow the event before it (reordered or removed).")
        fields = (event.seq, event.recorded_at, event.actor, event.action, event.object_type,
                  event.object_id, event.before, event.after)  # fmt: skip
        if _digest(event.prev_hash, *fields) != event.hash:
            self.problems.append(f"{what} was edited after it was recorded.")
        self._check_mac(event, what)
        anchored = self.outside.heads.get(event.seq)
        if anchored is not None and anchored[0] != event.hash and not self.anchor_reported:
            self.anchor_reported = True  # every later anchored event differs too: the first says where
            self.problems.append(
                f"{what} is not the event the anchor {anchored[2]} recorded at {anchored[1]}: the trail was "
                "rewritten from there on."
            )
        self.prev, self.expected, self.last = event.hash, event.seq + 1, event.seq

    def _check_mac(self, event: Any, what: str) -> None:
        if event.mac is None:
            if event.seq <= self.legacy_limit and not self.signed_seen:
                self.legacy += 1
            else:
                self.problems.append(
                    f"{what} carries no MAC although it was recorded after the store had an audit key: it was "
                    "added or rewritten by someone without the key."
                )
            return
        self.signed_seen = True
        if self.key is None:
            raise StoreError(
                f"The audit key {key_source(self.store)} is missing, so the events' MACs cannot be checked: copy the "
                "store's key file there (or set TRACKING_AUDIT_KEY_FILE or TRACKING_AUDIT_KEY) and verify again."
            )
        if not hmac.compare_digest(str(event.mac), self.key.mac(self.store_id, event.seq, event.hash)):
            self.problems.append(
                f"{what} fails its MAC check: it was written or rewritten without the audit key (e.g. its hash "
                "chain recomputed), or moved from another place."
            )


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
