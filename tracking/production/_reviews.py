"""Reviews of a production version: opened when monitoring finds a breach (or by hand), closed by a
product owner or admin with a comment. Both are permission-checked and audited in one transaction."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from tracking._errors import NotFoundError, ValidationError, checked_text
from tracking.governance import Action, UserRecord, authorize, record, why_not
from tracking.store import ModelVersion, RegisteredModel, Review, Store, bump_change_counter, utcnow

REVIEW_STATUSES = ("open", "closed")


@dataclass(frozen=True)
class ReviewRecord:
    id: int
    version_id: int
    model: str
    version: int
    opened_by: str
    reason: str
    findings: dict[str, Any]
    status: str  # "open" or "closed"
    created_at: datetime
    closed_by: str | None
    closed_at: datetime | None
    comment: str | None

    @property
    def label(self) -> str:
        return f"{self.model} v{self.version}"


def _reviews_query() -> Any:
    return (
        select(Review, RegisteredModel.name, ModelVersion.version)
        .join(ModelVersion, ModelVersion.id == Review.version_id)
        .join(RegisteredModel, RegisteredModel.id == ModelVersion.model_id)
    )


def _review(r: Any) -> ReviewRecord:  # a Core row: the review's columns, then the model name and version number
    return ReviewRecord(r.id, r.version_id, r.name, r.version, r.opened_by, r.reason, dict(r.findings), r.status,
                        r.created_at, r.closed_by, r.closed_at, r.comment)  # fmt: skip


def list_reviews(
    store: Store, version_id: int | None = None, status: str | None = None, model: str | None = None
) -> list[ReviewRecord]:
    """Reviews, newest first: of one version or registered model, open or closed.

    Raises:
        ValidationError: an unknown status.
    """
    query = _reviews_query().order_by(Review.id.desc())
    if status is not None:
        if status not in REVIEW_STATUSES:
            raise ValidationError(f"A review is open or closed, not {status!r}.")
        query = query.where(Review.status == status)
    if version_id is not None:
        query = query.where(Review.version_id == version_id)
    if model is not None:
        query = query.where(RegisteredModel.name == model)
    with store.connect() as conn:
        return [_review(row) for row in conn.execute(query)]


def get_review(store: Store, review_id: int) -> ReviewRecord:
    """One review. Raises NotFoundError."""
    with store.connect() as conn:
        row = conn.execute(_reviews_query().where(Review.id == review_id)).first()
    if row is None:
        raise NotFoundError(f"There is no review {review_id}.")
    return _review(row)


def open_review(
    store: Store,
    version_id: int,
    reason: str,
    findings: Mapping[str, Any] | None = None,
    actor: UserRecord | None = None,
) -> ReviewRecord:
    """Open a review of a model version (usually the one in production, after an alert).

    Args:
        store: the store.
        version_id: the version under review.
        reason: why it needs a look (required).
        findings: what monitoring found, as JSON (e.g. `MonitoringReport.findings()`).
        actor: who opens it: any role but viewer.

    Raises:
        ValidationError: no reason, findings that are not JSON, or the version already has an open review.
        NotFoundError: no such version.
        PermissionDenied: the actor may not open reviews.
    """
    reason = checked_text(reason, "reason for the review", kept_with="the review")
    findings = _json(findings)
    with store.connect(write=True) as conn:
        who = authorize(conn, actor, Action.review_open)
        version = conn.execute(
            select(ModelVersion.version, RegisteredModel.name)
            .join(RegisteredModel, RegisteredModel.id == ModelVersion.model_id)
            .where(ModelVersion.id == version_id)
        ).first()
        if version is None:
            raise NotFoundError(f"There is no model version {version_id}.")
        label = f"{version.name} v{version.version}"
        already = conn.execute(
            select(Review.id).where(Review.version_id == version_id, Review.status == "open")
        ).scalar()
        if already is not None:
            raise ValidationError(_already_open(label, already))
        review_id = conn.execute(
            insert(Review).values(version_id=version_id, opened_by=who, reason=reason, findings=findings,
                                  status="open", created_at=utcnow()).returning(Review.id)
        ).scalar_one()  # fmt: skip
        record(conn, who, "review.open", "review", review_id, None,
               {"model": version.name, "version": version.version, "reason": reason, "findings": findings})  # fmt: skip
        bump_change_counter(conn)
    return get_review(store, review_id)


def review_blockers(store: Store, actor: UserRecord | None, version_id: int) -> list[str]:
    """Why `actor` cannot open a review of this version now (empty: they can), as `open_review` says."""
    if role := why_not(actor, Action.review_open):
        return [role]
    already = list_reviews(store, version_id=version_id, status="open")
    return [_already_open(already[0].label, already[0].id)] if already else []


def _already_open(label: str, review_id: int) -> str:
    return f"{label} already has an open review ({review_id}); close it before opening another."


def close_review(store: Store, review_id: int, comment: str, actor: UserRecord | None = None) -> ReviewRecord:
    """Close an open review with a comment (what was found or done).

    Raises:
        ValidationError: no comment, or the review is already closed.
        NotFoundError: no such review.
        PermissionDenied: the actor is not a product owner or admin.
    """
    comment = checked_text(comment, "closing comment", kept_with="the review")
    with store.connect(write=True) as conn:
        who = authorize(conn, actor, Action.review_close)
        status = conn.execute(select(Review.status).where(Review.id == review_id)).scalar()
        if status is None:
            raise NotFoundError(f"There is no review {review_id}.")
        if status != "open":
            raise ValidationError(f"Review {review_id} is already closed.")
        conn.execute(
            update(Review).where(Review.id == review_id)
            .values(status="closed", closed_by=who, closed_at=utcnow(), comment=comment)
        )  # fmt: skip
        record(conn, who, "review.close", "review", review_id, {"status": "open"},
               {"status": "closed", "comment": comment})  # fmt: skip
        bump_change_counter(conn)
    return get_review(store, review_id)


def _json(findings: Mapping[str, Any] | None) -> dict[str, Any]:
    if findings is None:
        return {}
    if not isinstance(findings, Mapping):
        raise ValidationError("The findings of a review must be a mapping (a JSON object).")
    try:
        return json.loads(json.dumps(dict(findings), allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValidationError(f"The findings of a review must be plain JSON ({err}).") from None
