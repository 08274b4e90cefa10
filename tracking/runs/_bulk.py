"""Many finished runs at once (bulk imports, benchmark stores): batched, with their index rows and words.

`bulk_log_runs` writes each batch in one write transaction: the run rows, their tags, `run_values` and
`run_words` rows through the driver's bulk path (one executemany on SQLite; on PostgreSQL one COPY per
table, the run rows included), so a million runs take minutes, not hours. Run ids are reserved inside
the transaction (SQLite holds the write lock; PostgreSQL draws them from the sequence). On PostgreSQL
the tables are vacuumed at the end, so index-only scans (deep pages of the runs table) are index-only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection

from tracking._errors import ValidationError
from tracking.governance import Action, UserRecord, actor_from_env, authorize
from tracking.runs._index import value_tuples, words
from tracking.runs._runs import get_or_create_experiment, json_safe
from tracking.store import (
    Experiment,
    Run,
    RunStatus,
    RunTag,
    Store,
    Sweep,
    bump_change_counter,
    utcnow,
)

BULK_BATCH = 5000
BULK_CACHE_KB = 256 * 1024
_FINISHED = {status.value for status in RunStatus if status != RunStatus.running}


def bulk_log_runs(
    store: Store, runs: Iterable[Mapping[str, Any]], *, actor: UserRecord | None = None, batch: int = BULK_BATCH
) -> list[int]:
    """Insert finished runs in batches, each batch in one transaction; returns their ids in order.

    Args:
        runs: mappings with `experiment` (name) and optionally `name`, `params`, `metrics` (final values),
            `tags`, `status` (a finished status, default complete), `started_at`, `finished_at`, `sweep_id`,
            `trial_number`, `dataset_version_id`, `code_version`, `seed`, `host`, `error`.
        actor: who imports (needs the right to import runs); default the credential of the environment.
        batch: runs per transaction.

    Raises:
        ValidationError: a run without an experiment or with a status that is not a finished one.
        PermissionDenied: the actor may not import runs.
    """
    actor = actor or actor_from_env(store)
    ids: list[int] = []
    source = iter(runs)
    while chunk := list(islice(source, max(1, batch))):
        ids += _write_batch(store, [_row(store, run) for run in chunk], chunk, actor)
    if ids:
        vacuum(store, ("runs", "run_tags", "run_values", "run_words"))
    return ids


def vacuum(store: Store, tables: tuple[str, ...]) -> None:
    """On PostgreSQL, vacuum and analyze tables after a bulk write: until their pages are marked all-visible,
    an index-only scan (a deep page of the runs table) still reads every row's page. SQLite needs nothing."""
    if store.is_sqlite:
        return
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"VACUUM (ANALYZE) {', '.join(tables)}")


def _row(store: Store, run: Mapping[str, Any]) -> dict[str, Any]:
    experiment = str(run.get("experiment") or "").strip()
    if not experiment:
        raise ValidationError("Every run of a bulk import needs an experiment name.")
    status = str(run.get("status") or RunStatus.complete.value)
    if status not in _FINISHED:
        raise ValidationError(f"A bulk-imported run is finished: its status is one of {', '.join(sorted(_FINISHED))}.")
    started = run.get("started_at") or utcnow()
    return {
        "name": str(run.get("name") or ""),
        "experiment_id": get_or_create_experiment(store, experiment),
        "sweep_id": run.get("sweep_id"),
        "trial_number": run.get("trial_number"),
        "worker_id": None,
        "status": RunStatus(status),
        "params": json_safe(run.get("params") or {}),
        "metrics": {str(k): (None if v is None else float(v)) for k, v in (run.get("metrics") or {}).items()},
        "environment": {},
        "dataset_version_id": run.get("dataset_version_id"),
        "code_version": run.get("code_version"),
        "seed": run.get("seed"),
        "host": str(run.get("host") or ""),
        "owner": "",
        "error": run.get("error"),
        "started_at": started,
        "finished_at": run.get("finished_at") or started,
    }


def _write_batch(
    store: Store, rows: list[dict[str, Any]], runs: list[Mapping[str, Any]], actor: UserRecord | None
) -> list[int]:
    with store.connect(write=True) as conn:
        who = authorize(conn, actor, Action.run_import)
        skip_foreign_key_checks(conn)  # the runs of these rows are the ones this transaction inserts
        ids = _reserve_ids(store, conn, len(rows))
        names = _experiment_names(conn, {row["experiment_id"] for row in rows})
        sweeps = _sweep_names(conn, {row["sweep_id"] for row in rows if row["sweep_id"] is not None})
        for run_id, row in zip(ids, rows, strict=True):
            row["id"], row["owner"] = run_id, who
            row["name"] = row["name"] or f"run-{run_id}"
        tags = [
            {"run_id": run_id, "key": str(key), "value": str(value)}
            for run_id, run in zip(ids, runs, strict=True)
            for key, value in (run.get("tags") or {}).items()
        ]
        if store.is_sqlite:
            conn.execute(insert(Run), rows)
            if tags:
                conn.execute(insert(RunTag), tags)
        else:
            _copy(store, conn, "runs", _RUN_COLUMNS, [tuple(_pg_cell(row[c]) for c in _RUN_COLUMNS) for row in rows])
            _copy(store, conn, "run_tags", ("run_id", "key", "value"), [tuple(tag.values()) for tag in tags])
        values: list[tuple[Any, ...]] = []
        found: list[tuple[Any, ...]] = []
        for run_id, row, run in zip(ids, rows, runs, strict=True):
            for kind in ("params", "metrics"):
                values += value_tuples(run_id, kind, row[kind])
            texts = [row["name"], names.get(row["experiment_id"]), sweeps.get(row["sweep_id"]), *row["params"].values()]
            texts += [part for item in (run.get("tags") or {}).items() for part in item]
            found += [(run_id, word) for word in sorted(words(*texts))]
        _copy(store, conn, "run_values", ("run_id", "kind", "key", "number", "text"), values)
        _copy(store, conn, "run_words", ("run_id", "word"), found)
        bump_change_counter(conn)
    return ids


_RUN_COLUMNS = tuple(column.name for column in Run.__table__.columns if column.name != "trash_id")


def _pg_cell(value: Any) -> Any:
    """A run row's value as COPY's text format takes it (JSON as its text, a status as its name)."""
    if isinstance(value, dict):
        return json.dumps(value, allow_nan=False)
    if isinstance(value, RunStatus):
        return value.name
    return value


def skip_foreign_key_checks(conn: Connection) -> None:
    """On PostgreSQL, when the role may (a superuser), skip the per-row foreign-key triggers until the
    transaction ends: they cost twice the insert itself. Only for rows whose runs the caller has checked."""
    if conn.dialect.name == "postgresql" and conn.exec_driver_sql("SHOW is_superuser").scalar_one() == "on":
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")


def _reserve_ids(store: Store, conn: Connection, n: int) -> list[int]:
    if store.is_sqlite:  # the transaction holds SQLite's write lock: nobody else takes ids meanwhile
        top = int(conn.execute(select(func.coalesce(func.max(Run.id), 0))).scalar_one())
        return list(range(top + 1, top + n + 1))
    sql = "SELECT nextval(pg_get_serial_sequence('runs', 'id')) FROM generate_series(1, %(n)s)"
    return [int(i) for i in conn.exec_driver_sql(sql, {"n": n}).scalars()]


def _experiment_names(conn: Connection, ids: set[int]) -> dict[int, str]:
    return dict(conn.execute(select(Experiment.id, Experiment.name).where(Experiment.id.in_(ids))).all())


def _sweep_names(conn: Connection, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(conn.execute(select(Sweep.id, Sweep.name).where(Sweep.id.in_(ids))).all())


def _copy(store: Store, conn: Connection, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Rows into a table through the driver's fastest path (values bound by the driver, never spliced)."""
    if not rows:
        return
    if store.is_sqlite:
        # index pages stay in memory across batches (SQLite's default cache is 2 MB, which large
        # indexes would thrash); the cache grows only as pages are read, up to this bound
        conn.exec_driver_sql(f"PRAGMA cache_size = -{BULK_CACHE_KB}")
        marks = ", ".join("?" * len(columns))
        conn.exec_driver_sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
        return
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
