"""A run's two writes at the driver level: its row and index rows at the start, its last points and end state.

SQLAlchemy's execution layer costs tens of µs of CPU per statement, more than SQLite takes to run these, and a
run makes about a dozen. Here each statement is a Core statement compiled once per dialect and run on the DBAPI
cursor of the caller's transaction (`Store.connect`, which still begins, commits and maps errors), its values
converted by the columns' own bind processors, so the rows are the ones `conn.execute` would write. On
PostgreSQL the statements that need no answer are sent together in a pipeline (one round trip). A run's last
points are copied straight into the table when none of them can repeat a step the store holds (`fresh`; COPY
cannot resolve a conflict, nor run in a pipeline), else they go in the pipeline as one upsert of a JSON list. A
driver error is raised as SQLAlchemy's exception (`exc.DBAPIError.instance`), as `conn.execute` raises it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, exc, insert, select, text, update
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.expression import Executable

from tracking.runs._index import VALUE_COLUMNS, value_tuples, words
from tracking.store import Experiment, Run, RunStatus, Sweep, change_counter_bump, utcnow

_COLUMNS = "run_id, key, step, value, timestamp"
_COPY_NEW_POINTS = f"COPY metric_points ({_COLUMNS}) FROM STDIN"  # fresh points: no conflict to resolve
_ON_CONFLICT = " ON CONFLICT (run_id, key, step) DO UPDATE SET value = excluded.value, timestamp = excluded.timestamp"
# PostgreSQL: a run's last points as one statement with one parameter, a JSON list of [run, key, step, value,
# timestamp] (the json module encodes it in C; psycopg's array dumping is Python code, slower than the rest of the
# run's writes together). A float's JSON text is its shortest repr, which PostgreSQL reads back to the same double.
_UPSERT_JSON = (
    f"INSERT INTO metric_points ({_COLUMNS}) SELECT (p->>0)::integer, p->>1, (p->>2)::integer,"
    f" (p->>3)::double precision, (p->>4)::double precision FROM json_array_elements(%s::json) AS p{_ON_CONFLICT}"
)


class Prepared:
    """A Core statement compiled once per dialect and run on the DBAPI cursor with its columns' bind processors."""

    def __init__(self, statement: Executable, column_keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        self.column_keys = list(column_keys) if column_keys is not None else None
        self._compiled: dict[Dialect, tuple[str, tuple[str, ...] | None, dict[str, Callable]]] = {}
        self._names: dict[Dialect, tuple[str, ...]] = {}

    def _for(self, dialect: Dialect) -> tuple[str, tuple[str, ...] | None, dict[str, Callable]]:
        found = self._compiled.get(dialect)
        if found is None:
            compiled = self.statement.compile(dialect=dialect, column_keys=self.column_keys)
            processors = {}
            for name, bind in compiled.binds.items():
                process = bind.type.dialect_impl(dialect).bind_processor(dialect)
                if process is not None:
                    processors[name] = process
            order = tuple(compiled.positiontup) if compiled.positional else None
            self._names[dialect] = tuple(compiled.binds)
            self._compiled[dialect] = found = (compiled.string, order, processors)
        return found

    def takes(self, dialect: Dialect, keys: Iterable[str]) -> bool:
        """Whether `keys` give every bind of the statement (a column default it would add is not computed here)."""
        order = self._for(dialect)[1]
        return set(order if order is not None else self._names[dialect]) <= set(keys)

    def bound(self, dialect: Dialect, values: Mapping[str, Any]) -> tuple[str, Any]:
        """The driver SQL and the parameters of one row of values (keyed by bind name)."""
        sql, order, processors = self._for(dialect)
        if processors:
            values = {
                **values,
                **{name: process(values[name]) for name, process in processors.items() if name in values},
            }
        return sql, values if order is None else tuple([values[name] for name in order])


_INSERT_RUNS: dict[tuple[str, ...], Prepared] = {}  # by the columns given (`run_row` gives the same ones)
_NAME_RUN = Prepared(update(Run).where(Run.id == bindparam("b_id")).values(name=bindparam("b_name")))
_NAMES = Prepared(
    select(Experiment.name, select(Sweep.name).where(Sweep.id == bindparam("b_sweep")).scalar_subquery()).where(
        Experiment.id == bindparam("b_experiment")
    )
)
_DELETE_METRIC_VALUES = Prepared(
    text("DELETE FROM run_values WHERE run_id = :b_run AND kind IN ('m', 'mb', 'ml')").bindparams(bindparam("b_run"))
)
_FINISH = Prepared(
    update(Run)
    .where(Run.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        error=bindparam("b_error"),
        finished_at=bindparam("b_finished"),
        metrics=bindparam("b_metrics"),
    )
)
# Whether a run is open and the store has no accounts, in one statement: what a run without an actor needs to
# know before it writes (anything else goes through `check_open`, which reads the same and says why not). On
# PostgreSQL it holds the run's row until commit, as a foreign key would: a purge waits, so no point outlives
# its run (`MetricPoint`).
_OPEN = "SELECT status, (SELECT 1 FROM users LIMIT 1) FROM runs WHERE id = :b_id"
_OPEN_WITHOUT_ACCOUNTS = Prepared(text(_OPEN).bindparams(bindparam("b_id")))
_OPEN_WITHOUT_ACCOUNTS_HELD = Prepared(text(_OPEN + " FOR KEY SHARE OF runs").bindparams(bindparam("b_id")))
_ANY_ACCOUNT = Prepared(text("SELECT 1 FROM users LIMIT 1"))


_INSERTS: dict[tuple[str, tuple[str, ...], str], str] = {}


class RepeatedPoint(Exception):
    """A COPY of points meant to be fresh met a (run, key, step) the store holds (another writer logged that
    step of the run meanwhile): the transaction is lost, and the caller writes the batch again as an upsert."""


class DriverWrites:
    """Statements of one transaction run on its DBAPI cursor; on PostgreSQL queued in a pipeline until `sync`."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.dialect = conn.dialect
        self.postgres = conn.dialect.name == "postgresql"
        self.driver = conn.connection.driver_connection
        self.cursor = self.driver.cursor()

    def execute(self, statement: Prepared, values: Mapping[str, Any] | None = None) -> None:
        """Run (or on PostgreSQL in a pipeline, queue) one statement whose answer is not needed."""
        sql, params = statement.bound(self.dialect, values or {})
        with self.mapped(sql, params):
            self.cursor.execute(sql, params)

    def query(self, statement: Prepared, values: Mapping[str, Any] | None = None) -> Any:
        """Run (or queue) a statement with an answer on a cursor of its own; fetch from it with `fetchone`."""
        sql, params = statement.bound(self.dialect, values or {})
        cursor = self.driver.cursor()
        with self.mapped(sql, params):
            cursor.execute(sql, params)
        return cursor

    def execute_sql(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.mapped(sql, params):
            self.cursor.execute(sql, params)

    def copy_fresh_points(self, points: list[tuple]) -> None:
        """COPY points none of which repeats a (run, key, step) of the batch or of the store (PostgreSQL).

        Raises:
            RepeatedPoint: one did (another writer logged it meanwhile); the transaction is lost.
        """
        try:
            with self.mapped(_COPY_NEW_POINTS, None), self.cursor.copy(_COPY_NEW_POINTS) as copy:
                for point in points:
                    copy.write_row(point)
        except exc.IntegrityError as err:
            if getattr(err.orig, "sqlstate", None) == "23505":  # unique_violation
                raise RepeatedPoint from err
            raise

    def insert_tuples(self, table: str, columns: Sequence[str], rows: list[tuple]) -> None:
        """Insert rows given as tuples in the order of `columns`, values the driver binds as they are (numbers,
        texts, None): for the index rows, whose building cost more than SQLite takes to write them."""
        if rows:
            key = (table, tuple(columns), self.dialect.paramstyle)
            sql = _INSERTS.get(key)
            if sql is None:
                mark = "?" if self.dialect.paramstyle == "qmark" else "%s"
                names = ", ".join(f'"{column}"' for column in columns)
                sql = _INSERTS[key] = f"INSERT INTO {table} ({names}) VALUES ({', '.join([mark] * len(columns))})"
            with self.mapped(sql, rows):
                self.cursor.executemany(sql, rows)

    def fetchone(self, cursor: Any) -> Any:
        """The first row of a `query` (in a pipeline this sends what is queued and waits for it)."""
        with self.mapped("", None):
            row = cursor.fetchone()
        cursor.close()
        return row

    @contextlib.contextmanager
    def pipeline(self) -> Iterator[None]:
        """On PostgreSQL, send the statements of the block together, one round trip (a no-op on SQLite)."""
        if not self.postgres:
            yield
            return
        with self.mapped("", None), self.driver.pipeline():
            yield

    @contextlib.contextmanager
    def mapped(self, sql: str, params: Any) -> Iterator[None]:
        try:
            yield
        except self.dialect.loaded_dbapi.Error as err:
            raise exc.DBAPIError.instance(sql, params, err, self.dialect.loaded_dbapi.Error) from err


def open_without_accounts(writes: DriverWrites, run_id: int) -> bool:
    """Whether the run is running and the store has no accounts: then a write without an actor may go ahead.
    False means `check_open` must decide (it raises the reason, or lets an actor with rights go ahead)."""
    statement = _OPEN_WITHOUT_ACCOUNTS_HELD if writes.postgres else _OPEN_WITHOUT_ACCOUNTS
    row = writes.fetchone(writes.query(statement, {"b_id": run_id}))
    return row is not None and row[0] == RunStatus.running.name and row[1] is None


def insert_new_run(
    writes: DriverWrites, values: dict[str, Any], check: Callable[[bool], object] | None = None
) -> int | None:
    """Insert a run row with its index rows and words and mark the store changed (the caller's transaction);
    None when the values leave a column to its default (then the caller inserts it through SQLAlchemy).

    `check`, told after the insert whether the store has accounts, checks that the run's owner may log (it
    raises, and the caller's transaction rolls back); so the insert and what it needs take one round trip.
    """
    keys = tuple(values)
    statement = _INSERT_RUNS.get(keys)
    if statement is None:
        statement = _INSERT_RUNS[keys] = Prepared(insert(Run).returning(Run.id), keys)
    if not statement.takes(writes.dialect, keys):
        return None
    with writes.pipeline():  # on PostgreSQL: one round trip for the insert and what it needs, one for the rest
        accounts = writes.query(_ANY_ACCOUNT) if check is not None else None
        names = writes.query(_NAMES, {"b_experiment": values["experiment_id"], "b_sweep": values["sweep_id"]})
        inserted = writes.query(statement, values)
        any_account = writes.fetchone(accounts) is not None if accounts is not None else False
        experiment, sweep = writes.fetchone(names) or (None, None)
        run_id = int(writes.fetchone(inserted)[0])
        name = values["name"] or (
            f"run-{run_id}" if values["trial_number"] is None else f"trial-{values['trial_number']}"
        )
        if not values["name"]:
            writes.execute(_NAME_RUN, {"b_id": run_id, "b_name": name})
        rows = value_tuples(run_id, "params", values["params"]) + value_tuples(run_id, "metrics", values["metrics"])
        writes.insert_tuples("run_values", VALUE_COLUMNS, rows)
        found = words(name, experiment, sweep, *values["params"].values())
        writes.insert_tuples("run_words", ("run_id", "word"), [(run_id, word) for word in sorted(found)])
        writes.execute_sql(*change_counter_bump(writes.conn))
    if check is not None:  # after the pipeline (it may query through SQLAlchemy); a refusal rolls all this back
        check(any_account)
    return run_id


def finish_run(
    writes: DriverWrites,
    run_id: int,
    points: list[tuple],
    summary: dict[str, Any],
    status: RunStatus,
    error: str | None,
    write_points: Callable[[list[tuple]], None],
    fresh: bool = False,
) -> None:
    """Write a run's last points, its summary (and its index rows) and its final status; mark the store changed.
    `write_points` writes a batch the pipeline cannot carry (SQLite's executemany runs anyway); `fresh` says
    that no point repeats a step the batch or the store holds (then PostgreSQL gets them by COPY).

    Raises:
        RepeatedPoint: a fresh batch met a step another writer logged; write it again with `fresh=False`.
    """
    arrays = writes.postgres and points and not fresh
    if writes.postgres and points and fresh:
        writes.copy_fresh_points(points)
    elif not arrays:
        write_points(points)
    with writes.pipeline():
        if arrays:
            latest = {(point[0], point[1], point[2]): point for point in points}  # one upsert touches a row once
            writes.execute_sql(_UPSERT_JSON, (json.dumps(list(latest.values())),))
        finished = {"b_status": status, "b_error": error, "b_finished": utcnow(), "b_metrics": summary, "b_id": run_id}
        writes.execute(_FINISH, finished)
        writes.execute(_DELETE_METRIC_VALUES, {"b_run": run_id})
        writes.insert_tuples("run_values", VALUE_COLUMNS, value_tuples(run_id, "metrics", summary))
        writes.execute_sql(*change_counter_bump(writes.conn))
