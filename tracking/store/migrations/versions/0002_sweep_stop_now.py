"""sweeps.stop_now: cancel a sweep at once, interrupting the trials under way

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (no batch copy): SQLite can add a NOT NULL column with a constant default, and
    # a batch copy would have to drop `sweeps`, which the runs' foreign keys forbid.
    op.add_column("sweeps", sa.Column("stop_now", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    op.drop_column("sweeps", "stop_now")
