"""Metric points by the hundred million (bulk imports, benchmark stores): streamed, never all in memory.

`bulk_log_points` reads `(run_id, key, step, value, timestamp)` points from any iterable (a generator
is fine) and writes them `batch` at a time, each batch in one write transaction: on SQLite one
executemany into the points table (its rows live in the key's B-tree, so points in run, key, step order
append at its end); on PostgreSQL one binary COPY straight into the table. Unlike logging (where a step
logged again keeps the last value), these are new points: a (run, key, step) the store already holds
is refused, with its batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from itertools import islice
from typing import Any

from sqlalchemy.engine import Connection

from tracking._errors import IntegrityError, ValidationError
from tracking.governance import Action, UserRecord, actor_from_env, authorize
from tracking.runs._bulk import skip_foreign_key_checks, vacuum
from tracking.store import Store, bump_change_counter

POINTS_BATCH = 500_000
_CACHE_KB = 256 * 1024
_INSERT = "INSERT INTO metric_points (run_id, key, step, value, timestamp) VALUES (?, ?, ?, ?, ?)"
_COPY = "COPY metric_points (run_id, key, step, value, timestamp) FROM STDIN (FORMAT BINARY)"


def bulk_log_points(
    store: Store,
    points: Iterable[tuple[int, str, int, float | None, float]],
    *,
    actor: UserRecord | None = None,
    batch: int = POINTS_BATCH,
) -> int:
    """Write new metric points `(run_id, key, step, value, timestamp)` in batches; returns how many.

    A non-finite value is stored as None (as logging does). Every batch checks that its runs exist.

    Args:
        points: the points, read `batch` at a time (only one batch is held in memory).
        actor: who imports (needs the right to import runs); default the credential of the environment.
        batch: points per transaction.

    Raises:
        ValidationError: a point of a run that does not exist, or not a 5-tuple.
        IntegrityError: the store refused a batch (a step it already holds); the batches before it stay.
        PermissionDenied: the actor may not import runs.
    """
    actor = actor or actor_from_env(store)
    source = iter(points)
    written = 0
    while chunk := list(islice(source, max(1, batch))):
        rows = [_point(point) for point in chunk]
        try:
            with store.connect(write=True) as conn:
                authorize(conn, actor, Action.run_import)
                _check_runs(conn, {row[0] for row in rows})
                skip_foreign_key_checks(conn)
                if store.is_sqlite:
                    conn.exec_driver_sql(f"PRAGMA cache_size = -{_CACHE_KB}")
                    conn.connection.driver_connection.executemany(_INSERT, rows)
                else:
                    _copy(conn, rows)
                bump_change_counter(conn)
        except ValidationError:
            raise
        except Exception as err:  # the driver's integrity errors (SQLite's or psycopg's, from COPY)
            if type(err).__name__ not in {"IntegrityError", "UniqueViolation", "ForeignKeyViolation"}:
                raise
            reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
            raise IntegrityError(
                f"The store refused a batch of {len(rows):,} metric points ({reason}); "
                f"the {written:,} before it are written."
            ) from err
        written += len(rows)
    if written:
        vacuum(store, ("metric_points",))
    return written


def _point(point: Any) -> tuple[int, str, int, float | None, float]:
    try:
        run_id, key, step, value, timestamp = point
        value = None if value is None or not math.isfinite(value) else float(value)
        return int(run_id), str(key), int(step), value, float(timestamp)
    except (TypeError, ValueError) as err:
        raise ValidationError(f"A metric point is (run_id, key, step, value, timestamp), not {point!r}.") from err


def _check_runs(conn: Connection, run_ids: set[int]) -> None:
    """Every run of the batch exists (no foreign key checks it); on PostgreSQL their rows are held until commit,
    so a purge waits for the batch rather than leave its points behind."""
    ids = sorted(run_ids)
    found: set[int] = set()
    for start in range(0, len(ids), 10_000):
        part = ids[start : start + 10_000]
        if conn.dialect.name == "sqlite":
            sql = f"SELECT id FROM runs WHERE id IN ({', '.join('?' * len(part))})"
            found.update(r[0] for r in conn.connection.driver_connection.execute(sql, part))
        else:
            found.update(
                r[0]
                for r in conn.exec_driver_sql(
                    "SELECT id FROM runs WHERE id = ANY(%(ids)s) FOR KEY SHARE", {"ids": part}
                )
            )
    missing = [run_id for run_id in ids if run_id not in found]
    if missing:
        raise ValidationError(f"Metric points for runs that do not exist: {', '.join(map(str, missing[:5]))}.")


def _copy(conn: Connection, rows: list[tuple[int, str, int, float | None, float]]) -> None:
    types = _pg_types(conn)  # before the COPY: the connection answers nothing else during one
    with conn.connection.driver_connection.cursor() as cursor, cursor.copy(_COPY) as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def _pg_types(conn: Connection) -> list[str]:
    """The points table's column types, as binary COPY needs them exactly."""
    key = "bulk_points_types"
    if key not in conn.info:
        sql = (
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'metric_points' AND table_schema = current_schema()"
        )
        names = {"integer": "int4", "bigint": "int8", "character varying": "varchar", "text": "text",
                 "double precision": "float8", "real": "float4"}  # fmt: skip
        types = dict(conn.exec_driver_sql(sql).all())
        conn.info[key] = [names[types[c]] for c in ("run_id", "key", "step", "value", "timestamp")]
    return conn.info[key]
