"""The run API for any script: `with tracking.start_run(...) as run: run.log_metrics(...)`.

Metric points are buffered in memory and written in one batch per flush (at the end of the run, every
10,000 points, or every few seconds so live views see progress): one executemany on SQLite, a COPY on
PostgreSQL; the ORM stays off that path. A point is keyed (run, key, step): logging a step again replaces
its value (last write wins). A flush that fails keeps its points in the buffer and raises one sentence.

A run that raises ends as `failed` with its traceback, one interrupted (Ctrl-C, SystemExit) ends as
`killed`, and one whose process dies is ended as `killed` by `_liveness.fail_stale_runs`.

A finished run is closed: every write of params, metrics, artifacts or status first checks, in its own
transaction, that the run is still running and that the actor may log to it (`check_open`), so a
finished run cannot be reopened by id and rewritten. On a store with accounts the actor comes from a
credential (`actor=`, else the access token in `TRACKING_TOKEN`); tags and notes stay editable, audited.
"""

from __future__ import annotations

import functools
import math
import os
import sqlite3
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, exc, insert, select, update
from sqlalchemy.engine import Connection
from sqlmodel import select as orm_select

from tracking._errors import NotFoundError, PermissionDenied, StoreError, ValidationError
from tracking.governance import Action, UserRecord, actor_from_env, authorize, local_actor, require
from tracking.runs._annotations import add_note, set_tags
from tracking.runs._artifacts import dump_model, put_bytes, safe_name
from tracking.runs._index import new_run_words, refresh_words, write_values
from tracking.runs._liveness import process_worker_id
from tracking.runs._provenance import code_version, environment, script_path
from tracking.runs._writes import DriverWrites, RepeatedPoint, finish_run, insert_new_run, open_without_accounts
from tracking.store import (
    POINTS_STAGING,
    Artifact,
    Experiment,
    Run,
    RunStatus,
    Store,
    bump_change_counter,
    open_store,
    utcnow,
)

FLUSH_POINTS = 10_000
FLUSH_SECONDS = 2.0
COPY_POINTS = 100  # from this many points in a batch on, PostgreSQL gets them by COPY instead of executemany
_COLUMNS = "run_id, key, step, value, timestamp"
_ON_CONFLICT = " ON CONFLICT (run_id, key, step) DO UPDATE SET value = excluded.value, timestamp = excluded.timestamp"
_UPSERT_QMARK = f"INSERT INTO metric_points ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)" + _ON_CONFLICT  # sqlite3
_UPSERT_FORMAT = f"INSERT INTO metric_points ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s)" + _ON_CONFLICT  # psycopg
# PostgreSQL: COPY into the connection's temporary staging table, then one upsert from it (COPY itself cannot
# resolve a conflict). The staging table is emptied after each batch, so a second batch of one transaction (an
# import) starts clean; a TRUNCATE would rewrite the catalog at every flush, and the commit empties it anyway.
_COPY = f"COPY {POINTS_STAGING} ({_COLUMNS}) FROM STDIN"
_UNSTAGE = (
    f"INSERT INTO metric_points ({_COLUMNS}) SELECT {_COLUMNS} FROM {POINTS_STAGING}{_ON_CONFLICT};"
    f" DELETE FROM {POINTS_STAGING}"
)
# Statements of the logging hot path, built once (building them per call costs more than running them).
_SET_METRICS = update(Run).where(Run.id == bindparam("b_id")).values(metrics=bindparam("b_metrics"))
_INSERT_RUN = insert(Run).returning(Run.id)
# FOR KEY SHARE on PostgreSQL (nothing on SQLite, whose writers queue): the run's row is held until commit, as a
# foreign key would hold it, so a purge cannot delete the run between this check and the points it lets in.
_RUN_STATE = (
    select(Run.status, Run.sweep_id, Run.owner)
    .where(Run.id == bindparam("b_id"))
    .with_for_update(read=True, key_share=True)
)
_NAME_RUN = update(Run).where(Run.id == bindparam("b_id")).values(name=bindparam("b_name"))


def json_safe(params: Mapping[str, Any]) -> dict[str, Any]:
    """Params as JSON values: numbers, strings, booleans, None; anything else becomes its str()."""
    safe = {}
    for key, value in params.items():
        if isinstance(value, bool | int | str) or value is None:
            safe[str(key)] = value
        elif isinstance(value, float):
            safe[str(key)] = value if math.isfinite(value) else str(value)
        elif hasattr(value, "item") and getattr(value, "shape", None) == ():  # numpy scalars, not arrays
            safe[str(key)] = json_safe({"v": value.item()})["v"]
        else:
            safe[str(key)] = str(value)
    return safe


def get_or_create_experiment(store: Store, name: str) -> int:
    """The id of the experiment `name`, created if new."""
    name = name.strip()
    if not name:
        raise ValidationError("The experiment name must not be empty.")
    cached = store.experiment_ids.get(name)
    if cached is None:
        store.experiment_ids[name] = cached = _find_or_insert_experiment(store, name)
    return cached


def _find_or_insert_experiment(store: Store, name: str) -> int:
    with store.session_scope() as session:
        found = session.exec(orm_select(Experiment.id).where(Experiment.name == name)).first()
    if found is not None:
        return int(found)
    try:
        with store.session_scope(write=True) as session:
            found = session.exec(orm_select(Experiment.id).where(Experiment.name == name)).first()
            if found is not None:
                return int(found)
            row = Experiment(name=name)
            session.add(row)
            session.flush()
            return int(row.id)
    except exc.IntegrityError:  # on PostgreSQL another process created it meanwhile (SQLite writers queue)
        with store.session_scope() as session:
            return int(session.exec(orm_select(Experiment.id).where(Experiment.name == name)).one())


def _number(key: str, raw: Any) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError) as err:
        raise ValidationError(f"The value of metric {key!r} must be a number, not {raw!r}.") from err


class RunClosed(ValidationError):
    """A write to a run that has finished: its params, metrics, artifacts and status can no longer change."""


def check_open(conn: Connection, run_id: int, actor: UserRecord | None) -> str:
    """Inside the caller's transaction: the name of the actor logging to a run that is still running.

    Raises:
        NotFoundError: there is no such run.
        RunClosed: the run has finished (a finished run is closed).
        PermissionDenied: the actor may not log runs, its token is scoped to another sweep, or the run is
            someone else's own run (not a sweep's).
    """
    row = conn.execute(_RUN_STATE, {"b_id": run_id}).first()
    if row is None:
        raise NotFoundError(f"There is no run {run_id}.")
    status = RunStatus(row.status)
    if status != RunStatus.running:
        raise RunClosed(
            f"Run {run_id} is {status.value}, and a finished run is closed: its params, metrics, artifacts and "
            "status can no longer change (tags and notes still can), so log to a new run instead."
        )
    who = authorize(conn, actor, Action.run_log, sweep_id=row.sweep_id)
    if actor is not None and row.sweep_id is None and row.owner and row.owner != who:
        raise PermissionDenied(f"Run {run_id} is {row.owner}'s: only the account that started it logs to it.")
    return who


class ActiveRun:
    """A run being logged. Made by `start_run`; every method is safe to call from several threads.

    Made for a run id, it refuses at once a run that has finished (a finished run is closed) or that
    `actor` may not log to; every later write checks again.
    """

    def __init__(self, store: Store, run_id: int, actor: UserRecord | None = None, *, _checked: bool = False) -> None:
        if not _checked:  # `start_run` has just checked, in the transaction that inserted the run
            with store.connect() as conn:
                check_open(conn, run_id, actor)
        self.store = store
        self.actor = actor
        self.id = run_id
        self._lock = threading.Lock()
        self._buffer: list[tuple[int, str, int, float | None, float]] = []
        self._latest: dict[str, float | None] = {}  # value at the highest step so far
        self._top: dict[str, int] = {}  # the highest step so far
        self._last_flush = time.monotonic()
        self._dirty_summary = False
        self._repeats = False  # whether the buffer may repeat a (key, step) of itself or of the store

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Log one value of a metric; `step` defaults to the next step of that key."""
        self.log_metrics({key: value}, step=step)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log values of several metrics at one step. Non-finite values are kept as null.

        A step logged again replaces the value it had (last write wins), in the history and, for the highest
        step, in the run's summary. This is the hot path of logging: it only appends to a buffer.
        """
        now = time.time()
        if step is not None:  # the usual call: its rows are built before the lock, in the loop that checks them
            at, run_id = (step if type(step) is int else int(step)), self.id
            rows = []
            for key, raw in metrics.items():  # check the whole batch first: a refused batch logs nothing
                value = raw if type(raw) is float else _number(key, raw)
                # x - x is 0.0 for every finite float and NaN for NaN and the infinities (cheaper than isfinite)
                rows.append(
                    (run_id, key if type(key) is str else str(key), at, value if value - value == 0.0 else None, now)
                )
            with self._lock:
                top, latest, buffer = self._top, self._latest, self._buffer
                buffer.extend(rows)
                for row in rows:
                    seen = top.get(row[1], -1)
                    if at <= seen:  # a step logged before (this batch or an earlier one): the batch needs an upsert
                        self._repeats = True
                    if at >= seen:
                        top[row[1]] = at
                        latest[row[1]] = row[3]
                self._dirty_summary = True
                due = len(buffer) >= FLUSH_POINTS or time.monotonic() - self._last_flush > FLUSH_SECONDS
        else:
            values = []
            for key, raw in metrics.items():
                value = raw if type(raw) is float else _number(key, raw)
                values.append((key if type(key) is str else str(key), value if value - value == 0.0 else None))
            with self._lock:
                top, latest, buffer, run_id = self._top, self._latest, self._buffer, self.id
                for key, value in values:
                    top[key] = at = top.get(key, -1) + 1
                    latest[key] = value
                    buffer.append((run_id, key, at, value, now))
                self._dirty_summary = True
                due = len(buffer) >= FLUSH_POINTS or time.monotonic() - self._last_flush > FLUSH_SECONDS
        if due:
            self.flush()

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Add or change params of the run."""
        with self.store.connect(write=True) as conn:
            check_open(conn, self.id, self.actor)
            current = conn.execute(select(Run.params).where(Run.id == self.id)).scalar_one()
            merged = {**current, **json_safe(params)}
            conn.execute(update(Run).where(Run.id == self.id).values(params=merged))
            write_values(conn, self.id, params=merged)
            refresh_words(conn, [self.id])
            bump_change_counter(conn)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags (string values); an existing key is overwritten. Audited under the run's actor."""
        set_tags(self.store, self.id, tags, actor=self.actor)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def add_note(self, body: str) -> None:
        """Attach a markdown note to the run, written by the run's actor (the account of its credential)."""
        add_note(self.store, self.id, body, actor=self.actor)

    def log_artifact(self, source: str | Path | bytes, name: str | None = None, kind: str = "file") -> str:
        """Store a file (a path or bytes) under a name; returns its sha256."""
        data, label = artifact_source(source, name)
        digest = put_bytes(self.store, data)
        with self.store.session_scope(write=True) as session:
            check_open(session.connection(), self.id, self.actor)
            existing = session.exec(
                orm_select(Artifact).where(Artifact.run_id == self.id, Artifact.name == label)
            ).first()
            row = existing or Artifact(run_id=self.id, name=label, kind=kind, sha256=digest, size=len(data))
            row.kind, row.sha256, row.size = kind, digest, len(data)
            session.add(row)
        return digest

    def log_model(self, model: Any, name: str = "model") -> str:
        """Save a fitted estimator with skops and record its sha256; returns the sha256."""
        return self.log_artifact(dump_model(model), name=name, kind="model")

    def flush(self) -> None:
        """Write buffered metric points and the latest values in one transaction.

        Raises:
            StoreError: the store refused or lost the batch; its points stay buffered for the next flush.
        """
        with self._lock:
            points, self._buffer = self._buffer, []
            summary = dict(self._latest) if self._dirty_summary else None
            fresh, self._repeats = not self._repeats, False
            self._dirty_summary = False
            self._last_flush = time.monotonic()
        if not points and summary is None:
            return
        with self._restored_on_error(points, summary is not None):
            try:
                self._write(points, summary, fresh)
            except RepeatedPoint:  # another writer logged one of these steps meanwhile: last write wins
                self._write(points, summary, False)

    def _write(self, points: list[tuple], summary: dict[str, Any] | None, fresh: bool) -> None:
        with self.store.connect(write=True) as conn:
            check_open(conn, self.id, self.actor)
            insert_points(conn, points, fresh=fresh)
            if summary is not None:
                conn.execute(_SET_METRICS, {"b_id": self.id, "b_metrics": summary})
                write_values(conn, self.id, metrics=summary)
            bump_change_counter(conn)

    def end(self, status: RunStatus = RunStatus.complete, error: str | None = None) -> None:
        """Flush and close the run with a final status (done by `start_run` on exit); a finished run is closed.

        Raises:
            RunClosed: the run has already finished (a ValidationError).
            StoreError: the store refused or lost the last batch; the run stays running, its points buffered.
        """
        with self._lock:
            points, self._buffer = self._buffer, []
            summary = dict(self._latest)
            fresh, self._repeats = not self._repeats, False
        with self._restored_on_error(points, True):
            try:
                self._end(points, summary, status, error, fresh)
            except RepeatedPoint:  # another writer logged one of these steps meanwhile: last write wins
                self._end(points, summary, status, error, False)

    def _end(self, points: list[tuple], summary: dict[str, Any], status: RunStatus, error: str | None,
             fresh: bool) -> None:  # fmt: skip
        with self.store.connect(write=True) as conn:
            writes = DriverWrites(conn)
            if self.actor is not None or not open_without_accounts(writes, self.id):
                check_open(conn, self.id, self.actor)
            finish_run(writes, self.id, points, summary, status, error, functools.partial(insert_points, conn), fresh)

    @contextmanager
    def _restored_on_error(self, points: list[tuple], summary: bool) -> Iterator[None]:
        """Put a batch that did not commit back in front of the buffer: nothing logged is dropped by a failure."""
        try:
            yield
        except BaseException:
            with self._lock:
                self._buffer[:0] = points
                self._dirty_summary = self._dirty_summary or summary
                self._repeats = True  # a part of the batch may have been written after all: upsert it next time
            raise


def artifact_source(source: str | Path | bytes, name: str | None) -> tuple[bytes, str]:
    """An artifact's bytes and its safe name, from a path (named after the file unless `name`) or bytes and a name.

    Raises:
        ValidationError: bytes without a name, or a path that is not a file.
    """
    if isinstance(source, bytes):
        if name is None:
            raise ValidationError("An artifact given as bytes needs a name.")
        return source, safe_name(name)
    path = Path(source)
    if not path.is_file():
        raise ValidationError(f"The artifact file {str(path)!r} does not exist.")
    return path.read_bytes(), safe_name(name or path.name)


def insert_points(conn: Connection, points: list[tuple], *, fresh: bool = False) -> None:
    """Write metric points `(run_id, key, step, value, timestamp)`; a (run, key, step) written again keeps the
    last value, within the batch too. One driver executemany of an upsert, or on PostgreSQL a COPY. The caller
    has checked in this transaction that the runs exist (`check_open`): no foreign key checks it per point.

    The SQL is fixed text with placeholders: the values are bound by the driver, and bypassing
    SQLAlchemy's per-row processing here is what makes logging several times faster.

    `fresh` says that no point repeats a (run, key, step) of the batch or of the store: then PostgreSQL gets them
    by one COPY straight into the table, with no upsert.

    Raises:
        RepeatedPoint: a fresh batch met a step the store holds (another writer logged it meanwhile); the
            transaction is lost, and the caller writes the batch again with `fresh=False`.
        StoreError: the database refused the batch; nothing of it is written.
    """
    if not points:
        return
    try:
        if conn.dialect.name == "sqlite":  # on the driver: SQLAlchemy's execution layer costs more than it needs
            try:
                conn.connection.driver_connection.executemany(_UPSERT_QMARK, points)
            except sqlite3.Error as err:
                raise exc.DBAPIError.instance(_UPSERT_QMARK, points[:1], err, sqlite3.Error) from err
        elif conn.dialect.name == "postgresql" and fresh:
            DriverWrites(conn).copy_fresh_points(points)
        elif conn.dialect.name == "postgresql" and len(points) >= COPY_POINTS:
            _copy_points(conn, points)
        else:
            conn.exec_driver_sql(_UPSERT_QMARK if conn.dialect.paramstyle == "qmark" else _UPSERT_FORMAT, points)
    except (exc.IntegrityError, _driver_errors()) as err:
        reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        raise StoreError(f"The store refused a batch of {len(points):,} metric points ({reason}).") from err


def _copy_points(conn: Connection, points: list[tuple]) -> None:
    # One upsert statement may not touch a row twice: keep the last of each (run, key, step) of the batch.
    latest = {(point[0], point[1], point[2]): point for point in points}
    with conn.connection.driver_connection.cursor() as cursor:
        with cursor.copy(_COPY) as copy:
            for point in latest.values():
                copy.write_row(point)
        cursor.execute(_UNSTAGE)


@functools.cache
def _driver_errors() -> type[Exception] | tuple[()]:
    """psycopg's errors (raised by COPY, which runs on the driver's cursor), when psycopg is installed."""
    try:
        import psycopg
    except ImportError:
        return ()
    return psycopg.Error


def run_row(
    *,
    experiment_id: int,
    worker_id: int,
    params: Mapping[str, Any] | None = None,
    name: str | None = None,
    sweep_id: int | None = None,
    trial_number: int | None = None,
    dataset_version_id: int | None = None,
    seed: int | None = None,
    code_path: str | Path | None = None,
    owner: str = "",
) -> dict[str, Any]:
    """The column values of a new running run, with its provenance (code version, environment)."""
    env = environment()
    version = code_version(code_path) if code_path is not None else _script_code_version(sys.argv[0], os.getcwd())
    return {
        "name": name or "",
        "experiment_id": experiment_id,
        "sweep_id": sweep_id,
        "trial_number": trial_number,
        "worker_id": worker_id,
        "params": json_safe(params or {}),
        "metrics": {},
        "environment": env,
        "dataset_version_id": dataset_version_id,
        "code_version": version,
        "seed": seed,
        "host": env["host"],
        "owner": owner,
        "status": RunStatus.running,
        "started_at": utcnow(),
    }


@functools.lru_cache(maxsize=8)
def _script_code_version(argv0: str, cwd: str) -> str | None:
    """The code version of the running script's folder (once per script and working folder: a process's runs
    share it, and finding it costs file-system calls)."""
    return code_version(script_path())


def insert_run(conn: Connection, values: dict[str, Any], check: Callable[[bool], object] | None = None) -> int:
    """Insert a run row (inside the caller's write transaction) and name it `run-<id>` if unnamed.

    `check`, told whether the store has accounts, checks that `values["owner"]` may log the run (it raises,
    and the caller's transaction rolls back).
    """
    run_id = insert_new_run(DriverWrites(conn), values, check)
    if run_id is not None:
        return run_id
    if check is not None:
        check(True)  # authorize asks the store itself
    run_id = int(conn.execute(_INSERT_RUN, values).scalar_one())
    if not values["name"]:
        default = f"run-{run_id}" if values["trial_number"] is None else f"trial-{values['trial_number']}"
        conn.execute(_NAME_RUN, {"b_id": run_id, "b_name": default})
    write_values(conn, run_id, params=values["params"], metrics=values["metrics"], new=True)
    new_run_words(conn, run_id, values["params"])
    bump_change_counter(conn)
    return run_id


@contextmanager
def start_run(
    experiment: str = "default",
    params: Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    seed: int | None = None,
    dataset_version_id: int | None = None,
    store: Store | None = None,
    actor: UserRecord | None = None,
) -> Iterator[ActiveRun]:
    """Log a run to the tracking store from any script.

    The code version is the git commit (and a dirty flag) of the script's work tree.

    Args:
        experiment: experiment name, created on first use.
        params: the run's parameters (JSON values).
        name: a display name; default `run-<id>`.
        tags: string tags.
        seed: the random seed the run used, for reproduction.
        dataset_version_id: the dataset version it trained on (see `register_dataset`).
        store: the store; default `open_store()` (TRACKING_STORE_URL / TRACKING_HOME), or the tracking server
            when `TRACKING_SERVER_URL` is set (a `ServerClient` may be passed too; `actor` is then unused).
        actor: who logs the run on a store with accounts; default the account of the access token in
            `TRACKING_TOKEN`. A store without accounts needs none (the operating-system user owns the run).

    Raises:
        PermissionDenied: the store has accounts and no valid credential was given.

    Yields:
        The `ActiveRun`. On exit the run ends `complete`; on an exception `failed` with the
        traceback (the exception propagates); on KeyboardInterrupt or SystemExit `killed`.
    """
    from tracking.runs._remote_run import is_remote, start_remote_run  # the module imports this one

    if is_remote(store):  # a tracking server holds the store: the token in TRACKING_TOKEN is the credential
        remote = start_remote_run(
            store, experiment, params, name=name, seed=seed, dataset_version_id=dataset_version_id
        )
        if tags:
            remote.set_tags(tags)
        with run_scope(remote):
            yield remote
        return
    store = store or open_store()
    actor = actor or actor_from_env(store)
    if experiment.strip() not in store.experiment_ids:
        require(store, actor, Action.run_log)  # before the experiment is created (the insert below re-checks)
    values = run_row(
        experiment_id=get_or_create_experiment(store, experiment),
        worker_id=process_worker_id(store),
        params=params,
        name=name,
        seed=seed,
        dataset_version_id=dataset_version_id,
    )
    with store.connect(write=True) as conn:
        # `authorize` names the actor (or the OS user on a store without accounts); it runs after the insert (one
        # round trip for both on PostgreSQL) and a refusal rolls the insert back.
        values["owner"] = actor.name if actor is not None else local_actor()
        run_id = insert_run(
            conn, values, lambda accounts: authorize(conn, actor, Action.run_log) if accounts or actor else None
        )
    run = ActiveRun(store, run_id, actor, _checked=True)
    if tags:
        run.set_tags(tags)
    with run_scope(run):
        yield run


@contextmanager
def run_scope(run: ActiveRun, on_success: RunStatus = RunStatus.complete) -> Iterator[None]:
    """End `run` with the status that matches how the block left."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit):
        run.end(
            RunStatus.killed,
            error="Interrupted before it finished.\n" + traceback.format_exc(),
        )
        raise
    except BaseException:
        run.end(RunStatus.failed, error=traceback.format_exc())
        raise
    run.end(on_success)
