"""reports (saved comparisons) and the run-keys catalogue of the runs explorer

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def upgrade() -> None:
    # New tables only (plain CREATE TABLE): no batch copy of a table other tables refer to.
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("state", JSON, nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "run_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "key", name="uq_run_keys_kind_key"),
    )
    op.create_table(
        "run_key_scans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("max_run_id", sa.Integer(), nullable=False),
        sa.Column("pending", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # The catalogue starts empty and reads every existing run on its first refresh (tracking.explore._table).
    op.bulk_insert(
        sa.table("run_key_scans", sa.column("id"), sa.column("max_run_id"), sa.column("pending", sa.JSON())),
        [{"id": 1, "max_run_id": 0, "pending": []}],
    )


def downgrade() -> None:
    op.drop_table("run_key_scans")
    op.drop_table("run_keys")
    op.drop_table("reports")
