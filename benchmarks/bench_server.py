"""The tracking server's cost: a script's logging and a sweep's trials through HTTP, beside the direct store.

- Logging throughput: the workload of `bench_logging.py` (default 200 runs x 10 params x 5 metrics x 100
  steps = 100,000 points) through `tracking.start_run` / `run.log_metrics`, once on the SQLite store
  directly and once through `python -m tracking server` on the same kind of store (a separate process, as
  users start it; the client sends one batch per flush).
- Sweep overhead: the trivial objective of `bench_sweep_overhead.py` (default 100 trials, random sampler),
  once with `run_worker` on the store and once with the remote worker (`run_remote_worker`: the server asks,
  records, tells; the objective runs here).

Each pass starts from a fresh store in a temporary folder; the passes are interleaved and the best of
`--repeat` is reported. Every pass is checked (points, complete runs, trials) before its figure is printed.

    python benchmarks/bench_server.py
    python benchmarks/bench_server.py --runs 50 --trials 50 --repeat 1
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _module(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


logging_bench = _module("bench_logging")
sweep_bench = _module("bench_sweep_overhead")
Timed = tuple[float, float]


@contextlib.contextmanager
def tracking_server(folder: Path) -> Iterator[str]:
    """`python -m tracking server` on a fresh SQLite store in `folder`, until the block leaves; its URL."""
    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "TRACKING_HOME": str(folder), "PYTHONPATH": str(ROOT)}
    env.pop("TRACKING_STORE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "tracking", "server", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/api/health").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the tracking server did not start; run `python -m tracking server` to see why")
        time.sleep(0.1)  # the pause between two checks
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _store(folder: Path) -> Any:
    from tracking.store._db import open_store

    return open_store(f"sqlite:///{folder}/tracking.db", home=folder)


def logging_direct(work: Any) -> Timed:
    return logging_bench.bench_ours_sqlite(work)


def logging_through_server(work: Any) -> Timed:
    from tracking.remote import ServerClient

    with tempfile.TemporaryDirectory(prefix="bench_server_") as tmp, tracking_server(Path(tmp)) as url:
        client = ServerClient(url)
        with tracking_start(client):
            pass
        timed = _log(client, work)
        store = _store(Path(tmp))
        try:
            _check_points(store, work)
        finally:
            store.dispose()
        return timed


@contextlib.contextmanager
def tracking_start(client: Any) -> Iterator[Any]:
    """A warm-up run (untimed): the client's connection and its worker row exist before the clock starts."""
    import tracking

    with tracking.start_run("warm-up", store=client) as run:
        yield run


def _log(client: Any, work: Any) -> Timed:
    import tracking

    keys = work.metric_keys()
    with logging_bench.stopwatch() as timed:
        for r in range(work.runs):
            with tracking.start_run("bench", params=work.run_params(r), store=client) as run:
                for step in range(work.steps):
                    run.log_metrics({key: logging_bench.metric_value(r, step, k) for k, key in enumerate(keys)},
                                    step=step)  # fmt: skip
    return timed[0], timed[1]


def _check_points(store: Any, work: Any) -> None:
    from sqlalchemy import text

    with store.connect() as conn:
        points = conn.execute(text("SELECT count(*) FROM metric_points")).scalar_one()
        complete = conn.execute(text("SELECT count(*) FROM runs WHERE status = 'complete' AND experiment_id = "
                                     "(SELECT id FROM experiments WHERE name = 'bench')")).scalar_one()  # fmt: skip
    if (points, complete) != (work.points, work.runs):
        raise SystemExit(f"expected {work.points} points in {work.runs} runs, found {points} in {complete}")


def sweep_direct(trials: int) -> Timed:
    return sweep_bench.tracked_sweep(trials)


def sweep_through_server(trials: int) -> Timed:
    from tracking.remote import ServerClient
    from tracking.sweeps import SweepSpec, create_sweep, run_remote_worker

    with sweep_bench.bench_folder() as folder, tracking_server(folder) as url:
        (folder / f"{sweep_bench.OBJECTIVE_MODULE}.py").write_text(sweep_bench.OBJECTIVE_SOURCE)
        store = _store(folder)
        try:
            spec = SweepSpec(objective=f"{sweep_bench.OBJECTIVE_MODULE}:objective", space=sweep_bench.SPACE,
                             metrics=["value:min"], sampler="random", n_trials=trials, experiment="bench")  # fmt: skip
            sweep = create_sweep(store, spec)
            client = ServerClient(url)
            with logging_bench.stopwatch() as timed:
                ran = run_remote_worker(client, sweep.id)
            sweep_bench._check_sweep(store, sweep.id, ran, trials)
            return timed[0], timed[1]
        finally:
            store.dispose()


def interleave(variants: list[tuple[list[Timed], Callable[[], Timed]]], repeat: int) -> None:
    for _ in range(repeat):
        for passes, one_pass in variants:
            passes.append(one_pass())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="runs of the logging workload (default 200)")
    parser.add_argument("--trials", type=int, default=100, help="trials of the sweep (default 100)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved passes; the best is reported")
    args = parser.parse_args(argv)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    work = logging_bench.Workload(args.runs, 10, 5, 100)
    log_direct: list[Timed] = []
    log_server: list[Timed] = []
    sweep_local: list[Timed] = []
    sweep_server: list[Timed] = []
    interleave([(log_direct, lambda: logging_direct(work)), (log_server, lambda: logging_through_server(work)),
                (sweep_local, lambda: sweep_direct(args.trials)),
                (sweep_server, lambda: sweep_through_server(args.trials))], args.repeat)  # fmt: skip
    best = {name: min(wall for wall, _ in passes) for name, passes in
            (("log_direct", log_direct), ("log_server", log_server), ("sweep_local", sweep_local),
             ("sweep_server", sweep_server))}  # fmt: skip
    print(f"Logging: {work.runs} runs x {work.metrics} metrics x {work.steps} steps = {work.points:,} points, "
          f"best of {args.repeat}")  # fmt: skip
    print(f"  {'ours, SQLite store directly':<40} {work.points / best['log_direct']:>10,.0f} points/s")
    print(f"  {'ours, through the tracking server':<40} {work.points / best['log_server']:>10,.0f} points/s")
    print(f"Sweep: {args.trials} trials of (x - 2) ** 2, random sampler, best of {args.repeat}")
    print(f"  {'run_worker on the SQLite store':<40} {best['sweep_local'] * 1000 / args.trials:>10.2f} ms/trial")
    print(f"  {'remote worker through the server':<40} {best['sweep_server'] * 1000 / args.trials:>10.2f} ms/trial")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
