"""The model registry: registered models, their numbered versions, stages, policies and lineage.

A version is registered from a run that has a model artifact; its file's sha256 is verified at
registration and again before every load. Stages go none -> staging -> production -> archived, and
production is reached only through an approved promotion request (`_promotions.py`): at most one
version of a registered model is in production, which a partial unique index enforces under any race.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exc as sqlalchemy_exc
from sqlalchemy import func, insert, select, update

from tracking._errors import NotFoundError, PermissionDenied, TrackingError, ValidationError, checked_text
from tracking.governance import Action, UserRecord, authorize, record, require, why_not
from tracking.ml import assess
from tracking.registry._policy import default_policy, validate_policy
from tracking.runs import BUILTIN_TASKS, find_artifact, load_model_file, load_task, read_verified
from tracking.store import (
    ArtifactRecord,
    DatasetVersion,
    ModelVersion,
    RegisteredModel,
    Run,
    RunStatus,
    Stage,
    Store,
    Sweep,
    bump_change_counter,
    utcnow,
)

MAX_NAME = 100
ONLY_ADMIN_TAKES_DOWN = "Only an admin takes the production version out of production."


@dataclass(frozen=True)
class ModelRecord:
    id: int
    name: str
    description: str
    policy: dict[str, Any] | None  # None: the default policy of the task
    created_by: str
    created_at: datetime
    n_versions: int
    production_version: int | None
    latest_version: int | None


@dataclass(frozen=True)
class VersionRecord:
    id: int
    model_id: int
    model: str
    version: int
    run_id: int
    artifact_sha256: str
    stage: str
    description: str
    intended_use: str
    limitations: str
    evaluation: dict[str, Any] | None
    created_by: str
    created_at: datetime
    stage_changed_at: datetime

    @property
    def label(self) -> str:
        return f"{self.model} v{self.version}"


# --- reads ---


def list_models(store: Store) -> list[ModelRecord]:
    """Every registered model with its version count and production version, by name."""
    with store.session_scope() as session:
        return [_model(*row) for row in session.execute(_models_query())]


def _models_query() -> Any:
    versions = (
        select(
            ModelVersion.model_id,
            func.count().label("n"),
            func.max(ModelVersion.version).label("latest"),
        )
        .group_by(ModelVersion.model_id)
        .subquery()
    )
    production = select(ModelVersion.model_id, ModelVersion.version).where(ModelVersion.stage == Stage.production)
    production = production.subquery()
    return (
        select(RegisteredModel, versions.c.n, versions.c.latest, production.c.version)
        .outerjoin(versions, versions.c.model_id == RegisteredModel.id)
        .outerjoin(production, production.c.model_id == RegisteredModel.id)
        .order_by(RegisteredModel.name)
    )


def _model(row: RegisteredModel, n: int | None, latest: int | None, prod: int | None) -> ModelRecord:
    return ModelRecord(
        row.id, row.name, row.description, row.policy, row.created_by, row.created_at, int(n or 0), prod, latest
    )


def get_model(store: Store, name: str) -> ModelRecord:
    """One registered model by name. Raises NotFoundError."""
    with store.session_scope() as session:
        found = session.execute(_models_query().where(RegisteredModel.name == name)).first()
    if found is None:
        raise NotFoundError(f"There is no registered model named {name!r}.")
    return _model(*found)


def _versions_query() -> Any:
    return select(ModelVersion, RegisteredModel.name).join(RegisteredModel, RegisteredModel.id == ModelVersion.model_id)


def _version(row: ModelVersion, model: str) -> VersionRecord:
    return VersionRecord(
        row.id, row.model_id, model, row.version, row.run_id, row.artifact_sha256, str(row.stage), row.description,
        row.intended_use, row.limitations, row.evaluation, row.created_by, row.created_at, row.stage_changed_at,
    )  # fmt: skip


def list_versions(store: Store, model: str | None = None, run_id: int | None = None) -> list[VersionRecord]:
    """Versions of one registered model (or of all, or registered from one run), newest first."""
    query = _versions_query().order_by(RegisteredModel.name, ModelVersion.version.desc())
    if model is not None:
        query = query.where(RegisteredModel.name == model)
    if run_id is not None:
        query = query.where(ModelVersion.run_id == run_id)
    with store.session_scope() as session:
        return [_version(row, name) for row, name in session.execute(query)]


def get_version(store: Store, version_id: int) -> VersionRecord:
    """One model version by its id. Raises NotFoundError."""
    with store.session_scope() as session:
        found = session.execute(_versions_query().where(ModelVersion.id == version_id)).first()
    if found is None:
        raise NotFoundError(f"There is no model version {version_id}.")
    return _version(*found)


def find_version(store: Store, model: str, version: int) -> VersionRecord:
    """A version by registered model name and number. Raises NotFoundError."""
    with store.session_scope() as session:
        found = session.execute(
            _versions_query().where(RegisteredModel.name == model, ModelVersion.version == version)
        ).first()
    if found is None:
        raise NotFoundError(f"The registered model {model!r} has no version {version}.")
    return _version(*found)


def production_version(store: Store, model: str) -> VersionRecord | None:
    """The version of `model` in production, or None."""
    with store.session_scope() as session:
        found = session.execute(
            _versions_query().where(RegisteredModel.name == model, ModelVersion.stage == Stage.production)
        ).first()
    return _version(*found) if found else None


def lineage(store: Store, version_id: int) -> dict[str, Any]:
    """Where a version came from: its run, the run's sweep, dataset version and code version."""
    version = get_version(store, version_id)
    with store.session_scope() as session:
        run = session.get(Run, version.run_id)
        sweep = session.get(Sweep, run.sweep_id) if run.sweep_id else None
        dataset = session.get(DatasetVersion, run.dataset_version_id) if run.dataset_version_id else None
        return {
            "version": {"id": version.id, "model": version.model, "version": version.version, "stage": version.stage},
            "run": {"id": run.id, "name": run.name, "status": str(run.status), "seed": run.seed,
                    "params": dict(run.params), "metrics": dict(run.metrics)},
            "sweep": {"id": sweep.id, "name": sweep.name} if sweep else None,
            "dataset": (
                {"id": dataset.id, "name": dataset.name, "sha256": dataset.sha256, "source": dataset.source,
                 "rows": dataset.n_rows, "columns": dataset.n_columns, "schema": dataset.schema_,
                 "stats": dataset.stats}
                if dataset else None
            ),
            "code_version": run.code_version,
            "environment": dict(run.environment),
        }  # fmt: skip


# --- the held-out data and models behind gates and model cards ---


def rebuild_dataset(store: Store, dataset_version_id: int | None) -> Any:
    """The TaskData of a recorded dataset version, checked to still hash as recorded.

    Raises:
        ValidationError: no dataset recorded, or the data can no longer be loaded or changed since.
    """
    if dataset_version_id is None:
        raise ValidationError("The run recorded no dataset version, so its held-out data cannot be rebuilt.")
    with store.session_scope() as session:
        row = session.get(DatasetVersion, dataset_version_id)
        source, name, path, sha, schema = row.source, row.name, row.path, row.sha256, dict(row.schema_)
    if source == "builtin" and name in BUILTIN_TASKS:
        data = load_task(task=name)
    elif path:
        data = load_task(csv=path, target=schema.get("target"), sensitive=schema.get("sensitive"))
    else:
        raise ValidationError(f"The dataset {name!r} cannot be loaded again on this machine.")
    if data.sha256 != sha:
        raise ValidationError(
            f"The dataset {name!r} changed since the run trained on it (sha256 {sha[:12]}… recorded, "
            f"{data.sha256[:12]}… now), so the run's held-out data cannot be rebuilt."
        )
    return data


def load_version_model(store: Store, version: VersionRecord) -> Any:
    """A version's model, loaded only after its file's sha256 verifies. Raises IntegrityError."""
    return load_model_file(store, version.artifact_sha256, version.label)


def evaluate_alone(store: Store, run_id: int, sha256: str) -> dict[str, Any]:
    """Held-out scores and the per-group table of a registered model (kept for its model card)."""
    with store.session_scope() as session:
        run = session.get(Run, run_id)
        dataset_id, seed = run.dataset_version_id, run.seed or 0
    try:
        data = rebuild_dataset(store, dataset_id)
        return assess(load_model_file(store, sha256, f"run {run_id}"), None, data, seed).to_json()
    except TrackingError as err:
        return {"error": str(err)}


# --- writes ---


def register_version(
    store: Store,
    run_id: int,
    model: str,
    description: str = "",
    actor: UserRecord | None = None,
    artifact: str = "model",
) -> VersionRecord:
    """Register a run's model artifact as the next version of `model` (created on first use).

    Raises:
        NotFoundError: no such run.
        ValidationError: bad name, the run did not complete or has no model artifact.
        IntegrityError: the model file no longer matches its sha256.
        PermissionDenied: the actor may not register versions.
    """
    require(store, actor, Action.version_register)
    name = (model or "").strip()
    if not name or len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise ValidationError(f"A registered model needs a name of 1 to {MAX_NAME} printable characters.")
    description = checked_text(description, "description")
    found, problem = _registrable(store, run_id, artifact)
    if problem or found is None:
        raise ValidationError(problem)
    read_verified(store, found.sha256)
    evaluation = evaluate_alone(store, run_id, found.sha256)
    try:
        version_id = _insert_version(store, actor, name, run_id, found.sha256, description, evaluation)
    except sqlalchemy_exc.IntegrityError:
        # Another registration created the model (or took the number) first on PostgreSQL: go again.
        version_id = _insert_version(store, actor, name, run_id, found.sha256, description, evaluation)
    return get_version(store, version_id)


def register_blockers(store: Store, actor: UserRecord | None, run_id: int, artifact: str = "model") -> list[str]:
    """Why `actor` cannot register this run's model now (empty: they can), the sentences `register_version`
    raises.

    Raises:
        NotFoundError: no such run.
    """
    _found, problem = _registrable(store, run_id, artifact)
    return [reason for reason in (why_not(actor, Action.version_register), problem) if reason]


def _registrable(store: Store, run_id: int, artifact: str) -> tuple[ArtifactRecord | None, str | None]:
    """The run's model artifact, or the sentence saying why there is none to register."""
    with store.session_scope() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise NotFoundError(f"There is no run {run_id}.")
        status, trashed = run.status, run.trash_id is not None
    if trashed:
        return None, f"Run {run_id} is in the trash; restore it before registering its model."
    if status != RunStatus.complete:
        return None, f"Run {run_id} is {status}; only a complete run's model can be registered."
    found = find_artifact(store, run_id, artifact)
    if found is None or found.kind != "model":
        return None, f"Run {run_id} saved no model artifact named {artifact!r}, so there is nothing to register."
    return found, None


def _insert_version(
    store: Store, actor: UserRecord | None, name: str, run_id: int, sha256: str, description: str, evaluation: Any
) -> int:
    with store.session_scope(write=True) as session:
        who = authorize(session, actor, Action.version_register)
        row = session.execute(
            select(RegisteredModel).where(RegisteredModel.name == name).with_for_update()
        ).scalar_one_or_none()
        if row is None:
            model_id = session.execute(
                insert(RegisteredModel)
                .values(name=name, description="", policy=None, created_by=who, created_at=utcnow())
                .returning(RegisteredModel.id)
            ).scalar_one()
            record(session, who, "model.create", "registered_model", name, None, {"name": name})
        else:
            model_id = row.id
        number = (
            session.execute(select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model_id)).scalar()
            or 0
        ) + 1
        now = utcnow()
        version_id = session.execute(
            insert(ModelVersion)
            .values(model_id=model_id, version=number, run_id=run_id, artifact_sha256=sha256, stage=Stage.none,
                    description=description, intended_use="", limitations="", evaluation=evaluation,
                    created_by=who, created_at=now, stage_changed_at=now)
            .returning(ModelVersion.id)
        ).scalar_one()  # fmt: skip
        record(session, who, "version.register", "model_version", version_id, None,
               {"model": name, "version": number, "run": run_id, "sha256": sha256})  # fmt: skip
        bump_change_counter(session)
    return int(version_id)


def set_stage(store: Store, version_id: int, stage: str, actor: UserRecord | None = None) -> VersionRecord:
    """Move a version to staging, archive it, or back to none. Production is reached only through an
    approved promotion request; taking the production version out of production is an admin's call.

    Raises:
        ValidationError: an unknown stage, or production asked for directly.
        PermissionDenied: the actor's role does not allow it.
    """
    try:
        wanted = Stage(stage)
    except ValueError:
        raise ValidationError(f"Unknown stage {stage!r}; the stages are none, staging, production, archived.") from None
    if wanted == Stage.production:
        raise ValidationError("Production is reached only through an approved promotion request.")
    with store.session_scope(write=True) as session:
        who = authorize(session, actor, Action.version_stage)
        row = session.get(ModelVersion, version_id, with_for_update=True)
        if row is None:
            raise NotFoundError(f"There is no model version {version_id}.")
        before = str(row.stage)
        if row.stage == Stage.production and why_not(actor, Action.promotion_override):
            raise PermissionDenied(ONLY_ADMIN_TAKES_DOWN)  # `actor`'s role was just re-read by `authorize`
        if before == wanted.value:
            return get_version(store, version_id)
        session.execute(
            update(ModelVersion).where(ModelVersion.id == version_id).values(stage=wanted, stage_changed_at=utcnow())
        )
        record(session, who, "version.stage", "model_version", version_id, {"stage": before}, {"stage": wanted.value})
        bump_change_counter(session)
    return get_version(store, version_id)


def stage_blockers(actor: UserRecord | None, version: VersionRecord) -> list[str]:
    """Why `actor` cannot move this version to staging or archive it now (empty: they can)."""
    role = why_not(actor, Action.version_stage)
    if role:
        return [role]
    if version.stage == Stage.production and why_not(actor, Action.promotion_override):
        return [ONLY_ADMIN_TAKES_DOWN]
    return []


def update_version_text(
    store: Store,
    version_id: int,
    *,
    description: str | None = None,
    intended_use: str | None = None,
    limitations: str | None = None,
    actor: UserRecord | None = None,
) -> VersionRecord:
    """Edit a version's description and its model card's intended use and limitations."""
    changes = {
        key: checked_text(value, key.replace("_", " "))
        for key, value in (("description", description), ("intended_use", intended_use), ("limitations", limitations))
        if value is not None
    }
    with store.session_scope(write=True) as session:
        who = authorize(session, actor, Action.model_edit)
        row = session.get(ModelVersion, version_id)
        if row is None:
            raise NotFoundError(f"There is no model version {version_id}.")
        before = {key: getattr(row, key) for key in changes}
        if changes and before != changes:
            session.execute(update(ModelVersion).where(ModelVersion.id == version_id).values(**changes))
            record(session, who, "version.card", "model_version", version_id, before, changes)
            bump_change_counter(session)
    return get_version(store, version_id)


def model_task_type(store: Store, model: str) -> tuple[str, bool]:
    """The task type of a registered model's newest version's dataset, and whether it has a sensitive column."""
    with store.session_scope() as session:
        schema = session.execute(
            select(DatasetVersion.schema_)
            .join(Run, Run.dataset_version_id == DatasetVersion.id)
            .join(ModelVersion, ModelVersion.run_id == Run.id)
            .join(RegisteredModel, RegisteredModel.id == ModelVersion.model_id)
            .where(RegisteredModel.name == model)
            .order_by(ModelVersion.version.desc())
            .limit(1)
        ).scalar()
    schema = schema or {}
    return schema.get("task_type", "classification"), bool(schema.get("sensitive"))


def effective_policy(store: Store, model: str) -> dict[str, Any]:
    """The registered model's policy, or the default policy of its task when none was set."""
    stored = get_model(store, model).policy
    task_type, sensitive = model_task_type(store, model)
    return validate_policy(stored, task_type) if stored is not None else default_policy(task_type, sensitive)


def set_policy(store: Store, model: str, policy: dict[str, Any] | None, actor: UserRecord | None = None) -> ModelRecord:
    """Replace a registered model's promotion policy (None: back to the default). Admins only.

    Raises:
        ValidationError: the policy is malformed (one sentence naming the problem).
        PermissionDenied: the actor is not an admin.
    """
    task_type, _ = model_task_type(store, model)
    normalized = validate_policy(policy, task_type) if policy is not None else None
    with store.session_scope(write=True) as session:
        who = authorize(session, actor, Action.policy_edit)
        row = session.execute(select(RegisteredModel).where(RegisteredModel.name == model)).scalar_one_or_none()
        if row is None:
            raise NotFoundError(f"There is no registered model named {model!r}.")
        before = row.policy
        session.execute(update(RegisteredModel).where(RegisteredModel.id == row.id).values(policy=normalized))
        record(session, who, "policy.edit", "registered_model", model, before, normalized)
        bump_change_counter(session)
    return get_model(store, model)


def update_model_description(
    store: Store, model: str, description: str, actor: UserRecord | None = None
) -> ModelRecord:
    """Edit a registered model's description."""
    description = checked_text(description, "description")
    with store.session_scope(write=True) as session:
        who = authorize(session, actor, Action.model_edit)
        row = session.execute(select(RegisteredModel).where(RegisteredModel.name == model)).scalar_one_or_none()
        if row is None:
            raise NotFoundError(f"There is no registered model named {model!r}.")
        if row.description != description:
            session.execute(update(RegisteredModel).where(RegisteredModel.id == row.id).values(description=description))
            record(session, who, "model.edit", "registered_model", model, {"description": row.description},
                   {"description": description})  # fmt: skip
            bump_change_counter(session)
    return get_model(store, model)
