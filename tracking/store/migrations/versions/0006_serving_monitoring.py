"""inference log and per-minute serving counts, monitoring reviews, reproductions

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")
STR = sqlmodel.sql.sqltypes.AutoString
WHEN = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    # New tables only (plain CREATE TABLE), as in 0003.
    op.create_table(
        "inference_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", STR(), nullable=False),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("registered_models.id"), nullable=False),
        sa.Column("version_id", sa.Integer(), sa.ForeignKey("model_versions.id"), nullable=False),
        sa.Column("received_at", WHEN(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("inputs", JSON, nullable=False),
        sa.Column("outputs", JSON, nullable=False),
        sa.Column("labels", JSON, nullable=True),
        sa.Column("labelled_at", WHEN(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id", name="uq_inference_log_request_id"),
    )
    op.create_index("ix_inference_log_model_received", "inference_log", ["model_id", "received_at"])
    op.create_index("ix_inference_log_version_id", "inference_log", ["version_id"])
    op.create_table(
        "serving_minutes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("registered_models.id"), nullable=False),
        sa.Column("version_id", sa.Integer(), sa.ForeignKey("model_versions.id"), nullable=False),
        sa.Column("minute", WHEN(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("latency_sum_ms", sa.Float(), nullable=False),
        sa.Column("latency_max_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("version_id", "minute", name="uq_serving_minutes_version_minute"),
    )
    op.create_index("ix_serving_minutes_model_id", "serving_minutes", ["model_id"])
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), sa.ForeignKey("model_versions.id"), nullable=False),
        sa.Column("opened_by", STR(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("findings", JSON, nullable=False),
        sa.Column("status", STR(), nullable=False),
        sa.Column("created_at", WHEN(), nullable=False),
        sa.Column("closed_by", STR(), nullable=True),
        sa.Column("closed_at", WHEN(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_reviews_version_id", "reviews", ["version_id"])
    op.create_table(
        "reproductions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("new_run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=True),
        sa.Column("kind", STR(), nullable=False),
        sa.Column("outcome", STR(), nullable=False),
        sa.Column("tolerance", sa.Float(), nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.Column("created_by", STR(), nullable=False),
        sa.Column("created_at", WHEN(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_reproductions_run_id", "reproductions", ["run_id"])


def downgrade() -> None:
    for table in ("reproductions", "reviews", "serving_minutes", "inference_log"):
        op.drop_table(table)
