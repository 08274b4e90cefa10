"""pandas DataFrames of runs and of metric histories, for notebooks.

`runs_frame` is one row per run with `params.<key>`, `metrics.<key>` and `tags.<key>` columns (the names
the filter language and the Runs page use), each column keeping its type: integers stay integers (pandas'
nullable `Int64` when some runs lack the key), numbers are float64, booleans `boolean`, text `str`; a key
whose values mix kinds (`max_features`: 0.5 and "sqrt") is an object column. `history_frame` is the
metric histories in long form, one row per point. Each is one query, however many runs it covers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from tracking._errors import ValidationError
from tracking.runs._filters import compile_filter
from tracking.runs._queries import live_runs
from tracking.store import DatasetVersion, Experiment, MetricPoint, Run, RunRecord, RunTag, Store

# pandas is imported inside the functions that use it: `import tracking` stays light.

_ID_CHUNK = 5000  # ids per IN list: far below SQLite's and PostgreSQL's limits on bound parameters

# The run's own fields: column name -> (select expression, pandas dtype).
_FIELDS: dict[str, tuple[Any, str | None]] = {
    "name": (Run.name, "str"),
    "experiment": (Experiment.name, "str"),
    "sweep_id": (Run.sweep_id, "Int64"),
    "trial_number": (Run.trial_number, "Int64"),
    "status": (Run.status, "str"),
    "started_at": (Run.started_at, None),
    "finished_at": (Run.finished_at, None),
    "duration_s": (None, "float64"),  # finished_at - started_at
    "dataset": (DatasetVersion.name, "str"),
    "dataset_sha256": (DatasetVersion.sha256, "str"),
    "code_version": (Run.code_version, "str"),
    "seed": (Run.seed, "Int64"),
    "host": (Run.host, "str"),
    "owner": (Run.owner, "str"),
}
_KINDS = ("params", "metrics", "tags")


def _wanted(columns: Sequence[str] | None) -> list[str]:
    if columns is None:
        return [*_FIELDS, "params.*", "metrics.*"]
    if isinstance(columns, str):
        columns = [columns]
    wanted = []
    for column in columns:
        kind, dot, key = column.partition(".")
        if column in _FIELDS or (dot and kind in _KINDS and key):
            wanted.append(column)
        elif column not in ("id", "run_id"):  # the index: always there
            raise ValidationError(
                f"Unknown column {column!r}: use one of {', '.join(_FIELDS)}, or params.<key>, metrics.<key>, "
                "tags.<key> (params.*, metrics.*, tags.* for all keys of a kind)."
            )
    return list(dict.fromkeys(wanted))


def _typed(values: list[Any], pd: Any) -> Any:
    """A Series of JSON values with the narrowest dtype that keeps them (None for a missing key)."""
    kinds = {type(v) for v in values if v is not None}
    if kinds == {bool}:
        return pd.Series(values, dtype="boolean")
    if kinds == {int}:
        return pd.Series(values, dtype="Int64")
    if kinds and kinds <= {int, float}:
        return pd.Series([float("nan") if v is None else float(v) for v in values], dtype="float64")
    if kinds == {str}:
        return pd.Series(values, dtype="str")
    return pd.Series(values, dtype="object")


def runs_frame(
    store: Store,
    filter: str | None = None,
    columns: Sequence[str] | None = None,
    *,
    sweep_id: int | None = None,
    experiment: str | None = None,
    limit: int | None = None,
) -> Any:
    """Runs as a pandas DataFrame: one row per run (index `id`, oldest first), params and metrics as columns.

        df = tracking.runs_frame(store, "metrics.test_f1_macro > 0.9", ["params.*", "metrics.test_f1_macro"])
        df.sort_values("metrics.test_f1_macro").tail()

    Args:
        store: the tracking store.
        filter: a filter in the filter language, e.g. `sweep = 3 and status = "complete"`.
        columns: the columns, in order: run fields (name, experiment, sweep_id, trial_number, status,
            started_at, finished_at, duration_s, dataset, dataset_sha256, code_version, seed, host, owner),
            `params.<key>`, `metrics.<key>`, `tags.<key>`, or `params.*` / `metrics.*` / `tags.*` for every
            key of a kind. Default: every run field, `params.*` and `metrics.*`.
        sweep_id: only the runs of this sweep.
        experiment: only the runs of this experiment.
        limit: at most this many runs (the oldest).

    Returns:
        A DataFrame; a named key no run has is a column of missing values.

    Raises:
        FilterError: the filter does not parse. ValidationError: an unknown column.
    """
    import pandas as pd

    wanted = _wanted(columns)
    fields = [c for c in wanted if c in _FIELDS]
    need_times = "duration_s" in fields
    select_fields = [c for c in fields if _FIELDS[c][0] is not None]
    select_fields += [c for c in ("started_at", "finished_at") if need_times and c not in select_fields]
    kinds = {c.split(".", 1)[0] for c in wanted if c.split(".", 1)[0] in _KINDS}
    query = select(
        Run.id,
        *[_FIELDS[c][0].label(c) for c in select_fields],
        *[getattr(Run, kind) for kind in ("params", "metrics") if kind in kinds],
    )
    ids_query = _filtered(select(Run.id), filter, sweep_id, experiment)
    query = _filtered(query, filter, sweep_id, experiment).order_by(Run.id)
    if limit is not None:
        query = query.limit(limit)
        ids_query = ids_query.order_by(Run.id).limit(limit)
    with store.connect() as conn:
        rows = conn.execute(query).mappings().all()
        tags: dict[int, dict[str, str]] = {}
        if "tags" in kinds:
            tag_keys = [c.split(".", 1)[1] for c in wanted if c.startswith("tags.")]
            tag_query = select(RunTag.run_id, RunTag.key, RunTag.value).where(RunTag.run_id.in_(ids_query))
            if "*" not in tag_keys:
                tag_query = tag_query.where(RunTag.key.in_(tag_keys))
            for run_id, key, value in conn.execute(tag_query):
                tags.setdefault(run_id, {})[key] = value
    index = pd.Index([row["id"] for row in rows], name="id", dtype="int64")
    values = {
        "params": [row["params"] for row in rows] if "params" in kinds else [],
        "metrics": [row["metrics"] for row in rows] if "metrics" in kinds else [],
        "tags": [tags.get(row["id"], {}) for row in rows] if "tags" in kinds else [],
    }
    data: dict[str, Any] = {}
    for column in wanted:
        if column in _FIELDS:
            data[column] = _field(column, rows, pd)
            continue
        kind, key = column.split(".", 1)
        keys = sorted({k for d in values[kind] for k in d}) if key == "*" else [key]
        for k in keys:
            series = [d.get(k) for d in values[kind]]
            data.setdefault(f"{kind}.{k}", pd.Series(series, dtype="str") if kind == "tags" else _typed(series, pd))
    if not data:
        return pd.DataFrame(index=index)
    # One concat of typed Series keeps each column's dtype (and avoids building the frame column by column).
    return pd.concat([series.set_axis(index).rename(name) for name, series in data.items()], axis=1)


def _field(column: str, rows: Sequence[Any], pd: Any) -> Any:
    if column in ("started_at", "finished_at"):
        return pd.Series(pd.to_datetime([row[column] for row in rows], utc=True))
    if column == "duration_s":
        started = pd.to_datetime([row["started_at"] for row in rows], utc=True)
        finished = pd.to_datetime([row["finished_at"] for row in rows], utc=True)
        return pd.Series((finished - started).total_seconds(), dtype="float64")
    values = [row[column] for row in rows]
    if column == "status":
        values = [getattr(v, "value", v) for v in values]
    return pd.Series(values, dtype=_FIELDS[column][1])


def _filtered(query: Any, filter_text: str | None, sweep_id: int | None, experiment: str | None) -> Any:
    query = query.join(Experiment, Run.experiment_id == Experiment.id).outerjoin(
        DatasetVersion, Run.dataset_version_id == DatasetVersion.id
    )
    query = query.where(live_runs())  # runs in the trash are left out
    if filter_text and filter_text.strip():
        query = query.where(compile_filter(filter_text))
    if sweep_id is not None:
        query = query.where(Run.sweep_id == sweep_id)
    if experiment is not None:
        query = query.where(Experiment.name == experiment)
    return query


def _run_ids(runs: Any) -> list[int]:
    if isinstance(runs, int | RunRecord):
        runs = [runs]
    elif hasattr(runs, "columns"):  # a DataFrame: its `id` / `run_id` column, else its index (runs_frame's)
        found = next((c for c in ("id", "run_id") if c in runs.columns), None)
        runs = runs[found] if found is not None else runs.index
    return list(dict.fromkeys(int(run.id if isinstance(run, RunRecord) else run) for run in runs))


def history_frame(store: Store, runs: Any, keys: Sequence[str] | str | None = None) -> Any:
    """Metric histories in long form: one row per logged point, columns `run_id`, `key`, `step`, `value`
    (NaN for a non-finite value) and `timestamp` (UTC), in run, key and step order.

        runs = tracking.runs_frame(store, "sweep = 3")
        hist = tracking.history_frame(store, runs, keys=["loss"])
        hist.pivot_table(index="step", columns="run_id", values="value")

    Args:
        store: the tracking store.
        runs: run ids, `RunRecord`s, a DataFrame from `runs_frame` (its index), or a filter text
            (`"sweep = 3"`): the points of every matching run, in one query.
        keys: only these metric keys (default: all).

    Raises:
        FilterError: the filter does not parse.
    """
    import pandas as pd

    if isinstance(keys, str):
        keys = [keys]
    query = select(MetricPoint.run_id, MetricPoint.key, MetricPoint.step, MetricPoint.value, MetricPoint.timestamp)
    if keys is not None:
        query = query.where(MetricPoint.key.in_(list(keys)))
    query = query.order_by(MetricPoint.run_id, MetricPoint.key, MetricPoint.step)
    rows: list[Any] = []
    with store.connect() as conn:
        if isinstance(runs, str):
            matching = _filtered(select(Run.id), runs, None, None).subquery()
            rows = conn.execute(query.where(MetricPoint.run_id.in_(select(matching.c.id)))).all()
        else:
            ids = _run_ids(runs)
            for start in range(0, len(ids), _ID_CHUNK):
                part = ids[start : start + _ID_CHUNK]
                rows.extend(conn.execute(query.where(MetricPoint.run_id.in_(part))).all())
    # Column by column from plain tuples: handing SQLAlchemy rows to pandas costs ten times more.
    run_ids, names, steps, values, stamps = (list(column) for column in zip(*rows, strict=True)) if rows else ([],) * 5
    return pd.DataFrame(
        {
            "run_id": pd.array(run_ids, dtype="int64"),
            "key": pd.array(names, dtype="str"),
            "step": pd.array(steps, dtype="int64"),
            "value": pd.array([float("nan") if v is None else v for v in values], dtype="float64"),
            "timestamp": pd.to_datetime(pd.array(stamps, dtype="float64"), unit="s", utc=True),
        }
    )
