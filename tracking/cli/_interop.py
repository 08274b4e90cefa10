"""The CLI's commands that meet other tools: `import mlflow` (runs from an MLflow tracking store) and
`optuna-dashboard` (a sweep's study in Optuna's own dashboard).

MLflow and optuna-dashboard are optional: each command says in one sentence how to install what it
misses. The import acts as the account named by `TRACKING_USER` (`cli_actor`), like every change.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from tracking._errors import ValidationError
from tracking.cli._governance import cli_actor
from tracking.cli._serving import _port
from tracking.runs import import_mlflow
from tracking.store import open_store
from tracking.sweeps import get_sweep, optuna_storage


def add_parsers(sub: Any, store: argparse.ArgumentParser) -> None:
    """Add the `import` and `optuna-dashboard` commands to the top-level subparsers."""
    imports = sub.add_parser("import", help="import runs from another tracker (MLflow)")
    sources = imports.add_subparsers(dest="import_source", metavar="SOURCE", required=True, parser_class=type(imports))
    mlflow = sources.add_parser("mlflow", parents=[store], help="experiments, runs, histories and artifacts from MLflow",
                                description="Import experiments, runs (status, times, params, final metrics, metric "
                                "histories, tags, notes) and artifacts from an MLflow tracking store, through MLflow's "
                                "own client (pip install mlflow). Importing again adds only runs not imported before.")  # fmt: skip
    mlflow.add_argument("--tracking-uri", required=True, metavar="URI",
                        help="MLflow's tracking URI, e.g. sqlite:///mlflow.db, ./mlruns or http://host:5000")  # fmt: skip
    mlflow.add_argument("--experiment", metavar="NAME", help="only this MLflow experiment (default: all)")

    board = sub.add_parser("optuna-dashboard", parents=[store], help="open a sweep's study in optuna-dashboard",
                           description="Serve optuna-dashboard (pip install optuna-dashboard) on a sweep's Optuna "
                           "study, read in place from the store (no copy). Stop it with Ctrl-C.")  # fmt: skip
    board.add_argument("sweep", type=int, metavar="SWEEP")
    board.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    board.add_argument("--port", type=_port, default=8080, help="the port to listen on (default 8080)")


def cmd_import(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one progress bar: ours
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm  # Optuna's dependency

            bar = tqdm(total=total, unit="run", desc="importing", file=sys.stderr, dynamic_ncols=True)
        bar.update(done - bar.n)

    try:
        report = import_mlflow(store, args.tracking_uri, args.experiment, actor=cli_actor(store), progress=progress)
    finally:
        if bar is not None:
            bar.close()
    print(
        f"imported {report.imported} run(s) with {report.points:,} metric point(s) and {report.artifacts} artifact "
        f"file(s) from {report.experiments} MLflow experiment(s); {report.skipped} imported before, "
        f"{report.unfinished} still running in MLflow (import again once they end)"
    )
    return 0


def cmd_optuna_dashboard(args: argparse.Namespace) -> int:
    try:
        import optuna_dashboard
    except ImportError:
        raise ValidationError(
            "optuna-dashboard is not installed: install it with `pip install optuna-dashboard` and run this again."
        ) from None
    store = open_store(args.store)
    sweep = get_sweep(store, args.sweep)
    print(f"optuna-dashboard on sweep {sweep.id} ({sweep.name}, study {sweep.study_name}): "
          f"http://{args.host}:{args.port}/dashboard/", file=sys.stderr, flush=True)  # fmt: skip
    optuna_dashboard.run_server(optuna_storage(store, sweep), host=args.host, port=args.port)
    return 0


COMMANDS = {"import": cmd_import, "optuna-dashboard": cmd_optuna_dashboard}
