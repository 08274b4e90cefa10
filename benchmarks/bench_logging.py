"""Logging throughput: our run API against raw sqlite3 (the limit) and MLflow's SQLite store.

The workload is `runs` runs, each with `params` params and `metrics` metrics logged at `steps` steps
(default 200 x 10 x 5 x 100 = 100,000 metric points). It prints a table and one line per target:

- ours (SQLite) logs at least 10x as many points per second as MLflow's SQLite store;
- ours (SQLite) is within 1.5x of raw `sqlite3` executemany into the same shape of tables;
  (also shown, not a target: raw `sqlite3` doing the run API's own writes into its schema: the run's row at
  its start, index rows and words, the open check; what ours costs over that is Python);
- ours (PostgreSQL: a run's statements pipelined, its last points one COPY) logs at least 100,000 points per second
  (with `--postgres`).

Run from the repo root with the project's venv:

    python benchmarks/bench_logging.py
    python benchmarks/bench_logging.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test
    python benchmarks/bench_logging.py --mlflow-python /work/venv-mlflow/bin/python

The passes of the variants are interleaved (ours, PostgreSQL, raw, ours, ...) so that load from other
processes hits them alike; the fastest pass of each is reported. MLflow is optional: it is measured
in this interpreter when importable, else in a subprocess of `--mlflow-python` (which runs this file
with `--mlflow-json`), else skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MLFLOW_TARGET_RATIO = 10.0
RAW_TARGET_FACTOR = 1.5
POSTGRES_TARGET = 100_000
MLFLOW_MISSING = "mlflow not installed: skipped (pip install mlflow to compare)"

# The raw baseline has the same columns and the same metric key as our store, and writes points the same
# way (an upsert: a step logged again keeps the last value), so the gap between the two is the cost of our
# code, not of a different schema or a different job.
RAW_SCHEMA = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, params TEXT NOT NULL, metrics TEXT NOT NULL,
    status TEXT NOT NULL, started_at REAL NOT NULL, finished_at REAL
);
CREATE TABLE metric_points (
    run_id INTEGER NOT NULL, key TEXT NOT NULL, step INTEGER NOT NULL, value REAL,
    timestamp REAL NOT NULL, PRIMARY KEY (run_id, key, step)
) WITHOUT ROWID;
"""
# The pragmas the store sets on each connection (`tracking.store._db`): the baselines set the same, so no side
# skips work the other does. Points have no foreign key in either (the store checks a batch's run once, in its
# transaction: schema 0017), so the limit does not pay a per-point check the store no longer makes.
STORE_PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=60000", "foreign_keys=ON")
RAW_UPSERT = (
    "INSERT INTO metric_points (run_id, key, step, value, timestamp) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (run_id, key, step) DO UPDATE SET value = excluded.value, timestamp = excluded.timestamp"
)

RAW_VALUES = 'INSERT INTO run_values (run_id, kind, "key", number, text) VALUES (?, ?, ?, ?, ?)'
RAW_BUMP = "UPDATE store_state SET change_counter = change_counter + 1 WHERE id = 1"

Timed = tuple[float, float]  # (wall-clock seconds, CPU seconds of this process)


@dataclass(frozen=True)
class Workload:
    """The shape of one benchmark pass."""

    runs: int
    params: int
    metrics: int
    steps: int

    @property
    def points(self) -> int:
        return self.runs * self.metrics * self.steps

    def with_runs(self, runs: int) -> Workload:
        return Workload(runs, self.params, self.metrics, self.steps)

    def run_params(self, run: int) -> dict[str, float]:
        return {f"p{i}": run + i / 10 for i in range(self.params)}

    def metric_keys(self) -> list[str]:
        return [f"m{k}" for k in range(self.metrics)]


@dataclass
class Result:
    """One row of the table: the timings of every pass of one variant."""

    label: str
    points: int
    runs: int
    passes: list[Timed] = field(default_factory=list)

    @property
    def best(self) -> float:
        """Points per second of the fastest pass."""
        return self.points / min(wall for wall, _ in self.passes)

    @property
    def median(self) -> float:
        return self.points / statistics.median(wall for wall, _ in self.passes)

    @property
    def cpu_us_per_point(self) -> float:
        """CPU microseconds of this process per point (least over the passes)."""
        return min(cpu for _, cpu in self.passes) * 1e6 / self.points


@contextlib.contextmanager
def stopwatch() -> Iterator[list[float]]:
    """Yields a list that holds [wall seconds, CPU seconds] of the block once the block has left."""
    times: list[float] = []
    wall, cpu = time.perf_counter(), time.process_time()
    yield times
    times.extend([time.perf_counter() - wall, time.process_time() - cpu])


def metric_value(run: int, step: int, k: int) -> float:
    """A cheap, varying metric value (the same in every variant)."""
    return 1.0 / (1 + step + k) + run * 1e-3


# ---------------------------------------------------------------- ours


def time_ours(store: Any, work: Workload) -> Timed:
    """Log the workload through `tracking.start_run` / `run.log_metrics` on an open store; returns its timing."""
    import tracking

    start_run = tracking.start_run  # resolve the lazy import before the clock starts
    keys = work.metric_keys()
    with stopwatch() as timed:
        for r in range(work.runs):
            with start_run("bench", params=work.run_params(r), store=store) as run:
                for step in range(work.steps):
                    run.log_metrics({key: metric_value(r, step, k) for k, key in enumerate(keys)}, step=step)
    _check_ours(store, work)
    return timed[0], timed[1]


def _check_ours(store: Any, work: Workload) -> None:
    from sqlalchemy import text

    with store.connect() as conn:
        points = conn.execute(text("SELECT count(*) FROM metric_points")).scalar_one()
        complete = conn.execute(text("SELECT count(*) FROM runs WHERE status = 'complete'")).scalar_one()
    if (points, complete) != (work.points, work.runs):
        raise RuntimeError(f"expected {work.points} points in {work.runs} runs, found {points} in {complete}")


def bench_ours_sqlite(work: Workload) -> Timed:
    """One pass on a fresh SQLite store in a temporary folder."""
    from tracking.store._db import open_store

    with tempfile.TemporaryDirectory(prefix="bench_logging_") as tmp:
        store = open_store(f"sqlite:///{tmp}/tracking.db", home=tmp)
        try:
            return time_ours(store, work)
        finally:
            store.dispose()


@contextlib.contextmanager
def throwaway_postgres(server_url: str) -> Iterator[str]:
    """A new empty database `bench_<hex>` on the server, dropped (WITH FORCE) on exit."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from tracking.store._db import normalize_url

    server = normalize_url(server_url)
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(server).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def bench_ours_postgres(work: Workload, server_url: str) -> Timed:
    """One pass on a fresh PostgreSQL database (artifacts in a temporary folder)."""
    from tracking.store._db import open_store

    with tempfile.TemporaryDirectory(prefix="bench_logging_") as tmp, throwaway_postgres(server_url) as url:
        store = open_store(url, home=tmp)
        try:
            return time_ours(store, work)
        finally:
            store.dispose()


# ---------------------------------------------------------------- raw sqlite3


def bench_raw(work: Workload) -> Timed:
    """One pass of plain sqlite3 (the store's pragmas): per run an insert, an executemany, an update, a commit."""
    keys = work.metric_keys()
    with tempfile.TemporaryDirectory(prefix="bench_logging_") as tmp:
        conn = sqlite3.connect(Path(tmp) / "raw.db", isolation_level=None)
        try:
            for pragma in STORE_PRAGMAS:
                conn.execute(f"PRAGMA {pragma}")
            conn.executescript(RAW_SCHEMA)
            with stopwatch() as timed:
                for r in range(work.runs):
                    conn.execute("BEGIN")
                    run_id = conn.execute(
                        "INSERT INTO runs (name, params, metrics, status, started_at)"
                        " VALUES (?, ?, '{}', 'running', ?)",
                        (f"run-{r}", json.dumps(work.run_params(r)), time.time()),
                    ).lastrowid
                    points = []
                    for step in range(work.steps):
                        now = time.time()
                        points.extend((run_id, key, step, metric_value(r, step, k), now) for k, key in enumerate(keys))
                    conn.executemany(RAW_UPSERT, points)
                    latest = {key: metric_value(r, work.steps - 1, k) for k, key in enumerate(keys)}
                    conn.execute(
                        "UPDATE runs SET status = 'complete', metrics = ?, finished_at = ? WHERE id = ?",
                        (json.dumps(latest), time.time(), run_id),
                    )
                    conn.execute("COMMIT")
            count = conn.execute("SELECT count(*) FROM metric_points").fetchone()[0]
        finally:
            conn.close()
    if count != work.points:
        raise RuntimeError(f"raw sqlite3 wrote {count} points, expected {work.points}")
    return timed[0], timed[1]


def bench_raw_same_writes(work: Workload) -> Timed:
    """One pass of plain sqlite3 doing what the run API's SQL does, in a store made by `open_store` (same schema,
    indexes and pragmas): per run one transaction at its start (the run's row, its name, its param index rows and
    words, the change counter) and one at its end (the open check, the points, the final row, the metric index
    rows, the counter). The run API's cost over this is its Python, not its database work."""
    from tracking.runs._index import value_tuples, words
    from tracking.runs._runs import get_or_create_experiment
    from tracking.store._db import open_store

    keys = work.metric_keys()
    with tempfile.TemporaryDirectory(prefix="bench_logging_") as tmp:
        store = open_store(f"sqlite:///{tmp}/tracking.db", home=tmp)
        experiment = get_or_create_experiment(store, "bench")
        store.dispose()
        conn = sqlite3.connect(Path(tmp) / "tracking.db", isolation_level=None)
        try:
            for pragma in STORE_PRAGMAS:
                conn.execute(f"PRAGMA {pragma}")
            environment = json.dumps({"host": "h", "python": sys.version})
            with stopwatch() as timed:
                for r in range(work.runs):
                    params = work.run_params(r)
                    conn.execute("BEGIN IMMEDIATE")
                    run_id = conn.execute(
                        "INSERT INTO runs (name, experiment_id, status, params, metrics, environment, host, owner,"
                        " started_at) VALUES ('', ?, 'running', ?, '{}', ?, 'h', 'me', ?) RETURNING id",
                        (experiment, json.dumps(params), environment, _sqlite_now()),
                    ).fetchone()[0]
                    conn.execute("UPDATE runs SET name = ? WHERE id = ?", (f"run-{run_id}", run_id))
                    conn.executemany(RAW_VALUES, value_tuples(run_id, "params", params))
                    found = words(f"run-{run_id}", "bench", *params.values())
                    conn.executemany("INSERT INTO run_words VALUES (?, ?)", [(run_id, word) for word in found])
                    conn.execute(RAW_BUMP)
                    conn.execute("COMMIT")
                    points = []
                    for step in range(work.steps):
                        now = time.time()
                        points.extend((run_id, key, step, metric_value(r, step, k), now) for k, key in enumerate(keys))
                    latest = {key: metric_value(r, work.steps - 1, k) for k, key in enumerate(keys)}
                    conn.execute("BEGIN IMMEDIATE")
                    conn.execute("SELECT status, (SELECT 1 FROM users LIMIT 1) FROM runs WHERE id = ?", (run_id,))
                    conn.executemany(RAW_UPSERT, points)
                    conn.execute(
                        "UPDATE runs SET status = 'complete', error = NULL, finished_at = ?, metrics = ? WHERE id = ?",
                        (_sqlite_now(), json.dumps(latest), run_id),
                    )
                    conn.execute("DELETE FROM run_values WHERE run_id = ? AND kind IN ('m', 'mb', 'ml')", (run_id,))
                    conn.executemany(RAW_VALUES, value_tuples(run_id, "metrics", latest))
                    conn.execute(RAW_BUMP)
                    conn.execute("COMMIT")
            count = conn.execute("SELECT count(*) FROM metric_points").fetchone()[0]
        finally:
            conn.close()
    if count != work.points:
        raise RuntimeError(f"raw sqlite3 (our writes) wrote {count} points, expected {work.points}")
    return timed[0], timed[1]


def _sqlite_now() -> str:
    """Now as SQLAlchemy stores a datetime in SQLite."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


# ---------------------------------------------------------------- MLflow


def bench_mlflow(work: Workload) -> tuple[Timed, str]:
    """MLflow's fluent API on a SQLite store (created and warmed up before the clock starts): timing and version."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no network here: never try to send any
    os.environ.setdefault("DO_NOT_TRACK", "true")
    import logging

    import mlflow

    keys = work.metric_keys()
    previous = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="bench_logging_mlflow_") as tmp:
        os.chdir(tmp)  # whatever MLflow writes relative to the working folder lands in the temp folder
        try:
            mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
            logging.getLogger("alembic").setLevel(logging.WARNING)
            mlflow.create_experiment("bench", artifact_location=Path(tmp, "artifacts").as_uri())
            mlflow.set_experiment("bench")
            with mlflow.start_run():  # warm-up, untimed: MLflow imports parts of itself on first use
                mlflow.log_params(work.run_params(-1))
                mlflow.log_metrics({key: 0.0 for key in keys}, step=0)
            with stopwatch() as timed:
                for r in range(work.runs):
                    with mlflow.start_run():
                        mlflow.log_params(work.run_params(r))
                        for step in range(work.steps):
                            mlflow.log_metrics({key: metric_value(r, step, k) for k, key in enumerate(keys)}, step=step)
            _check_mlflow(mlflow, work)
        finally:
            os.chdir(previous)
    return (timed[0], timed[1]), mlflow.__version__


def _check_mlflow(mlflow: Any, work: Workload) -> None:
    """MLflow's store holds the timed runs (and the warm-up) with every step of every metric."""
    client = mlflow.tracking.MlflowClient()
    experiment = client.get_experiment_by_name("bench")
    runs = client.search_runs([experiment.experiment_id], max_results=work.runs + 10)
    steps = {key: len(client.get_metric_history(runs[0].info.run_id, key)) for key in work.metric_keys()}
    if len(runs) != work.runs + 1 or set(steps.values()) != {work.steps}:
        raise RuntimeError(f"MLflow holds {len(runs)} runs (expected {work.runs} and a warm-up) and {steps} steps "
                           f"per metric in the newest (expected {work.steps})")  # fmt: skip


def mlflow_in_subprocess(python: str, work: Workload) -> tuple[Timed, str]:
    """Run the MLflow pass with another interpreter (one that has mlflow) and read its JSON answer."""
    sizes = ["--mlflow-runs", work.runs, "--params", work.params, "--metrics", work.metrics, "--steps", work.steps]
    command = [python, str(Path(__file__).resolve()), "--mlflow-json", *map(str, sizes)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the MLflow subprocess failed ({done.returncode}):\n{done.stderr[-2000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return (float(answer["seconds"]), float(answer["cpu_seconds"])), str(answer["version"])


def measure_mlflow(work: Workload, python: str | None) -> Result | None:
    """MLflow's row, or None when neither this interpreter nor `python` has mlflow."""
    if importlib.util.find_spec("mlflow") is not None:
        timed, version = bench_mlflow(work)
    elif python:
        timed, version = mlflow_in_subprocess(python, work)
    else:
        return None
    return Result(f"MLflow {version}, SQLite", work.points, work.runs, [timed])


# ---------------------------------------------------------------- report


def measure_interleaved(variants: list[tuple[Result, Callable[[], Timed]]], repeat: int) -> None:
    """Run one pass of every variant per round, `repeat` rounds, appending to each Result."""
    for i in range(repeat):
        for result, one_pass in variants:
            result.passes.append(one_pass())
            wall, cpu = result.passes[-1]
            print(f"  round {i + 1}/{repeat} {result.label}: {wall:.3f} s (cpu {cpu:.3f} s)", file=sys.stderr)


def print_table(results: list[Result]) -> None:
    header = f"{'variant':<34} {'runs':>5} {'points':>9} {'best s':>7} {'points/s best':>14} {'median':>9}"
    print(header + f" {'cpu us/point':>13}")
    for r in results:
        best_s = r.points / r.best
        print(
            f"{r.label:<34} {r.runs:>5} {r.points:>9,} {best_s:>7.3f} {r.best:>14,.0f} {r.median:>9,.0f}"
            f" {r.cpu_us_per_point:>13.2f}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="runs per pass (default 200)")
    parser.add_argument("--params", type=int, default=10, help="params per run (default 10)")
    parser.add_argument("--metrics", type=int, default=5, help="metrics logged per step (default 5)")
    parser.add_argument("--steps", type=int, default=100, help="steps per run (default 100)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of ours and raw; the best is reported (3)")
    parser.add_argument("--postgres", metavar="URL", help="also measure ours on a throwaway database on this server")
    parser.add_argument("--mlflow-runs", type=int, default=20, help="runs in the single MLflow pass (default 20)")
    parser.add_argument(
        "--mlflow-python", metavar="PATH", help="an interpreter with mlflow, used when this one cannot import it"
    )
    parser.add_argument("--mlflow-json", action="store_true", help="only time MLflow and print JSON (subprocess mode)")
    parser.add_argument("--no-mlflow", action="store_true", help="skip MLflow even when it is importable")
    args = parser.parse_args(argv)
    if min(args.runs, args.params, args.metrics, args.steps, args.repeat, args.mlflow_runs) < 1:
        parser.error("every size must be at least 1")
    return args


def print_targets(ours: Result, raw: Result, mlflow: Result | None, postgres: Result | None) -> None:
    if mlflow is None:
        print(MLFLOW_MISSING)
        print(f"TARGET ours >= {MLFLOW_TARGET_RATIO:g}x MLflow: not measured (mlflow not installed)")
    else:
        ratio = ours.best / mlflow.best
        verdict = "MET" if ratio >= MLFLOW_TARGET_RATIO else "NOT MET"
        print(
            f"TARGET ours >= {MLFLOW_TARGET_RATIO:g}x MLflow: {ours.best:,.0f} vs {mlflow.best:,.0f} points/s"
            f" = {ratio:.1f}x -> {verdict}"
        )
    floor = raw.best / RAW_TARGET_FACTOR
    verdict = "MET" if ours.best >= floor else f"NOT MET (short by {floor / ours.best:.2f}x)"
    print(
        f"TARGET ours >= raw/{RAW_TARGET_FACTOR:g}: {ours.best:,.0f} vs {floor:,.0f} points/s"
        f" (raw {raw.best:,.0f}; ours is {raw.best / ours.best:.2f}x slower than raw) -> {verdict}"
    )
    if postgres is None:
        print(f"TARGET ours on PostgreSQL >= {POSTGRES_TARGET:,} points/s: not measured (give --postgres URL)")
    else:
        verdict = (
            "MET" if postgres.best >= POSTGRES_TARGET else f"NOT MET (short by {POSTGRES_TARGET / postgres.best:.2f}x)"
        )
        print(f"TARGET ours on PostgreSQL >= {POSTGRES_TARGET:,} points/s: {postgres.best:,.0f} points/s -> {verdict}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Workload(args.runs, args.params, args.metrics, args.steps)
    mlflow_work = work.with_runs(args.mlflow_runs)
    if args.mlflow_json:
        (seconds, cpu_seconds), version = bench_mlflow(mlflow_work)
        print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "version": version}))
        return 0

    sys.path.insert(0, str(ROOT))
    # No heartbeat write fires during a pass, so nothing touches a store after its folder is removed.
    os.environ.setdefault("TRACKING_HEARTBEAT_SECONDS", "3600")
    print(
        f"Logging throughput: {work.runs} runs x {work.params} params x {work.metrics} metrics x {work.steps} steps"
        f" = {work.points:,} metric points; best of {args.repeat} interleaved passes"
    )
    ours = Result("ours, SQLite", work.points, work.runs)
    raw = Result("raw sqlite3 executemany (limit)", work.points, work.runs)
    variants: list[tuple[Result, Callable[[], Timed]]] = [(ours, lambda: bench_ours_sqlite(work))]
    postgres = None
    if args.postgres:
        postgres = Result("ours, PostgreSQL", work.points, work.runs)
        variants.append((postgres, lambda: bench_ours_postgres(work, args.postgres)))
    variants.append((raw, lambda: bench_raw(work)))
    same = Result("raw sqlite3, our schema and writes", work.points, work.runs)
    variants.append((same, lambda: bench_raw_same_writes(work)))
    measure_interleaved(variants, args.repeat)
    mlflow = None if args.no_mlflow else measure_mlflow(mlflow_work, args.mlflow_python)

    print_table([result for result, _ in variants] + ([mlflow] if mlflow else []))
    print_targets(ours, raw, mlflow, postgres)
    print(
        f"ours vs raw sqlite3 with our schema and writes: {same.best / ours.best:.2f}x slower by the clock,"
        f" {ours.cpu_us_per_point / same.cpu_us_per_point:.2f}x the CPU (the run API's own cost)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
