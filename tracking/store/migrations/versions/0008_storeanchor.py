"""store identity (a random id also kept outside the database) and a MAC on every audit event

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

STR = sqlmodel.sql.sqltypes.AutoString
WHEN = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    # The events already recorded carry no MAC: they are the store's legacy events, counted here so that
    # `audit verify` accepts a missing MAC on them and on no later event.
    legacy = op.get_bind().execute(sa.text("SELECT seq FROM audit_chain WHERE id = 1")).scalar() or 0
    identity = op.create_table(
        "store_identity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_id", STR(), nullable=False),
        sa.Column("created_at", WHEN(), nullable=False),
        sa.Column("legacy_events", sa.Integer(), nullable=False),
        sa.Column("audit_key_id", STR(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(
        identity,
        [{"id": 1, "store_id": uuid.uuid4().hex, "created_at": datetime.now(UTC), "legacy_events": int(legacy)}],
    )
    op.add_column("audit_events", sa.Column("mac", STR(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("mac")
    op.drop_table("store_identity")
