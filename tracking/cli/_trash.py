"""The CLI's trash, retention and garbage collection: `runs trash|restore|purge`, `trash ...`, `retention run`,
`artifacts gc`.

Moving to the trash and restoring takes the role data scientist, engineer or admin; purging, emptying the
trash, retention and garbage collection only admin (the library checks; a refusal is one line).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from tracking.cli._args import record_id
from tracking.cli._governance import cli_actor
from tracking.production import apply_retention
from tracking.runs import (
    PurgeReport,
    TrashRecord,
    collect_garbage,
    empty_trash,
    list_trash,
    purge_run,
    purge_trashed,
    restore_run,
    restore_trashed,
    trash_experiment,
    trash_run,
    trash_sweep,
)
from tracking.store import iso, open_store


def add_parsers(sub: Any, store: argparse.ArgumentParser, runs: argparse.ArgumentParser) -> None:
    """Add `runs trash|restore|purge` to the `runs` command, and the `trash`, `retention` and `artifacts` commands."""
    runs_sub = runs.add_subparsers(dest="runs_command", parser_class=type(runs), metavar="{trash,restore,purge}")
    for name, text in (("trash", "move runs to the trash (hidden from lists, filters and counts)"),
                       ("restore", "bring runs back from the trash"),
                       ("purge", "delete runs in the trash for good, with their artifacts (admins)")):  # fmt: skip
        command = runs_sub.add_parser(name, help=text)
        command.add_argument("ids", type=record_id, nargs="+", metavar="RUN")
        # Here or before the subcommand (`runs --store URL trash 5`): suppressed, the default would undo the latter.
        command.add_argument("--store", metavar="URL", default=argparse.SUPPRESS, help="SQLAlchemy URL of the store")

    trash = sub.add_parser(
        "trash", parents=[store], help="the trash: list, move sweeps and experiments, restore, purge"
    )
    trash_sub = trash.add_subparsers(dest="trash_command", required=True, parser_class=type(trash))
    listing = trash_sub.add_parser("list", parents=[store], help="what is in the trash")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    empty = trash_sub.add_parser("empty", parents=[store], help="purge everything in the trash for good (admins)")
    empty.add_argument("--older-than", type=float, metavar="DAYS", help="only what was trashed more than DAYS ago")
    trash_sub.add_parser("sweep", parents=[store], help="move a sweep and its runs to the trash").add_argument(
        "id", type=record_id, metavar="SWEEP"
    )
    trash_sub.add_parser(
        "experiment", parents=[store], help="move an experiment with its sweeps and runs to the trash"
    ).add_argument("name", metavar="EXPERIMENT")
    trash_sub.add_parser("restore", parents=[store], help="restore a trash entry (see `trash list`)").add_argument(
        "id", type=record_id, metavar="ENTRY"
    )
    trash_sub.add_parser("purge", parents=[store], help="purge a trash entry for good (admins)").add_argument(
        "id", type=record_id, metavar="ENTRY"
    )

    retention = sub.add_parser("retention", help="drop inference-log rows past the retention policy")
    retention_sub = retention.add_subparsers(dest="retention_command", required=True, parser_class=type(retention))
    apply = retention_sub.add_parser("run", parents=[store], help="apply the policy now (admins)")
    apply.add_argument("--days", type=float, help="keep this many days (default TRACKING_INFERENCE_RETENTION_DAYS)")
    apply.add_argument("--rows", type=int, help="keep this many per model (default TRACKING_INFERENCE_RETENTION_ROWS)")

    artifacts = sub.add_parser("artifacts", help="artifact files: collect the unreferenced ones")
    artifacts_sub = artifacts.add_subparsers(dest="artifacts_command", required=True, parser_class=type(artifacts))
    gc = artifacts_sub.add_parser(
        "gc", parents=[store], help="delete artifact files and uploads no run refers to (admins)"
    )
    gc.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    gc.add_argument("--grace-hours", type=float, default=1.0, help="keep files younger than this (default 1)")


def runs_or(list_runs: Any) -> Any:
    """The `runs` command: listing, unless a `trash|restore|purge` subcommand was given."""

    def command(args: argparse.Namespace) -> int:
        if getattr(args, "runs_command", None) is None:
            return list_runs(args)
        store = open_store(getattr(args, "store", None))
        actor = cli_actor(store)
        for run_id in args.ids:
            if args.runs_command == "trash":
                entry = trash_run(store, run_id, actor=actor)
                print(
                    f"run {run_id} moved to the trash (entry {entry.id}); undo: python -m tracking runs restore {run_id}"
                )
            elif args.runs_command == "restore":
                restore_run(store, run_id, actor=actor)
                print(f"run {run_id} restored")
            else:
                _print_purge(purge_run(store, run_id, actor=actor))
        return 0

    return command


def cmd_trash(args: argparse.Namespace, print_table: Any) -> int:
    store = open_store(getattr(args, "store", None))
    command = args.trash_command
    if command == "list":
        rows = [_row(entry) for entry in list_trash(store)]
        print(json.dumps(rows, indent=2)) if args.format == "json" else print_table(rows)
        return 0
    actor = cli_actor(store)
    if command == "empty":
        report = empty_trash(store, actor=actor, older_than_days=args.older_than)
        _print_purge(report)
        for reason in report.skipped:
            print(f"kept: {reason}")
    elif command in ("sweep", "experiment"):
        entry = (trash_sweep(store, args.id, actor=actor) if command == "sweep"
                 else trash_experiment(store, args.name, actor=actor))  # fmt: skip
        print(f"{entry.label} moved to the trash with {entry.runs} run(s) (entry {entry.id}); "
              f"undo: python -m tracking trash restore {entry.id}")  # fmt: skip
    elif command == "restore":
        entry = restore_trashed(store, args.id, actor=actor)
        print(f"{entry.label} restored with {entry.runs} run(s)")
    else:
        _print_purge(purge_trashed(store, args.id, actor=actor))
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    store = open_store(getattr(args, "store", None))
    report = apply_retention(store, cli_actor(store), days=args.days, rows=args.rows)
    print(f"inference log: {report.deleted} request(s) dropped (keeping {report.days:g} days, "
          f"at most {report.rows} per model)")  # fmt: skip
    return 0


def cmd_artifacts(args: argparse.Namespace) -> int:
    store = open_store(getattr(args, "store", None))
    report = collect_garbage(store, cli_actor(store), dry_run=args.dry_run, grace_hours=args.grace_hours)
    for garbage in report.files:
        print(f"{'would delete' if report.dry_run else 'deleted'} {garbage.kind} {garbage.path} ({garbage.size} bytes)")
    verb = "would free" if report.dry_run else "freed"
    print(f"{len(report.files)} unreferenced file(s); {verb} {report.bytes} bytes")
    return 0


def _row(entry: TrashRecord) -> dict[str, Any]:
    return {"entry": entry.id, "kind": entry.kind, "id": entry.object_id, "name": entry.name, "runs": entry.runs,
            "trashed_by": entry.trashed_by, "trashed_at": iso(entry.trashed_at)}  # fmt: skip


def _print_purge(report: PurgeReport) -> None:
    print(f"purged for good: {report.runs} run(s), {report.sweeps} sweep(s), {report.experiments} experiment(s); "
          f"{report.files} artifact file(s), {report.bytes} bytes")  # fmt: skip


COMMANDS = {"retention": cmd_retention, "artifacts": cmd_artifacts}
