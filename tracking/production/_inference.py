"""The inference log: what the model server was asked and answered, and the labels that came later.

Every request is counted per model version and minute (`serving_minutes`: volume, errors, rows and
latency); a sample of them (the server's sample rate) is also kept whole in `inference_log` with its
inputs and outputs, which drift and quality monitoring read. Both are written in batches by the
server's writer thread, never on a request's path.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from tracking._errors import NotFoundError, ValidationError
from tracking._settings import number_setting
from tracking.governance import Action, UserRecord, authorize, record
from tracking.store import InferenceEvent, ServingMinute, Store, bump_change_counter, utcnow


@dataclass(frozen=True)
class InferenceEntry:
    """One request as the server saw it (inputs and outputs are None for a refused request)."""

    request_id: str
    model_id: int
    version_id: int
    received_at: datetime
    latency_ms: float
    n_rows: int
    inputs: list[dict[str, Any]] | None
    outputs: dict[str, Any] | None
    sampled: bool  # keep it whole in the inference log
    error: bool = False


@dataclass(frozen=True)
class InferenceRecord:
    id: int
    request_id: str
    version_id: int
    received_at: datetime
    latency_ms: float
    n_rows: int
    inputs: list[dict[str, Any]]
    outputs: dict[str, Any]
    labels: list[Any] | None


@dataclass(frozen=True)
class MinuteRecord:
    version_id: int
    minute: datetime
    requests: int
    errors: int
    rows: int
    latency_mean_ms: float
    latency_max_ms: float


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def write_batch(store: Store, entries: list[InferenceEntry]) -> None:
    """Write a batch in one transaction: the sampled requests whole, every request into its minute's counts."""
    if not entries:
        return
    kept = [
        {"request_id": e.request_id, "model_id": e.model_id, "version_id": e.version_id,
         "received_at": e.received_at, "latency_ms": e.latency_ms, "n_rows": e.n_rows, "inputs": e.inputs,
         "outputs": e.outputs, "labels": None, "labelled_at": None}
        for e in entries if e.sampled and not e.error and e.inputs is not None
    ]  # fmt: skip
    minutes: dict[tuple[int, int, datetime], list[InferenceEntry]] = defaultdict(list)
    for entry in entries:
        minutes[(entry.model_id, entry.version_id, _minute(entry.received_at))].append(entry)
    with store.connect(write=True) as conn:
        if kept:
            conn.execute(insert(InferenceEvent), kept)
        for (model_id, version_id, minute), group in minutes.items():
            requests, errors = len(group), sum(e.error for e in group)
            rows = sum(e.n_rows for e in group if not e.error)
            total, worst = sum(e.latency_ms for e in group), max(e.latency_ms for e in group)
            found = conn.execute(
                select(ServingMinute.id, ServingMinute.latency_max_ms).where(
                    ServingMinute.version_id == version_id, ServingMinute.minute == minute
                )
            ).first()
            if found is None:
                conn.execute(
                    insert(ServingMinute).values(model_id=model_id, version_id=version_id, minute=minute,
                                                 requests=requests, errors=errors, rows=rows,
                                                 latency_sum_ms=total, latency_max_ms=worst)
                )  # fmt: skip
            else:
                conn.execute(
                    update(ServingMinute).where(ServingMinute.id == found.id).values(
                        requests=ServingMinute.requests + requests, errors=ServingMinute.errors + errors,
                        rows=ServingMinute.rows + rows, latency_sum_ms=ServingMinute.latency_sum_ms + total,
                        latency_max_ms=max(found.latency_max_ms, worst),
                    )
                )  # fmt: skip


def record_labels(store: Store, request_id: str, labels: list[Any]) -> InferenceRecord:
    """Attach the ground truth of a logged request (one label per row it had).

    Raises:
        NotFoundError: no logged request has this id (it was not sampled, or not yet written).
        ValidationError: the number of labels differs from the request's rows.
    """
    if not isinstance(labels, list) or not labels:
        raise ValidationError("Give the labels as a non-empty list, one per row of the request.")
    odd = next((i for i, label in enumerate(labels) if not _plain_label(label)), None)
    if odd is not None:
        raise ValidationError(f"Label {odd} is {labels[odd]!r:.40}; a label is a finite number, a string, true/false or null.")  # fmt: skip
    with store.connect(write=True) as conn:
        row = conn.execute(
            select(InferenceEvent.id, InferenceEvent.n_rows).where(InferenceEvent.request_id == request_id)
        ).first()
        if row is None:
            raise NotFoundError(
                f"No logged request has the id {request_id!r} (only sampled requests are kept; "
                "the newest ones reach the store within a few seconds)."
            )
        if len(labels) != row.n_rows:
            raise ValidationError(f"Request {request_id} had {row.n_rows} row(s), but {len(labels)} label(s) came.")
        conn.execute(update(InferenceEvent).where(InferenceEvent.id == row.id).values(labels=labels,
                                                                                     labelled_at=utcnow()))  # fmt: skip
    return get_inference(store, request_id)


def _plain_label(label: Any) -> bool:
    if isinstance(label, float):
        return math.isfinite(label)
    return label is None or isinstance(label, str | bool | int)


def get_inference(store: Store, request_id: str) -> InferenceRecord:
    """One logged request. Raises NotFoundError."""
    with store.connect() as conn:
        row = conn.execute(select(InferenceEvent).where(InferenceEvent.request_id == request_id)).first()
    if row is None:
        raise NotFoundError(f"No logged request has the id {request_id!r}.")
    return _record(row)


def _record(row: Any) -> InferenceRecord:
    return InferenceRecord(
        row.id, row.request_id, row.version_id, row.received_at, row.latency_ms, row.n_rows, list(row.inputs),
        dict(row.outputs), row.labels,
    )  # fmt: skip


def recent_inferences(
    store: Store,
    model_id: int,
    *,
    version_id: int | None = None,
    since: datetime | None = None,
    limit: int = 5000,
    labelled: bool = False,
) -> list[InferenceRecord]:
    """The newest logged requests of a model (of one version, since a time, only those with labels)."""
    query = select(InferenceEvent).where(InferenceEvent.model_id == model_id)
    if version_id is not None:
        query = query.where(InferenceEvent.version_id == version_id)
    if since is not None:
        query = query.where(InferenceEvent.received_at >= since)
    if labelled:
        query = query.where(InferenceEvent.labelled_at.is_not(None))
    query = query.order_by(InferenceEvent.received_at.desc(), InferenceEvent.id.desc()).limit(limit)
    with store.connect() as conn:
        return [_record(row) for row in conn.execute(query)]


def serving_series(store: Store, model_id: int, since: datetime | None = None) -> list[MinuteRecord]:
    """Requests, errors, rows and latency per minute and version, oldest first (default: the last 24 hours)."""
    since = since or utcnow() - timedelta(hours=24)
    with store.connect() as conn:
        rows = conn.execute(
            select(ServingMinute)
            .where(ServingMinute.model_id == model_id, ServingMinute.minute >= _minute(since))
            .order_by(ServingMinute.minute, ServingMinute.version_id)
        ).all()
    return [
        MinuteRecord(r.version_id, r.minute, r.requests, r.errors, r.rows,
                     r.latency_sum_ms / r.requests if r.requests else 0.0, r.latency_max_ms)
        for r in rows
    ]  # fmt: skip


# --- retention: the inference log keeps whole input rows, so it keeps them only as long as the policy says ---


@dataclass(frozen=True)
class RetentionReport:
    """What `apply_retention` dropped from the inference log, under which policy."""

    deleted: int
    days: float
    rows: int


def retention_policy() -> tuple[float, int]:
    """The policy of the settings: (days to keep a logged request, requests to keep per model).

    Raises:
        ValidationError: a setting is not a positive number.
    """
    days = number_setting("TRACKING_INFERENCE_RETENTION_DAYS")
    rows = number_setting("TRACKING_INFERENCE_RETENTION_ROWS", minimum=0.999)
    return days, int(rows)


def apply_retention(
    store: Store, actor: UserRecord | None = None, *, days: float | None = None, rows: int | None = None
) -> RetentionReport:
    """Drop the logged requests older than `days` and, per registered model, all but the newest `rows`
    (defaults: `TRACKING_INFERENCE_RETENTION_DAYS` / `_ROWS`). The per-minute counts are kept: they hold no data.

    Raises:
        ValidationError: a limit that is not positive. PermissionDenied: only admins may apply retention.
    """
    default_days, default_rows = retention_policy()
    days = default_days if days is None else days
    rows = default_rows if rows is None else rows
    if not days > 0 or not rows >= 1:
        raise ValidationError("Retention keeps a positive number of days and at least one request per model.")
    cutoff = utcnow() - timedelta(days=days)
    with store.connect(write=True) as conn:
        who = authorize(conn, actor, Action.trash_purge)
        deleted = conn.execute(delete(InferenceEvent).where(InferenceEvent.received_at < cutoff)).rowcount
        models = conn.execute(
            select(InferenceEvent.model_id).group_by(InferenceEvent.model_id).having(func.count() > rows)
        ).scalars()
        for model_id in list(models):
            newest = (
                select(InferenceEvent.id)
                .where(InferenceEvent.model_id == model_id)
                .order_by(InferenceEvent.received_at.desc(), InferenceEvent.id.desc())
                .limit(rows)
            )
            deleted += conn.execute(
                delete(InferenceEvent).where(
                    InferenceEvent.model_id == model_id, InferenceEvent.id.not_in(select(newest.subquery().c.id))
                )
            ).rowcount
        record(conn, who, "inference.retention", "inference_log", "-", None,
               {"deleted": deleted, "days": days, "rows": rows})  # fmt: skip
        bump_change_counter(conn)
    return RetentionReport(int(deleted), float(days), int(rows))
