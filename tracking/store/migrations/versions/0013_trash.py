"""the trash: runs, sweeps and experiments moved to it (and restored from it) before they are purged

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

STR = sqlmodel.sql.sqltypes.AutoString
WHEN = sqlmodel.sql.sqltypes.UTCDateTime
TRASHABLE = ("sweeps", "runs")  # an experiment is in the trash while its entry exists


def upgrade() -> None:
    op.create_table(
        "trash_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", STR(), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("name", STR(), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("trashed_by", STR(), nullable=False),
        sa.Column("trashed_at", WHEN(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # Plain ADD COLUMN (a nullable column without a foreign key): no batch copy of tables others point at.
    for table in TRASHABLE:
        op.add_column(table, sa.Column("trash_id", sa.Integer(), nullable=True))
    op.create_index("ix_sweeps_trash_id", "sweeps", ["trash_id"])
    # No index leads with runs.trash_id (see the table): SQLite would sort every run for the newest page.
    op.create_index("ix_runs_started_at_trash_id", "runs", ["started_at", "trash_id"])
    op.create_index(
        "ix_runs_trashed",
        "runs",
        ["trash_id"],
        sqlite_where=sa.text("trash_id IS NOT NULL"),
        postgresql_where=sa.text("trash_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_runs_trashed", table_name="runs")
    op.drop_index("ix_runs_started_at_trash_id", table_name="runs")
    op.drop_index("ix_sweeps_trash_id", table_name="sweeps")
    for table in TRASHABLE:
        op.drop_column(table, "trash_id")
    op.drop_table("trash_entries")
