"""Import experiments, runs and artifacts from an MLflow tracking store, through MLflow's own client.

Each MLflow run becomes one run here, written in one transaction with everything it carries: status and
times, params, final metrics, full metric histories (batched like the run API's), tags, its note
(`mlflow.note.content`) and its artifact files. The MLflow run id is kept as the tag `mlflow.run_id`, and
a run whose id is already here is skipped, so importing twice adds nothing and an interrupted import
resumes where it stopped. Runs still running in MLflow are left for a later import.

MLflow keeps params as text; numbers, booleans and `None` written by Python are read back as such
(`"0.1"` -> 0.1, `"10"` -> 10, `"True"` -> true), so the filter language and `runs_frame` compare them as
numbers. MLflow is an optional dependency, imported only here.
"""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from tracking._errors import NotFoundError, ValidationError
from tracking.governance import Action, UserRecord, authorize, record, require
from tracking.runs._annotations import insert_note
from tracking.runs._artifacts import put_bytes, safe_name
from tracking.runs._runs import get_or_create_experiment, insert_points, insert_run
from tracking.store import Artifact, RunStatus, RunTag, Store, bump_change_counter, utcnow

SOURCE_TAG = "mlflow.run_id"  # the MLflow run id of an imported run: what makes the import idempotent
PARENT_TAG = "parent_run_id"  # our id of a nested run's parent, when the parent is in this store
NOTE_TAG = "mlflow.note.content"
_STATUSES = {"FINISHED": RunStatus.complete, "FAILED": RunStatus.failed, "KILLED": RunStatus.killed}
_POINTS_PER_INSERT = 10_000
_PAGE = 1000
_INT = re.compile(r"-?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"-?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][-+]?[0-9]+)?")
_CONSTANTS: dict[str, Any] = {"True": True, "False": False, "true": True, "false": False, "None": None}


@dataclass(frozen=True)
class ImportReport:
    """What an import did."""

    experiments: int  # MLflow experiments read
    imported: int  # runs added to this store
    skipped: int  # runs imported before (their `mlflow.run_id` is here)
    unfinished: int  # runs still running in MLflow, left for a later import
    points: int  # metric points written
    artifacts: int  # artifact files written


def param_value(text: str) -> Any:
    """An MLflow param (always text) as the JSON value Python most likely logged."""
    if text in _CONSTANTS:
        return _CONSTANTS[text]
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        value = float(text)
        return value if math.isfinite(value) else text
    return text


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _moment(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms else None


def _client(tracking_uri: str) -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as err:
        raise ValidationError(
            "Importing from MLflow needs MLflow's client: install it with `pip install mlflow` and run the import again."
        ) from err
    if tracking_uri.startswith("sqlite:"):
        database = make_url(tracking_uri).database
        if not database or not Path(database).is_file():  # MLflow would create an empty store there
            raise NotFoundError(f"There is no MLflow store at {tracking_uri} (no such SQLite file).")
    elif "://" not in tracking_uri or tracking_uri.startswith("file:"):
        folder = tracking_uri.removeprefix("file://").removeprefix("file:")
        if not Path(folder).is_dir():
            raise NotFoundError(f"There is no MLflow store at {tracking_uri} (no such folder).")
    return MlflowClient(tracking_uri=tracking_uri)


def _display(uri: str) -> str:
    """The URI for messages and the record, with any password hidden."""
    try:
        return make_url(uri).render_as_string(hide_password=True) if "://" in uri else uri
    except ArgumentError:
        return re.sub(r"//[^/@]*@", "//***@", uri)


def _pages(fetch: Callable[[str | None], Any]) -> Iterator[Any]:
    token = None
    while True:
        page = fetch(token)
        yield from page
        token = getattr(page, "token", None)
        if not token:
            return


def _experiments(client: Any, name: str | None, uri: str) -> list[Any]:
    from mlflow.entities import ViewType

    if name is not None:
        found = client.get_experiment_by_name(name)
        if found is None or found.lifecycle_stage != "active":
            raise NotFoundError(f"There is no MLflow experiment named {name!r} at {uri}.")
        return [found]
    active = ViewType.ACTIVE_ONLY
    return list(_pages(lambda token: client.search_experiments(view_type=active, max_results=_PAGE, page_token=token)))


def _runs(client: Any, experiment_id: str) -> list[Any]:
    from mlflow.entities import ViewType

    active = ViewType.ACTIVE_ONLY
    return list(
        _pages(
            lambda token: client.search_runs([experiment_id], run_view_type=active, max_results=_PAGE, page_token=token)
        )
    )


def _imported(store: Store) -> dict[str, int]:
    """MLflow run id -> our run id, for every run imported before."""
    with store.connect() as conn:
        return {value: int(run_id) for run_id, value in
                conn.execute(select(RunTag.run_id, RunTag.value).where(RunTag.key == SOURCE_TAG))}  # fmt: skip


def _artifact_files(client: Any, run_id: str) -> Iterator[tuple[str, bytes]]:
    """Every artifact file of an MLflow run: (its path in the run, its bytes)."""
    entries = client.list_artifacts(run_id)
    if not entries:
        return
    with tempfile.TemporaryDirectory(prefix="mlflow-import-") as tmp:
        root = Path(tmp)
        for entry in entries:
            client.download_artifacts(run_id, entry.path, str(root))
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            yield path.relative_to(root).as_posix(), path.read_bytes()


def import_mlflow(
    store: Store,
    tracking_uri: str,
    experiment: str | None = None,
    *,
    actor: UserRecord | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Bring experiments, runs, metric histories, tags, notes and artifacts from an MLflow tracking store.

    Idempotent: a run imported before (its MLflow run id is the tag `mlflow.run_id`) is skipped. A run is
    written whole or not at all. Experiments keep their MLflow names; deleted runs and experiments are not
    imported, nor are runs still running (a later import brings them once they end). A nested run gets the
    tag `parent_run_id` with its parent's id here. On a store with accounts this takes the role that
    launches sweeps (`run.import`), and each imported run is an audit event.

    Args:
        store: the tracking store to import into.
        tracking_uri: MLflow's tracking URI, e.g. `sqlite:///mlflow.db`, `./mlruns`, `http://host:5000`.
        experiment: only this MLflow experiment (by name).
        actor: who imports (None on a store without accounts).
        progress: called with (runs done, runs in total) after each run.

    Raises:
        ValidationError: MLflow is not installed. NotFoundError: no MLflow store or experiment there.
        PermissionDenied: the actor may not import runs.
    """
    require(store, actor, Action.run_import)
    client = _client(tracking_uri)
    display = _display(tracking_uri)
    experiments = _experiments(client, experiment, display)
    work = [(exp, run) for exp in experiments for run in _runs(client, exp.experiment_id)]
    work.sort(key=lambda item: (item[1].info.start_time or 0, item[1].info.run_id))  # parents before children
    done = _imported(store)
    counts = {"imported": 0, "skipped": 0, "unfinished": 0, "points": 0, "artifacts": 0}
    if progress:
        progress(0, len(work))
    for n, (exp, run) in enumerate(work, start=1):
        if run.info.run_id in done:
            counts["skipped"] += 1
        elif run.info.status not in _STATUSES:
            counts["unfinished"] += 1
        else:
            run_id, points, files = _import_run(store, client, exp, run, done, display, actor)
            if run_id is None:
                counts["skipped"] += 1  # another import took it meanwhile
            else:
                done[run.info.run_id] = run_id
                counts["imported"] += 1
                counts["points"] += points
                counts["artifacts"] += files
        if progress:
            progress(n, len(work))
    return ImportReport(experiments=len(experiments), **counts)


def _import_run(
    store: Store, client: Any, exp: Any, run: Any, done: dict[str, int], uri: str, actor: UserRecord | None
) -> tuple[int | None, int, int]:
    """Write one MLflow run (read from MLflow first, outside the write transaction); our id, points, files."""
    info, data = run.info, run.data
    tags = dict(data.tags)
    note = tags.pop(NOTE_TAG, None)
    points = [
        (key, int(m.step), _finite(m.value), m.timestamp / 1000)
        for key in sorted(data.metrics)
        for m in client.get_metric_history(info.run_id, key)
    ]
    files = [
        (safe_name(name), put_bytes(store, body), len(body)) for name, body in _artifact_files(client, info.run_id)
    ]
    experiment_id = get_or_create_experiment(store, exp.name)
    parent = done.get(tags.get("mlflow.parentRunId", ""))
    owner = tags.get("mlflow.user") or info.user_id or ""
    values = {
        "name": info.run_name or "",
        "experiment_id": experiment_id,
        "sweep_id": None,
        "trial_number": None,
        "worker_id": None,
        "params": {key: param_value(value) for key, value in data.params.items()},
        "metrics": {key: _finite(value) for key, value in data.metrics.items()},
        "environment": {
            "imported_from": "mlflow",
            "tracking_uri": uri,
            "mlflow_experiment_id": exp.experiment_id,
            "mlflow_run_id": info.run_id,
            "artifact_uri": info.artifact_uri,
        },
        "dataset_version_id": None,
        "code_version": tags.get("mlflow.source.git.commit"),
        "seed": None,
        "host": "",
        "owner": owner,
        "status": _STATUSES[info.status],
        "error": "The run failed in MLflow (imported; MLflow keeps no traceback)." if info.status == "FAILED" else None,
        "started_at": _moment(info.start_time) or _moment(info.end_time),
        "finished_at": _moment(info.end_time),
    }
    tags[SOURCE_TAG] = info.run_id
    if parent is not None:
        tags[PARENT_TAG] = str(parent)
    with store.connect(write=True) as conn:
        who = authorize(conn, actor, Action.run_import)
        if store.dialect == "postgresql":  # imports wait for each other, so the check below stays true
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(727319)")
        taken = conn.execute(select(RunTag.run_id).where(RunTag.key == SOURCE_TAG, RunTag.value == info.run_id))
        if taken.first() is not None:
            return None, 0, 0
        run_id = insert_run(conn, values)
        conn.execute(insert(RunTag), [{"run_id": run_id, "key": k, "value": str(v)} for k, v in tags.items()])
        for start in range(0, len(points), _POINTS_PER_INSERT):
            insert_points(conn, [(run_id, *point) for point in points[start : start + _POINTS_PER_INSERT]])
        if files:
            now = utcnow()
            conn.execute(insert(Artifact), [{"run_id": run_id, "name": name, "kind": "file", "sha256": sha,
                                             "size": size, "created_at": now} for name, sha, size in files])  # fmt: skip
        if note and note.strip():
            insert_note(conn, run_id, note, who)  # written here by the importer: its audit event says so
        record(conn, who, "run.import", "run", run_id, None,
               {"source": "mlflow", "tracking_uri": uri, "mlflow_run_id": info.run_id, "experiment": exp.name})  # fmt: skip
        bump_change_counter(conn)
    return run_id, len(points), len(files)
