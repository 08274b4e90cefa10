"""single sign-on: OpenID Connect identities linked to accounts, and the policy for unknown identities

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

STR = sqlmodel.sql.sqltypes.AutoString
WHEN = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    # New tables only (plain CREATE TABLE), as in 0003 and 0006.
    op.create_table(
        "sso_identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issuer", STR(), nullable=False),
        sa.Column("subject", STR(), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_at", WHEN(), nullable=False),
        sa.Column("last_sign_in", WHEN(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("issuer", "subject", name="uq_sso_identities_issuer_subject"),
    )
    op.create_index("ix_sso_identities_user_id", "sso_identities", ["user_id"])
    op.create_table(
        "sso_policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("new_accounts", STR(), nullable=False),
        sa.Column("updated_by", STR(), nullable=False),
        sa.Column("updated_at", WHEN(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    for table in ("sso_policy", "sso_identities"):
        op.drop_table(table)
