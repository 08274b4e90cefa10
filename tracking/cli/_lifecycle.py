"""The CLI's `retrain` and `reproduce` commands.

Both act as the account named by `TRACKING_USER` (see `_cli_governance.cli_actor`). They exit 0 when
the outcome is what a user hopes for (reproduce: matched; retrain: skipped or retrained) and 1 when a
reproduction differs or an attempt failed; user mistakes raise `TrackingError` (exit 2, one line).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from tracking._errors import ValidationError
from tracking.cli._args import record_id
from tracking.cli._governance import cli_actor
from tracking.production import describe_changes, reproduce_run, retrain, short_code, short_sha
from tracking.store import open_store


def _tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a number of at least 0")
    return value


def parse_assignments(items: list[str] | None) -> dict[str, Any] | None:
    """`["C=0.5", "solver=saga"]` -> `{"C": 0.5, "solver": "saga"}`: JSON values where they parse, else strings.

    Raises:
        ValidationError: an item without `=` or with an empty key.
    """
    if not items:
        return None
    params: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValidationError(f"--set takes KEY=VALUE (e.g. --set C=0.5), not {item!r}.")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        params[key.strip()] = value
    return params


def add_parsers(sub: Any, store: argparse.ArgumentParser) -> None:
    """Add the `retrain` and `reproduce` commands to the top-level subparsers."""
    retrain = sub.add_parser(
        "retrain", parents=[store], help="retrain a model's production version on the current data, code and params"
    )
    retrain.add_argument("--model", required=True, metavar="NAME", help="registered model name")
    retrain.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="set_params",
                         help="change a param (value read as JSON when it parses, e.g. C=0.5); repeatable")  # fmt: skip
    reproduce = sub.add_parser(
        "reproduce", parents=[store], help="retrain a sweep run from its record and compare its metrics"
    )
    reproduce.add_argument("run", type=record_id, metavar="RUN")
    reproduce.add_argument("--tolerance", type=_tolerance, default=1e-6, metavar="X",
                           help="largest absolute metric difference that still matches (default 1e-6)")  # fmt: skip


def _open(args: argparse.Namespace) -> Any:
    return open_store(getattr(args, "store", None))


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.6g}"


def cmd_retrain(args: argparse.Namespace) -> int:
    store = _open(args)
    params = parse_assignments(args.set_params)
    result = retrain(store, args.model, params=params, actor=cli_actor(store))
    details = result.record.details
    if result.outcome == "skipped":
        compared = details["compared"]
        print(
            f"nothing changed: dataset sha256 {short_sha(compared['dataset_sha256']['current'])}, code version "
            f"{short_code(compared['code_version']['current'])}, params "
            f"{json.dumps(compared['params']['current'], sort_keys=True)} — no training "
            f"({args.model} v{details['from_version']} stays in production)"
        )
        return 0
    if result.outcome == "failed":
        print(f"retrain of {args.model} failed: {result.summary}")
        return 1
    version = result.version
    metric = details["metric"]
    print(f"retrained {args.model} v{details['from_version']} as {version.label} (run {result.new_run_id}, "
          f"stage {version.stage}): {describe_changes(result.changes)}")  # fmt: skip
    print(f"  {metric['key']}: {_number(metric['candidate'])} (v{details['from_version']}: "
          f"{_number(metric['production'])})")  # fmt: skip
    print(f"next: python -m tracking registry request {args.model} {version.version} --justification '...'")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    store = _open(args)
    attempt = reproduce_run(store, args.run, tolerance=args.tolerance, actor=cli_actor(store))
    if attempt.outcome == "failed":
        print(f"reproduction of run {args.run} failed: {attempt.summary}")
        return 1
    print(f"run {args.run} reproduced as run {attempt.new_run_id}: {attempt.outcome}. {attempt.summary}")
    rows = attempt.details["metrics"]
    width = max(len(row["key"]) for row in rows)
    print(f"  {'metric'.ljust(width)}  {'recorded':>12}  {'reproduced':>12}  {'difference':>12}  within")
    for row in rows:
        print(f"  {row['key'].ljust(width)}  {_number(row['recorded']):>12}  {_number(row['reproduced']):>12}  "
              f"{_number(row['difference']):>12}  {'yes' if row['within_tolerance'] else 'NO'}")  # fmt: skip
    return 0 if attempt.outcome == "matched" else 1


COMMANDS = {"retrain": cmd_retrain, "reproduce": cmd_reproduce}
