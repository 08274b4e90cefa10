"""Bulk paths for filling a store at scale: runs (COPY on PostgreSQL) and streamed metric points."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

import tracking
from tracking.runs import bulk_log_points, bulk_log_runs, get_run, metric_history
from tracking.store import MetricPoint, change_marker


def _runs(n):
    started = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    for i in range(n):
        yield {"experiment": "bulk", "name": f"r{i}", "params": {"lr": 0.1 * i, "kind": "gini", "on": True},
               "metrics": {"acc": i / 10}, "tags": {"team": "blue"}, "status": "pruned" if i % 2 else "complete",
               "started_at": started, "seed": i, "error": None}  # fmt: skip


def _count_points(store):
    with store.connect() as conn:
        return conn.execute(select(func.count()).select_from(MetricPoint)).scalar_one()


def test_bulk_runs_are_stored_as_given(store):
    before = change_marker(store)
    ids = bulk_log_runs(store, _runs(5), batch=2)
    run = get_run(store, ids[3])
    assert run.name == "r3" and run.status == "pruned" and run.seed == 3
    assert run.params == {"lr": 0.1 * 3, "kind": "gini", "on": True} and run.metrics == {"acc": 0.3}
    assert run.started_at.replace(tzinfo=UTC) == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert change_marker(store) > before
    assert [r["name"] for r in tracking.explore.runs_page(store, search="blue gini", sort="params.lr").rows] == [
        "r4", "r3", "r2", "r1", "r0"
    ]  # fmt: skip


def test_bulk_points_stream_in_batches_and_are_read_back(store):
    ids = bulk_log_runs(store, _runs(3))
    points = ((run_id, key, step, step / 2, 1.0) for run_id in ids for key in ("a", "b") for step in range(7))
    before = change_marker(store)
    assert bulk_log_points(store, points, batch=5) == 42
    assert change_marker(store) > before
    assert metric_history(store, ids[1])["b"] == [(step, step / 2) for step in range(7)]
    assert bulk_log_points(store, [(ids[0], "c", 0, math.nan, 1.0)]) == 1
    assert metric_history(store, ids[0], "c") == {"c": [(0, None)]}


def test_bulk_points_refuse_a_missing_run_and_a_step_already_held(store):
    (run_id,) = bulk_log_runs(store, _runs(1))
    bulk_log_points(store, [(run_id, "a", 0, 1.0, 1.0)])
    with pytest.raises(tracking.ValidationError, match="do not exist: 999999"):
        bulk_log_points(store, [(run_id, "a", 1, 1.0, 1.0), (999999, "a", 0, 1.0, 1.0)])
    with pytest.raises(tracking.IntegrityError, match="the 2 before it are written"):
        bulk_log_points(store, [(run_id, "a", 5, 1.0, 1.0), (run_id, "a", 6, 1.0, 1.0), (run_id, "a", 0, 2.0, 1.0)],
                        batch=2)  # fmt: skip
    with pytest.raises(tracking.ValidationError, match="not"):
        bulk_log_points(store, [(run_id, "a")])
    assert _count_points(store) == 3  # the first point, and the first batch of the refused call
    assert metric_history(store, run_id, "a") == {"a": [(0, 1.0), (5, 1.0), (6, 1.0)]}
