"""optuna_journal: Optuna's journal of the sweeps of a SQLite store, kept in the store itself

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "optuna_journal",
        sa.Column("journal", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("log", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("journal", "seq"),
    )


def downgrade() -> None:
    op.drop_table("optuna_journal")
