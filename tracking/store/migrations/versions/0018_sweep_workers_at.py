"""sweeps remember where their workers last ran (local processes, or a Dask cluster with its addresses)

Resume and Run again on a sweep's page then offer that place first, so a sweep launched on a cluster goes
back to it without its addresses typed again. NULL for sweeps started before this.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def upgrade() -> None:
    op.add_column("sweeps", sa.Column("workers_at", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sweeps") as batch:
        batch.drop_column("workers_at")
