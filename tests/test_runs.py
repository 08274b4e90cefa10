"""The run API: end states, metrics and their batching, params, tags, notes, provenance, liveness."""

from __future__ import annotations

import math
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import sklearn
from sqlalchemy import func, update
from sqlmodel import select

import tracking
import tracking.runs._runs
from tests.governance import first_admin
from tests.polling import wait_until
from tracking.governance._access import local_actor
from tracking.runs._liveness import fail_stale_runs
from tracking.runs._queries import get_run, list_runs, metric_history
from tracking.runs._runs import start_run
from tracking.store._tables import MetricPoint, Note, RunTag, Worker, utcnow

ROOT = Path(__file__).resolve().parent.parent
RUN_SCRIPT = """\
import tracking

with tracking.start_run("provenance") as run:
    print(run.id)
"""
SLEEP_SCRIPT = """\
import time

import tracking

with tracking.start_run("doomed"):
    time.sleep(120)  # the behaviour under test: a run whose process is killed mid-way (the test never waits this out)
"""


@pytest.fixture
def child_env(file_store):
    """The environment of a child script: this checkout importable and the file store as its store."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TRACKING_STORE_URL": file_store.url,
        "TRACKING_HOME": str(file_store.artifact_root.parent),
        "TRACKING_HEARTBEAT_SECONDS": "1",
    }


@pytest.fixture
def repo(tmp_path):
    """A git work tree holding one committed script that logs a run."""
    work_tree = tmp_path / "repo"
    work_tree.mkdir()
    (work_tree / "train.py").write_text(RUN_SCRIPT)
    for args in (["init", "-q"], ["add", "train.py"], ["commit", "-q", "-m", "Add training script"]):
        _git(work_tree, *args)
    return work_tree


def _git(work_tree: Path, *args: str) -> str:
    command = ["git", "-c", "user.email=test@example.com", "-c", "user.name=Test", *args]
    return subprocess.run(command, cwd=work_tree, capture_output=True, text=True, check=True).stdout.strip()


def _run_script(script: Path, env: dict[str, str]) -> int:
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


def _point_rows(store, run_id: int) -> int:
    with store.connect() as conn:
        query = select(func.count()).select_from(MetricPoint).where(MetricPoint.run_id == run_id)
        return conn.execute(query).scalar_one()


def test_run_exception_ends_failed_with_traceback(file_store):
    with pytest.raises(ZeroDivisionError), start_run("runs", store=file_store) as run:
        1 / 0  # noqa: B018
    record = get_run(file_store, run.id)
    assert record.status == "failed" and record.finished_at is not None
    assert record.error.startswith("Traceback") and "ZeroDivisionError: division by zero" in record.error


def test_run_interrupt_ends_killed(file_store):
    for interrupt in (KeyboardInterrupt, SystemExit):
        with pytest.raises(interrupt), start_run("runs", store=file_store) as run:
            raise interrupt
        record = get_run(file_store, run.id)
        assert record.status == "killed" and record.finished_at is not None
        assert "Interrupted" in record.error and interrupt.__name__ in record.error


def test_log_metric_steps_count_up_per_key(store):
    with start_run("runs", store=store) as run:
        for value in (0.9, 0.5, 0.3):
            run.log_metric("loss", value)
        run.log_metric("acc", 0.7)
        run.log_metrics({"loss": 0.2, "acc": 0.8})
    history = metric_history(store, run.id)
    assert history == {"loss": [(0, 0.9), (1, 0.5), (2, 0.3), (3, 0.2)], "acc": [(0, 0.7), (1, 0.8)]}


def test_log_metric_summary_keeps_highest_step_out_of_order(store):
    with start_run("runs", store=store) as run:
        run.log_metric("loss", 0.1, step=5)
        run.log_metric("loss", 0.9, step=2)
        run.log_metric("loss", 0.5, step=3)
        run.log_metric("acc", 0.6, step=1)
        run.log_metric("acc", 0.4, step=0)
    record = get_run(store, run.id)
    assert record.metrics == {"loss": 0.1, "acc": 0.6}
    assert metric_history(store, run.id, "loss") == {"loss": [(2, 0.9), (3, 0.5), (5, 0.1)]}


def test_log_metric_non_finite_values_are_stored_as_null(store):
    with start_run("runs", store=store) as run:
        run.log_metrics({"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "np_nan": np.float64("nan")})
        run.log_metric("late", 1.0)
        run.log_metric("late", math.nan)
    record = get_run(store, run.id)
    assert record.metrics == {"nan": None, "inf": None, "-inf": None, "np_nan": None, "late": None}
    history = metric_history(store, run.id)
    assert history["late"] == [(0, 1.0), (1, None)]
    assert all(history[key] == [(0, None)] for key in ("nan", "inf", "-inf", "np_nan"))


def test_log_metric_non_number_is_refused_and_run_still_finishes(file_store):
    with start_run("runs", store=file_store) as run:
        for bad in ("high", None, [0.5], {"v": 1}):
            with pytest.raises(tracking.ValidationError, match="'acc' must be a number"):
                run.log_metric("acc", bad)
        run.log_metric("acc", 0.5)
    record = get_run(file_store, run.id)
    assert record.status == "complete" and record.metrics == {"acc": 0.5}
    assert metric_history(file_store, run.id) == {"acc": [(0, 0.5)]}


def test_log_metrics_refused_batch_logs_nothing(file_store):
    with start_run("runs", store=file_store) as run:
        with pytest.raises(tracking.ValidationError):
            run.log_metrics({"loss": 0.4, "acc": "n/a"})
        run.log_metrics({"loss": 0.3, "acc": 0.9})
    assert metric_history(file_store, run.id) == {"loss": [(0, 0.3)], "acc": [(0, 0.9)]}


def test_log_metric_flushes_before_run_ends_when_buffer_fills(store, monkeypatch):
    monkeypatch.setattr(tracking.runs._runs, "FLUSH_POINTS", 5)
    monkeypatch.setattr(tracking.runs._runs, "FLUSH_SECONDS", 3600.0)
    with start_run("runs", store=store) as run:
        for step in range(12):
            run.log_metric("loss", 1 / (step + 1))
        live = get_run(store, run.id)
        flushed = metric_history(store, run.id)["loss"]
    assert live.status == "running" and live.metrics == {"loss": 1 / 10}
    assert [step for step, _ in flushed] == list(range(10))  # two full batches, two points still buffered
    assert [step for step, _ in metric_history(store, run.id)["loss"]] == list(range(12))
    assert _point_rows(store, run.id) == 12


def test_params_numpy_and_other_values_are_stored_as_json(store):
    params = {
        "lr": np.float64(0.05),
        "n": np.int64(3),
        "flag": np.bool_(True),
        "half": np.float32(0.5),
        "path": Path("data") / "x.csv",
        "layers": (64, 32),
        "ratio": math.nan,
        "kernel": "rbf",
        "none": None,
    }
    with start_run("runs", params=params, store=store) as run:
        pass
    stored = get_run(store, run.id).params
    assert stored == {
        "lr": 0.05,
        "n": 3,
        "flag": True,
        "half": 0.5,
        "path": str(Path("data") / "x.csv"),
        "layers": "(64, 32)",
        "ratio": "nan",
        "kernel": "rbf",
        "none": None,
    }
    assert type(stored["n"]) is int and type(stored["flag"]) is bool


def test_params_numpy_array_is_stored_as_its_text(file_store):
    weights = np.array([0.2, 0.8])
    with start_run("runs", params={"class_weight": weights}, store=file_store) as run:
        pass
    assert get_run(file_store, run.id).params == {"class_weight": str(weights)}


def test_log_params_merges_into_existing_params(store):
    with start_run("runs", params={"a": 1, "b": "x"}, store=store) as run:
        run.log_params({"b": "y", "c": np.int64(2)})
        run.log_params({"d": [1, 2]})
    assert get_run(store, run.id).params == {"a": 1, "b": "y", "c": 2, "d": "[1, 2]"}


def test_set_tags_overwrites_by_key(store):
    with start_run("runs", tags={"team": "fraud", "stage": "dev"}, store=store) as run:
        run.set_tags({"stage": "prod", "attempt": 2})
        run.set_tag("team", "risk")
    assert get_run(store, run.id).tags == {"team": "risk", "stage": "prod", "attempt": "2"}
    with store.session_scope() as session:
        assert len(session.exec(select(RunTag).where(RunTag.run_id == run.id)).all()) == 3


def test_add_note_is_stored(file_store):
    with start_run("runs", store=file_store) as run:
        run.add_note("Looks **good** on the holdout.")
        run.add_note("Second thoughts.")
    with file_store.session_scope() as session:
        notes = session.exec(select(Note).where(Note.run_id == run.id).order_by(Note.id)).all()
        assert [(n.author, n.body) for n in notes] == [  # a personal store: the operating-system user writes
            (local_actor(), "Looks **good** on the holdout."),
            (local_actor(), "Second thoughts."),
        ]


def test_run_records_environment(file_store):
    with start_run("runs", store=file_store) as run:
        pass
    record = get_run(file_store, run.id)
    assert record.environment["python"] == platform.python_version()
    assert record.environment["host"] == socket.gethostname() == record.host
    assert record.environment["packages"]["scikit-learn"] == sklearn.__version__


def test_run_code_version_is_git_head(file_store, child_env, repo):
    run_id = _run_script(repo / "train.py", child_env)
    assert get_run(file_store, run_id).code_version == _git(repo, "rev-parse", "HEAD")


def test_run_code_version_marks_modified_work_tree_dirty(file_store, child_env, repo):
    with (repo / "train.py").open("a") as script:
        script.write("# tried a smaller learning rate\n")
    run_id = _run_script(repo / "train.py", child_env)
    assert get_run(file_store, run_id).code_version == _git(repo, "rev-parse", "HEAD") + "+dirty"


def test_run_code_version_outside_git_is_none(file_store, child_env, tmp_path):
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "train.py").write_text(RUN_SCRIPT)
    run_id = _run_script(loose / "train.py", child_env)
    record = get_run(file_store, run_id)
    assert record.status == "complete" and record.code_version is None


def test_fail_stale_runs_ends_run_of_killed_process(file_store, child_env, tmp_path, monkeypatch):
    # The dead child is found by its vanished pid; a long grace keeps a busy machine's late beat from counting.
    monkeypatch.setenv("TRACKING_HEARTBEAT_SECONDS", "10")
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEP_SCRIPT)
    child = subprocess.Popen([sys.executable, str(script)], env=child_env)
    try:

        def started() -> list:
            assert child.poll() is None, "the child ended before it started its run"
            return list_runs(file_store, experiment="doomed")

        [run] = wait_until(started, timeout=60, what="the child to start its run")
        assert run.status == "running"
        assert fail_stale_runs(file_store) == []  # alive and beating: left alone
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert [stale.run_id for stale in fail_stale_runs(file_store)] == [run.id]
    record = get_run(file_store, run.id)
    assert record.status == "killed" and record.finished_at is not None
    assert "stopped without finishing" in record.error


def test_fail_stale_runs_never_ends_a_run_of_this_process(store):
    with start_run("runs", store=store) as run:
        with store.connect(write=True) as conn:  # as if the heartbeat thread had stalled for an hour
            conn.execute(update(Worker).values(last_seen=utcnow() - timedelta(hours=1)))
        assert fail_stale_runs(store) == []
        assert get_run(store, run.id).status == "running"
    assert get_run(store, run.id).status == "complete"


def test_threads_logging_to_one_run_lose_no_points(store, monkeypatch):
    monkeypatch.setattr(tracking.runs._runs, "FLUSH_POINTS", 64)  # many flushes, from every thread
    n_threads, n_points = 8, 250
    start = threading.Barrier(n_threads)
    with start_run("runs", store=store) as run:

        def log(thread: int) -> None:
            start.wait()
            for step in range(n_points):
                run.log_metrics({f"m{thread}": float(step), "shared": float(thread)})

        with ThreadPoolExecutor(n_threads) as pool:
            for result in [pool.submit(log, thread) for thread in range(n_threads)]:
                result.result()
    history = metric_history(store, run.id)
    assert all(history[f"m{t}"] == [(s, float(s)) for s in range(n_points)] for t in range(n_threads))
    assert [step for step, _ in history["shared"]] == list(range(n_threads * n_points))
    assert Counter(value for _, value in history["shared"]) == {float(t): n_points for t in range(n_threads)}
    assert _point_rows(store, run.id) == 2 * n_threads * n_points


def test_logging_on_a_team_store_needs_a_token(file_store, monkeypatch):
    admin = first_admin(file_store)
    with pytest.raises(tracking.PermissionDenied, match="set TRACKING_TOKEN"), start_run("runs", store=file_store):
        pass
    assert list_runs(file_store) == []
    token, _ = tracking.create_token(file_store, admin, "script")
    monkeypatch.setenv("TRACKING_TOKEN", token)
    with start_run("runs", store=file_store, params={"C": 1.0}) as run:
        run.log_metrics({"loss": 0.5})
        run.set_tags({"team": "risk"})
        run.add_note("from a script")
    logged = tracking.get_run(file_store, run.id)
    assert (logged.status, logged.tags, logged.owner) == ("complete", {"team": "risk"}, "root")
    with pytest.raises(tracking.PermissionDenied):  # a library call without a credential is still refused
        tracking.add_note(file_store, run.id, "drive-by")


def _raw_rows(conn, table, column, value):
    """A table's rows for one key, as the database stores them (no type processing), sorted."""
    result = conn.exec_driver_sql(f"SELECT * FROM {table} WHERE {column} = {int(value)}")
    return sorted(tuple(row) for row in result)


def test_driver_writes_store_what_core_writes(store):
    """A run's start and end run on the DBAPI cursor (`_writes`): its row, read as stored, equals the row Core's
    insert and update write from the same values, and its index rows equal a rebuild from its JSON."""
    from sqlalchemy import insert

    from tracking.runs._index import index_runs
    from tracking.runs._runs import ActiveRun, get_or_create_experiment, insert_run, run_row
    from tracking.store import Run, RunStatus

    params = {"lr": 0.1, "opt": "adam", "on": True, "big": 10**30, "none": None, "long": "x" * 300}
    values = run_row(experiment_id=get_or_create_experiment(store, "same"), worker_id=None, params=params, seed=3)
    values["name"] = "twin"
    with store.connect(write=True) as conn:
        driver_id = insert_run(conn, dict(values))
        core_id = int(conn.execute(insert(Run).returning(Run.id), values).scalar_one())
    run = ActiveRun(store, driver_id)
    run.log_metrics({"loss": 0.5, "acc": float("nan")}, step=3)
    run.end(RunStatus.failed, error="boom")
    with store.connect(write=True) as conn:
        finished = conn.execute(select(Run.finished_at, Run.metrics).where(Run.id == driver_id)).one()
        assert finished.metrics == {"loss": 0.5, "acc": None}
        conn.execute(
            update(Run)
            .where(Run.id == core_id)
            .values(status=RunStatus.failed, error="boom", finished_at=finished.finished_at, metrics=finished.metrics)
        )
        driver_row, core_row = (_raw_rows(conn, "runs", "id", run_id)[0] for run_id in (driver_id, core_id))
        assert driver_row[1:] == core_row[1:] and driver_row[0] == driver_id
        indexed = [_raw_rows(conn, table, "run_id", driver_id) for table in ("run_values", "run_words")]
        index_runs(conn, [driver_id])
        assert [_raw_rows(conn, table, "run_id", driver_id) for table in ("run_values", "run_words")] == indexed
        assert len(indexed[0]) == 6  # 5 params (not the null) and the one finite metric
