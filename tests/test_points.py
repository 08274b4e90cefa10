"""Metric points keyed (run, key, step), and the change marker the dashboard's caches key on."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import func, inspect, select, text

import tracking
from tests.migrations import legacy_run, store_at_revision
from tracking.runs._queries import metric_history
from tracking.runs._runs import COPY_POINTS, insert_points, start_run
from tracking.store._db import _SLOT as SLOT
from tracking.store._db import change_marker, migrate
from tracking.store._tables import MetricPoint


def _rows(store, run_id: int) -> int:
    with store.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(MetricPoint).where(MetricPoint.run_id == run_id)
        ).scalar_one()


def test_points_relogging_a_step_keeps_the_last_value_in_one_row(store):
    with start_run("exp", store=store) as run:
        run.log_metrics({"loss": 0.9, "acc": 0.1}, step=0)
        run.log_metrics({"loss": 0.8}, step=0)  # the same batch
        run.flush()
        run.log_metrics({"loss": 0.7}, step=0)  # a later batch
    assert metric_history(store, run.id) == {"loss": [(0, 0.7)], "acc": [(0, 0.1)]}
    assert _rows(store, run.id) == 2
    assert tracking.get_run(store, run.id).metrics == {"loss": 0.7, "acc": 0.1}  # the summary agrees


def test_points_relogging_through_copy_keeps_the_last_value(store):
    # A batch this large goes through COPY on PostgreSQL (executemany on SQLite): the rule is the same.
    with start_run("exp", store=store) as run:
        for step in range(COPY_POINTS):
            run.log_metrics({"loss": float(step)}, step=step)
        run.log_metrics({"loss": -1.0}, step=5)
        run.flush()
        for step in range(COPY_POINTS):
            run.log_metrics({"loss": 10.0 + step}, step=step)
    assert metric_history(store, run.id)["loss"] == [(step, 10.0 + step) for step in range(COPY_POINTS)]
    assert _rows(store, run.id) == COPY_POINTS


def test_points_two_large_batches_in_one_transaction_keep_the_last(store):
    # An import writes several batches in one transaction: each starts from an empty staging table.
    with start_run("exp", store=store) as run:
        pass
    with store.connect(write=True) as conn:
        insert_points(conn, [(run.id, "loss", step, 1.0, 0.0) for step in range(COPY_POINTS)])
        insert_points(conn, [(run.id, "loss", step, 2.0, 0.0) for step in range(1, COPY_POINTS + 1)])
    history = metric_history(store, run.id)["loss"]
    assert history == [(0, 1.0)] + [(step, 2.0) for step in range(1, COPY_POINTS + 1)]


def test_points_history_reads_in_step_order(store):
    with start_run("exp", store=store) as run:
        for step in (3, 1, 2, 0):
            run.log_metric("loss", step / 10, step=step)
    assert metric_history(store, run.id)["loss"] == [(0, 0.0), (1, 0.1), (2, 0.2), (3, 0.3)]
    assert tracking.get_run(store, run.id).metrics == {"loss": 0.3}  # the summary is the highest step's


@pytest.mark.parametrize("size", [1, COPY_POINTS])
def test_points_refused_batch_is_one_sentence_and_writes_nothing(store, size):
    with start_run("exp", store=store) as run:
        pass
    points = [(run.id, "loss", step, 0.5, 0.0) for step in range(size)] + [(run.id, None, 0, 0.5, 0.0)]  # no key
    with (
        pytest.raises(tracking.StoreError, match=rf"refused a batch of {size + 1} metric points"),
        store.connect(write=True) as conn,
    ):
        insert_points(conn, points)
    assert _rows(store, run.id) == 0


def test_points_for_a_run_that_does_not_exist_are_refused_by_its_check(store):
    # No foreign key checks each point (schema 0017): the write's own check of its run, in its transaction, does.
    with start_run("exp", store=store) as run:
        pass
    ghost = tracking.ActiveRun(store, run.id, _checked=True)
    ghost.id = 424242
    ghost.log_metric("loss", 0.5, step=0)
    with pytest.raises(tracking.NotFoundError, match="There is no run 424242"):
        ghost.flush()
    with pytest.raises(tracking.NotFoundError, match="There is no run 424242"):
        ghost.end()
    assert _rows(store, 424242) == 0


def test_points_a_step_another_writer_logged_meanwhile_is_replaced_not_refused(store):
    # The run's own points look fresh to it, so PostgreSQL copies them; the other writer's step makes that COPY
    # fail, and the batch is written again as an upsert: the last write wins, nothing is lost or doubled.
    with start_run("exp", store=store) as run:
        other = tracking.ActiveRun(store, run.id)
        other.log_metrics({"loss": 1.0, "acc": 0.1}, step=0)
        other.flush()
        for step in range(COPY_POINTS):
            run.log_metrics({"loss": 2.0 + step}, step=step)
        run.flush()
        other.log_metrics({"loss": -1.0}, step=COPY_POINTS)
        other.flush()
        run.log_metrics({"loss": 9.0}, step=COPY_POINTS)  # fresh to `run`, held by the store: at the run's end
    history = metric_history(store, run.id)
    assert history["loss"] == [(step, 2.0 + step) for step in range(COPY_POINTS)] + [(COPY_POINTS, 9.0)]
    assert history["acc"] == [(0, 0.1)]
    assert _rows(store, run.id) == COPY_POINTS + 2
    assert tracking.get_run(store, run.id).status == "complete"


@pytest.mark.postgres_only
def test_points_purge_waits_for_a_writer_that_has_checked_the_run(store):
    """A writer past its check holds the run (FOR KEY SHARE) until it commits; a purge waits, then deletes the
    points that writer added: none outlives its run, with no foreign key to say so."""
    with start_run("exp", store=store) as run:
        pass
    tracking.trash_run(store, run.id)
    purged = []
    with store.engine.connect() as writer:  # a writer between its check and its points
        writer.execute(text("SELECT id FROM runs WHERE id = :r FOR KEY SHARE"), {"r": run.id})
        thread = threading.Thread(target=lambda: purged.append(tracking.purge_run(store, run.id)))
        thread.start()
        _wait_for(lambda: _waiting_for_locks(store) > 0 or not thread.is_alive())
        assert thread.is_alive() and not purged  # the purge waits for the writer
        writer.execute(text("INSERT INTO metric_points VALUES (:r, 'loss', 0, 0.5, 0)"), {"r": run.id})
        writer.commit()
    thread.join(timeout=60)
    assert purged and purged[0].runs == 1
    assert _rows(store, run.id) == 0


def _waiting_for_locks(store) -> int:
    with store.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar_one()


def _wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.02)


def test_points_migration_0017_drops_the_foreign_key_and_keeps_the_points(backend_url, tmp_path):
    old = store_at_revision(backend_url, tmp_path, "0016")
    run_id = legacy_run(old, "legacy", "kept", {}, {"loss": 1.0})
    with old.connect(write=True) as conn:
        conn.execute(text("INSERT INTO metric_points VALUES (:r, 'loss', 1, 0.5, 1)"), {"r": run_id})
    assert inspect(old.engine).get_foreign_keys("metric_points")  # before: run_id -> runs.id
    migrate(old)
    assert inspect(old.engine).get_foreign_keys("metric_points") == []
    assert metric_history(old, run_id, "loss") == {"loss": [(0, 1.0), (1, 0.5)]}
    if old.is_sqlite:  # the stored definition was edited in place: the file is still sound
        with old.connect() as conn:
            assert conn.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
    old.dispose()


def test_points_failed_flush_keeps_the_points_for_the_next_one(store):
    with start_run("exp", store=store) as run:
        run.log_metric("loss", 0.5, step=0)
        real_id, run.id = run.id, 424242  # the batch now names a run the store does not have
        with pytest.raises(tracking.TrackingError):
            run.flush()
        run.id = real_id
    assert metric_history(store, run.id) == {"loss": [(0, 0.5)]}


def test_points_migration_from_0011_keeps_the_last_of_duplicates(backend_url, tmp_path):
    old = store_at_revision(backend_url, tmp_path, "0011")
    run_id = legacy_run(old, "legacy", "kept", {}, {"loss": 1.0, "acc": 0.5})
    with old.connect(write=True) as conn:  # the old table allowed a step twice: the higher id is the last write
        for value in (2.0, 3.0):
            conn.execute(
                text("INSERT INTO metric_points (run_id, key, step, value, timestamp) VALUES (:r, 'loss', 0, :v, 1)"),
                {"r": run_id, "v": value},
            )
        conn.execute(text("INSERT INTO metric_points (run_id, key, step, value, timestamp) VALUES (:r, 'loss', 1, 4, 1)"),
                     {"r": run_id})  # fmt: skip
    migrate(old)
    assert metric_history(old, run_id) == {"loss": [(0, 3.0), (1, 4.0)], "acc": [(0, 0.5)]}
    with old.connect(write=True) as conn:  # the new key holds: a second write of a step replaces it
        insert_points(conn, [(run_id, "loss", 1, 5.0, 2.0)])
    assert metric_history(old, run_id, "loss") == {"loss": [(0, 3.0), (1, 5.0)]}
    old.dispose()


def test_points_change_marker_moves_after_each_kind_of_write(store):
    seen = [change_marker(store)]

    def moved() -> bool:
        seen.append(change_marker(store))
        return seen[-1] > seen[-2]

    with start_run("exp", store=store) as run:
        assert moved()  # the run's row
        run.log_metric("loss", 0.5)
        run.flush()
        assert moved()  # points and the summary
        run.log_params({"C": 1.0})
        assert moved()
        run.set_tags({"team": "fraud"})
        assert moved()
        run.add_note("looks fine")
        assert moved()
    assert moved()  # the run's end
    tracking.save_report(store, title="weekly", view=tracking.CompareView(runs=(run.id,)))
    assert moved()


@pytest.mark.slow  # a child process imports the library
@pytest.mark.file_backends
def test_points_change_marker_sees_a_write_by_another_process(store):
    before = change_marker(store)
    code = "import sys, tracking\nwith tracking.start_run('other', store=tracking.open_store(sys.argv[1], home=sys.argv[2])) as r:\n    r.log_metric('x', 1.0)\n"
    env = {**os.environ, "TRACKING_HEARTBEAT_SECONDS": "3600"}
    subprocess.run([sys.executable, "-c", code, store.url, str(store.home)], check=True, env=env, timeout=120)
    assert change_marker(store) >= before + 2  # its run's start and end, each a committed write


def test_points_change_counters_of_live_postgres_connections_are_rows_of_their_own(store):
    # Two writers on PostgreSQL never update the same counter row, so neither waits for the other's commit.
    with store.engine.connect() as one, store.engine.connect() as two:
        slots = {one.info.get(SLOT, 1), two.info.get(SLOT, 1)}
    assert len(slots) == (2 if store.dialect == "postgresql" else 1)  # SQLite serializes writers: one row
