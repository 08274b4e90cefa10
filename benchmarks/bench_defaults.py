"""The default sweep setup against random search, on the same budget and seeds; and the demo sweep's time.

For each built-in task and model family below, two sweeps of `--trials` trials (default 20) with the
same seed, the same search space and the same CV folds run one after the other in this process
(`create_sweep` + `run_worker`, one worker, one OpenMP thread as each of two workers gets on a 2-core
machine):

- the defaults: TPE (multivariate) and the `auto` pruner sized to the sweep;
- random search: Optuna's RandomSampler, no pruning.

It prints, per task and seed, the best objective value each found, how many trials completed and were
pruned, and the wall time; then the verdict over all seeds (the defaults' mean best at least as good as
random search's). `--demo` also times the dashboard's demo sweep exactly as the Home page starts it (its
spec and worker count, worker processes through `launch_workers`), until the sweep completes.

Run from the repo root with the project's venv:

    python benchmarks/bench_defaults.py                 # 3 tasks x 2 seeds x 20 trials, both setups
    python benchmarks/bench_defaults.py --seeds 0 --trials 12 --demo
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# (task, model family, CV folds): a classification curve, the loan CSV of the issue, a regression curve.
TASKS = [
    ("breast_cancer", "hist_gradient_boosting", 3),
    ("loan_approval", "hist_gradient_boosting", 3),
    ("diabetes", "gradient_boosting", 3),
]


@dataclass(frozen=True)
class Result:
    best: float
    complete: int
    pruned: int
    seconds: float


def _sweep(
    store, task: str, model: str, folds: int, trials: int, seed: int, sampler: str, pruner: str | None
) -> Result:
    from threadpoolctl import threadpool_limits

    from tracking.runs import list_runs
    from tracking.sweeps import SweepSpec, create_sweep, get_sweep, run_worker

    spec = SweepSpec(model=model, task=task, n_trials=trials, folds=folds, seed=seed, sampler=sampler, pruner=pruner)
    sweep = create_sweep(store, spec)
    started = time.perf_counter()
    with threadpool_limits(1, user_api="openmp"):
        run_worker(store, sweep.id)
    seconds = time.perf_counter() - started
    record = get_sweep(store, sweep.id)
    counts = Counter(run.status for run in list_runs(store, sweep_id=sweep.id))
    # What was timed must be what the table says: every trial finished, none failed, a best value found.
    if sum(counts.values()) != trials or counts["complete"] + counts["pruned"] != trials:
        sys.exit(f"The {sampler} sweep on {task} did not finish its {trials} trials cleanly: {dict(counts)}.")
    if not isinstance(record.best_value, float):
        sys.exit(f"The {sampler} sweep on {task} has no best value.")
    return Result(record.best_value, counts["complete"], counts["pruned"], seconds)


def _demo(store) -> None:
    from tracking.runs import list_runs
    from tracking.sweeps import create_sweep, get_sweep, launch_workers

    logging.getLogger("streamlit").setLevel(logging.ERROR)  # "no runtime": ui.sweeps is imported for its spec only
    from ui.sweeps import DEMO, DEMO_WORKERS

    started = time.perf_counter()
    sweep = create_sweep(store, DEMO)
    procs = launch_workers(store, sweep.id, DEMO_WORKERS)
    for proc in procs:
        proc.wait()
    seconds = time.perf_counter() - started
    record = get_sweep(store, sweep.id)
    counts = Counter(run.status for run in list_runs(store, sweep_id=sweep.id))
    if record.status != "complete" or counts["complete"] + counts["pruned"] != DEMO.n_trials:
        sys.exit(f"The demo sweep did not complete: status {record.status}, runs {dict(counts)}.")
    print(
        f"\ndemo sweep ({DEMO.n_trials} trials of {DEMO.model} on {DEMO.task}, {DEMO.folds} folds, "
        f"{DEMO_WORKERS} workers): {seconds:.1f} s; complete {counts['complete']}, pruned {counts['pruned']}; "
        f"best {record.best_value:.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--demo", action="store_true", help="also time the demo sweep of the Home page")
    parser.add_argument("--demo-only", action="store_true", help="only time the demo sweep")
    args = parser.parse_args()
    os.environ["TRACKING_HOME"] = tempfile.mkdtemp(prefix="bench-defaults-")
    os.environ.pop("TRACKING_STORE_URL", None)
    import optuna

    from tracking.ml import DEFAULT_METRIC, metric_direction
    from tracking.runs import load_task
    from tracking.store import open_store

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = open_store(None)
    print(f"load average at start: {os.getloadavg()[0]:.1f}; {args.trials} trials per sweep, seeds {args.seeds}")
    if not args.demo_only:
        header = "| task (model, metric) | seed | default best | random best | default complete/pruned | default time | random time |"
        print("\n" + header + "\n" + "| --- " * 7 + "|")
        verdicts = []
        for task, model, folds in TASKS:
            task_type = load_task(task, None, None, None).task_type
            key = DEFAULT_METRIC[task_type]
            sign = 1 if metric_direction(key, task_type) == "maximize" else -1
            defaults, randoms = [], []
            for seed in args.seeds:
                ours = _sweep(store, task, model, folds, args.trials, seed, "tpe", None)
                rand = _sweep(store, task, model, folds, args.trials, seed, "random", "none")
                defaults.append(ours)
                randoms.append(rand)
                print(
                    f"| {task} ({model}, {key}) | {seed} | {ours.best:.4f} | {rand.best:.4f} | "
                    f"{ours.complete}/{ours.pruned} | {ours.seconds:.0f} s | {rand.seconds:.0f} s |",
                    flush=True,
                )
            mean_ours = statistics.mean(r.best for r in defaults)
            mean_rand = statistics.mean(r.best for r in randoms)
            verdicts.append((task, key, mean_ours, mean_rand, sign * (mean_ours - mean_rand) >= 0))
        print("\n| task | metric | default mean best | random mean best | default at least as good |")
        print("| --- | --- | --- | --- | --- |")
        for task, key, mean_ours, mean_rand, ok in verdicts:
            print(f"| {task} | {key} | {mean_ours:.4f} | {mean_rand:.4f} | {'yes' if ok else 'NO'} |")
    if args.demo or args.demo_only:
        _demo(store)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
