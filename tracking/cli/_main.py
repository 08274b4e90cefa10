"""`python -m tracking`: sweeps, workers and reads over the tracking store, from the shell.

User mistakes exit with status 2 and one line on stderr (`error: ...`); no traceback.
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tracking._errors import TrackingError
from tracking.cli import _interop as interop
from tracking.cli import _lifecycle as lifecycle
from tracking.cli import _server as tracking_server
from tracking.cli import _serving as serving
from tracking.cli import _tokens as tokens
from tracking.cli import _trash as trash
from tracking.cli import _ui as dashboard
from tracking.cli import _webhooks as webhooks
from tracking.cli._args import record_id
from tracking.cli._governance import add_parsers, cli_actor, cmd_audit, cmd_registry, cmd_users
from tracking.ml import FAMILIES, load_space_file
from tracking.runs import fail_stale_runs, get_run, list_artifacts, list_datasets, list_runs
from tracking.store import iso, open_store
from tracking.sweeps import (
    EXECUTORS,
    DaskLaunch,
    SweepSpec,
    cancel_sweep,
    check_dask_target,
    create_sweep,
    get_sweep,
    launch_dask_workers,
    list_sweeps,
    reopen_sweep,
    run_worker,
    start_workers,
)

EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        self.exit(EXIT_USER_ERROR, f"error: {message} (see --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be greater than 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    prog = "tracking" if Path(sys.argv[0]).name == "tracking" else "python -m tracking"  # as the user typed it
    parser = _Parser(prog=prog, description="Experiment tracking: sweeps, workers, runs.")
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument("--store", metavar="URL", help="SQLAlchemy URL of the store (default: TRACKING_STORE_URL, "
                       "else a SQLite file under TRACKING_HOME)")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sweep = sub.add_parser("sweep", parents=[store], help="start a hyperparameter sweep and watch it")
    data = sweep.add_argument_group("data")
    data.add_argument("--task", help="built-in dataset: breast_cancer, wine, digits, iris, diabetes, loan_approval")
    data.add_argument("--csv", metavar="PATH", help="a CSV file (with --target)")
    data.add_argument("--target", metavar="COLUMN", help="the CSV's target column")
    data.add_argument("--sensitive", metavar="COLUMN", help="the CSV's sensitive-attribute column (fairness)")
    sweep.add_argument("--model", help="model family (see `python -m tracking models`)")
    sweep.add_argument("--objective", metavar="MODULE:FUNCTION", help="your own objective instead of --model")
    sweep.add_argument("--space", metavar="FILE", help="search space, YAML or JSON (default: the model's)")
    sweep.add_argument("--metric", action="append", default=[], metavar="KEY[:max|min]",
                       help="metric to optimise; twice for a Pareto sweep (default cv_f1_macro / cv_rmse)")  # fmt: skip
    sweep.add_argument("--trials", type=_positive_int, default=20, help="number of trials (default 20)")
    sweep.add_argument("--workers", type=_positive_int, default=1, help="worker processes (default 1)")
    sweep.add_argument("--sampler", default="tpe", help="tpe, random, cmaes, grid or nsga2 (default tpe)")
    sweep.add_argument("--pruner", help="auto, median, hyperband or none (default auto; none for two metrics)")
    sweep.add_argument("--timeout", type=_positive_float, metavar="SECONDS", help="workers stop starting trials after")
    sweep.add_argument("--seed", type=int, default=0, help="seed of the split, folds, models and sampler (default 0)")
    sweep.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    sweep.add_argument("--name", help="sweep name")
    sweep.add_argument("--experiment", default="default", help="experiment name (default: default)")
    sweep.add_argument("--detach", action="store_true", help="start the workers and return at once")
    _executor_arguments(sweep)

    worker = sub.add_parser("worker", parents=[store], help="join a sweep and run its trials (also resumes it)")
    worker.add_argument("--sweep", type=record_id, required=True, metavar="ID")
    worker.add_argument("--trials", type=_positive_int, help="stop after this many trials of this worker")
    worker.add_argument("--server", metavar="URL", help="run the trials through a tracking server with TRACKING_TOKEN "
                        "instead of opening the store (default: TRACKING_SERVER_URL when --store is not given)")  # fmt: skip

    resume = sub.add_parser("resume", parents=[store], help="continue an interrupted or cancelled sweep")
    resume.add_argument("sweep", type=record_id, metavar="SWEEP")
    resume.add_argument("--workers", type=_positive_int, default=1)
    resume.add_argument("--add-trials", type=int, default=0, metavar="N", help="raise the sweep's trial count by N")
    resume.add_argument("--detach", action="store_true", help="start the workers and return at once")
    _executor_arguments(resume)

    cancel = sub.add_parser("cancel", parents=[store], help="stop a sweep after the current trials")
    cancel.add_argument("sweep", type=record_id, metavar="SWEEP")

    sweeps = sub.add_parser("sweeps", parents=[store], help="list sweeps with their progress")
    sweeps.add_argument("--format", choices=("table", "json"), default="table")

    runs = sub.add_parser("runs", parents=[store], help="list runs")
    runs.add_argument("--sweep", type=record_id, metavar="ID")
    runs.add_argument("--experiment")
    runs.add_argument("--filter", metavar="EXPR", help="e.g. 'metrics.test_f1_macro > 0.9 and params.C < 1'")
    runs.add_argument("--search", metavar="WORDS", help="words of names, experiments, sweeps, tags, notes, params")
    runs.add_argument("--limit", type=_positive_int)
    runs.add_argument("--format", choices=("table", "csv", "json"), default="table")

    show = sub.add_parser("show", parents=[store], help="one run in full")
    show.add_argument("run", type=record_id, metavar="RUN")
    show.add_argument("--format", choices=("text", "json"), default="text")

    datasets = sub.add_parser("datasets", parents=[store], help="list dataset versions")
    datasets.add_argument("--format", choices=("table", "json"), default="table")

    sub.add_parser("models", help="list model families with their default search spaces")
    add_parsers(sub, store)
    serving.add_parsers(sub, store)
    lifecycle.add_parsers(sub, store)
    tokens.add_parsers(sub, store)
    dashboard.add_parsers(sub, store)
    webhooks.add_parsers(sub, store)
    interop.add_parsers(sub, store)
    tracking_server.add_parsers(sub, store)
    trash.add_parsers(sub, store, runs)
    return parser


def _executor_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("where the workers run")
    where.add_argument("--executor", choices=EXECUTORS, default="local",
                       help="local processes (default) or tasks on a Dask cluster (with --scheduler)")  # fmt: skip
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="the Dask scheduler, e.g. tcp://dask.internal:8786 (default TRACKING_DASK_SCHEDULER)")  # fmt: skip
    where.add_argument("--server", metavar="URL", help="the tracking server the Dask workers log through "
                       "(default TRACKING_SERVER_URL)")  # fmt: skip


def _start(store: Any, sweep_id: int, args: argparse.Namespace, actor: Any) -> list[Any]:
    """Start the workers where `--executor` says: the local processes started, or the Dask launch (watched
    unless `--detach`)."""
    if args.executor != "dask":
        return start_workers(store, sweep_id, args.workers, actor=actor)
    launch = launch_dask_workers(store, sweep_id, args.workers, args.scheduler, args.server, actor=actor,
                                 watch=not args.detach)  # fmt: skip
    print(f"{args.workers} worker task(s) submitted to the Dask cluster")
    return [launch]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except TrackingError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def _store(args: argparse.Namespace) -> Any:
    return open_store(getattr(args, "store", None))


def cmd_sweep(args: argparse.Namespace) -> int:
    store = _store(args)
    spec = SweepSpec(
        model=args.model,
        task=args.task,
        csv=args.csv,
        target=args.target,
        sensitive=args.sensitive,
        objective=args.objective,
        space=load_space_file(args.space) if args.space else None,
        metrics=args.metric,
        sampler=args.sampler,
        pruner=args.pruner,
        n_trials=args.trials,
        timeout=args.timeout,
        seed=args.seed,
        folds=args.folds,
        name=args.name,
        experiment=args.experiment,
    )
    actor = cli_actor(store)
    if args.executor == "dask":
        check_dask_target(args.scheduler, args.server)  # before the sweep is made: a missing address, said at once
    sweep = create_sweep(store, spec, actor=actor)
    print(f"sweep {sweep.id} ({sweep.name}): {sweep.n_trials} trials, {args.workers} worker(s)")
    procs = _start(store, sweep.id, args, actor)
    if args.detach:
        print(f"watch: python -m tracking sweeps   cancel: python -m tracking cancel {sweep.id}")
        return 0
    return _watch(store, sweep.id, procs)


def _watch(store: Any, sweep_id: int, procs: list[Any]) -> int:
    """Print a progress bar until the sweep settles or the workers started here have all exited;
    Ctrl-C asks the workers to stop."""
    if procs and isinstance(procs[0], DaskLaunch):
        try:
            return _watch_workers(store, sweep_id, [], procs[0])
        finally:
            procs[0].close()
    return _watch_workers(store, sweep_id, procs, None)


def _watch_workers(store: Any, sweep_id: int, procs: list[Any], tasks: DaskLaunch | None) -> int:
    tty = sys.stderr.isatty()
    last = None
    try:
        while True:
            sweep = get_sweep(store, sweep_id)
            line = _progress_line(sweep)
            if line != last:
                print(("\r" + line) if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
                last = line
            if sweep.status in ("complete", "cancelled"):
                break
            if (procs and all(proc.poll() is not None for proc in procs)) or (tasks and tasks.ended()):
                sweep = get_sweep(store, sweep_id)
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        cancel_sweep(store, sweep_id, actor=cli_actor(store))
        print(f"\ncancel requested: workers stop after their current trial; resume with "
              f"`python -m tracking resume {sweep_id}`", file=sys.stderr)  # fmt: skip
        return 130
    if tty:
        print(file=sys.stderr)
    failed = [proc.pid for proc in procs if proc.poll()]
    if failed and sweep.status != "complete":
        logs = store.artifact_root.parent / "logs"
        print(f"warning: worker(s) {failed} stopped with an error; see their logs in {logs}", file=sys.stderr)
    errors = tasks.failures() if tasks else []
    if errors and sweep.status != "complete":
        print(f"warning: worker task(s) on the Dask cluster failed: {'; '.join(errors)}", file=sys.stderr)
    _print_best(store, sweep)
    return 0


def _progress_line(sweep: Any) -> str:
    done, total = sweep.finished, sweep.n_trials
    width = 30
    filled = int(width * min(done, total) / total) if total else width
    counts = sweep.counts
    best = f" best {sweep.best_value:.4g}" if isinstance(sweep.best_value, float) else ""
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {sweep.status}: running {counts.get('running', 0)}, "
        f"complete {counts.get('complete', 0)}, pruned {counts.get('pruned', 0)}, "
        f"failed {counts.get('failed', 0) + counts.get('killed', 0)}{best}"
    )


def _print_best(store: Any, sweep: Any) -> None:
    print(f"sweep {sweep.id} {sweep.status}: {sweep.finished}/{sweep.n_trials} trials finished")
    metrics = [m["key"] for m in sweep.config["metrics"]]
    if sweep.best_run_id is not None:
        run = get_run(store, sweep.best_run_id)
        print(
            f"best: run {run.id} (trial {run.trial_number}) {metrics[0]}={sweep.best_value:.6g} params={json.dumps(run.params)}"
        )
    elif len(metrics) > 1:
        print(
            f"Pareto sweep over {', '.join(metrics)}: list the trials with `python -m tracking runs --sweep {sweep.id}`"
        )
    else:
        print("no trial completed")


def cmd_worker(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    url = tracking_server.remote_url(args)
    if url:
        return tracking_server.cmd_remote_worker(args, url)
    store = _store(args)
    ran = run_worker(store, args.sweep, max_trials=args.trials, actor=cli_actor(store))
    print(f"worker finished: ran {ran} trial(s) of sweep {args.sweep}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    store = _store(args)
    actor = cli_actor(store)
    if args.executor == "dask":
        check_dask_target(args.scheduler, args.server)
    sweep = reopen_sweep(store, args.sweep, add_trials=args.add_trials, actor=actor)
    print(f"sweep {sweep.id} resumed: {sweep.finished}/{sweep.n_trials} trials finished, {args.workers} worker(s)")
    procs = _start(store, sweep.id, args, actor)
    return 0 if args.detach else _watch(store, sweep.id, procs)


def cmd_cancel(args: argparse.Namespace) -> int:
    store = _store(args)
    cancel_sweep(store, args.sweep, actor=cli_actor(store))
    print(f"sweep {args.sweep}: cancel requested; workers stop after their current trial")
    return 0


def cmd_sweeps(args: argparse.Namespace) -> int:
    sweeps = list_sweeps(_store(args))
    rows = [
        {
            "id": s.id, "name": s.name, "experiment": s.experiment, "status": s.status,
            "finished": s.finished, "n_trials": s.n_trials, "running": s.counts.get("running", 0),
            "best_value": s.best_value, "best_run_id": s.best_run_id, "workers": s.live_workers,
            "created_at": iso(s.created_at),
        }
        for s in sweeps
    ]  # fmt: skip
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows)
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    store = _store(args)
    fail_stale_runs(store)
    runs = list_runs(store, sweep_id=args.sweep, experiment=args.experiment, filter=args.filter, limit=args.limit,
                     search=args.search)  # fmt: skip
    if args.format == "json":
        json.dump([run.to_json() for run in runs], sys.stdout, indent=2)
        print()
        return 0
    param_keys = sorted({k for run in runs for k in run.params})
    metric_keys = sorted({k for run in runs for k in run.metrics if k.startswith(("cv_", "test_"))})
    rows = []
    for run in runs:
        row = {"id": run.id, "name": run.name, "experiment": run.experiment, "sweep": run.sweep_id,
               "status": run.status, "started_at": run.started_at.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
        row.update({f"params.{k}": run.params.get(k) for k in param_keys})
        row.update({f"metrics.{k}": run.metrics.get(k) for k in metric_keys})
        rows.append(row)
    if args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["id"])
        writer.writeheader()
        writer.writerows(rows)
    else:
        _print_table([{k: v for k, v in r.items() if not k.startswith("params.")} for r in rows])
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    store = _store(args)
    run = get_run(store, args.run)
    artifacts = [
        {"name": a.name, "kind": a.kind, "size": a.size, "sha256": a.sha256} for a in list_artifacts(store, run.id)
    ]
    if args.format == "json":
        print(json.dumps({**run.to_json(), "environment": run.environment, "artifacts": artifacts}, indent=2))
        return 0
    print(f"run {run.id}  {run.name}  [{run.status}]  experiment={run.experiment}  sweep={run.sweep_id}")
    print(f"  started {run.started_at:%Y-%m-%d %H:%M:%S} UTC, finished "
          f"{run.finished_at:%Y-%m-%d %H:%M:%S} UTC" if run.finished_at else "  still running")  # fmt: skip
    dataset = f"{run.dataset['name']} sha256 {run.dataset['hash']}" if run.dataset else "-"
    print(f"  dataset: {dataset}\n  code: {run.code_version or '- (not in a git work tree)'}  seed: {run.seed}")
    for title, values in (("params", run.params), ("metrics", run.metrics), ("tags", run.tags)):
        if values:
            print(f"  {title}:")
            for key in sorted(values):
                print(f"    {key} = {values[key]}")
    for artifact in artifacts:
        print(
            f"  artifact {artifact['name']} ({artifact['kind']}, {artifact['size']} bytes) sha256 {artifact['sha256']}"
        )
    if run.error:
        print("  error:\n    " + run.error.rstrip().replace("\n", "\n    "))
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    rows = [
        {"id": d.id, "name": d.name, "sha256": d.sha256, "source": d.source, "rows": d.n_rows,
         "columns": d.n_columns, "task_type": d.schema.get("task_type"), "created_at": iso(d.created_at)}
        for d in list_datasets(_store(args))
    ]  # fmt: skip
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        _print_table([{**r, "sha256": r["sha256"][:16]} for r in rows])
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    for name, family in FAMILIES.items():
        print(f"{name}  ({', '.join(family.tasks)})")
        for param, entry in family.space.items():
            print(f"    {param}: {json.dumps(entry)}")
    return 0


def _print_table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("(none)")
        return
    columns = list(rows[0])

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    widths = {c: max(len(c), *(len(cell(r.get(c))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(cell(row.get(c)).ljust(widths[c]) for c in columns))


def _governance(handler: Any) -> Any:
    return lambda args: handler(args, _store(args), _print_table)


COMMANDS = {
    "sweep": cmd_sweep,
    "worker": cmd_worker,
    "resume": cmd_resume,
    "cancel": cmd_cancel,
    "sweeps": cmd_sweeps,
    "runs": trash.runs_or(cmd_runs),
    "show": cmd_show,
    "datasets": cmd_datasets,
    "models": cmd_models,
    "users": _governance(cmd_users),
    "audit": _governance(cmd_audit),
    "registry": _governance(cmd_registry),
    "webhooks": lambda args: webhooks.cmd_webhooks(args, _print_table),
    "tokens": lambda args: tokens.cmd_tokens(args, _print_table),
    **serving.COMMANDS,
    **lifecycle.COMMANDS,
    **dashboard.COMMANDS,
    **interop.COMMANDS,
    **tracking_server.COMMANDS,
    "trash": lambda args: trash.cmd_trash(args, _print_table),
    **trash.COMMANDS,
}
