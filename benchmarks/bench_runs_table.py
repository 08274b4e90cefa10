"""The runs explorer at scale: fill a store with 100,000 runs and 10,000,000 metric points, then time it.

The store gets `--runs` runs (20 params and 10 final metrics each, spread over experiments and sweeps,
a few failed with a traceback) and `--points` metric-history points, written with the database
driver's bulk paths (one executemany per batch on SQLite, COPY on PostgreSQL) in a few transactions.
Then it times what a user waits for:

- the runs-table query: the first page of 100 rows sorted by a metric, with 4 params and 4 metrics as
  columns, and the count of matching runs;
- a filter: `metrics.m0 > 0.5 and params.p1 < 3`, first page and count;
- the search box (`trial-12 gini`), alone and with the filter; a page read from the previous page's cursor;
- the param/metric key discovery (cold, then incremental after one more run);
- the Runs page as a whole script run (Streamlit's AppTest), with a cold and a warm cache;
- the Compare page for 50 runs (AppTest), cold.

Targets on the project machine (2 cores): the table query and the filter under 0.5 s, the Runs page
under 2 s, the Compare page for 50 runs under 2 s. Each timing is the best of `--repeat` tries.

Run from the repository root with the project's venv:

    python benchmarks/bench_runs_table.py                          # 100,000 runs, 10M points, SQLite
    python benchmarks/bench_runs_table.py --runs 10000 --points 1000000
    python benchmarks/bench_runs_table.py --home /tmp/bench-100k --keep   # fill once ...
    python benchmarks/bench_runs_table.py --home /tmp/bench-100k --keep   # ... and reuse it
    python benchmarks/bench_runs_table.py --store postgresql+psycopg://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BATCH_ROWS = 200_000
TABLE_TARGET = 0.5
PAGE_TARGET = 2.0
FILTER = "metrics.m0 > 0.5 and params.p1 < 3"
SEARCH = "trial-12 gini"  # the search box: names trial-12, trial-120..129, trial-1200.. and a param value
CHOICES = ("gini", "entropy", "log_loss")
COMPARED = 50
ACCOUNT, PASSWORD = "bench", "bench-password-1"  # the account the page timings sign in as
SIGNED_OUT = {"Sign in", "Create the first admin"}  # headings of the forms a signed-out run stops at
SIGN_IN_BUTTONS = {"Sign in", "Create admin and sign in"}
TRACEBACK = 'Traceback (most recent call last):\n  File "train.py", line 12, in <module>\nValueError: diverged\n'


@contextmanager
def phase(label: str, timings: dict[str, float]) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[label] = time.perf_counter() - start
    print(f"  {label:<44} {timings[label]:8.2f} s", flush=True)


def best_of(repeat: int, action: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


# -- filling -----------------------------------------------------------------------------------------


def _params(rng: random.Random, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i in range(n):
        if i % 5 == 1:
            out[f"p{i}"] = rng.randrange(10)  # small ints: `params.p1 < 3` keeps about 30 %
        elif i % 5 == 4:
            out[f"p{i}"] = rng.choice(CHOICES)
        else:
            out[f"p{i}"] = round(10 ** rng.uniform(-4, 1), 6)
    return out


def _environment(host: str) -> dict[str, Any]:
    return {
        "python": "3.11.7",
        "platform": "Linux-6.1.0-x86_64-with-glibc2.36",
        "host": host,
        "packages": {"optuna": "5.0.0", "scikit-learn": "1.9.1", "numpy": "2.4.6", "pandas": "3.1.1"},
    }


def fill(url: str, home: Path, n_runs: int, n_points: int, n_params: int, n_metrics: int) -> dict[str, float]:
    """Create the store and bulk-insert the runs and points; returns the time of each phase."""
    from tracking.runs import bulk_log_runs
    from tracking.store._db import bump_change_counter, open_store

    timings: dict[str, float] = {}
    rng = random.Random(7)
    store = open_store(url, home=home)
    postgres = not store.is_sqlite
    n_experiments, runs_per_sweep = 10, 1000
    n_sweeps = max(1, n_runs // runs_per_sweep)
    started = datetime(2026, 1, 1, tzinfo=UTC)
    print(f"Filling {store.display_url}: {n_runs:,} runs, {n_points:,} metric points", flush=True)
    with phase("experiments, datasets, sweeps", timings), store.connect(write=True) as conn:
        cur = conn.connection.driver_connection.cursor()
        mark = "%s" if postgres else "?"
        json_mark = "%s::jsonb" if postgres else "?"
        for e in range(n_experiments):
            cur.execute(
                f"INSERT INTO experiments (id, name, description, created_at) VALUES ({mark}, {mark}, '', {mark})",
                (e + 1, f"experiment-{e}", _ts(started, postgres)),
            )
        for d in range(5):
            cur.execute(
                "INSERT INTO dataset_versions (id, name, sha256, source, path, n_rows, n_columns, schema, stats, "
                f"created_at) VALUES ({mark}, {mark}, {mark}, 'builtin', NULL, 1000, 20, {json_mark}, {json_mark}, {mark})",
                (d + 1, f"dataset-{d % 3}", f"{d:02x}" * 32, "{}", "{}", _ts(started, postgres)),
            )
        for s in range(n_sweeps):
            config = json.dumps({"metrics": [{"key": "m0", "direction": "maximize"}], "model": "random_forest"})
            cur.execute(
                "INSERT INTO sweeps (id, name, experiment_id, dataset_version_id, config, study_name, optuna_storage, "
                "n_trials, status, cancel_requested, stop_now, owner, created_at) VALUES "
                f"({mark}, {mark}, {mark}, {mark}, {json_mark}, {mark}, 'rdb', {mark}, 'complete', false, false, '', {mark})",
                (s + 1, f"sweep-{s}", s % n_experiments + 1, s % 5 + 1, config, f"study-{s}", runs_per_sweep,
                 _ts(started, postgres)),
            )  # fmt: skip
        cur.execute(
            f"INSERT INTO workers (id, sweep_id, host, pid, started_at, last_seen, stopped_at) VALUES "
            f"(1, NULL, 'bench', 1, {mark}, {mark}, {mark})",
            (_ts(started, postgres),) * 3,
        )
    with phase("runs (bulk_log_runs)", timings):
        bulk_log_runs(store, generate_runs(rng, n_runs, n_params, n_metrics, n_experiments, runs_per_sweep, started))
    with phase("metric points", timings):
        per_run = max(1, n_points // max(1, n_runs))
        keys = [f"m{i}" for i in range(n_metrics)]
        steps = max(1, per_run // len(keys))
        written, run_id, now = 0, 1, time.time()
        while written < n_points and run_id <= n_runs:
            batch = []
            while len(batch) < BATCH_ROWS * 5 and written + len(batch) < n_points and run_id <= n_runs:
                level = rng.random()
                for key in keys:
                    for step in range(steps):
                        batch.append((run_id, key, step, level * (1 - 0.5 ** (step + 1)), now))
                run_id += 1
            batch = batch[: n_points - written]
            _insert_points(store, batch, postgres)
            written += len(batch)
        timings["points written"] = written
    with phase("analyze", timings), store.connect(write=True) as conn:
        conn.exec_driver_sql("ANALYZE")
        bump_change_counter(conn)
    if postgres:
        with store.connect(write=True) as conn:
            for table in ("experiments", "dataset_versions", "sweeps", "workers"):
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                )
    return timings


def generate_runs(
    rng: random.Random,
    n_runs: int,
    n_params: int,
    n_metrics: int,
    n_experiments: int,
    runs_per_sweep: int,
    started: datetime,
) -> Iterator[dict[str, Any]]:
    """The benchmark's runs, as `bulk_log_runs` takes them (a few failed, some pruned), one at a time."""
    for run_id in range(1, n_runs + 1):
        sweep = (run_id - 1) // runs_per_sweep
        status = "failed" if run_id % 97 == 0 else "pruned" if run_id % 13 == 0 else "complete"
        begin = started + timedelta(seconds=run_id * 30)
        yield {
            "experiment": f"experiment-{sweep % n_experiments}",
            "name": f"trial-{(run_id - 1) % runs_per_sweep}",
            "sweep_id": sweep + 1,
            "trial_number": (run_id - 1) % runs_per_sweep,
            "status": status,
            "params": _params(rng, n_params),
            "metrics": {f"m{i}": rng.random() for i in range(n_metrics)} if status != "failed" else {},
            "dataset_version_id": sweep % 5 + 1,
            "code_version": f"{rng.getrandbits(160):040x}",
            "seed": run_id,
            "host": f"worker-{run_id % 4}",
            "error": TRACEBACK if status == "failed" else None,
            "started_at": begin,
            "finished_at": begin + timedelta(seconds=rng.uniform(1, 600)),
        }  # fmt: skip


def _ts(moment: datetime, postgres: bool) -> Any:
    return moment if postgres else moment.replace(tzinfo=None).isoformat(sep=" ")


def _insert_points(store: Any, batch: list[tuple], postgres: bool) -> None:
    with store.connect(write=True) as conn:
        raw = conn.connection.driver_connection
        if postgres:
            with (
                raw.cursor() as cur,
                cur.copy("COPY metric_points (run_id, key, step, value, timestamp) FROM STDIN") as copy,
            ):
                for row in batch:
                    copy.write_row(row)
        else:
            raw.executemany(
                "INSERT INTO metric_points (run_id, key, step, value, timestamp) VALUES (?, ?, ?, ?, ?)", batch
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--params", type=int, default=20)
    parser.add_argument("--metrics", type=int, default=10)
    parser.add_argument("--store", help="a store URL (default: a SQLite file in --home)")
    parser.add_argument("--home", type=Path, help="TRACKING_HOME to fill or reuse (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep --home afterwards (reused when already filled)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    home = (args.home or Path(tempfile.mkdtemp(prefix="bench-runs-"))).resolve()
    url = args.store or f"sqlite:///{home / 'tracking.db'}"
    os.environ["TRACKING_HOME"] = str(home)
    if args.store:
        os.environ["TRACKING_STORE_URL"] = args.store
    try:
        from sqlalchemy import func, select

        from tracking.store._db import open_store
        from tracking.store._tables import Run

        store = open_store(url, home=home)
        with store.connect() as conn:
            existing = conn.execute(select(func.count()).select_from(Run)).scalar_one()
        if existing == 0:
            fill(url, home, args.runs, args.points, args.params, args.metrics)
        else:
            print(f"Reusing {store.display_url} with {existing:,} runs")
        measure(store, args.repeat)
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    return 0


def measure(store: Any, repeat: int) -> dict[str, float]:
    """Time the explorer's queries and pages on a filled store; prints and returns the figures.

    Every figure is printed only after the thing timed was checked to be the real one (the pages drew their
    table for the store's runs, the queries returned their rows), else the script exits non-zero."""
    from tracking.explore._table import list_keys, runs_page
    from tracking.runs._runs import start_run

    figures: dict[str, float] = {}
    start = time.perf_counter()
    keys = list_keys(store)  # the first visit after a bulk import reads every run once
    first_keys = time.perf_counter() - start
    if not keys.params or not keys.metrics:
        raise WrongPage(f"the key catalogue found {len(keys.params)} params and {len(keys.metrics)} metrics: "
                        "the store holds no filled runs to measure.")  # fmt: skip
    columns = [f"params.{k}" for k in keys.params[:4]] + [f"metrics.{k}" for k in keys.metrics[:4]]
    sort = f"metrics.{keys.metrics[0]}"
    print(f"\nTimings (best of {repeat}), {len(columns)} keyed columns, page of 100:", flush=True)

    def show(label: str, seconds: float, target: float | None = None) -> None:
        figures[label] = seconds
        verdict = "" if target is None else ("  ok" if seconds < target else f"  OVER the {target} s target")
        print(f"  {label:<52} {seconds:7.3f} s{verdict}", flush=True)

    show("key catalogue, first visit (reads all runs once)", first_keys)
    with start_run("bench-extra", params={"p0": 1.0}, store=store) as run:
        run.log_metrics({"m0": 0.5})
    total = _count_runs(store)
    show("key catalogue, after one more run", best_of(1, lambda: list_keys(store)))
    show("key catalogue, unchanged store", best_of(repeat, lambda: list_keys(store)))

    def table(label: str, offset: int = 0, **query: Any) -> None:
        def one() -> None:
            page = runs_page(store, columns=columns, offset=0 if "after" in query else offset, **query)
            _check_table(label, page, total, offset, filtered="filter" in query or "search" in query)

        show(label, best_of(repeat, one), TABLE_TARGET)

    table("table: first page, newest first")
    table(f"table: first page sorted by {sort}", sort=sort)
    table(f"filter: {FILTER}", filter=FILTER)
    table("filter, sorted by the metric", filter=FILTER, sort=sort)
    table(f"table: page {total // 200 + 1} sorted by the metric", offset=total // 2, sort=sort)
    table(f"search: {SEARCH!r}", search=SEARCH)
    table("search, with the filter", search=SEARCH, filter=FILTER)
    cursor = runs_page(store, columns=columns, offset=total // 2, sort=sort).next_after
    table(
        f"table: page {total // 200 + 2} from the cursor of the page before", total // 2 + 100, after=cursor, sort=sort
    )
    cold, warm = _runs_page_app(store, columns, sort, repeat)
    show("Runs page (AppTest), cold cache", cold, PAGE_TARGET)
    show("Runs page (AppTest), warm cache", warm, PAGE_TARGET)
    compared, compare = _compare_page_app(store, repeat)
    show(f"Compare page, {compared} runs (AppTest), cold cache", compare, PAGE_TARGET)
    return figures


def _check_table(label: str, page: Any, total: int, offset: int, filtered: bool) -> None:
    """A runs-table query returned a full page of rows and the count of the runs it matched."""
    whole = 0 < page.total < total if filtered else page.total == total
    if not whole or len(page.rows) != min(100, page.total - offset):
        raise WrongPage(f"{label} returned {len(page.rows)} rows of {page.total:,} (the store holds {total:,} runs), "
                        "not the page the figure claims.")  # fmt: skip


def _app(store: Any) -> Any:
    """The dashboard under AppTest, signed in as the benchmark's account, after its first (untimed) run."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    sign_in(at, store)
    at.run()  # the home page: registers the pages of st.navigation
    _check(at, "the home page")
    return at


def sign_in(at: Any, store: Any) -> None:
    """Sign `at` in as the benchmark's account (made on a store without accounts), as tests/pages.py does.

    The one place that knows how a session reaches the app: today its token in the session state."""
    from tracking.governance import create_user, has_accounts
    from tracking.governance import sign_in as open_session

    if not has_accounts(store):
        create_user(store, None, ACCOUNT, "admin", PASSWORD)
    try:
        token, _user = open_session(store, ACCOUNT, PASSWORD)
    except Exception as err:  # a user mistake (another store's accounts): one sentence, not a traceback
        raise SystemExit(f"cannot sign in as {ACCOUNT!r} to measure the pages: {err}") from None
    at.session_state["session_token"] = token


def _runs_page_app(store: Any, columns: list[str], sort: str, repeat: int) -> tuple[float, float]:
    import streamlit as st

    total = _count_runs(store)
    cold = warm = float("inf")
    for _ in range(repeat):
        st.cache_data.clear()
        at = _app(store)
        at.switch_page("pages/runs.py")
        at.query_params.update({"cols": ",".join(columns), "sort": sort})
        start = time.perf_counter()
        at.run()
        cold = min(cold, time.perf_counter() - start)
        _check_runs_page(at, columns, total)
        start = time.perf_counter()
        at.run()
        warm = min(warm, time.perf_counter() - start)
        _check_runs_page(at, columns, total)
    return cold, warm


def _compare_page_app(store: Any, repeat: int) -> tuple[int, float]:
    import streamlit as st
    from sqlalchemy import select

    from tracking.store._tables import Run

    with store.connect() as conn:  # 50 runs from the middle of the store (any 50 on a small one)
        ids = list(conn.execute(select(Run.id).order_by(Run.id).limit(COMPARED).offset(1000)).scalars())
        if len(ids) < COMPARED:
            ids = list(conn.execute(select(Run.id).order_by(Run.id).limit(COMPARED)).scalars())
    best = float("inf")
    for _ in range(repeat):
        st.cache_data.clear()
        at = _app(store)
        at.switch_page("pages/compare.py")
        at.query_params["runs"] = ",".join(map(str, ids))
        start = time.perf_counter()
        at.run()
        best = min(best, time.perf_counter() - start)
        _check_compare_page(at, len(ids))
    return len(ids), best


def _count_runs(store: Any) -> int:
    from sqlalchemy import func, select

    from tracking.store._tables import Run

    with store.connect() as conn:
        return conn.execute(select(func.count()).select_from(Run)).scalar_one()


class WrongPage(SystemExit):
    """A timed page run that did not draw what the figure claims to measure: exit non-zero with one sentence."""


def _check(at: Any, page: str) -> None:
    """Fail unless `at` ran without an exception and past the sign-in (a signed-out run only draws a form)."""
    if at.exception:
        raise WrongPage(f"{page} raised instead of rendering: {at.exception[0].value}")
    headings = {element.value for element in (*at.title, *at.subheader)}
    if headings & SIGNED_OUT or any(button.label in SIGN_IN_BUTTONS for button in at.button):
        raise WrongPage(f"{page} stopped at the sign-in form, so no figure of it would measure the page itself.")


def _check_runs_page(at: Any, columns: list[str], total: int) -> None:
    """The Runs page drew its table: one page of 100 rows with the chosen columns, and the store's run count."""
    _check(at, "the Runs page")
    if not at.dataframe:
        raise WrongPage("the Runs page drew no table, so its timing is not the table's.")
    frame = at.dataframe[0].value
    shown = f"of **{total:,}** matching"
    if len(frame) != min(100, total) or not set(columns) <= set(frame.columns):
        raise WrongPage(f"the Runs page drew {len(frame)} rows and columns {list(frame.columns)}, not a page of 100 "
                        f"rows with {columns}.")  # fmt: skip
    if not any(shown in caption.value for caption in at.caption):
        raise WrongPage(f"the Runs page does not say '{shown}' (the store holds {total:,} runs).")


def _check_compare_page(at: Any, n: int) -> None:
    """The Compare page drew the comparison of the `n` runs asked for: its caption and its open tab's table."""
    _check(at, "the Compare page")
    if not any(caption.value.startswith(f"{n} runs") for caption in at.caption) or not at.dataframe:
        raise WrongPage(f"the Compare page did not draw the comparison of {n} runs (no '{n} runs' caption or table).")


if __name__ == "__main__":
    raise SystemExit(main())
