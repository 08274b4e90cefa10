"""Tracking overhead per sweep trial: our tracked sweep against bare Optuna on the same kind of storage.

A trivial objective, `(x - 2) ** 2` with x uniform in [-10, 10], runs for `trials` trials (default
300) with Optuna's RandomSampler in three ways:

- bare Optuna, in-memory storage (`study.optimize`);
- bare Optuna on Optuna's own journal file, `JournalStorage(JournalFileBackend(path))`, for reference;
- bare Optuna on the storage our sweeps use with a SQLite store: Optuna's journal in the store's
  `optuna_journal` table (`tracking.store._journal.journal_storage`);
- our sweep (`create_sweep` + `run_worker` in this process) with a user objective module.

Overhead per trial = (ours - bare Optuna on the same storage) / trials. Target: under 5 ms.
`--profile` adds a cProfile pass of `run_worker` and prints where its time goes, per trial.

Run from the repo root with the project's venv:

    python benchmarks/bench_sweep_overhead.py
    python benchmarks/bench_sweep_overhead.py --trials 100 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 5.0
OBJECTIVE_MODULE = "bench_objective"
OBJECTIVE_SOURCE = '''"""The benchmark's user objective: a trivial function of one float."""


def objective(params, run):
    return (params["x"] - 2) ** 2
'''
SPACE = {"x": {"type": "float", "low": -10, "high": 10}}

# (file suffix, function name, label): the calls whose cumulative time the profile breaks down. Every one must
# show up in the profile (else the script stops): a renamed or moved function is a line that silently vanished.
PROFILED = [
    ("tracking/sweeps/_worker.py", "run_worker", "run_worker (everything)"),
    ("tracking/sweeps/_worker.py", "_recover", "_recover: stale runs + running trials"),
    ("tracking/runs/_liveness.py", "fail_stale_runs", "  fail_stale_runs (read txn)"),
    ("optuna/study/study.py", "get_trials", "  study.get_trials(RUNNING)"),
    ("tracking/sweeps/_worker.py", "_claim", "_claim: locked count + ask + insert run"),
    ("optuna/study/study.py", "ask", "  study.ask"),
    ("tracking/runs/_runs.py", "run_row", "  run_row (provenance)"),
    ("tracking/runs/_runs.py", "insert_run", "  insert_run"),
    ("tracking/sweeps/_worker.py", "_run_trial", "_run_trial"),
    ("tracking/sweeps/_worker.py", "user_objective", "  objective + run.log_metrics"),
    ("tracking/runs/_runs.py", "end", "  ActiveRun.end (write txn)"),
    ("optuna/study/study.py", "tell", "  study.tell"),
    ("tracking/store/_db.py", "connect", "Store.connect (all transactions)"),
    ("tracking/store/_db.py", "_on_begin", "  BEGIN / BEGIN IMMEDIATE"),
    ("sqlalchemy/engine/base.py", "commit", "  COMMIT"),
    ("sqlalchemy/sql/compiler.py", "__init__", "SQLAlchemy statement compilation"),
    ("tracking/store/_journal.py", "append_logs", "Optuna journal appends (in the store)"),
    ("tracking/store/_journal.py", "read_logs", "Optuna journal reads (from the store)"),
]


def trivial_objective(trial: Any) -> float:
    x = trial.suggest_float("x", -10, 10)
    return (x - 2) ** 2


Timed = tuple[float, float]  # (wall-clock seconds, CPU seconds of this process)


@dataclass
class Timing:
    """One row of the table: the timings of every pass of one variant."""

    label: str
    passes: list[Timed] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(wall for wall, _ in self.passes)

    @property
    def median(self) -> float:
        return statistics.median(wall for wall, _ in self.passes)

    @property
    def best_cpu(self) -> float:
        return min(cpu for _, cpu in self.passes)


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """Yields a list that holds [wall seconds, CPU seconds] of the block once the block has left."""
    times: list[float] = []
    wall, cpu = time.perf_counter(), time.process_time()
    yield times
    times.extend([time.perf_counter() - wall, time.process_time() - cpu])


@contextmanager
def bench_folder() -> Iterator[Path]:
    """A temporary folder that is the working folder (and on sys.path) while inside; removed after."""
    previous = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        folder = Path(tmp)
        sys.path.insert(0, tmp)
        os.chdir(folder)
        try:
            yield folder
        finally:
            os.chdir(previous)
            # `import_objective` may have added the working folder too, spelled as os.getcwd() gives it
            sys.path[:] = [entry for entry in sys.path if entry not in (tmp, str(folder.resolve()))]
            for name in [n for n in sys.path_importer_cache if n.startswith(tmp)]:
                del sys.path_importer_cache[name]
            sys.modules.pop(OBJECTIVE_MODULE, None)


def bare_in_memory(trials: int) -> Timed:
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    with stopwatch() as timed:
        study.optimize(trivial_objective, n_trials=trials)
    _check_study(study, trials, "bare Optuna in memory")
    return timed[0], timed[1]


def bare_journal(trials: int) -> Timed:
    import optuna
    from optuna.storages.journal import JournalFileBackend

    with bench_folder() as folder:
        storage = optuna.storages.JournalStorage(JournalFileBackend(str(folder / "bare.journal")))
        study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
        with stopwatch() as timed:
            study.optimize(trivial_objective, n_trials=trials)
        _check_study(study, trials, "bare Optuna on a journal file")
        return timed[0], timed[1]


def bare_store_journal(trials: int) -> Timed:
    import optuna

    from tracking.store._db import open_store
    from tracking.store._journal import journal_storage

    with bench_folder() as folder:
        store = open_store(f"sqlite:///{folder}/tracking.db", home=folder)
        try:
            storage = journal_storage(store, "bare")
            study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
            with stopwatch() as timed:
                study.optimize(trivial_objective, n_trials=trials)
            _check_study(study, trials, "bare Optuna on the store's journal")
            return timed[0], timed[1]
        finally:
            store.dispose()


def tracked_sweep(trials: int, profile: cProfile.Profile | None = None) -> Timed:
    """Create a sweep on a fresh SQLite store and time `run_worker` running all of its trials here."""
    from tracking.store._db import open_store
    from tracking.sweeps._sweeps import SweepSpec, create_sweep
    from tracking.sweeps._worker import run_worker

    with bench_folder() as folder:
        (folder / f"{OBJECTIVE_MODULE}.py").write_text(OBJECTIVE_SOURCE)
        store = open_store(f"sqlite:///{folder}/tracking.db", home=folder)
        try:
            spec = SweepSpec(
                objective=f"{OBJECTIVE_MODULE}:objective",
                space=SPACE,
                metrics=["value:min"],
                sampler="random",
                n_trials=trials,
                experiment="bench",
            )
            sweep = create_sweep(store, spec)
            with stopwatch() as timed:
                if profile is not None:
                    profile.enable()
                ran = run_worker(store, sweep.id)
                if profile is not None:
                    profile.disable()
            _check_sweep(store, sweep.id, ran, trials)
            return timed[0], timed[1]
        finally:
            store.dispose()


class NotMeasured(SystemExit):
    """A pass that did not do what its figure claims (trials failed, a profiled function is gone): exit non-zero."""


def _check_study(study: Any, trials: int, label: str) -> None:
    """Every trial of a bare pass completed with the objective's value (a failing objective is quick, not cheap)."""
    import optuna

    values = [t.value for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(values) != trials or any(v is None or v != v for v in values):
        raise NotMeasured(f"{label} completed {len(values)} of {trials} trials, so its time is not that of the sweep.")


def _check_sweep(store: Any, sweep_id: int, ran: int, trials: int) -> None:
    """Our sweep ran every trial, and each one ended as a complete run with the objective's value logged."""
    from tracking.runs._queries import list_runs

    runs = list_runs(store, sweep_id=sweep_id)
    complete = [r for r in runs if r.status == "complete" and r.metrics.get("value") is not None]
    if ran != trials or len(complete) != trials:
        statuses = sorted({r.status for r in runs})
        raise NotMeasured(f"our sweep ran {ran} trials and completed {len(complete)} of {trials} runs "
                          f"(statuses {statuses}), so its time is not that of tracked trials.")  # fmt: skip


def measure_interleaved(variants: list[tuple[Timing, Callable[[], Timed]]], repeat: int) -> None:
    """Run one pass of every variant per round, `repeat` rounds, so that outside load hits them alike."""
    for i in range(repeat):
        for timing, one_pass in variants:
            timing.passes.append(one_pass())
            wall, cpu = timing.passes[-1]
            print(f"  round {i + 1}/{repeat} {timing.label}: {wall:.3f} s (cpu {cpu:.3f} s)", file=sys.stderr)


def print_profile(profile: cProfile.Profile, trials: int, top: int, clock: str) -> None:
    """Milliseconds per trial (cumulative, under the profiler) of the calls in PROFILED, then the top own times."""
    stats = pstats.Stats(profile)
    entries = stats.stats  # {(file, line, name): (calls, primitive calls, own s, cumulative s, callers)}
    print(
        f"\nWhere run_worker's time goes (cProfile, {clock} clock, cumulative ms per trial; the profiler inflates all):"
    )
    missing = [f"{suffix}:{name}" for suffix, name, _ in PROFILED
               if not any(fn == name and file.endswith(suffix) for (file, _, fn) in entries)]  # fmt: skip
    if missing:
        raise NotMeasured(f"the profile never saw {', '.join(missing)}: update PROFILED to the code as it is now.")
    for suffix, name, label in PROFILED:
        found = [v for (file, _, fn), v in entries.items() if fn == name and file.endswith(suffix)]
        calls = sum(v[1] for v in found)
        cumulative = sum(v[3] for v in found)
        print(f"  {label:<44} {cumulative * 1000 / trials:>8.2f} ms/trial  ({calls / trials:.1f} calls/trial)")
    print(f"\nTop {top} functions by own time (ms per trial):")
    rows = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)[:top]
    for (file, line, name), (_, calls, own, cumulative, _) in rows:
        where = f"{_short(file)}:{line}({name})"
        print(
            f"  {own * 1000 / trials:>7.2f} own {cumulative * 1000 / trials:>8.2f} cum {calls / trials:>7.1f}/trial {where}"
        )


def _short(file: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=300, help="trials per pass (default 300)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes of each variant; best is reported (3)")
    parser.add_argument("--profile", action="store_true", help="add a cProfile pass of our sweep and print it")
    parser.add_argument("--top", type=int, default=25, help="functions listed by --profile (default 25)")
    parser.add_argument(
        "--profile-clock",
        choices=("wall", "cpu"),
        default="wall",
        help="what --profile measures: wall clock (default) or this process's CPU time (steadier on a busy machine)",
    )
    args = parser.parse_args(argv)
    if min(args.trials, args.repeat, args.top) < 1:
        parser.error("--trials, --repeat and --top must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = args.trials
    print(f"Sweep overhead: {trials} trials of (x - 2) ** 2, RandomSampler, best of {args.repeat} interleaved passes")
    memory = Timing("bare Optuna, in-memory")
    file_journal = Timing("bare Optuna, journal file")
    journal = Timing("bare Optuna, journal in the store")
    ours = Timing("ours: run_worker, SQLite store")
    measure_interleaved(
        [
            (memory, lambda: bare_in_memory(trials)),
            (file_journal, lambda: bare_journal(trials)),
            (journal, lambda: bare_store_journal(trials)),
            (ours, lambda: tracked_sweep(trials)),
        ],
        args.repeat,
    )

    print(f"{'variant':<34} {'best s':>7} {'median s':>9} {'ms/trial':>9} {'cpu ms/trial':>13} {'trials/s':>9}")
    for t in (memory, file_journal, journal, ours):
        print(
            f"{t.label:<34} {t.best:>7.3f} {t.median:>9.3f} {t.best * 1000 / trials:>9.2f}"
            f" {t.best_cpu * 1000 / trials:>13.2f} {trials / t.best:>9.1f}"
        )
    per_trial = 1000 / trials
    vs_journal = (ours.best - journal.best) * per_trial
    print(f"overhead vs bare in-memory: {(ours.best - memory.best) * per_trial:.2f} ms/trial (wall, best passes)")
    print(
        f"overhead vs bare Optuna on the same storage: {vs_journal:.2f} ms/trial (wall, best passes),"
        f" {(ours.median - journal.median) * per_trial:.2f} (wall, medians),"
        f" {(ours.best_cpu - journal.best_cpu) * per_trial:.2f} (CPU of this process)"
    )
    if args.profile:
        profile = cProfile.Profile(time.process_time) if args.profile_clock == "cpu" else cProfile.Profile()
        tracked_sweep(trials, profile)
        print_profile(profile, trials, args.top, args.profile_clock)
    verdict = "MET" if vs_journal < TARGET_MS else f"NOT MET ({vs_journal / TARGET_MS:.1f}x the budget)"
    print(
        f"TARGET tracking overhead < {TARGET_MS:g} ms/trial (ours - bare Optuna on the same storage, wall): "
        f"{vs_journal:.2f} ms/trial -> {verdict}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
