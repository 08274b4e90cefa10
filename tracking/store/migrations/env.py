"""Alembic environment: migrations run on the connection handed over by `tracking.store._db.migrate`."""

from __future__ import annotations

from alembic import context

from tracking.store._db import VERSION_TABLE
from tracking.store._tables import SQLModel

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Run migrations through tracking.open_store(), which passes the connection.")
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
