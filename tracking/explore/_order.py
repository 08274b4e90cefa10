"""The order of the runs table, read from indexes: segments, pages by offset or by cursor, the WHERE's joins.

A sort splits into segments that one index reads in order (for a param or metric: its numbers, its
texts, then the runs without it); a page takes rows segment after segment, skipping whole segments by
their count, or starts after a cursor (keyset paging: the last row's segment, value and run id).
Conditions that hold for many runs are checked run by run (`frequent`), so a page read in sort order
stops once it has its rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Float, String, cast, func, literal, select, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import Column as SchemaColumn
from sqlalchemy.sql import ColumnElement, visitors
from sqlalchemy.sql.functions import FunctionElement

from tracking._errors import ValidationError
from tracking.runs import KINDS, live_runs
from tracking.store import DatasetVersion, Experiment, Run, RunTag, RunValue, RunWord


def is_frequent(conn: Connection, condition: ColumnElement[bool]) -> bool:
    """Whether a condition on `run_values` or `run_words` holds for at least `FREQUENT` rows (counted no
    further than that: a few thousand index entries)."""
    table = RunWord if "run_words" in {t.name for t in condition._from_objects} else RunValue
    some = select(table.run_id).where(condition).limit(FREQUENT).subquery()
    return int(conn.execute(select(func.count()).select_from(some)).scalar_one()) >= FREQUENT


FREQUENT = 5000


def filtered_runs(
    query: Any,
    where: ColumnElement[bool],
    order: Sequence[ColumnElement[Any]] = (),
    join: tuple[Any, Any] | None = None,
) -> Any:
    """`query` over runs with the filter, joining experiments and datasets only when they are used.

    The experiments join never drops a run (a run's experiment is a required foreign key), but it
    costs an index lookup per run over 100,000 runs, and a filter on params and metrics needs none.
    """
    used = {
        element.table.name
        for part in (where, *order)
        for element in visitors.iterate(part.__clause_element__() if hasattr(part, "__clause_element__") else part)
        if isinstance(element, SchemaColumn)
    }
    query = query.select_from(Run)
    if join is not None:  # the table the sort reads in index order
        query = query.join(*join)
    if "experiments" in used:
        query = query.join(Experiment, Run.experiment_id == Experiment.id)
    if "dataset_versions" in used:
        query = query.outerjoin(DatasetVersion, Run.dataset_version_id == DatasetVersion.id)
    return query.where(where, live_runs())  # runs in the trash are never listed or counted


@dataclass(frozen=True)
class _Segment:
    """A stretch of the sort order that one index reads in order: the runs with a value (by value, then id),
    or the runs without one (by id). `query` selects (run id, value) with the WHERE applied, unordered."""

    name: str
    query: Any
    run_id: ColumnElement[Any]
    value: ColumnElement[Any] | None


def sort_segments(
    conn: Connection, kind: str, key: str | None, descending: bool, where: ColumnElement[bool]
) -> list[_Segment]:
    """The sort order of the runs table as segments, first to last.

    A param or metric orders as a spreadsheet: numbers (booleans as 0 and 1) then texts ascending, texts
    then numbers descending, runs without it last; each part is one range of a `run_values` index.
    """
    if kind in KINDS:
        plain, boolean, long = KINDS[kind]

        def some(code: str, column: Any) -> bool:  # one index seek: does any run hold such a value?
            query = select(RunValue.run_id).where(RunValue.kind == code, RunValue.key == key, column.is_not(None))
            return conn.execute(query.limit(1)).first() is not None

        present = {
            (code, column.key)
            for code, column in ((plain, RunValue.number), (boolean, RunValue.number), (plain, RunValue.text),
                                 (long, RunValue.text))
            if some(code, column)
        }  # fmt: skip

        def valued(name: str, codes: tuple[str, ...], column: Any) -> _Segment | None:
            found = [code for code in codes if (code, column.key) in present]
            if not found:
                return None
            # one kind reads an index in order; two (a key holding numbers and booleans) need a sort
            which = RunValue.kind == found[0] if len(found) == 1 else RunValue.kind.in_(found)
            query = select(RunValue.run_id, column).where(which, RunValue.key == key, column.is_not(None))
            if where._from_objects:  # a filter: join the runs (no filter: every row is a run's, read the index alone)
                query = filtered_runs(query, where, join=(RunValue, RunValue.run_id == Run.id))
            else:  # ... but for the few runs in the trash, looked up once through their partial index
                query = query.where(RunValue.run_id.not_in(select(Run.id).where(Run.trash_id.is_not(None))))
            return _Segment(name, query, RunValue.run_id, column)

        numbers = valued("numbers", (plain, boolean), RunValue.number)
        texts = valued("texts", (plain, long), RunValue.text)
        held = (
            select(RunValue.run_id)
            .where(
                RunValue.run_id == Run.id,
                RunValue.kind.in_(KINDS[kind]),
                RunValue.key == key,
                (RunValue.number.is_not(None)) | (RunValue.text.is_not(None)),
            )
            .correlate(Run)
        )  # checked run by run through the primary key: the runs without the key come in id order
        missing = _Segment("missing", filtered_runs(select(Run.id), where).where(~held.exists()), Run.id, None)
        ordered = (texts, numbers) if descending else (numbers, texts)
        return [segment for segment in (*ordered, missing) if segment is not None]
    if kind == "tags":
        tagged = filtered_runs(
            select(RunTag.run_id, RunTag.value), where, join=(RunTag, (RunTag.run_id == Run.id) & (RunTag.key == key))
        )
        tag = select(RunTag.id).where(RunTag.run_id == Run.id, RunTag.key == key).correlate(Run)
        untagged = filtered_runs(select(Run.id), where).where(~tag.exists())
        return [_Segment("values", tagged, RunTag.run_id, RunTag.value), _Segment("missing", untagged, Run.id, None)]
    if kind == "id":
        return [_Segment("values", filtered_runs(select(Run.id), where), Run.id, None)]
    value = _Duration(Run.started_at, Run.finished_at) if kind == "duration" else _PLAIN[kind]
    segments = [
        _Segment(
            "values", filtered_runs(select(Run.id, value), where, [value]).where(value.is_not(None)), Run.id, value
        )
    ]
    if kind not in _NEVER_NULL:
        nulls = filtered_runs(select(Run.id), where, [value]).where(value.is_(None))
        segments.append(_Segment("missing", nulls, Run.id, None))
    return segments


def page_ids(
    conn: Connection, segments: list[_Segment], descending: bool, offset: int, limit: int, after: str | None
) -> tuple[list[int], str | None]:
    """The ids of one page, segment after segment, and the cursor of the page that follows (None at the end)."""
    start, value, last_id = 0, None, None
    if after:
        if offset:
            raise ValidationError("A page starts either after a cursor or at an offset, not both.")
        start, value, last_id = _decode(after, segments)
    ids: list[int] = []
    tail: tuple[str, Any, int] | None = None
    skip = offset
    for index in range(start, len(segments)):
        need = limit - len(ids)
        if need <= 0:
            break
        segment = segments[index]
        query = segment.query
        if after and index == start:
            query = query.where(_beyond(segment, value, last_id, descending))
        keys = [key for key in (segment.value, segment.run_id) if key is not None]
        order = [key.desc() if descending else key.asc() for key in keys]
        rows = conn.execute(query.order_by(*order).limit(need).offset(skip)).all()
        if rows:
            skip = 0
            ids += [int(row[0]) for row in rows]
            tail = (segment.name, rows[-1][1] if segment.value is not None else None, int(rows[-1][0]))
        elif skip:  # the whole segment lies before the page: skip past it
            skip -= int(conn.execute(select(func.count()).select_from(query.subquery())).scalar_one())
    return ids, _encode(tail) if tail is not None and len(ids) == limit else None


def _beyond(segment: _Segment, value: Any, last_id: int, descending: bool) -> ColumnElement[bool]:
    if segment.value is None:
        return segment.run_id < last_id if descending else segment.run_id > last_id
    mark = (literal(value, segment.value.type), literal(last_id))
    pair = tuple_(segment.value, segment.run_id)
    return pair < tuple_(*mark) if descending else pair > tuple_(*mark)


def _encode(tail: tuple[str, Any, int]) -> str:
    name, value, run_id = tail
    shown = {"at": value.isoformat()} if isinstance(value, datetime) else value
    return json.dumps([name, shown, run_id], separators=(",", ":"))


def _decode(cursor: str, segments: list[_Segment]) -> tuple[int, Any, int]:
    names = [segment.name for segment in segments]
    try:
        name, value, run_id = json.loads(cursor)
        if isinstance(value, dict):
            value = datetime.fromisoformat(value["at"])
        if name not in names or not isinstance(run_id, int) or isinstance(value, list | dict):
            raise ValueError(name)
    except (ValueError, TypeError, KeyError):
        raise ValidationError("That page cursor is not one of this view's; start again from the first page.") from None
    return names.index(name), value, run_id


_NEVER_NULL = {"name", "experiment", "status", "started_at"}
_PLAIN: dict[str, Any] = {
    "name": Run.name,
    "experiment": Experiment.name,
    "sweep": Run.sweep_id,
    "status": cast(Run.status, String),
    "dataset": DatasetVersion.name,
    "code_version": Run.code_version,
    "started_at": Run.started_at,
    "finished_at": Run.finished_at,
    "trial_number": Run.trial_number,
    "host": Run.host,
}


class _Duration(FunctionElement):
    """Seconds from start to finish; NULL while running."""

    inherit_cache, type = True, Float()


@compiles(_Duration)
@compiles(_Duration, "sqlite")
def _sqlite_duration(element: _Duration, compiler: Any, **kw: Any) -> str:
    started, finished = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"((julianday({finished}) - julianday({started})) * 86400.0)"


@compiles(_Duration, "postgresql")
def _postgres_duration(element: _Duration, compiler: Any, **kw: Any) -> str:
    started, finished = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"EXTRACT(EPOCH FROM ({finished} - {started}))"
