"""Concurrent logging on PostgreSQL: do writers queue on the store's change marker?

Every write transaction of the store adds one to a change counter (the key of the dashboard's caches).
Each PostgreSQL connection has a counter row of its own (`tracking.store._db`), so concurrent writers never
wait for each other's commit there. This script measures it: 1 and then N writer processes (default 8) each
log `runs` runs of `metrics` metrics x `steps` steps through `tracking.start_run`, and a sampler polls
`pg_stat_activity` every few milliseconds for writers waiting on a lock. With `--hot-row` it also measures
the old design for comparison: every connection adds to one shared row.

Run from the repo root with the project's venv:

    python benchmarks/bench_concurrent_logging.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test
    python benchmarks/bench_concurrent_logging.py --postgres URL --writers 1,8 --runs 50 --hot-row

It prints one line per variant: points per second over all writers, and the share of samples in which at
least one writer waited for another's row lock (PostgreSQL's `transactionid` and `tuple` waits: what a shared
counter row causes), the most writers seen waiting at once, and every lock wait seen by kind (e.g. `extend`:
two inserts growing one table's file at once). The target is no row-lock wait with 8 writers on the
per-connection counters.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_logging import metric_value, throwaway_postgres  # noqa: E402

SAMPLE_SECONDS = 0.005
_WAITING = "SELECT wait_event FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
ROW_LOCKS = {"transactionid", "tuple"}  # waiting for another transaction's row lock to be released


@dataclass(frozen=True)
class Outcome:
    writers: int
    hot_row: bool
    points: int
    seconds: float
    samples: int
    waiting_samples: int
    most_waiting: int
    kinds: dict[str, int]

    @property
    def label(self) -> str:
        design = "one shared row (old)" if self.hot_row else "a row per connection"
        return f"{self.writers} writer{'s' if self.writers > 1 else ''}, {design}"


def writer(url: str, home: str, runs: int, metrics: int, steps: int, hot_row: bool, go: object, spans: object) -> None:
    """One writer process: wait for the start signal, log its runs, report when it started and ended."""
    os.environ["TRACKING_HEARTBEAT_SECONDS"] = "3600"  # no heartbeat write during the pass
    import tracking
    import tracking.store._db as db

    if hot_row:  # the design before: every connection adds to the one row of slot 1
        claim = db._claim_change_slot

        def shared_row(dbapi_conn: object, record: object) -> None:
            claim(dbapi_conn, record)  # the staging table too
            record.info[db._SLOT] = 1  # type: ignore[attr-defined]

        db._claim_change_slot = shared_row
    store = tracking.open_store(url, home=home)
    keys = [f"m{k}" for k in range(metrics)]
    with tracking.start_run("warm-up", store=store):  # connections, experiment and worker row made before the clock
        pass
    go.wait()  # type: ignore[attr-defined]
    start = time.perf_counter()  # CLOCK_MONOTONIC: comparable between the processes of one machine
    for r in range(runs):
        with tracking.start_run("bench", params={"r": r}, store=store) as run:
            for step in range(steps):
                run.log_metrics({key: metric_value(r, step, k) for k, key in enumerate(keys)}, step=step)
    spans.put((start, time.perf_counter()))  # type: ignore[attr-defined]
    store.dispose()


def measure(server: str, writers: int, hot_row: bool, runs: int, metrics: int, steps: int) -> Outcome:
    """One pass on a fresh database: `writers` processes logging at once, a sampler watching for lock waits."""
    import psycopg

    import tracking
    from tracking.runs import get_or_create_experiment

    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bench_concurrent_") as home, throwaway_postgres(server) as url:
        store = tracking.open_store(url, home=home)  # migrated once, before the writers start
        for name in ("warm-up", "bench"):
            get_or_create_experiment(store, name)
        store.dispose()
        go, spans = context.Event(), context.Queue()
        processes = [
            context.Process(target=writer, args=(url, home, runs, metrics, steps, hot_row, go, spans))
            for _ in range(writers)
        ]
        for process in processes:
            process.start()
        plain = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain, autocommit=True) as watch:
            deadline = time.monotonic() + 120
            while (
                watch.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()").fetchone()[0]
                < writers + 1
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError("the writer processes did not connect within 120 s")
                time.sleep(0.05)  # the writers import and connect; the clock has not started
            time.sleep(1.0)  # let the warm-up runs finish
            stats = {"samples": 0, "waiting": 0, "most": 0}
            kinds: Counter[str] = Counter()
            stop = threading.Event()

            def sample() -> None:
                with psycopg.connect(plain, autocommit=True) as conn:
                    while not stop.is_set():
                        events = [row[0] for row in conn.execute(_WAITING)]
                        kinds.update(events)
                        waiting = sum(event in ROW_LOCKS for event in events)
                        stats["samples"] += 1
                        stats["waiting"] += waiting > 0
                        stats["most"] = max(stats["most"], waiting)
                        time.sleep(SAMPLE_SECONDS)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            go.set()
            for process in processes:
                process.join()
            stop.set()
            sampler.join()
        if any(process.exitcode != 0 for process in processes):
            raise RuntimeError("a writer process failed: see its traceback above")
        ends = [spans.get() for _ in processes]
        seconds = max(end for _, end in ends) - min(begin for begin, _ in ends)  # first start to last end
    points = writers * runs * metrics * steps
    return Outcome(writers, hot_row, points, seconds, stats["samples"], stats["waiting"], stats["most"], dict(kinds))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--postgres", metavar="URL", required=True, help="a server where throwaway databases can be made"
    )
    parser.add_argument("--writers", default="1,8", help="comma-separated writer counts (default 1,8)")
    parser.add_argument("--runs", type=int, default=40, help="runs per writer (default 40)")
    parser.add_argument("--metrics", type=int, default=5, help="metrics per step (default 5)")
    parser.add_argument("--steps", type=int, default=100, help="steps per run (default 100)")
    parser.add_argument("--hot-row", action="store_true", help="also measure the old design (one shared counter row)")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.writers.split(",")]
    print(
        f"Concurrent logging on PostgreSQL: per writer {args.runs} runs x {args.metrics} metrics x {args.steps} steps;"
        f" lock waits sampled every {SAMPLE_SECONDS * 1000:g} ms"
    )
    print(
        f"{'variant':<36} {'points':>9} {'seconds':>8} {'points/s':>10} {'row-lock waits':>15} {'most waiting':>13}"
        "  lock waits seen, by kind"
    )
    outcomes = []
    for hot_row in [False, True] if args.hot_row else [False]:
        for writers in counts:
            o = measure(args.postgres, writers, hot_row, args.runs, args.metrics, args.steps)
            outcomes.append(o)
            share = f"{o.waiting_samples}/{o.samples}"
            kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(o.kinds.items())) or "none"
            print(
                f"{o.label:<36} {o.points:>9,} {o.seconds:>8.2f} {o.points / o.seconds:>10,.0f} {share:>15}"
                f" {o.most_waiting:>13}  {kinds}"
            )
    busiest = max((o for o in outcomes if not o.hot_row), key=lambda o: o.writers)
    verdict = "MET" if busiest.waiting_samples == 0 else "NOT MET"
    print(
        f"TARGET no row-lock waits with {busiest.writers} concurrent writers: {busiest.waiting_samples} of"
        f" {busiest.samples} samples saw a writer waiting for another's row -> {verdict}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
