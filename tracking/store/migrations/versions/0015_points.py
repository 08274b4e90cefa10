"""metric points keyed (run, key, step): one index, and logging a step again replaces its value

The table is rebuilt from the old one (a surrogate id plus an index on run, key, step), keeping for each
(run, key, step) logged more than once the last write, the one with the highest id. On SQLite the new table
is WITHOUT ROWID: its rows live in the primary key's B-tree, so a point is written once, not twice.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

STR = sqlmodel.sql.sqltypes.AutoString
_COLUMNS = "run_id, key, step, value, timestamp"


def _rename(old: str, new: str, constraints: dict[str, str]) -> None:
    op.rename_table(old, new)
    if op.get_bind().dialect.name == "postgresql":  # keep the names PostgreSQL gives a table created as `new`
        for before, after in constraints.items():
            op.execute(f"ALTER TABLE {new} RENAME CONSTRAINT {before} TO {after}")


def upgrade() -> None:
    op.create_table(
        "metric_points_0012",
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=False, autoincrement=False),
        sa.Column("key", STR(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "key", "step"),
        sqlite_with_rowid=False,
    )
    op.execute(
        f"INSERT INTO metric_points_0012 ({_COLUMNS}) SELECT {_COLUMNS} FROM metric_points"
        " WHERE id IN (SELECT max(id) FROM metric_points GROUP BY run_id, key, step)"
    )
    op.drop_table("metric_points")  # its index goes with it
    _rename(
        "metric_points_0012",
        "metric_points",
        {
            "metric_points_0012_pkey": "metric_points_pkey",
            "metric_points_0012_run_id_fkey": "metric_points_run_id_fkey",
        },
    )


def downgrade() -> None:
    op.create_table(
        "metric_points_0011",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("key", STR(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute(
        f"INSERT INTO metric_points_0011 ({_COLUMNS}) SELECT {_COLUMNS} FROM metric_points ORDER BY run_id, key, step"
    )
    op.drop_table("metric_points")
    _rename(
        "metric_points_0011",
        "metric_points",
        {
            "metric_points_0011_pkey": "metric_points_pkey",
            "metric_points_0011_run_id_fkey": "metric_points_run_id_fkey",
        },
    )
    op.create_index("ix_metric_points_run_key_step", "metric_points", ["run_id", "key", "step"])
