"""Promotion requests: a version goes to production only through a request that a second person approves.

A data scientist or engineer requests promotion with a justification; the registered model's policy
gates are evaluated then (candidate and current production scored on the same held-out rows) and
stored with the request. A product owner (or admin) approves or rejects it with a comment; nobody
decides on their own request; a request with a failing gate is approved only by an admin overriding it
with a written justification. Approval archives the previous production version and promotes the
candidate in one transaction that holds the registered model's row lock, so racing approvals leave
exactly one production version. A pending request goes stale when production changes after it was
evaluated (its comparison no longer holds); rollback is a request for an earlier version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from tracking._errors import NotFoundError, PermissionDenied, TrackingError, ValidationError, checked_text
from tracking.governance import Action, UserRecord, authorize, record, require, why_not
from tracking.ml import Assessment, assess
from tracking.registry._gates import FAILED, GateInputs, gate_state
from tracking.registry._models import (
    VersionRecord,
    effective_policy,
    get_version,
    load_version_model,
    production_version,
    rebuild_dataset,
)
from tracking.registry._policy import run_gates
from tracking.registry._summary import WorseMetric, gate_summary, worse_metrics
from tracking.store import (
    DatasetVersion,
    ModelVersion,
    PromotionRequest,
    RegisteredModel,
    RequestStatus,
    Run,
    Stage,
    Store,
    bump_change_counter,
    utcnow,
)


@dataclass(frozen=True)
class RequestRecord:
    id: int
    version_id: int
    model: str
    version: int
    baseline_version_id: int | None
    baseline_version: int | None
    status: str
    requested_by: str
    justification: str
    gates: list[dict[str, Any]]
    evaluation: dict[str, Any] | None
    policy: dict[str, Any]
    created_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    comment: str | None
    override_justification: str | None

    @property
    def failed_gates(self) -> list[dict[str, Any]]:
        """The gates that failed (a gate that does not apply has not failed)."""
        return _failed(self.gates)

    @property
    def assessment(self) -> Assessment | None:
        """The held-out comparison stored with the request, or None when the candidate could not be scored."""
        stored = (self.evaluation or {}).get("assessment")
        return Assessment.from_json(stored) if stored else None

    @property
    def worse_metrics(self) -> list[WorseMetric]:
        """Every metric that got worse than production beyond its interval, with the gates that check it."""
        return worse_metrics(self.gates, self.assessment)

    @property
    def gate_summary(self) -> str:
        """e.g. "4 of 4 gates passed; 2 metrics got worse without a gate." """
        return gate_summary(self.gates, self.worse_metrics)

    @property
    def label(self) -> str:
        return f"{self.model} v{self.version}"


# --- reads ---


def _query() -> Any:
    return (
        select(PromotionRequest, RegisteredModel.name, ModelVersion.version)
        .join(ModelVersion, ModelVersion.id == PromotionRequest.version_id)
        .join(RegisteredModel, RegisteredModel.id == ModelVersion.model_id)
    )


def _record(row: PromotionRequest, model: str, version: int, baseline: int | None) -> RequestRecord:
    return RequestRecord(
        row.id, row.version_id, model, version, row.baseline_version_id, baseline, str(row.status), row.requested_by,
        row.justification, list(row.gates), row.evaluation, dict(row.policy), row.created_at, row.decided_by,
        row.decided_at, row.comment, row.override_justification,
    )  # fmt: skip


def list_requests(
    store: Store, status: str | None = None, model: str | None = None, version_id: int | None = None
) -> list[RequestRecord]:
    """Promotion requests, newest first, optionally of one status, registered model or version."""
    query = _query().order_by(PromotionRequest.id.desc())
    if status:
        query = query.where(PromotionRequest.status == RequestStatus(status))
    if model:
        query = query.where(RegisteredModel.name == model)
    if version_id is not None:
        query = query.where(PromotionRequest.version_id == version_id)
    with store.session_scope() as session:
        rows = session.execute(query).all()
        baselines = _baseline_numbers(session, [row[0].baseline_version_id for row in rows])
    return [_record(row, name, number, baselines.get(row.baseline_version_id)) for row, name, number in rows]


def _baseline_numbers(session: Any, ids: list[int | None]) -> dict[int, int]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return dict(session.execute(select(ModelVersion.id, ModelVersion.version).where(ModelVersion.id.in_(wanted))).all())


def get_request(store: Store, request_id: int) -> RequestRecord:
    """One promotion request. Raises NotFoundError."""
    with store.session_scope() as session:
        found = session.execute(_query().where(PromotionRequest.id == request_id)).first()
        if found is None:
            raise NotFoundError(f"There is no promotion request {request_id}.")
        row, name, number = found
        baseline = _baseline_numbers(session, [row.baseline_version_id]).get(row.baseline_version_id)
    return _record(row, name, number, baseline)


# --- evaluation ---


def evaluate(store: Store, candidate: VersionRecord) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """Evaluate the model's policy gates for a candidate against the current production version.

    Returns:
        (the policy used, the gate results, the evaluation: held-out comparison, per-group table, what changed).
    """
    policy = effective_policy(store, candidate.model)
    baseline = production_version(store, candidate.model)
    if baseline is not None and baseline.id == candidate.id:
        baseline = None
    with store.session_scope() as session:
        run = session.get(Run, candidate.run_id)
        metrics, seed, dataset_id = dict(run.metrics), run.seed or 0, run.dataset_version_id
    dataset = _dataset_ref(store, dataset_id)
    notes: list[str] = []
    try:
        model = load_version_model(store, candidate)
        verified, model_detail = True, f"The model file's sha256 {candidate.artifact_sha256[:12]}… verifies."
    except TrackingError as err:
        model, verified, model_detail = None, False, str(err)
    assessment: Assessment | None = None
    if model is not None:
        baseline_model = None
        if baseline is not None:
            try:
                baseline_model = load_version_model(store, baseline)
            except TrackingError as err:
                notes.append(f"The production version could not be loaded: {err}")
        try:
            regression = policy.get("regression") or {}
            assessment = assess(
                model, baseline_model, rebuild_dataset(store, dataset_id), seed,
                bootstrap=int(regression.get("bootstrap", 1000)), confidence=float(regression.get("confidence", 0.95)),
            )  # fmt: skip
        except TrackingError as err:
            notes.append(str(err))
    inputs = GateInputs(
        metrics=metrics,
        assessment=assessment,
        baseline_version=baseline.version if baseline is not None else None,
        model_verified=verified,
        model_detail=model_detail,
        dataset=dataset,
    )
    gates = [gate.to_json() for gate in run_gates(policy, inputs)]
    evaluation = {
        "assessment": assessment.to_json() if assessment is not None else None,
        "baseline": {"id": baseline.id, "version": baseline.version} if baseline is not None else None,
        "changes": _changes(store, candidate, baseline),
        "notes": notes,
    }
    return policy, gates, evaluation


def _dataset_ref(store: Store, dataset_id: int | None) -> dict[str, Any] | None:
    if dataset_id is None:
        return None
    with store.session_scope() as session:
        row = session.get(DatasetVersion, dataset_id)
        return {"id": row.id, "name": row.name, "hash": row.sha256} if row else None


def _changes(store: Store, candidate: VersionRecord, baseline: VersionRecord | None) -> dict[str, Any]:
    """What differs between the candidate's run and the production version's run, in plain fields."""
    if baseline is None:
        return {}
    with store.session_scope() as session:
        new, old = session.get(Run, candidate.run_id), session.get(Run, baseline.run_id)
        new_ds, old_ds = _dataset_ref(store, new.dataset_version_id), _dataset_ref(store, old.dataset_version_id)
        keys = sorted(set(new.params) | set(old.params))
        return {
            "dataset": {"production": old_ds, "candidate": new_ds, "changed": old_ds != new_ds},
            "code_version": {"production": old.code_version, "candidate": new.code_version,
                             "changed": old.code_version != new.code_version},
            "params": {k: {"production": old.params.get(k), "candidate": new.params.get(k)}
                       for k in keys if old.params.get(k) != new.params.get(k)},
            "runs": {"production": old.id, "candidate": new.id},
        }  # fmt: skip


# --- writes ---


def request_promotion(
    store: Store, version_id: int, justification: str, actor: UserRecord | None = None
) -> RequestRecord:
    """Ask for a version to go to production; the policy gates are evaluated and stored with the request.

    Raises:
        ValidationError: no justification, the version is already in production or already has a pending request.
        PermissionDenied: the actor may not request promotions.
    """
    require(store, actor, Action.promotion_request)
    justification = checked_text(justification, "justification", kept_with="the decision")
    candidate = get_version(store, version_id)
    if candidate.stage == Stage.production:
        raise ValidationError(_in_production(candidate.label))
    policy, gates, evaluation = evaluate(store, candidate)
    baseline = evaluation["baseline"]
    with store.session_scope(write=True) as session:
        who = authorize(session, actor, Action.promotion_request)
        _lock_model(session, candidate.model_id)
        pending = session.execute(
            select(PromotionRequest.id).where(
                PromotionRequest.version_id == version_id, PromotionRequest.status == RequestStatus.pending
            )
        ).scalar()
        if pending is not None:
            raise ValidationError(_already_pending(candidate.label, pending))
        current = _production_id(session, candidate.model_id)
        if current != (baseline["id"] if baseline else None):
            raise ValidationError("The production version changed while the gates were evaluated; request again.")
        request_id = session.execute(
            insert(PromotionRequest)
            .values(version_id=version_id, baseline_version_id=current, status=RequestStatus.pending,
                    requested_by=who, justification=justification, gates=gates, evaluation=evaluation,
                    policy=policy, created_at=utcnow())
            .returning(PromotionRequest.id)
        ).scalar_one()  # fmt: skip
        record(session, who, "promotion.request", "promotion_request", request_id, None,
               {"model": candidate.model, "version": candidate.version, "justification": justification,
                "gates": [{"gate": g["gate"], "label": g["label"], "passed": g["passed"], "state": g["state"]}
                          for g in gates]})  # fmt: skip
        bump_change_counter(session)
    return get_request(store, request_id)


def _lock_model(session: Any, model_id: int) -> None:
    """Hold the registered model's row lock until commit (PostgreSQL; SQLite writers are serial anyway)."""
    session.execute(select(RegisteredModel.id).where(RegisteredModel.id == model_id).with_for_update())


def _production_id(session: Any, model_id: int) -> int | None:
    return session.execute(
        select(ModelVersion.id).where(ModelVersion.model_id == model_id, ModelVersion.stage == Stage.production)
    ).scalar()


def _pending(session: Any, request_id: int) -> tuple[PromotionRequest, ModelVersion]:
    found = session.execute(
        select(PromotionRequest, ModelVersion)
        .join(ModelVersion, ModelVersion.id == PromotionRequest.version_id)
        .where(PromotionRequest.id == request_id)
    ).first()
    if found is None:
        raise NotFoundError(f"There is no promotion request {request_id}.")
    return found[0], found[1]


def approve_promotion(
    store: Store,
    request_id: int,
    comment: str,
    actor: UserRecord | None = None,
    override_justification: str | None = None,
) -> RequestRecord:
    """Approve a pending request: the candidate goes to production and the previous production version
    is archived, in one transaction.

    Args:
        store: the store.
        request_id: the request.
        comment: the approver's comment (required).
        actor: the approver: a product owner or admin, not the requester.
        override_justification: needed (from an admin) when a gate failed; recorded with the decision.

    Raises:
        PermissionDenied: the actor may not approve, is the requester, or a gate failed without an admin override.
        ValidationError: no comment, or the request is no longer pending (e.g. it went stale).
    """
    comment = checked_text(comment, "comment", kept_with="the decision")
    stale = False
    with store.session_scope(write=True) as session:
        who = authorize(session, actor, Action.promotion_decide)
        request, version = _pending(session, request_id)
        _lock_model(session, version.model_id)
        session.refresh(request)  # re-read under the lock: a racing approval may have decided it
        session.refresh(version)
        _check_decidable(request, who)
        action = "promotion.approve"
        if failed := _failed(request.gates):
            if override_justification is None or not override_justification.strip():
                raise PermissionDenied(_gate_failed([gate["label"] for gate in failed]))
            authorize(session, actor, Action.promotion_override)
            override_justification = checked_text(
                override_justification, "override justification", kept_with="the decision"
            )
            action = "promotion.override"
        current = _production_id(session, version.model_id)
        if current != request.baseline_version_id:
            _mark_stale(session, who, request, "production changed after the request was evaluated")
            stale = True
        else:
            now = utcnow()
            if current is not None:
                session.execute(
                    update(ModelVersion).where(ModelVersion.id == current)
                    .values(stage=Stage.archived, stage_changed_at=now)
                )  # fmt: skip
                record(session, who, "version.stage", "model_version", current, {"stage": "production"},
                       {"stage": "archived", "request": request_id})  # fmt: skip
            before = str(version.stage)
            session.execute(
                update(ModelVersion).where(ModelVersion.id == version.id)
                .values(stage=Stage.production, stage_changed_at=now)
            )  # fmt: skip
            record(session, who, "version.stage", "model_version", version.id, {"stage": before},
                   {"stage": "production", "request": request_id})  # fmt: skip
            session.execute(
                update(PromotionRequest).where(PromotionRequest.id == request_id)
                .values(status=RequestStatus.approved, decided_by=who, decided_at=now, comment=comment,
                        override_justification=override_justification if action == "promotion.override" else None)
            )  # fmt: skip
            record(session, who, action, "promotion_request", request_id, {"status": "pending"},
                   {"status": "approved", "comment": comment, "override_justification": override_justification
                    if action == "promotion.override" else None})  # fmt: skip
            others = session.execute(
                select(PromotionRequest)
                .join(ModelVersion, ModelVersion.id == PromotionRequest.version_id)
                .where(ModelVersion.model_id == version.model_id, PromotionRequest.status == RequestStatus.pending,
                       PromotionRequest.id != request_id)
            ).scalars().all()  # fmt: skip
            for other in others:
                _mark_stale(session, who, other, f"request {request_id} changed the production version")
        bump_change_counter(session)
    if stale:
        raise ValidationError(
            f"Request {request_id} went stale: the production version changed after its gates were evaluated. "
            "Request the promotion again to compare against the current production version."
        )
    return get_request(store, request_id)


def _check_decidable(request: PromotionRequest, who: str) -> None:
    if request.status != RequestStatus.pending:
        raise ValidationError(_not_pending(request.id, request.status, "there is nothing to decide"))
    if request.requested_by == who:
        raise PermissionDenied(OWN_REQUEST)


def _mark_stale(session: Any, who: str, request: PromotionRequest, why: str) -> None:
    session.execute(
        update(PromotionRequest).where(PromotionRequest.id == request.id).values(status=RequestStatus.stale)
    )
    record(session, who, "promotion.stale", "promotion_request", request.id, {"status": "pending"},
           {"status": "stale", "reason": why})  # fmt: skip


def reject_promotion(store: Store, request_id: int, comment: str, actor: UserRecord | None = None) -> RequestRecord:
    """Reject a pending request with a comment (a product owner or admin who did not make the request)."""
    comment = checked_text(comment, "comment", kept_with="the decision")
    with store.session_scope(write=True) as session:
        who = authorize(session, actor, Action.promotion_decide)
        request, _version = _pending(session, request_id)
        _check_decidable(request, who)
        session.execute(
            update(PromotionRequest).where(PromotionRequest.id == request_id)
            .values(status=RequestStatus.rejected, decided_by=who, decided_at=utcnow(), comment=comment)
        )  # fmt: skip
        record(session, who, "promotion.reject", "promotion_request", request_id, {"status": "pending"},
               {"status": "rejected", "comment": comment})  # fmt: skip
        bump_change_counter(session)
    return get_request(store, request_id)


def withdraw_promotion(store: Store, request_id: int, actor: UserRecord | None = None) -> RequestRecord:
    """Withdraw a pending request (its requester, or an admin)."""
    with store.session_scope(write=True) as session:
        request, _version = _pending(session, request_id)
        if actor is not None and actor.name == request.requested_by:
            who = authorize(session, actor, Action.promotion_request)
        else:
            try:
                who = authorize(session, actor, Action.promotion_override)
            except PermissionDenied:
                raise PermissionDenied(ONLY_REQUESTER_OR_ADMIN) from None
        if request.status != RequestStatus.pending:
            raise ValidationError(_not_pending(request_id, request.status, "it cannot be withdrawn"))
        session.execute(
            update(PromotionRequest).where(PromotionRequest.id == request_id)
            .values(status=RequestStatus.withdrawn, decided_by=who, decided_at=utcnow())
        )  # fmt: skip
        record(session, who, "promotion.withdraw", "promotion_request", request_id, {"status": "pending"},
               {"status": "withdrawn"})  # fmt: skip
        bump_change_counter(session)
    return get_request(store, request_id)


def decision_blockers(request: RequestRecord, actor: UserRecord | None, verdict: str = "approve") -> list[str]:
    """Why `actor` cannot approve (or, with `verdict="reject"`, reject) this request now; empty: they can.

    The sentences are the ones `approve_promotion` and `reject_promotion` raise. A failed gate stops an
    approval (unless an admin overrides it), never a rejection.
    """
    reasons = []
    if request.status != RequestStatus.pending:
        reasons.append(_not_pending(request.id, request.status, "there is nothing to decide"))
    if role := why_not(actor, Action.promotion_decide):
        reasons.append(role)
    if actor is not None and actor.name == request.requested_by:
        reasons.append(OWN_REQUEST)
    if verdict == "approve" and request.failed_gates and why_not(actor, Action.promotion_override):
        reasons.append(_gate_failed([gate["label"] for gate in request.failed_gates]))
    return reasons


def withdraw_blockers(request: RequestRecord, actor: UserRecord | None) -> list[str]:
    """Why `actor` cannot withdraw this request now (empty: they can): only its requester or an admin can."""
    reasons = []
    if request.status != RequestStatus.pending:
        reasons.append(_not_pending(request.id, request.status, "it cannot be withdrawn"))
    own = actor is not None and actor.name == request.requested_by
    if role := why_not(actor, Action.promotion_request if own else Action.promotion_override):
        reasons.append(role if own else ONLY_REQUESTER_OR_ADMIN)
    return reasons


def request_blockers(store: Store, actor: UserRecord | None, version: VersionRecord) -> list[str]:
    """Why `actor` cannot request this version's promotion now (empty: they can), as `request_promotion` says."""
    if role := why_not(actor, Action.promotion_request):
        return [role]
    if version.stage == Stage.production:
        return [_in_production(version.label)]
    pending = list_requests(store, status="pending", version_id=version.id)
    return [_already_pending(version.label, pending[0].id)] if pending else []


OWN_REQUEST = "Nobody can decide on their own promotion request; another person must review it."
ONLY_REQUESTER_OR_ADMIN = "Only the person who made the request, or an admin, can withdraw it."


def _not_pending(request_id: int, status: str, consequence: str) -> str:
    return f"Request {request_id} is {status}, not pending; {consequence}."


def _failed(gates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [gate for gate in gates if gate_state(gate) == FAILED]


def _gate_failed(labels: list[str]) -> str:
    return (
        f"A gate failed ({', '.join(labels)}), so this request can only be approved by an admin overriding it "
        "with a written justification."
    )


def _in_production(label: str) -> str:
    return f"{label} is already in production."


def _already_pending(label: str, request_id: int) -> str:
    return f"{label} already has a pending request ({request_id}); withdraw it first."
