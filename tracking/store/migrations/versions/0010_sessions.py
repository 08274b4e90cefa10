"""account names unique without regard to case; one-time sign-in tickets for the session cookie

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

STR = sqlmodel.sql.sqltypes.AutoString
WHEN = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    clashes = (
        op.get_bind()
        .execute(
            sa.text("SELECT lower(name) AS key, count(*) AS n FROM users GROUP BY lower(name) HAVING count(*) > 1")
        )
        .all()
    )
    if clashes:
        names = ", ".join(repr(row.key) for row in clashes)
        raise RuntimeError(
            f"Account names now do not depend on case, but this store has accounts that differ only in case "
            f"({names}); rename or delete all but one of each in the users table, then open the store again."
        )
    op.create_index("uq_users_name_lower", "users", [sa.text("lower(name)")], unique=True)
    # The failure counts are now kept per lower-case name; the old counts (a throttle, not a record) start over.
    op.execute("DELETE FROM sign_in_failures")
    op.create_table(
        "sign_in_tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_sha256", STR(), nullable=False, unique=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("expires_at", WHEN(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sign_in_tickets_user_id", "sign_in_tickets", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_sign_in_tickets_user_id", table_name="sign_in_tickets")
    op.drop_table("sign_in_tickets")
    op.drop_index("uq_users_name_lower", table_name="users")
