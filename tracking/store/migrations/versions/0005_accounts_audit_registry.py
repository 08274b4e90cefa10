"""accounts and sessions, the hash-chained audit trail, the model registry and promotion requests

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")
STR = sqlmodel.sql.sqltypes.AutoString
WHEN = sqlmodel.sql.sqltypes.UTCDateTime
ROLE = sa.Enum("viewer", "data_scientist", "engineer", "product_owner", "admin", name="role")
STAGE = sa.Enum("none", "staging", "production", "archived", name="stage")
REQUEST = sa.Enum("pending", "approved", "rejected", "withdrawn", "stale", name="requeststatus")
GENESIS = "0" * 64


def upgrade() -> None:
    # New tables only (plain CREATE TABLE), as in 0003.
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", STR(), nullable=False),
        sa.Column("role", ROLE, nullable=False),
        sa.Column("password_hash", STR(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", WHEN(), nullable=False),
        sa.Column("password_changed_at", WHEN(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name="uq_users_name"),
    )
    op.create_table(
        "sign_in_failures",
        sa.Column("name", STR(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", WHEN(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", STR(), nullable=False, unique=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_at", WHEN(), nullable=False),
        sa.Column("last_seen", WHEN(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_user_sessions_user_id", "user_sessions", ["user_id"])
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("recorded_at", STR(), nullable=False),
        sa.Column("actor", STR(), nullable=False),
        sa.Column("action", STR(), nullable=False),
        sa.Column("object_type", STR(), nullable=False),
        sa.Column("object_id", STR(), nullable=False),
        sa.Column("before", sa.Text(), nullable=False),
        sa.Column("after", sa.Text(), nullable=False),
        sa.Column("prev_hash", STR(), nullable=False),
        sa.Column("hash", STR(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    for column in ("recorded_at", "actor", "action"):
        op.create_index(f"ix_audit_events_{column}", "audit_events", [column])
    op.create_index("ix_audit_events_object", "audit_events", ["object_type", "object_id"])
    chain = op.create_table(
        "audit_chain",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("head", STR(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(chain, [{"id": 1, "seq": 0, "head": GENESIS}])
    op.create_table(
        "registered_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", STR(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("policy", JSON, nullable=True),
        sa.Column("created_by", STR(), nullable=False),
        sa.Column("created_at", WHEN(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name="uq_registered_models_name"),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("registered_models.id"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("artifact_sha256", STR(), nullable=False),
        sa.Column("stage", STAGE, nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("intended_use", sa.Text(), nullable=False),
        sa.Column("limitations", sa.Text(), nullable=False),
        sa.Column("evaluation", JSON, nullable=True),
        sa.Column("created_by", STR(), nullable=False),
        sa.Column("created_at", WHEN(), nullable=False),
        sa.Column("stage_changed_at", WHEN(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
    )
    op.create_index("ix_model_versions_model_id", "model_versions", ["model_id"])
    op.create_index("ix_model_versions_run_id", "model_versions", ["run_id"])
    op.create_index(
        "uq_model_versions_one_production",
        "model_versions",
        ["model_id"],
        unique=True,
        sqlite_where=sa.text("stage = 'production'"),
        postgresql_where=sa.text("stage = 'production'"),
    )
    op.create_table(
        "promotion_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), sa.ForeignKey("model_versions.id"), nullable=False),
        sa.Column("baseline_version_id", sa.Integer(), sa.ForeignKey("model_versions.id"), nullable=True),
        sa.Column("status", REQUEST, nullable=False),
        sa.Column("requested_by", STR(), nullable=False),
        sa.Column("justification", sa.Text(), nullable=False),
        sa.Column("gates", JSON, nullable=False),
        sa.Column("evaluation", JSON, nullable=True),
        sa.Column("policy", JSON, nullable=False),
        sa.Column("created_at", WHEN(), nullable=False),
        sa.Column("decided_by", STR(), nullable=True),
        sa.Column("decided_at", WHEN(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("override_justification", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_promotion_requests_version_id", "promotion_requests", ["version_id"])
    op.create_index("ix_promotion_requests_status", "promotion_requests", ["status"])


def downgrade() -> None:
    for table in (
        "promotion_requests", "model_versions", "registered_models", "audit_chain", "audit_events",
        "user_sessions", "sign_in_failures", "users",
    ):  # fmt: skip
        op.drop_table(table)
    for enum in (REQUEST, STAGE, ROLE):
        enum.drop(op.get_bind(), checkfirst=True)
