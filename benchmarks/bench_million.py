"""A million runs: the runs explorer's questions on SQLite and PostgreSQL side by side, and MLflow's answer.

Fills a store with `--runs` runs (20 params and 10 final metrics each) through the library's bulk path
(`tracking.runs.bulk_log_runs`: batched transactions, the index rows and search words with them) and
`--points` metric-history points (`tracking.runs.bulk_log_points`: streamed, batched), then times, best of
`--repeat`, each against the 0.5 s target:

- the runs table newest first, and sorted by a metric (first page of 100, 8 keyed columns);
- a two-condition filter `metrics.m0 > 0.5 and params.p1 = 2`;
- the search box (`--search`, words of names, experiments, sweeps, tags, notes, param values);
- page 1,000 (`--page`) of the table sorted by the metric: at offset 99,900, and from page 999's cursor.

With `--mlflow-runs N` (and `mlflow` importable: it is optional) the same questions go to MLflow's SQLite
store holding N runs (rows copied into MLflow's own tables from one run MLflow logged itself, so its
schema is whatever the installed MLflow made), through `MlflowClient.search_runs`.

    python benchmarks/bench_million.py                                   # SQLite, 1,000,000 runs, no points
    python benchmarks/bench_million.py --runs 100000 --points 10000000 --mlflow-runs 100000
    python benchmarks/bench_million.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/million
    python benchmarks/bench_million.py --home /tmp/million --keep       # fill once, then reuse
    python benchmarks/bench_million.py --points 100000000              # the issue's 100 million points
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib.util
import json
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET = 0.5
FILTER = "metrics.m0 > 0.5 and params.p1 = 2"  # a question MLflow can ask too (its params are text: = only)
PAGE = 100


def _bench_runs_table() -> Any:
    spec = importlib.util.spec_from_file_location("bench_runs_table", ROOT / "benchmarks" / "bench_runs_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def best_of(repeat: int, action: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - start)
    return best, result


def generate_points(n_runs: int, n_points: int, n_metrics: int) -> Iterator[tuple[int, str, int, float, float]]:
    """`n_points` metric points spread evenly over the runs, in (run, key, step) order, one at a time."""
    keys = [f"m{i}" for i in range(n_metrics)]
    steps = max(1, n_points // max(1, n_runs) // len(keys))
    written, now, rng = 0, time.time(), random.Random(11)
    for run_id in range(1, n_runs + 1):
        level = rng.random()
        for key in keys:
            for step in range(steps):
                if written == n_points:
                    return
                yield run_id, key, step, level * (1 - 0.5 ** (step + 1)), now
                written += 1


def progress(points: Iterator[Any], start: float, every: int = 10_000_000) -> Iterator[Any]:
    """The points, printing how many went by and when (a long fill can be stopped and measured as it stands)."""
    for i, point in enumerate(points, 1):
        yield point
        if i % every == 0:
            print(f"  {i:,} points in {time.perf_counter() - start:.0f} s", flush=True)


@contextlib.contextmanager
def secondary_indexes_deferred(store: Any, tables: tuple[str, ...]) -> Iterator[None]:
    """Drop the tables' plain (not unique) indexes for the fill and build them after: one sort per index
    instead of a random insertion per row, which thrashes the cache once an index outgrows it."""
    if store.is_sqlite:
        marks = ", ".join("?" * len(tables))
        sql = (
            f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN ({marks}) "
            "AND sql IS NOT NULL AND sql NOT LIKE 'CREATE UNIQUE%'"
        )
        params: Any = tables
    else:
        sql = (
            "SELECT i.indexname, i.indexdef FROM pg_indexes i JOIN pg_class c ON c.relname = i.indexname "
            "JOIN pg_index x ON x.indexrelid = c.oid WHERE i.schemaname = current_schema() "
            "AND i.tablename = ANY(%(tables)s) AND NOT x.indisunique"
        )
        params = {"tables": list(tables)}
    with store.connect(write=True) as conn:
        found = conn.exec_driver_sql(sql, params).all()
        for name, _ in found:
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
    try:
        yield
    finally:
        start = time.perf_counter()
        with store.connect(write=True) as conn:
            if store.is_sqlite:
                conn.exec_driver_sql("PRAGMA cache_size = -1048576")
            else:
                conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '1GB'")
            for _, definition in found:
                conn.exec_driver_sql(definition)
            conn.exec_driver_sql("ANALYZE" if store.is_sqlite else f"ANALYZE {', '.join(tables)}")
        print(f"  {len(found)} indexes built in {time.perf_counter() - start:.0f} s", flush=True)


def continue_fill(store: Any, bench: Any, existing: int, args: argparse.Namespace) -> None:
    """The runs after the first `existing` of the fill (a fill that was stopped goes on where it stopped)."""
    from itertools import islice

    from tracking.runs import bulk_log_runs

    rng, started = random.Random(7), datetime(2026, 1, 1, tzinfo=UTC)
    runs = bench.generate_runs(rng, args.runs, args.params, args.metrics, 10, 1000, started)
    print(f"Continuing {store.display_url}: runs {existing + 1:,} to {args.runs:,}", flush=True)
    bulk_log_runs(store, islice(runs, existing, None))


def ours(url: str, home: Path, args: argparse.Namespace) -> dict[str, float]:
    """Fill (unless already filled) and time one store; the figures by question."""
    from sqlalchemy import func, select

    from tracking.explore import list_keys, runs_page
    from tracking.runs import bulk_log_points
    from tracking.store import Run, open_store

    bench = _bench_runs_table()
    store = open_store(url, home=home)
    with store.connect() as conn:
        existing = conn.execute(select(func.count()).select_from(Run)).scalar_one()
    home.mkdir(parents=True, exist_ok=True)
    saved = home / f"fill-{'sqlite' if store.is_sqlite else 'postgresql'}.json"
    figures: dict[str, float] = json.loads(saved.read_text()) if saved.exists() else {}
    if existing < args.runs:
        print(f"Filling {store.display_url}: {args.runs:,} runs", flush=True)
        start = time.perf_counter()
        with secondary_indexes_deferred(store, ("runs", "run_values", "run_words", "run_tags")):
            if existing:
                continue_fill(store, bench, existing, args)
            else:
                bench.fill(url, home, args.runs, 0, args.params, args.metrics)
        figures[f"fill: {args.runs:,} runs (bulk_log_runs)"] = figures.get("fill: runs so far", 0) + (
            time.perf_counter() - start
        )
        saved.write_text(json.dumps(figures))
    else:
        print(f"Reusing {store.display_url} with {existing:,} runs", flush=True)
    with store.connect() as conn:
        has_points = conn.exec_driver_sql("SELECT 1 FROM metric_points LIMIT 1").first() is not None
    if args.points and not has_points:
        print(f"Filling {store.display_url}: {args.points:,} points", flush=True)
        start = time.perf_counter()
        written = bulk_log_points(store, progress(generate_points(args.runs, args.points, args.metrics), start))
        figures[f"fill: {written:,} points (bulk_log_points)"] = time.perf_counter() - start
        with store.connect(write=True) as conn:
            conn.exec_driver_sql("ANALYZE")
        saved.write_text(json.dumps(figures))
    keys = list_keys(store)
    columns = [f"params.{k}" for k in keys.params[:4]] + [f"metrics.{k}" for k in keys.metrics[:4]]
    sort = "metrics.m0"
    with store.connect() as conn:
        total = conn.execute(select(func.count()).select_from(Run)).scalar_one()

    def page(label: str, expect_all: bool, **query: Any) -> Any:
        seconds, result = best_of(args.repeat, lambda: runs_page(store, columns=columns, limit=PAGE, **query))
        if (
            len(result.rows) != min(PAGE, result.total)
            or (expect_all and result.total != total)
            or not 0 < result.total <= total
        ):
            raise SystemExit(f"{label} returned {len(result.rows)} rows of {result.total:,} ({total:,} runs): "
                             "not the page the figure claims.")  # fmt: skip
        figures[label] = seconds
        return result

    page("table, newest first", True)
    page(f"table, sorted by {sort}", True, sort=sort)
    page(f"filter: {FILTER}", False, filter=FILTER)
    page(f"search: {args.search!r}", False, search=args.search)
    page(f"page {args.page:,}, sorted by {sort} (offset)", True, sort=sort, offset=(args.page - 1) * PAGE)
    before = runs_page(store, columns=columns, limit=PAGE, sort=sort, offset=(args.page - 2) * PAGE)
    page(f"page {args.page:,} from page {args.page - 1:,}'s cursor", True, sort=sort, after=before.next_after)
    store.dispose()
    return figures


def mlflow_figures(home: Path, n_runs: int, args: argparse.Namespace) -> dict[str, float]:
    """MLflow 3's SQLite store with `n_runs` runs: the same questions through `MlflowClient.search_runs`."""
    try:
        import mlflow
        from mlflow.tracking import MlflowClient
    except ImportError:
        print("mlflow is not importable: its column is left out (pip install mlflow==3.17.2).")
        return {}
    uri = f"sqlite:///{home / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    figures: dict[str, float] = {"version": float("nan")}
    print(f"MLflow {mlflow.__version__}: {uri}", flush=True)
    found = client.search_experiments(filter_string="name = 'bench'")
    experiment = found[0].experiment_id if found else client.create_experiment("bench", str(home / "mlruns"))
    if not client.search_runs([experiment], max_results=1):
        start = time.perf_counter()
        _fill_mlflow(client, home / "mlflow.db", experiment, n_runs, args)
        figures["fill: runs (rows copied into its tables)"] = time.perf_counter() - start
    del figures["version"]
    offset_token = base64.b64encode(json.dumps({"offset": (args.page - 1) * PAGE}).encode()).decode()
    questions = {
        "table, newest first": {"order_by": ["attributes.start_time DESC"]},
        "table, sorted by metrics.m0": {"order_by": ["metrics.m0 DESC"]},
        f"filter: {FILTER}": {"filter_string": "metrics.m0 > 0.5 and params.p1 = '2'"},
        f"search: {args.search!r}": {"filter_string": f"attributes.run_name ILIKE '%{args.search.split()[0]}%'"},
        f"page {args.page:,}, sorted by metrics.m0 (offset)": {
            "order_by": ["metrics.m0 DESC"], "page_token": offset_token,
        },
    }  # fmt: skip
    for label, query in questions.items():
        seconds, result = best_of(args.repeat, lambda q=query: client.search_runs([experiment], max_results=PAGE, **q))
        if not result:
            raise SystemExit(f"MLflow's {label} returned no runs: not the page the figure claims.")
        figures[label] = seconds
    return figures


def _fill_mlflow(client: Any, path: Path, experiment: str, n_runs: int, args: argparse.Namespace) -> None:
    """Log one run through MLflow, then copy its rows (runs, params, metrics, latest_metrics, tags) n times."""
    import sqlite3

    from mlflow.entities import Metric, Param

    bench = _bench_runs_table()
    rng = random.Random(7)
    template = client.create_run(experiment, run_name="template")
    params = bench._params(rng, args.params)
    client.log_batch(
        template.info.run_id,
        metrics=[Metric(f"m{i}", 0.5, 0, 0) for i in range(args.metrics)],
        params=[Param(k, str(v)) for k, v in params.items()],
    )
    client.set_terminated(template.info.run_id)
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    rows = {
        table: [dict(row) for row in db.execute(f"SELECT * FROM {table} WHERE run_uuid = ?", (template.info.run_id,))]
        for table in ("runs", "params", "metrics", "latest_metrics", "tags")
    }
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
    for first in range(0, n_runs, 10_000):
        batch: dict[str, list[dict[str, Any]]] = {table: [] for table in rows}
        for i in range(first, min(n_runs, first + 10_000)):
            run_uuid = uuid.uuid4().hex
            params = {k: str(v) for k, v in bench._params(rng, args.params).items()}
            metrics = {f"m{j}": rng.random() for j in range(args.metrics)}
            for row in rows["runs"]:
                batch["runs"].append({**row, "run_uuid": run_uuid, "name": f"trial-{i % 1000}",
                                      "start_time": start + i * 30_000, "end_time": start + i * 30_000 + 60_000})  # fmt: skip
            for table in ("params",):
                batch[table] += [{**row, "run_uuid": run_uuid, "value": params[row["key"]]} for row in rows[table]]
            for table in ("metrics", "latest_metrics"):
                batch[table] += [{**row, "run_uuid": run_uuid, "value": metrics[row["key"]]} for row in rows[table]]
            for row in rows["tags"]:
                value = f"trial-{i % 1000}" if row["key"] == "mlflow.runName" else row["value"]
                batch["tags"].append({**row, "run_uuid": run_uuid, "value": value})
        for table, items in batch.items():
            if items:
                names = list(items[0])
                db.executemany(
                    f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                    [tuple(item[name] for name in names) for item in items],
                )
        db.commit()
    db.execute("ANALYZE")
    db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--points", type=int, default=0, help="metric points to add (the issue asks 100,000,000)")
    parser.add_argument("--params", type=int, default=20)
    parser.add_argument("--metrics", type=int, default=10)
    parser.add_argument("--search", default="trial-123 gini", help="what to type in the search box")
    parser.add_argument("--postgres", help="an empty PostgreSQL database URL, timed beside SQLite")
    parser.add_argument("--no-sqlite", action="store_true", help="time PostgreSQL alone")
    parser.add_argument("--mlflow-runs", type=int, default=0, help="also ask MLflow's SQLite store with N runs")
    parser.add_argument("--home", type=Path, help="folder for the stores (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep --home afterwards (reused when already filled)")
    parser.add_argument("--page", type=int, default=1000, help="the deep page to time (pages of 100)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    home = (args.home or Path(tempfile.mkdtemp(prefix="bench-million-"))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["TRACKING_HOME"] = str(home)
    columns: dict[str, dict[str, float]] = {}
    try:
        if not args.no_sqlite:
            columns["SQLite"] = ours(f"sqlite:///{home / 'tracking.db'}", home, args)
        if args.postgres:
            columns["PostgreSQL"] = ours(args.postgres, home / "pg", args)
        if args.mlflow_runs:
            (home / "mlflow").mkdir(exist_ok=True)
            figures = mlflow_figures(home / "mlflow", args.mlflow_runs, args)
            if figures:
                columns[f"MLflow, {args.mlflow_runs:,} runs"] = figures
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    report(columns, args)
    return 0


def report(columns: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    labels = list(dict.fromkeys(label for figures in columns.values() for label in figures))
    print(f"\n{args.runs:,} runs ({args.params} params, {args.metrics} metrics), best of {args.repeat}, "
          f"pages of {PAGE} (target {TARGET} s):")  # fmt: skip
    print("| question | " + " | ".join(columns) + " |")
    print("| --- |" + " --- |" * len(columns))
    for label in labels:
        cells = []
        for figures in columns.values():
            seconds = figures.get(label)
            over = "" if seconds is None or label.startswith("fill") or seconds < TARGET else " (over)"
            cells.append("—" if seconds is None else f"{seconds:.3f} s{over}")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
