"""The CLI's serving commands: `serve` (the production model over HTTP) and `feedback` (ground-truth labels).

`serve` reads its access token from `TRACKING_SERVE_TOKEN` (never from the command line, where other
users of the machine could read it) and its default sample rate from `TRACKING_SERVE_SAMPLE`. Both
commands act as the account named by `TRACKING_USER` and check its role first.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from tracking._errors import NotFoundError, ValidationError
from tracking._settings import setting
from tracking.cli._governance import cli_actor
from tracking.governance import Action, require
from tracking.production import monitor, record_labels
from tracking.store import open_store, utcnow

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number from 1 to 65535")
    return int(text)


def _rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = math.nan
    if not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a sample rate from 0 to 1")
    return rate


def add_parsers(sub: Any, store: argparse.ArgumentParser) -> None:
    """Add the `serve` and `feedback` commands to the top-level subparsers."""
    serve = sub.add_parser("serve", parents=[store], help="serve a registered model's production version over HTTP")
    serve.add_argument("--model", required=True, metavar="NAME", help="the registered model")
    serve.add_argument("--stage", choices=("production",), default="production",
                       help="the stage to serve; only production for now (the server follows it as it changes)")  # fmt: skip
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="the port to listen on (default 8000)")
    serve.add_argument("--sample", type=_rate, metavar="RATE",
                       help="fraction of requests kept whole in the inference log (default TRACKING_SERVE_SAMPLE, "
                       "else 1); every request is counted either way")  # fmt: skip
    monitor = sub.add_parser("monitor", parents=[store], help="drift, quality and alerts of a served model")
    monitor.add_argument("--model", required=True, metavar="NAME", help="the registered model")
    monitor.add_argument("--hours", type=float, metavar="H", help="only requests of the last H hours (default: all)")
    monitor.add_argument("--format", choices=("table", "json"), default="table")
    feedback = sub.add_parser("feedback", parents=[store], help="attach ground-truth labels to logged requests")
    feedback.add_argument("--file", required=True, metavar="CSV",
                          help="columns request_id,label (one line per row of the request, in order) or "
                          "request_id,labels (a JSON list per request)")  # fmt: skip


def _open_store(args: argparse.Namespace) -> Any:
    return open_store(getattr(args, "store", None))


def _sample_rate(args: argparse.Namespace) -> float:
    if args.sample is not None:
        return args.sample
    text = setting("TRACKING_SERVE_SAMPLE") or "1"
    try:
        return _rate(text) if text else 1.0
    except argparse.ArgumentTypeError:
        raise ValidationError(f"TRACKING_SERVE_SAMPLE is {text!r}; set it to a sample rate from 0 to 1.") from None


def cmd_serve(args: argparse.Namespace) -> int:
    """`serve`: check the account may serve models, then serve until interrupted."""
    from tracking.serving import serve  # FastAPI loads only for this command

    store = _open_store(args)
    require(store, cli_actor(store), Action.model_serve)
    token = setting("TRACKING_SERVE_TOKEN")
    sample = _sample_rate(args)
    if token is None and args.host not in LOOPBACK:
        print(f"warning: serving on {args.host} without an access token: anyone who can reach it can use the model "
              "(set TRACKING_SERVE_TOKEN)", file=sys.stderr)  # fmt: skip
    serve(store, args.model, host=args.host, port=args.port, token=token, sample_rate=sample)
    return 0


def read_feedback(path: str | Path) -> dict[str, tuple[int, list[Any]]]:
    """The labels in a feedback CSV by request id, each with the line it starts on.

    Two forms: `request_id,label` with one line per row of the request, in the request's order (a
    label that reads as a whole number or a decimal becomes one; any other text stays text), or
    `request_id,labels` with one line per request holding a JSON list. Other columns are ignored.

    Raises:
        ValidationError: the file cannot be read, lacks the columns, or a line is malformed (naming the line).
    """
    try:
        with open(path, encoding="utf-8-sig", newline="") as file:
            lines = list(csv.reader(file))
    except OSError as err:
        raise ValidationError(f"The feedback file {str(path)!r} cannot be read: {err.strerror}.") from None
    except UnicodeDecodeError:
        raise ValidationError(f"The feedback file {str(path)!r} is not UTF-8 text; save it as UTF-8.") from None
    except csv.Error as err:
        raise ValidationError(f"The feedback file {str(path)!r} is not valid CSV: {err}.") from None
    header = [name.strip() for name in lines[0]] if lines else []
    form = "label" if "label" in header else "labels"
    if "request_id" not in header or ("label" in header) == ("labels" in header):
        raise ValidationError(
            f"The feedback file {str(path)!r} needs a header with request_id and either label (one line per row) "
            "or labels (a JSON list per request)."
        )
    id_at, label_at = header.index("request_id"), header.index(form)
    found: dict[str, tuple[int, list[Any]]] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not any(cell.strip() for cell in line):
            continue
        if len(line) <= max(id_at, label_at):
            raise ValidationError(f"Line {number} of {str(path)!r} has {len(line)} field(s), fewer than its header.")
        request_id, text = line[id_at].strip(), line[label_at].strip()
        if not request_id or not text:
            raise ValidationError(f"Line {number} of {str(path)!r} has no {'request_id' if not request_id else form}.")
        if form == "label":
            found.setdefault(request_id, (number, []))[1].append(_label(text))
            continue
        if request_id in found:
            raise ValidationError(
                f"Line {number} of {str(path)!r} repeats request {request_id!r} (first on line {found[request_id][0]})."
            )
        try:
            labels = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValidationError(f"Line {number} of {str(path)!r}: labels are not valid JSON ({err.msg}).") from None
        if not isinstance(labels, list) or not labels:
            raise ValidationError(
                f"Line {number} of {str(path)!r}: labels must be a non-empty JSON list such as [1, 0]."
            )
        found[request_id] = (number, labels)
    if not found:
        raise ValidationError(f"The feedback file {str(path)!r} has no labels after its header.")
    return found


def _label(text: str) -> Any:
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        if kind is int or math.isfinite(value):
            return value
    return text


def cmd_feedback(args: argparse.Namespace) -> int:
    """`feedback`: attach the labels of a CSV file to their logged requests; 1 when some could not be attached."""
    store = _open_store(args)
    require(store, cli_actor(store), Action.feedback_import)
    found = read_feedback(args.file)
    done = rows = 0
    for request_id, (line, labels) in found.items():
        try:
            record_labels(store, request_id, labels)
        except (NotFoundError, ValidationError) as err:
            print(f"line {line}: {err}", file=sys.stderr)
            continue
        done, rows = done + 1, rows + len(labels)
    failed = len(found) - done
    print(
        f"labelled {done} request(s) ({rows} row(s)) from {args.file}" + (f"; {failed} not labelled" if failed else "")
    )
    return 1 if failed else 0


def cmd_monitor(args: argparse.Namespace) -> int:
    """`monitor`: the monitoring report of the production version; 1 when an alert is raised."""
    since = utcnow() - timedelta(hours=args.hours) if args.hours else None
    report = monitor(_open_store(args), args.model, since=since)
    if args.format == "json":
        print(json.dumps({**report.findings(), "requests": report.n_requests, "notes": report.notes,
                          "features": [{"name": d.name, "test": d.test, "psi": d.psi, "pvalue": d.pvalue,
                                        "drifted": d.drifted} for d in report.features],
                          "quality": [q.__dict__ for q in report.quality]}, indent=2, default=str))  # fmt: skip
        return 1 if report.breaches else 0
    print(f"{report.label}: {report.n_requests} logged request(s), {report.n_rows} row(s), "
          f"{report.n_labelled} labelled")  # fmt: skip
    for note in report.notes:
        print(f"  note: {note}")
    for drift in [*report.features, *([report.prediction] if report.prediction else [])]:
        flag = "DRIFT" if drift.drifted else "ok"
        print(f"  [{flag:5}] {drift.name}: PSI {drift.psi:.3f}, {drift.test} p={drift.pvalue:.3g}")
    for q in report.quality:
        held = f" (held-out {q.held_out:.3f})" if q.held_out is not None else ""
        bound = f", {'min' if q.direction == 'maximize' else 'max'} {q.threshold:g}" if q.threshold is not None else ""
        print(f"  [{'LOW' if q.breached else 'ok':5}] {q.metric} on labelled requests: {q.value:.3f}{held}{bound}")
    for breach in report.breaches:
        print(f"ALERT: {breach.sentence}")
    if not report.breaches:
        print("no alerts")
    return 1 if report.breaches else 0


COMMANDS = {"serve": cmd_serve, "feedback": cmd_feedback, "monitor": cmd_monitor}
