"""metric points: the run is checked once per batch, not by a foreign key row by row

PostgreSQL checks a foreign key with a query per inserted row (2.6 µs a point here, a third of logging's
time); every write of points already reads its run in the same transaction, and on PostgreSQL holds it
(FOR KEY SHARE) until commit, so the constraint only repeated that check. SQLite keeps the table's rows as
they are: removing a FOREIGN KEY clause does not change its file format, so the table's stored definition is
edited in place (SQLite's documented procedure, https://sqlite.org/lang_altertable.html#otheralter) rather
than copying a hundred million points.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-29
"""

from __future__ import annotations

import re

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_CONSTRAINT = "metric_points_run_id_fkey"
_CLAUSE = "FOREIGN KEY(run_id) REFERENCES runs (id)"


def _edit_sqlite_definition(edit) -> None:  # type: ignore[no-untyped-def]
    """Rewrite metric_points' stored CREATE TABLE with `edit` (old text -> new text), inside this transaction."""
    conn = op.get_bind()
    version = conn.exec_driver_sql("PRAGMA schema_version").scalar_one()
    old = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'metric_points'"
    ).scalar_one()
    new = edit(old)
    if new == old:
        raise RuntimeError(f"metric_points' definition is not the expected one: {old}")
    conn.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        conn.exec_driver_sql("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'metric_points'", (new,))
        conn.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")  # other connections re-read the schema
    finally:
        conn.exec_driver_sql("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(_CONSTRAINT, "metric_points", type_="foreignkey")
    else:
        _edit_sqlite_definition(lambda sql: re.sub(r",\s*FOREIGN KEY\s*\(run_id\)\s*REFERENCES runs \(id\)", "", sql))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_foreign_key(_CONSTRAINT, "metric_points", "runs", ["run_id"], ["id"])
    else:
        _edit_sqlite_definition(
            lambda sql: re.sub(r'(PRIMARY KEY \(run_id, "key", step\))', rf"\1, \n\t{_CLAUSE}", sql, count=1)
        )
