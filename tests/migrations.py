"""Stores at an older schema, to test that upgrades keep what was there."""

from __future__ import annotations

from pathlib import Path

from tracking.store._db import Store


def store_at_revision(url: str, tmp_path: Path, revision: str) -> Store:
    """A store whose schema stops at an older migration (to test upgrades); not registered or cached."""
    from alembic import command
    from alembic.config import Config

    from tracking.store._db import MIGRATIONS

    old = Store(url, tmp_path / "artifacts")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with old.connect(write=True) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    return old
