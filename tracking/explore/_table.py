"""The runs table: one page of runs across experiments and sweeps, filtered, sorted and counted in SQL.

A page costs a few small queries whatever the store holds: the page's run ids read in sort order from
an index (`_order`: params and metrics through `run_values`), then just those runs with only the chosen
params, metrics and tags extracted from the JSON columns. The count of matching runs is computed once
per filter, search and store change. So a browser never receives more than a page, and a million runs
never cross into Python.

Columns are the built-in ones (`BASE_COLUMNS`) and `params.<key>`, `metrics.<key>`, `tags.<key>`.
Sorting by a JSON key orders it as a spreadsheet does: numbers (booleans count as 0 and 1) before text
when ascending, the reverse when descending, and runs without the key last either way; the same on
SQLite and PostgreSQL. Ties break on the run id.

The keys a user can choose from come from a small catalogue (`run_keys`), brought up to date by
`list_keys`: it reads only runs newer than its last visit and runs that were running then, so a
store of 100,000 runs is read once (after a migration or a bulk import) and then a few rows at a time.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import func, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from tracking._errors import ValidationError
from tracking.explore._compare import parse_ids
from tracking.explore._order import filtered_runs, is_frequent, page_ids, sort_segments
from tracking.runs import runs_where
from tracking.store import (
    DatasetVersion,
    Experiment,
    Run,
    RunKey,
    RunKeyScan,
    RunStatus,
    RunTag,
    Store,
    Sweep,
    change_marker,
    iso,
)

BASE_COLUMNS = (
    "id",
    "name",
    "experiment",
    "sweep",
    "status",
    "duration",
    "dataset",
    "code_version",
    "started_at",
)
SORTABLE = (*BASE_COLUMNS, "finished_at", "trial_number", "host")
KEYED = ("params", "metrics", "tags")
MAX_PAGE = 1000
EXPORT_CHUNK = 1000
_RESCAN_MARGIN = 200  # a PostgreSQL transaction can commit a lower run id after a higher one is seen


@dataclass(frozen=True)
class RunKeys:
    """The names a runs-table column or a filter can use."""

    params: tuple[str, ...]
    metrics: tuple[str, ...]
    tags: tuple[str, ...]

    def columns(self) -> list[str]:
        """Every keyed column, as `params.<key>`, `metrics.<key>`, `tags.<key>`."""
        return [f"{kind}.{key}" for kind in KEYED for key in getattr(self, kind)]


@dataclass(frozen=True)
class RunsPage:
    """One page of the runs table: `rows` are plain dicts keyed by column name."""

    rows: tuple[dict[str, Any], ...]
    total: int
    offset: int
    limit: int
    columns: tuple[str, ...]
    next_after: str | None = None  # the cursor of the page after this one (None: this is the last page)

    @property
    def ids(self) -> list[int]:
        return [row["id"] for row in self.rows]


@dataclass(frozen=True)
class RunsView:
    """What the runs table shows; round-trips through URL query params so an address reopens the view."""

    filter: str = ""
    columns: tuple[str, ...] = ()  # keyed columns; empty means "the defaults for this store"
    sort: str = "started_at"
    descending: bool = True
    page: int = 1
    page_size: int = 100
    selected: tuple[int, ...] = ()
    search: str = ""  # the search box: words of names, experiments, sweeps, tags, notes, param values

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size

    def to_query(self) -> dict[str, str]:
        """URL query params; defaults are left out so addresses stay short."""
        default = RunsView()
        out = {
            "filter": self.filter,
            "q": self.search,
            "cols": ",".join(self.columns),
            "sort": self.sort if self.sort != default.sort else "",
            "asc": "" if self.descending else "1",
            "page": str(self.page) if self.page != 1 else "",
            "size": str(self.page_size) if self.page_size != default.page_size else "",
            "sel": ",".join(map(str, self.selected)),
        }
        return {key: value for key, value in out.items() if value}

    @classmethod
    def from_query(cls, query: Mapping[str, Any]) -> RunsView:
        """Parse URL query params leniently: a value that does not parse is left at its default."""

        def text(key: str) -> str:
            value = query.get(key)
            value = value[-1] if isinstance(value, list) and value else value
            return str(value).strip() if value is not None else ""

        def number(key: str, default: int, low: int, high: int) -> int:
            raw = text(key)
            return min(max(int(raw), low), high) if raw.isascii() and raw.isdigit() and len(raw) <= 12 else default

        columns = []
        for column in text("cols").split(","):
            try:
                if column.strip() and split_column(column.strip())[1] is not None:
                    columns.append(column.strip())
            except ValidationError:
                continue
        sort = text("sort") or cls.sort
        try:
            split_column(sort)
        except ValidationError:
            sort = cls.sort
        selected = parse_ids(text("sel").replace(",", " "))
        return cls(
            filter=text("filter"),
            search=text("q"),
            columns=tuple(dict.fromkeys(columns)),
            sort=sort,
            descending=text("asc") not in ("1", "true"),
            page=number("page", 1, 1, 10**9),
            page_size=number("size", cls.page_size, 1, MAX_PAGE),
            selected=tuple(dict.fromkeys(selected)),
        )


def default_columns(keys: RunKeys, metrics: int = 6, params: int = 6) -> tuple[str, ...]:
    """The keyed columns a table starts with: the first few metrics (test_ and cv_ first), then params."""

    def rank(key: str) -> tuple[int, str]:
        return (0 if key.startswith("test_") else 1 if key.startswith("cv_") else 2, key)

    chosen = [f"metrics.{key}" for key in sorted(keys.metrics, key=rank)[:metrics]]
    return (*chosen, *(f"params.{key}" for key in keys.params[:params]))


def split_column(column: str) -> tuple[str, str | None]:
    """`"params.lr"` -> `("params", "lr")`; a built-in column -> `(name, None)`.

    Raises:
        ValidationError: an unknown column, or a key that is empty or holds a double quote.
    """
    kind, dot, key = column.partition(".")
    if dot and kind in KEYED:
        if not key or '"' in key or any(ord(char) < 32 or ord(char) == 127 for char in key):
            raise ValidationError(
                f"{column!r} is not a usable column: the key must be non-empty, without double quotes or "
                "control characters."
            )
        return kind, key
    if column in SORTABLE:
        return column, None
    raise ValidationError(
        f"Unknown column {column!r}; use one of {', '.join(SORTABLE)} or params.<key>, metrics.<key>, tags.<key>."
    )


def runs_page(
    store: Store,
    *,
    filter: str = "",
    columns: Sequence[str] = (),
    sort: str = "started_at",
    descending: bool = True,
    offset: int = 0,
    limit: int = 100,
    search: str = "",
    after: str | None = None,
) -> RunsPage:
    """One page of runs matching a filter and a search, sorted by any column, with the chosen keyed columns.

    The page is read in sort order from an index (a param or metric through `run_values`), so its cost
    does not grow with the store: `offset` walks an index (cheap), `after` (the `next_after` of the page
    before) starts right after that page's last run. The count of matching runs is computed once per
    filter, search and store change (`count_runs`), not per page.

    Args:
        filter: the filter language of `tracking.runs._filters`; blank means every run.
        columns: keyed columns to add to `BASE_COLUMNS`, e.g. `["params.lr", "metrics.test_f1"]`.
        sort: a column of `SORTABLE` or any keyed column (it need not be shown).
        descending: sort direction; missing values are last either way.
        offset: rows to skip (a page beyond the end gives no rows and the true total); 0 with `after`.
        limit: rows per page, at most `MAX_PAGE`.
        search: words that each start a word of the run's name, experiment, sweep, tags, notes or params.
        after: a cursor from `RunsPage.next_after` of the same view (keyset paging).

    Raises:
        FilterError: the filter or the search does not parse.
        ValidationError: an unknown column or sort key, a bad offset, limit or cursor.
    """
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise ValidationError(f"A page holds 1 to {MAX_PAGE} rows from a non-negative offset.")
    keyed = _keyed(columns)
    for column in keyed:
        if split_column(column)[1] is None:
            raise ValidationError(f"{column!r} is always shown; choose params.<key>, metrics.<key> or tags.<key>.")
    total = count_runs(store, filter=filter, search=search)
    with store.connect() as conn:
        where = runs_where(filter, search, partial(is_frequent, conn))
        found, cursor = page_ids(
            conn, sort_segments(conn, *split_column(sort), descending, where), descending, offset, limit, after
        )
        rows = _rows(conn, found, keyed)
    return RunsPage(tuple(rows), total, offset, limit, (*BASE_COLUMNS, *keyed), cursor)


def iter_runs_table(
    store: Store,
    *,
    filter: str = "",
    columns: Sequence[str] = (),
    sort: str = "started_at",
    descending: bool = True,
    search: str = "",
) -> Iterator[dict[str, Any]]:
    """Every matching row of the runs table, in order, read a thousand runs at a time (for downloads)."""
    keyed = _keyed(columns)
    for column in keyed:
        split_column(column)
    runs_where(filter, search)  # a bad filter is refused before the first row is sent
    after = None
    while True:
        with store.connect() as conn:
            where = runs_where(filter, search, partial(is_frequent, conn))
            segments = sort_segments(conn, *split_column(sort), descending, where)
            ids, after = page_ids(conn, segments, descending, 0, EXPORT_CHUNK, after)
            chunk = _rows(conn, ids, keyed)
        yield from chunk  # outside the transaction: the caller may use the store in between
        if after is None:
            return


def count_runs(store: Store, *, filter: str = "", search: str = "") -> int:
    """How many runs match a filter and a search; remembered until the store changes (its change marker)."""
    where = runs_where(filter, search)  # refuses a bad filter before anything is remembered
    marker = change_marker(store)
    key = (store.url, marker, (filter or "").strip(), (search or "").strip())
    with _COUNTS_LOCK:
        if key in _COUNTS:
            _COUNTS.move_to_end(key)
            return _COUNTS[key]
    with store.connect() as conn:
        where = runs_where(filter, search, partial(is_frequent, conn))
        total = int(conn.execute(filtered_runs(select(func.count()), where)).scalar_one())
    with _COUNTS_LOCK:
        _COUNTS[key] = total
        while len(_COUNTS) > _COUNTS_KEPT:
            _COUNTS.popitem(last=False)
    return total


_COUNTS: OrderedDict[tuple[str, int, str, str], int] = OrderedDict()
_COUNTS_LOCK = threading.Lock()
_COUNTS_KEPT = 256


def _keyed(columns: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(c for c in columns if c not in BASE_COLUMNS))


def runs_table_csv(store: Store, **view: Any) -> str:
    """The whole filtered table (every matching run, the chosen columns) as CSV text."""
    out = io.StringIO()
    writer: csv.DictWriter | None = None
    for row in iter_runs_table(store, **view):
        if writer is None:
            writer = csv.DictWriter(out, fieldnames=list(row), extrasaction="ignore")
            writer.writeheader()
        writer.writerow({key: _csv_value(value) for key, value in row.items()})
    if writer is None:
        keyed = [c for c in view.get("columns", ()) if c not in BASE_COLUMNS]
        csv.writer(out).writerow([*BASE_COLUMNS, *keyed])
    return out.getvalue()


def runs_table_json(store: Store, **view: Any) -> str:
    """The whole filtered table as a JSON array of objects (times in ISO 8601 UTC)."""
    rows = [
        {key: iso(v) if isinstance(v, datetime) else v for key, v in row.items()}
        for row in iter_runs_table(store, **view)
    ]
    return json.dumps(rows, indent=1, ensure_ascii=False)


def _csv_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, bool | dict | list):
        return json.dumps(value)
    return value


def _from(query: Any) -> Any:
    """The runs query's FROM clause, the one `compile_filter` expects."""
    return (
        query.select_from(Run)
        .join(Experiment, Run.experiment_id == Experiment.id)
        .outerjoin(DatasetVersion, Run.dataset_version_id == DatasetVersion.id)
    )


def _rows(conn: Connection, ids: list[int], keyed: tuple[str, ...]) -> list[dict[str, Any]]:
    if not ids:
        return []
    extracted = [_value_column(column) for column in keyed]
    query = _from(
        select(
            Run.id, Run.name, Experiment.name, Run.sweep_id, Sweep.name, Run.status, Run.started_at,
            Run.finished_at, DatasetVersion.name, DatasetVersion.sha256, Run.code_version, *extracted,
        )
    ).outerjoin(Sweep, Run.sweep_id == Sweep.id).where(Run.id.in_(ids))  # fmt: skip
    now = datetime.now(UTC)
    by_id = {}
    for row in conn.execute(query):
        run_id, name, experiment, sweep_id, sweep, status, started, finished, ds_name, ds_sha, code, *values = row
        by_id[run_id] = {
            "id": run_id,
            "name": name,
            "experiment": experiment,
            "sweep": sweep if sweep_id is not None else None,
            "status": status.value if hasattr(status, "value") else str(status),
            "duration": ((finished or now) - started).total_seconds() if started else None,
            "dataset": f"{ds_name}@{ds_sha[:8]}" if ds_sha else None,
            "code_version": code,
            "started_at": started,
            **dict(zip(keyed, values, strict=True)),
        }
    return [by_id[run_id] for run_id in ids if run_id in by_id]


def _value_column(column: str) -> ColumnElement[Any]:
    kind, key = split_column(column)
    if kind == "tags":
        return select(RunTag.value).where(RunTag.run_id == Run.id, RunTag.key == key).scalar_subquery()
    return getattr(Run, kind)[key]  # typed JSON values: numbers stay numbers, text stays text


# -- the key catalogue ------------------------------------------------------------------------------


def list_keys(store: Store) -> RunKeys:
    """Every params and metrics key of any run, and every tag key, sorted (refreshes the catalogue)."""
    refresh_keys(store)
    with store.connect() as conn:
        found: dict[str, list[str]] = {"params": [], "metrics": []}
        for kind, key in conn.execute(select(RunKey.kind, RunKey.key).order_by(RunKey.key)):
            if '"' not in key:
                found.setdefault(kind, []).append(key)
        tags = [
            key for key in conn.execute(select(RunTag.key).distinct().order_by(RunTag.key)).scalars() if '"' not in key
        ]
    return RunKeys(tuple(found["params"]), tuple(found["metrics"]), tuple(tags))


def refresh_keys(store: Store) -> None:
    """Add the keys of runs added, running or finished since the last refresh to `run_keys`."""
    with store.connect() as conn:
        seen, pending = conn.execute(select(RunKeyScan.max_run_id, RunKeyScan.pending).where(RunKeyScan.id == 1)).one()
        top = int(conn.execute(select(func.coalesce(func.max(Run.id), 0))).scalar_one())
        running = [int(i) for i in conn.execute(select(Run.id).where(Run.status == RunStatus.running)).scalars()]
        if top == seen and not pending and not running:
            return
        delta = (Run.id > seen - _RESCAN_MARGIN) | Run.id.in_([*pending, *running])
        found = {(kind, key) for kind in ("params", "metrics") for key in _distinct_keys(store, conn, kind, delta)}
        known = {tuple(row) for row in conn.execute(select(RunKey.kind, RunKey.key))} if found else set()
    new = [{"kind": kind, "key": key} for kind, key in sorted(found - known)]
    with store.connect(write=True) as conn:
        if new:
            dialect_insert = sqlite_insert if store.is_sqlite else pg_insert
            conn.execute(dialect_insert(RunKey).on_conflict_do_nothing(), new)
        conn.execute(update(RunKeyScan).where(RunKeyScan.id == 1).values(max_run_id=top, pending=running))


def _distinct_keys(store: Store, conn: Connection, kind: str, where: ColumnElement[bool]) -> list[str]:
    column = getattr(Run, kind)
    if store.is_sqlite:
        each = func.json_each(column).table_valued("key", name="each")
        query = select(each.c.key).select_from(Run).join(each, true()).where(where).distinct()
    else:
        query = select(func.jsonb_object_keys(column)).where(where).distinct()
    return [str(key) for key in conn.execute(query).scalars()]
