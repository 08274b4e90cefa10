"""What lets the database find runs by index: typed param/metric rows (`run_values`) and words (`run_words`).

A run's params and final metrics stay in its JSON columns (the record, read whole); every write of them
also rewrites the run's rows of `run_values` in the same transaction, so filters and sorts go through
the indexes (kind, key, number, run_id) and (kind, key, text, run_id) instead of reading every run's JSON.
The search box finds runs by `run_words`: the lowercase words of a run's name, experiment, sweep, tags,
notes and param values, rewritten whenever one of them changes.

Writes that bypass these functions (raw SQL on the runs table) leave the index stale: use `index_runs`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.engine import Connection

from tracking.store import Experiment, Note, Run, RunTag, RunValue, RunWord, Sweep

SHORT_TEXT = 256  # longer texts keep this many characters in the index; filters check them against the JSON
MAX_WORD = 64  # longer words are cut (an index entry stays small; a search for their start still finds them)
_WORD = re.compile(r"\w+(?:\.\w+)*")
_EDGES = "\"'()[]{}<>,;:!?"  # quotes and brackets around a piece are not part of it
KINDS = {"params": ("p", "pb", "pl"), "metrics": ("m", "mb", "ml")}
_BATCH = 2000


VALUE_COLUMNS = ("run_id", "kind", "key", "number", "text")


def value_rows(run_id: int, kind: str, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The `run_values` rows of one run's params or metrics (`kind` is "params" or "metrics")."""
    return [dict(zip(VALUE_COLUMNS, row, strict=True)) for row in value_tuples(run_id, kind, values)]


def value_tuples(run_id: int, kind: str, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """`value_rows` as tuples in the order of `VALUE_COLUMNS` (what the driver-level writes bind)."""
    plain, boolean, long = KINDS[kind]
    rows = []
    for key, value in values.items():
        if value is None:
            continue
        number, text, code = None, None, plain
        if isinstance(value, bool):
            number, code = float(value), boolean
        elif isinstance(value, int | float):
            try:
                number = float(value)
            except OverflowError:  # an integer beyond a double: kept in the JSON, found by no number filter
                number = None
        elif isinstance(value, str):
            text, code = (value, plain) if len(value) <= SHORT_TEXT else (value[:SHORT_TEXT], long)
        rows.append((run_id, code, str(key), number, text))
    return rows


# Statements of the logging hot path (every run's start and end), built once: building costs more than running.
_INSERT_VALUES = insert(RunValue)
_DELETE_VALUES = delete(RunValue).where(
    RunValue.run_id == bindparam("b_run"), RunValue.kind.in_(bindparam("b_kinds", expanding=True))
)
_INSERT_WORDS = insert(RunWord)
_NEW_RUN_TEXTS = (
    select(Run.name, Experiment.name, Sweep.name)
    .join(Experiment, Run.experiment_id == Experiment.id)
    .outerjoin(Sweep, Run.sweep_id == Sweep.id)
    .where(Run.id == bindparam("b_run"))
)


def write_values(
    conn: Connection,
    run_id: int,
    *,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    new: bool = False,
) -> None:
    """Replace a run's `run_values` rows for its params and/or metrics (inside the caller's transaction).

    `new` says the run was just inserted, so it has no rows to remove yet.
    """
    for kind, values in (("params", params), ("metrics", metrics)):
        if values is None:
            continue
        if not new:
            conn.execute(_DELETE_VALUES, {"b_run": run_id, "b_kinds": list(KINDS[kind])})
        rows = value_rows(run_id, kind, values)
        if rows:
            conn.execute(_INSERT_VALUES, rows)


def new_run_words(conn: Connection, run_id: int, params: Mapping[str, Any]) -> None:
    """The search words of a run just inserted (inside its transaction): no tags, notes or words yet."""
    name, experiment, sweep = conn.execute(_NEW_RUN_TEXTS, {"b_run": run_id}).one()
    found = words(name, experiment, sweep, *params.values())
    if found:
        conn.execute(_INSERT_WORDS, [{"run_id": run_id, "word": word} for word in sorted(found)])


def words(*texts: Any) -> set[str]:
    """The search words of some texts, lowercase: runs of letters and digits (dots inside, as in 0.01), and each
    whitespace-separated piece made of several (`trial-12`, `lr=0.1`), so a search for the piece finds it."""
    found: set[str] = set()
    for text in texts:
        if text is None or isinstance(text, bool):
            continue
        for piece in str(text).casefold().split():
            parts = _WORD.findall(piece)
            found.update(part[:MAX_WORD] for part in parts)
            if len(parts) > 1:
                found.add(piece.strip(_EDGES)[:MAX_WORD])
    return found


def search_terms(text: str) -> set[str]:
    """What a search looks for, each the start of some word of a run: a typed word, or a typed piece of several
    (`trial-1` finds trial-1 and trial-10, not every trial that holds a 1)."""
    terms: set[str] = set()
    for piece in text.casefold().split():
        parts = _WORD.findall(piece)
        terms.update(parts if len(parts) < 2 else [piece.strip(_EDGES)[:MAX_WORD]])
    return terms


def refresh_words(conn: Connection, run_ids: Sequence[int]) -> None:
    """Rewrite the search words of some runs from what the store holds now (inside the caller's transaction)."""
    for start in range(0, len(run_ids), _BATCH):
        part = list(run_ids[start : start + _BATCH])
        texts: dict[int, list[Any]] = {}
        query = (
            select(Run.id, Run.name, Experiment.name, Sweep.name, Run.params)
            .join(Experiment, Run.experiment_id == Experiment.id)
            .outerjoin(Sweep, Run.sweep_id == Sweep.id)
            .where(Run.id.in_(part))
        )
        for run_id, name, experiment, sweep, params in conn.execute(query):
            texts[run_id] = [name, experiment, sweep, *(params or {}).values()]
        for run_id, key, value in conn.execute(
            select(RunTag.run_id, RunTag.key, RunTag.value).where(RunTag.run_id.in_(part))
        ):
            texts.setdefault(run_id, []).extend((key, value))
        for run_id, body in conn.execute(select(Note.run_id, Note.body).where(Note.run_id.in_(part))):
            texts.setdefault(run_id, []).append(body)
        conn.execute(delete(RunWord).where(RunWord.run_id.in_(part)))
        rows = [{"run_id": run_id, "word": word} for run_id, found in texts.items() for word in sorted(words(*found))]
        if rows:
            conn.execute(insert(RunWord), rows)


def index_runs(conn: Connection, run_ids: Iterable[int]) -> None:
    """Rebuild the `run_values` and `run_words` of some runs from their JSON (after a raw bulk write)."""
    ids = list(run_ids)
    for start in range(0, len(ids), _BATCH):
        part = ids[start : start + _BATCH]
        conn.execute(delete(RunValue).where(RunValue.run_id.in_(part)))
        rows = []
        for run_id, params, metrics in conn.execute(select(Run.id, Run.params, Run.metrics).where(Run.id.in_(part))):
            rows += value_rows(run_id, "params", params or {}) + value_rows(run_id, "metrics", metrics or {})
        if rows:
            conn.execute(insert(RunValue), rows)
        refresh_words(conn, part)
