"""SQLModel tables of the tracking store (schema changes go through `migrations/`).

No logic lives here. Rows never leave the store: reads turn them into the frozen records of
`_records.py`. Timestamps are aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    """Now, in UTC (timestamp columns store aware UTC datetimes)."""
    return datetime.now(UTC)


class RunStatus(StrEnum):
    running = "running"
    complete = "complete"
    pruned = "pruned"
    failed = "failed"
    killed = "killed"


FINISHED_STATUSES = (
    RunStatus.complete,
    RunStatus.pruned,
    RunStatus.failed,
    RunStatus.killed,
)


class SweepStatus(StrEnum):
    pending = "pending"
    running = "running"
    complete = "complete"
    cancelled = "cancelled"


class StoreState(SQLModel, table=True):
    """Change counters: every write that changes what views show adds one to the row of its writer's slot
    (`id`; one slot per PostgreSQL connection, slot 1 on SQLite), so concurrent writers never wait on one
    row. Their sum is the cache key of views (`change_marker`)."""

    __tablename__ = "store_state"
    id: int | None = Field(default=None, primary_key=True)
    change_counter: int = 0


class Experiment(SQLModel, table=True):
    __tablename__ = "experiments"
    __table_args__ = (UniqueConstraint("name", name="uq_experiments_name"),)
    id: int | None = Field(default=None, primary_key=True)
    name: str
    description: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class DatasetVersion(SQLModel, table=True):
    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("name", "sha256", name="uq_dataset_versions_name_sha256"),)
    id: int | None = Field(default=None, primary_key=True)
    name: str
    sha256: str = Field(index=True)
    source: str  # "builtin" or "csv"
    path: str | None = None
    n_rows: int
    n_columns: int
    schema_: dict[str, Any] = Field(sa_column=Column("schema", JSONType, nullable=False))
    stats: dict[str, Any] = Field(sa_column=Column(JSONType, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Sweep(SQLModel, table=True):
    __tablename__ = "sweeps"
    id: int | None = Field(default=None, primary_key=True)
    name: str
    experiment_id: int = Field(foreign_key="experiments.id", index=True)
    dataset_version_id: int | None = Field(default=None, foreign_key="dataset_versions.id")
    config: dict[str, Any] = Field(sa_column=Column(JSONType, nullable=False))
    study_name: str
    optuna_storage: str
    n_trials: int
    status: SweepStatus = SweepStatus.pending
    cancel_requested: bool = False
    stop_now: bool = False  # with cancel_requested: interrupt running trials instead of letting them finish
    owner: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    trash_id: int | None = Field(default=None, index=True)  # the trash entry it went with (schema 0013)
    # where its workers last ran: {"executor": "local"} or {"executor": "dask", "scheduler", "server_url"} (0018)
    workers_at: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))


class Worker(SQLModel, table=True):
    """A process that logs runs; its heartbeat tells the store whether its running runs are alive."""

    __tablename__ = "workers"
    id: int | None = Field(default=None, primary_key=True)
    sweep_id: int | None = Field(default=None, foreign_key="sweeps.id", index=True)
    host: str
    pid: int
    started_at: datetime = Field(default_factory=utcnow)
    last_seen: datetime = Field(default_factory=utcnow)
    stopped_at: datetime | None = None


class Run(SQLModel, table=True):
    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("sweep_id", "trial_number", name="uq_runs_sweep_trial"),
        Index("ix_runs_started_at", "started_at"),
        # No index leads with trash_id: SQLite would take it for "trash_id IS NULL" (nearly every run) and then sort
        # every run for the newest page. Counting the live runs reads this narrow one; the partial index finds the
        # few runs of one trash entry.
        Index("ix_runs_started_at_trash_id", "started_at", "trash_id"),
        Index(
            "ix_runs_trashed",
            "trash_id",
            sqlite_where=text("trash_id IS NOT NULL"),
            postgresql_where=text("trash_id IS NOT NULL"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    name: str
    experiment_id: int = Field(foreign_key="experiments.id", index=True)
    sweep_id: int | None = Field(default=None, foreign_key="sweeps.id", index=True)
    trial_number: int | None = None
    worker_id: int | None = Field(default=None, foreign_key="workers.id")
    status: RunStatus = Field(default=RunStatus.running, index=True)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    environment: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    dataset_version_id: int | None = Field(default=None, foreign_key="dataset_versions.id", index=True)
    code_version: str | None = None
    seed: int | None = None
    host: str = ""
    owner: str = ""
    error: str | None = Field(default=None, sa_column=Column(Text))
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    trash_id: int | None = None  # the trash entry it went with (schema 0013)


class MetricPoint(SQLModel, table=True):
    """One value of a run's metric at a step. The key (run, key, step) is the only index: logging a step
    again replaces its value (last write wins). On SQLite the rows live in that key's B-tree (WITHOUT ROWID).

    `run_id` has no foreign key (schema 0017): every write of points checks its run once, in its own
    transaction (`check_open`, which on PostgreSQL holds the run's row until commit), and a purge locks the
    runs before it deletes their points; a foreign key checked the same thing again for every point."""

    __tablename__ = "metric_points"
    __table_args__ = ({"sqlite_with_rowid": False},)
    run_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    key: str = Field(primary_key=True)
    step: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    value: float | None  # None for a non-finite value (NaN, inf)
    timestamp: float


class Artifact(SQLModel, table=True):
    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("run_id", "name", name="uq_artifacts_run_name"),)
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True)
    name: str
    kind: str  # "model" or "file"
    sha256: str
    size: int
    created_at: datetime = Field(default_factory=utcnow)


class RunTag(SQLModel, table=True):
    __tablename__ = "run_tags"
    __table_args__ = (
        UniqueConstraint("run_id", "key", name="uq_run_tags_run_key"),
        Index("ix_run_tags_key_value", "key", "value"),
    )
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id")
    key: str
    value: str


class Note(SQLModel, table=True):
    __tablename__ = "notes"
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True)
    author: str = ""
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Report(SQLModel, table=True):
    """A saved comparison: a title, markdown notes and the view's state (filter, runs, columns, charts)."""

    __tablename__ = "reports"
    id: int | None = Field(default=None, primary_key=True)
    title: str
    notes: str = Field(default="", sa_column=Column(Text, nullable=False))
    state: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    owner: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class RunKey(SQLModel, table=True):
    """A params or metrics key seen on some run: the catalogue behind the runs table's column chooser."""

    __tablename__ = "run_keys"
    __table_args__ = (UniqueConstraint("kind", "key", name="uq_run_keys_kind_key"),)
    id: int | None = Field(default=None, primary_key=True)
    kind: str  # "params" or "metrics"
    key: str


class RunKeyScan(SQLModel, table=True):
    """One row: how far `run_keys` has read the runs (highest run id, and the runs still running then)."""

    __tablename__ = "run_key_scans"
    id: int | None = Field(default=None, primary_key=True)
    max_run_id: int = 0
    pending: list[int] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))


class OptunaJournalEntry(SQLModel, table=True):
    """One entry of an Optuna journal kept in the store (the studies of sweeps on a SQLite store)."""

    __tablename__ = "optuna_journal"
    journal: str = Field(primary_key=True)  # the study name
    seq: int = Field(primary_key=True)  # 0, 1, 2, ... within the journal, without gaps
    log: str = Field(sa_column=Column(Text, nullable=False))


# --- accounts, audit trail, registry (schema 0005) ---


class Role(StrEnum):
    viewer = "viewer"
    data_scientist = "data_scientist"
    engineer = "engineer"
    product_owner = "product_owner"
    admin = "admin"


class User(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("name", name="uq_users_name"),
        # Names do not depend on case: `ADMIN` is `admin`, so no second account may differ only in case.
        Index("uq_users_name_lower", text("lower(name)"), unique=True),
    )
    id: int | None = Field(default=None, primary_key=True)
    name: str
    role: Role
    password_hash: str  # argon2id, never the password; "" for an account that signs in only through SSO
    disabled: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    password_changed_at: datetime = Field(default_factory=utcnow)


class SignInFailure(SQLModel, table=True):
    """Failed sign-ins by account name (known or not): the throttle that slows down password guessing."""

    __tablename__ = "sign_in_failures"
    name: str = Field(primary_key=True)
    failures: int = 0
    locked_until: datetime | None = None


class UserSession(SQLModel, table=True):
    """A signed-in browser session; only the token's sha256 is stored."""

    __tablename__ = "user_sessions"
    id: int | None = Field(default=None, primary_key=True)
    token_sha256: str = Field(sa_column_kwargs={"unique": True})
    user_id: int = Field(foreign_key="users.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    last_seen: datetime = Field(default_factory=utcnow)


class AuditEvent(SQLModel, table=True):
    """One state change, hash-chained to the one before it (`seq` has no gaps)."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_object", "object_type", "object_id"),)
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    recorded_at: str = Field(index=True)  # ISO 8601 UTC text: hashed exactly as stored
    actor: str = Field(index=True)
    action: str = Field(index=True)
    object_type: str
    object_id: str
    before: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON
    after: str = Field(sa_column=Column(Text, nullable=False))
    prev_hash: str
    hash: str
    # HMAC-SHA256 of (store id, seq, hash) with the audit key kept outside the database (schema 0008);
    # None on the events a store recorded before it had a key (its `legacy_events`).
    mac: str | None = None


class AuditChain(SQLModel, table=True):
    """One row: the last sequence number and hash of the audit trail (its head), locked by each append."""

    __tablename__ = "audit_chain"
    id: int | None = Field(default=None, primary_key=True)
    seq: int = 0
    head: str


class Stage(StrEnum):
    none = "none"
    staging = "staging"
    production = "production"
    archived = "archived"


class RequestStatus(StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"
    withdrawn = "withdrawn"
    stale = "stale"


class RegisteredModel(SQLModel, table=True):
    __tablename__ = "registered_models"
    __table_args__ = (UniqueConstraint("name", name="uq_registered_models_name"),)
    id: int | None = Field(default=None, primary_key=True)
    name: str
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    policy: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))  # None: default
    created_by: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class ModelVersion(SQLModel, table=True):
    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
        # at most one production version per registered model, whatever races above it
        Index(
            "uq_model_versions_one_production",
            "model_id",
            unique=True,
            sqlite_where=text("stage = 'production'"),
            postgresql_where=text("stage = 'production'"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="registered_models.id", index=True)
    version: int
    run_id: int = Field(foreign_key="runs.id", index=True)
    artifact_sha256: str
    stage: Stage = Stage.none
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    intended_use: str = Field(default="", sa_column=Column(Text, nullable=False))
    limitations: str = Field(default="", sa_column=Column(Text, nullable=False))
    evaluation: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))
    created_by: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    stage_changed_at: datetime = Field(default_factory=utcnow)


class PromotionRequest(SQLModel, table=True):
    __tablename__ = "promotion_requests"
    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="model_versions.id", index=True)
    baseline_version_id: int | None = Field(default=None, foreign_key="model_versions.id")
    status: RequestStatus = Field(default=RequestStatus.pending, index=True)
    requested_by: str
    justification: str = Field(sa_column=Column(Text, nullable=False))
    gates: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    evaluation: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))
    policy: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    decided_by: str | None = None
    decided_at: datetime | None = None
    comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    override_justification: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


# --- serving, monitoring, reproduction (schema 0006) ---


class InferenceEvent(SQLModel, table=True):
    """One sampled prediction request of the model server: inputs, outputs, latency, and labels once known."""

    __tablename__ = "inference_log"
    __table_args__ = (
        UniqueConstraint("request_id", name="uq_inference_log_request_id"),
        Index("ix_inference_log_model_received", "model_id", "received_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    request_id: str
    model_id: int = Field(foreign_key="registered_models.id")
    version_id: int = Field(foreign_key="model_versions.id", index=True)
    received_at: datetime = Field(default_factory=utcnow)
    latency_ms: float
    n_rows: int
    inputs: list[dict[str, Any]] = Field(sa_column=Column(JSONType, nullable=False))  # one object per row
    outputs: dict[str, Any] = Field(sa_column=Column(JSONType, nullable=False))  # predictions, probabilities
    labels: list[Any] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))  # ground truth
    labelled_at: datetime | None = None


class ServingMinute(SQLModel, table=True):
    """Every request (sampled or not) counted per model version and minute: volume and latency over time."""

    __tablename__ = "serving_minutes"
    __table_args__ = (UniqueConstraint("version_id", "minute", name="uq_serving_minutes_version_minute"),)
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="registered_models.id", index=True)
    version_id: int = Field(foreign_key="model_versions.id")
    minute: datetime  # the start of the minute, UTC
    requests: int = 0
    errors: int = 0  # requests refused (422) or failed
    rows: int = 0
    latency_sum_ms: float = 0.0
    latency_max_ms: float = 0.0


class Review(SQLModel, table=True):
    """A review of a production version opened because monitoring found a breach (or by hand)."""

    __tablename__ = "reviews"
    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="model_versions.id", index=True)
    opened_by: str
    reason: str = Field(sa_column=Column(Text, nullable=False))
    findings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    status: str = "open"  # "open" or "closed"
    created_at: datetime = Field(default_factory=utcnow)
    closed_by: str | None = None
    closed_at: datetime | None = None
    comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class Reproduction(SQLModel, table=True):
    """An attempt to reproduce a run (or retrain a version): the new run and how its metrics compare."""

    __tablename__ = "reproductions"
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True)  # the run reproduced
    new_run_id: int | None = Field(default=None, foreign_key="runs.id")
    kind: str  # "reproduce" or "retrain"
    outcome: str  # reproduce: "matched" / "differs" / "failed"; retrain: "skipped" / "retrained" / "failed"
    tolerance: float | None = None
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    created_by: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class SsoIdentity(SQLModel, table=True):
    """An OpenID Connect identity (issuer, subject) linked to an account: single sign-on proves who, the account's
    role decides what."""

    __tablename__ = "sso_identities"
    __table_args__ = (UniqueConstraint("issuer", "subject", name="uq_sso_identities_issuer_subject"),)
    id: int | None = Field(default=None, primary_key=True)
    issuer: str
    subject: str
    user_id: int = Field(foreign_key="users.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    last_sign_in: datetime = Field(default_factory=utcnow)


class SsoPolicy(SQLModel, table=True):
    """One row (absent until an admin sets it): what the first sign-in of an unknown identity does."""

    __tablename__ = "sso_policy"
    id: int | None = Field(default=None, primary_key=True)
    new_accounts: str = "refuse"  # "refuse" or "viewer"
    updated_by: str = ""
    updated_at: datetime = Field(default_factory=utcnow)


# --- store identity (schema 0008) ---


class StoreIdentity(SQLModel, table=True):
    """One row: the store's random id (also kept in its anchor file, outside the database), how many audit
    events it recorded before it had an audit key, and the id of the key that signs its events."""

    __tablename__ = "store_identity"
    id: int | None = Field(default=None, primary_key=True)
    store_id: str
    created_at: datetime = Field(default_factory=utcnow)
    legacy_events: int = 0  # events 1..legacy_events carry no MAC (recorded before schema 0008)
    audit_key_id: str | None = None  # set by the first event signed; a different key is refused


# --- webhooks (schema 0009) ---


class WebhookEndpoint(SQLModel, table=True):
    """An HTTP endpoint that receives signed JSON for the events it subscribes to."""

    __tablename__ = "webhook_endpoints"
    id: int | None = Field(default=None, primary_key=True)
    url: str = Field(sa_column=Column(Text, nullable=False))
    events: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    secret: str  # the HMAC key, kept to sign every delivery; shown once at creation, never read back
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    enabled: bool = True
    created_by: str
    created_at: datetime = Field(default_factory=utcnow)


class WebhookDelivery(SQLModel, table=True):
    """One event for one endpoint: the outbox row a deliverer sends, retries and records."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)
    id: int | None = Field(default=None, primary_key=True)
    endpoint_id: int = Field(foreign_key="webhook_endpoints.id", index=True)
    event: str
    event_id: str  # shared by every endpoint's delivery of one event: receivers dedupe on it
    dedup_key: str | None = None  # an alert already sent recently is not queued again
    body: str = Field(sa_column=Column(Text, nullable=False))  # the exact JSON sent on every attempt
    status: str = "pending"  # "pending", "delivered" or "failed" (gave up)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    last_status: int | None = None  # the HTTP status of the last attempt (None: no answer)
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    delivered_at: datetime | None = None


class SignInTicket(SQLModel, table=True):
    """A one-time ticket, valid for a minute, that a browser exchanges for its session cookie; only its sha256."""

    __tablename__ = "sign_in_tickets"
    id: int | None = Field(default=None, primary_key=True)
    ticket_sha256: str = Field(sa_column_kwargs={"unique": True})
    user_id: int = Field(foreign_key="users.id", index=True)
    expires_at: datetime


class AccessToken(SQLModel, table=True):
    """A personal or sweep-scoped access token for scripts, workers and the CLI; only its sha256 is stored."""

    __tablename__ = "access_tokens"
    __table_args__ = (UniqueConstraint("token_sha256", name="uq_access_tokens_token_sha256"),)
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    name: str
    token_sha256: str
    sweep_id: int | None = Field(default=None, foreign_key="sweeps.id")  # set: it may only log that sweep's runs
    created_by: str
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class MetricBatch(SQLModel, table=True):
    """A batch of metric points a tracking-server client sent, by its id: a batch sent again is not applied twice."""

    __tablename__ = "metric_batches"
    __table_args__ = (UniqueConstraint("run_id", "batch_id", name="uq_metric_batches_run_batch"),)
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id")
    batch_id: str
    created_at: datetime = Field(default_factory=utcnow)


# --- the trash (schema 0013) ---


class TrashEntry(SQLModel, table=True):
    """A run, sweep or experiment moved to the trash. The sweeps and runs that went with it carry its id in
    `trash_id` (no foreign key: `tracking.runs._trash` sets and clears both in one transaction); an experiment
    is in the trash while its entry exists."""

    __tablename__ = "trash_entries"
    id: int | None = Field(default=None, primary_key=True)
    kind: str  # "run", "sweep" or "experiment"
    object_id: int
    name: str
    runs: int = 0  # how many runs went to the trash with it
    trashed_by: str
    trashed_at: datetime = Field(default_factory=utcnow)
