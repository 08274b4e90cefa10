"""Stores at an older schema, to test that upgrades keep what was there."""

from __future__ import annotations

from pathlib import Path

from tracking.store._db import Store


def legacy_run(store: Store, experiment: str, name: str, params: dict, metrics: dict) -> int:
    """A finished run written into an old schema with the run API's building blocks; its id.

    `start_run` itself first asks the store whether it has accounts (the users table, from 0005 on), and
    `open_store` migrates a store before anything logs to it, so an old schema never meets `start_run`.
    """
    from sqlalchemy import text

    from tracking.runs._liveness import process_worker_id
    from tracking.runs._runs import get_or_create_experiment, run_row
    from tracking.store._tables import Run, RunStatus, utcnow

    values = run_row(experiment_id=get_or_create_experiment(store, experiment), worker_id=process_worker_id(store),
                     params=params, name=name)  # fmt: skip
    with store.connect(write=True) as conn:
        # the row alone: `insert_run` also writes tables of later schemas (run_values, run_words)
        run_id = conn.execute(Run.__table__.insert().values(values).returning(Run.id)).scalar_one()
        for key, value in metrics.items():  # a plain insert: the old schema's points have no (run, key, step) key
            conn.execute(text("INSERT INTO metric_points (run_id, key, step, value, timestamp) VALUES (:r, :k, 0, :v, 0)"),
                         {"r": run_id, "k": key, "v": value})  # fmt: skip
        conn.execute(
            Run.__table__.update()
            .where(Run.id == run_id)
            .values(metrics=metrics, status=RunStatus.complete, finished_at=utcnow())
        )
    return run_id


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
