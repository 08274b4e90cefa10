"""The store: migrations, round trips on every backend, layering."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import MetaData, inspect, select

import tracking
from tests.migrations import legacy_run, store_at_revision
from tracking.governance._access import create_user
from tracking.runs._queries import get_run, list_experiments, list_runs, metric_history
from tracking.runs._runs import start_run
from tracking.store._db import VERSION_TABLE, change_marker, migrate, open_store


def test_import_tracking_does_not_import_streamlit_or_heavy_libraries():
    code = "import sys, tracking; print(sorted(m for m in ('streamlit', 'sklearn', 'optuna', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_store_creates_all_tables_with_own_version_table(store):
    names = set(inspect(store.engine).get_table_names())
    assert {"experiments", "sweeps", "runs", "metric_points", "artifacts", "dataset_versions", "run_tags", "notes",
            "workers", VERSION_TABLE} <= names  # fmt: skip
    assert "alembic_version" not in names  # Optuna's own table name stays free


def _schema(store) -> dict[str, dict[str, list[str]]]:
    """Every table's columns, keys, indexes and constraints as the database reports them (and PostgreSQL's enums)."""
    found = inspect(store.engine)  # a new inspector: nothing cached from before

    def plain(items: list) -> list[str]:  # SQL expressions (a partial index's WHERE) compare as their text
        return sorted(json.dumps(item, sort_keys=True, default=str) for item in items)

    schema = {
        table: {
            "columns": plain(found.get_columns(table)),
            "primary key": plain([found.get_pk_constraint(table)]),
            "foreign keys": plain(found.get_foreign_keys(table)),
            "indexes": plain(found.get_indexes(table)),
            "unique constraints": plain(found.get_unique_constraints(table)),
            "check constraints": plain(found.get_check_constraints(table)),
        }
        for table in found.get_table_names()
    }
    if store.dialect == "postgresql":
        schema["(enums)"] = {"enums": plain(found.get_enums())}
    return schema


def _rows(store) -> dict[str, list[str]]:
    """The contents of every table, the migrations' version table included."""
    tables = MetaData()
    tables.reflect(store.engine)
    with store.connect() as conn:
        return {
            name: sorted(repr(tuple(row)) for row in conn.execute(select(table)))
            for name, table in tables.tables.items()
        }


def test_store_migrate_twice_is_a_no_op(backend_url, tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKING_HEARTBEAT_SECONDS", "3600")  # no heartbeat of this process changes a row meanwhile
    store = open_store(backend_url, home=tmp_path / "home")  # the first migration, from an empty database
    with start_run("exp", params={"C": 0.5}, store=store, name="r1") as run:  # rows a second migration could touch
        run.log_metrics({"loss": 0.5}, step=0)
        run.set_tags({"team": "fraud"})
    create_user(store, None, "admin", "admin", "s3cret-enough")
    schema, rows = _schema(store), _rows(store)
    assert {"runs", "metric_points", "users", VERSION_TABLE} <= set(schema)
    assert rows[VERSION_TABLE] and rows["runs"] and rows["users"]  # the comparison below compares something
    migrate(store)
    assert _schema(store) == schema
    assert _rows(store) == rows


def test_store_round_trip_returns_plain_records(store):
    with start_run("exp", params={"C": 0.5, "kernel": "rbf", "flag": True}, store=store, name="r1", seed=7) as run:
        run.log_metrics({"loss": 0.5, "acc": 0.8}, step=0)
        run.log_metrics({"loss": 0.25, "acc": 0.9}, step=1)
        run.set_tags({"team": "fraud"})
    record = get_run(store, run.id)
    assert record.name == "r1" and record.status == "complete" and record.experiment == "exp"
    assert record.params == {"C": 0.5, "kernel": "rbf", "flag": True}
    assert record.metrics == {"loss": 0.25, "acc": 0.9}
    assert record.tags == {"team": "fraud"} and record.seed == 7
    assert record.finished_at is not None and record.finished_at >= record.started_at
    assert record.started_at.tzinfo is not None
    assert metric_history(store, run.id)["loss"] == [(0, 0.5), (1, 0.25)]
    with pytest.raises(AttributeError):
        record.name = "changed"  # frozen


def test_store_change_marker_grows_on_writes(store):
    before = change_marker(store)
    with start_run("exp", store=store) as run:
        run.log_metric("x", 1.0)
    assert change_marker(store) > before


def test_store_lists_experiments_with_counts(store):
    for name in ("a", "a", "b"):
        with start_run(name, store=store):
            pass
    counts = {e.name: e.n_runs for e in list_experiments(store)}
    assert counts == {"a": 2, "b": 1}
    assert [r.experiment for r in list_runs(store, experiment="b")] == ["b"]


def test_store_bad_url_is_a_clear_error():
    with pytest.raises(tracking.StoreError, match="not a valid SQLAlchemy URL"):
        tracking.open_store("not a url at all")


def test_store_unreachable_server_is_a_clear_error(tmp_path):
    with pytest.raises(tracking.StoreError, match="Could not open the store"):
        tracking.open_store("postgresql+psycopg://nobody@127.0.0.1:1/none", home=tmp_path)


def test_store_upgrades_an_old_schema_and_keeps_its_rows(backend_url, tmp_path):
    old = store_at_revision(backend_url, tmp_path, "0001")
    run_id = legacy_run(old, "legacy", "kept", {}, {"m": 1.0})
    migrate(old)  # to head
    assert get_run(old, run_id).name == "kept"
    assert "stop_now" in {c["name"] for c in inspect(old.engine).get_columns("sweeps")}
    old.dispose()


def test_store_nested_transaction_joins_the_open_one(store):
    from sqlalchemy import func, select

    from tracking.store._tables import Experiment

    class Abort(Exception):
        pass

    with pytest.raises(Abort), store.connect(write=True) as outer:
        outer.execute(Experiment.__table__.insert().values(name="outer", description=""))
        with store.connect(write=True) as inner:  # would wait for the outer's write lock if it did not join
            assert inner is outer
            inner.execute(Experiment.__table__.insert().values(name="inner", description=""))
        raise Abort
    with store.connect() as conn:  # the outer rollback took the inner write with it
        assert conn.execute(select(func.count()).select_from(Experiment)).scalar_one() == 0


def test_store_migrations_match_the_table_definitions(store):
    """Alembic finds nothing to add or drop: the migrations build exactly the SQLModel tables."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from tracking.store._db import VERSION_TABLE
    from tracking.store._tables import SQLModel

    with store.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []
