"""Comparing runs: side by side, what differs, the best value of each metric, deltas against a baseline.

A comparison takes 2 to `MAX_COMPARE` runs. Each row is one field (run facts, `params.<key>`,
`metrics.<key>`, `tags.<key>`) with one value per run. A metric's direction (is higher better?) comes,
in this order, from the sweeps the runs belong to, from the built-in metric rules
(`tracking.ml._objective.metric_direction`), then from the metric's name (`loss`, `error`, `rmse`, ...
are minimised; `accuracy`, `auc`, `f1`, `r2`, ... maximised); a metric none of these settles gets no
"best" mark rather than a guess.

`CompareView` is the state of a comparison (runs, baseline, chosen charts): the compare page keeps it
in the URL, a saved report keeps it in the store, and the HTML export draws from it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from sqlalchemy import func, select

from tracking._errors import ValidationError
from tracking.explore._histories import order_history_keys, parse_smoothing
from tracking.ml import metric_direction
from tracking.runs import list_runs
from tracking.store import MetricPoint, RunRecord, Store, Sweep, iso

MAX_COMPARE = 50
MAX_HISTORY_POINTS = 2000  # per run and metric; longer histories are thinned evenly, last point kept
SHORT_NAME = 24  # characters of a run name on an axis or a column head; the full name shows on hover
RUN_FIELDS = ("experiment", "sweep", "status", "dataset", "code_version", "seed", "duration")
_MINIMIZE = re.compile(
    r"(loss|error|err|rmse|mse|mae|mape|latency|seconds|_ms|time|bytes|perplexity|wer|cer|regret|cost)(_|$)"
)
_MAXIMIZE = re.compile(r"(^|_)(acc|accuracy|auc|f1|precision|recall|r2|score|map|ndcg|iou|dice|bleu|rouge|reward)")


@dataclass(frozen=True)
class CompareView:
    """What a comparison shows; round-trips through URL query params and saved reports."""

    runs: tuple[int, ...] = ()
    baseline: int | None = None
    metric: str | None = None  # the metric of the bar chart, the colour of parallel coordinates
    history: str | None = None  # the metric whose histories are overlaid
    x: str | None = None  # scatter axes: any field
    y: str | None = None
    params: tuple[str, ...] = ()  # parallel-coordinates axes (params.<key> ...)
    only_differences: bool = False
    filter: str = ""  # the runs-table filter the runs were picked with, shown in reports
    smoothing: float = 0.0  # the history chart's moving-average weight, 0 (none) to 0.99
    log_y: bool = False  # the history chart's value axis on a log scale

    def to_query(self) -> dict[str, str]:
        """URL query params; defaults are left out so addresses stay short."""
        out = {
            "runs": ",".join(map(str, self.runs)),
            "baseline": "" if self.baseline is None else str(self.baseline),
            "metric": self.metric or "",
            "history": self.history or "",
            "x": self.x or "",
            "y": self.y or "",
            "params": ",".join(self.params),
            "diff": "1" if self.only_differences else "",
            "filter": self.filter,
            "smooth": f"{self.smoothing:g}" if self.smoothing else "",
            "logy": "1" if self.log_y else "",
        }
        return {key: value for key, value in out.items() if value}

    @classmethod
    def from_query(cls, query: Mapping[str, Any]) -> CompareView:
        """Parse URL query params leniently: what does not parse is left at its default."""

        def text(key: str) -> str | None:
            value = query.get(key)
            value = value[-1] if isinstance(value, list) and value else value
            return str(value).strip() or None if value is not None else None

        return cls(
            runs=tuple(dict.fromkeys(parse_ids(text("runs") or ""))),
            baseline=next(iter(parse_ids(text("baseline") or "")), None),
            metric=text("metric"),
            history=text("history"),
            x=text("x"),
            y=text("y"),
            params=tuple(p for p in (text("params") or "").split(",") if p.strip()),
            only_differences=(text("diff") or "") in ("1", "true", "yes"),
            filter=text("filter") or "",
            smoothing=parse_smoothing(text("smooth")),
            log_y=(text("logy") or "") in ("1", "true", "yes"),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for a saved report's state."""
        return {**asdict(self), "runs": list(self.runs), "params": list(self.params)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CompareView:
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["runs"] = tuple(int(i) for i in values.get("runs", ()))
        values["params"] = tuple(values.get("params", ()))
        return cls(**values)


MAX_ID = 2**31 - 1  # ids are INTEGER columns, 32 bits on PostgreSQL: no row has a larger id


def parse_ids(text: str) -> list[int]:
    """`"3, 7,x,12"` -> `[3, 7, 12]`: ids (1 to `MAX_ID`) in order, anything else skipped."""
    return [number for part in re.split(r"[,\s]+", text) if (number := _whole(part)) is not None]


def parse_id(text: str, what: str = "record") -> int:
    """One id typed or taken from an address: a whole number from 1 to `MAX_ID`.

    Raises:
        ValidationError: anything else, in one sentence naming `what` the id was for.
    """
    number = _whole(str(text).strip())
    if number is None:
        shown = str(text).strip()
        shown = shown if len(shown) <= 40 else shown[:40] + "…"
        raise ValidationError(f"{shown!r} is not a {what} id: an id is a whole number from 1 to {MAX_ID:,}.")
    return number


def _whole(part: str) -> int | None:
    # the length first: int() of thousands of digits is refused (and slow); isascii: int() also reads "٣"
    if not (0 < len(part) <= 10 and part.isascii() and part.isdigit()):
        return None
    return number if 0 < (number := int(part)) <= MAX_ID else None


@dataclass(frozen=True)
class CompareRow:
    """One field across the runs: its values (None where a run lacks it), whether they differ, the best."""

    field: str
    values: tuple[Any, ...]
    differs: bool
    direction: str | None = None  # metrics only: "maximize", "minimize" or None when unknown
    best: tuple[int, ...] = ()  # positions of the runs holding the best value

    @property
    def section(self) -> str:
        return self.field.split(".", 1)[0] if "." in self.field else "run"


@dataclass(frozen=True)
class Delta:
    """A challenger's metric against the baseline's."""

    run_id: int
    key: str
    value: float | None
    baseline: float | None
    delta: float | None
    relative: float | None  # delta / |baseline|, None when the baseline is 0 or missing
    verdict: str | None  # "better", "worse", "same", or None (unknown direction or missing value)


@dataclass(frozen=True)
class Comparison:
    runs: tuple[RunRecord, ...]
    rows: tuple[CompareRow, ...]
    missing: tuple[int, ...] = ()  # requested ids that are not in the store
    directions: dict[str, str | None] = field(default_factory=dict)  # metric key -> direction
    objectives: tuple[str, ...] = ()  # metric keys the runs' sweeps optimised

    @property
    def ids(self) -> list[int]:
        return [run.id for run in self.runs]

    @property
    def labels(self) -> list[str]:
        """`name #id` per run: names repeat across sweeps, ids do not."""
        return [f"{run.name} #{run.id}" for run in self.runs]

    @property
    def short_labels(self) -> list[str]:
        """The labels with names cut to `SHORT_NAME` characters (for axes and column heads; still unique by id)."""
        return [
            f"{run.name if len(run.name) <= SHORT_NAME else run.name[: SHORT_NAME - 1] + '…'} #{run.id}"
            for run in self.runs
        ]

    @property
    def datasets(self) -> list[str]:
        """The distinct data versions (`name@hash`) the runs were trained on, in run order; runs without one left out."""
        return list(dict.fromkeys(value for value in self.values("dataset") if value is not None))

    def fields(self, section: str) -> list[str]:
        return [row.field for row in self.rows if row.section == section]

    def row(self, name: str) -> CompareRow | None:
        return next((row for row in self.rows if row.field == name), None)

    def values(self, name: str) -> list[Any]:
        found = self.row(name)
        return list(found.values) if found else [None] * len(self.runs)

    def numeric_fields(self) -> list[str]:
        """Fields with at least one number (booleans excepted): what a scatter or a bar can plot."""
        return [row.field for row in self.rows if any(_is_number(v) for v in row.values)]


def compare_runs(store: Store, run_ids: Sequence[int]) -> Comparison:
    """Side-by-side rows of the runs, in the order given.

    Raises:
        ValidationError: fewer than one or more than `MAX_COMPARE` ids.
    """
    ids = list(dict.fromkeys(int(i) for i in run_ids))
    if not 1 <= len(ids) <= MAX_COMPARE:
        raise ValidationError(f"Compare 2 to {MAX_COMPARE} runs at a time; {len(ids)} were chosen.")
    found = {run.id: run for run in list_runs(store, filter=f"id in ({', '.join(map(str, ids))})")}
    runs = tuple(found[i] for i in ids if i in found)
    objectives = sweep_objectives(store, runs)
    directions = {
        key: objectives.get(key) or guess_direction(key) for key in sorted({k for r in runs for k in r.metrics})
    }
    rows = [_row(name, [_run_field(run, name) for run in runs]) for name in RUN_FIELDS]
    for kind in ("params", "metrics", "tags"):
        keys = sorted({key for run in runs for key in getattr(run, kind)})
        for key in keys:
            values = [getattr(run, kind).get(key) for run in runs]
            rows.append(_row(f"{kind}.{key}", values, directions.get(key) if kind == "metrics" else None))
    missing = tuple(i for i in ids if i not in found)
    return Comparison(runs, tuple(rows), missing, directions, tuple(objectives))


def side_by_side(comparison: Comparison, only_differences: bool = False) -> list[dict[str, Any]]:
    """The comparison as table rows: `field`, then one column per run label, then `best` (labels)."""
    rows = []
    for row in comparison.rows:
        if only_differences and not row.differs:
            continue
        values = dict(zip(comparison.labels, row.values, strict=True))
        best = ", ".join(comparison.labels[i] for i in row.best)
        rows.append({"field": row.field, **values, "best": best})
    return rows


def champion_challenger(comparison: Comparison, baseline_id: int) -> list[Delta]:
    """Every other run's metrics against the baseline run's: delta, relative delta, better or worse.

    Raises:
        ValidationError: the baseline is not one of the compared runs.
    """
    if baseline_id not in comparison.ids:
        raise ValidationError(f"The baseline run {baseline_id} is not one of the compared runs.")
    at = comparison.ids.index(baseline_id)
    deltas = []
    for row in comparison.rows:
        if row.section != "metrics":
            continue
        base = row.values[at] if _is_number(row.values[at]) else None
        for position, run in enumerate(comparison.runs):
            if position == at:
                continue
            value = row.values[position] if _is_number(row.values[position]) else None
            delta = value - base if value is not None and base is not None else None
            relative = delta / abs(base) if delta is not None and base else None
            deltas.append(Delta(run.id, row.field, value, base, delta, relative, _verdict(delta, row.direction)))
    return deltas


def params_changed(comparison: Comparison, baseline_id: int) -> dict[int, list[str]]:
    """For each other run, the params whose value differs from the baseline's."""
    at = comparison.ids.index(baseline_id)
    changed: dict[int, list[str]] = {run.id: [] for run in comparison.runs if run.id != baseline_id}
    for row in comparison.rows:
        if row.section == "params":
            for position, run in enumerate(comparison.runs):
                if position != at and not _same(row.values[position], row.values[at]):
                    changed[run.id].append(row.field.split(".", 1)[1])
    return changed


def metric_directions(store: Store, runs: Iterable[RunRecord]) -> dict[str, str | None]:
    """Each metric key of the runs -> "maximize", "minimize" or None (see the module docstring)."""
    runs = list(runs)
    declared = sweep_objectives(store, runs)
    keys = {key for run in runs for key in run.metrics}
    return {key: declared.get(key) or guess_direction(key) for key in sorted(keys)}


def sweep_objectives(store: Store, runs: Iterable[RunRecord]) -> dict[str, str]:
    """The metrics the runs' sweeps optimised, with their directions."""
    declared: dict[str, str] = {}
    sweep_ids = {run.sweep_id for run in runs if run.sweep_id is not None}
    if sweep_ids:
        with store.connect() as conn:
            for (config,) in conn.execute(select(Sweep.config).where(Sweep.id.in_(sweep_ids))):
                for metric in (config or {}).get("metrics") or []:
                    if metric.get("direction") in ("maximize", "minimize"):
                        declared.setdefault(metric.get("key"), metric["direction"])
    return declared


def guess_direction(key: str) -> str | None:
    """A metric's direction from the built-in rules, then its name; None when neither says."""
    known = metric_direction(key, "classification") or metric_direction(key, "regression")
    if known:
        return known
    name = key.lower()
    if _MINIMIZE.search(name):
        return "minimize"
    if _MAXIMIZE.search(name):
        return "maximize"
    return None


def complete_view(comparison: Comparison, view: CompareView, with_history: Sequence[str] = ()) -> CompareView:
    """The view with every choice it leaves open (or names a field the runs lack) filled with a default.

    Defaults: the first run as baseline; the sweep's objective, else a metric with a known direction
    (test_ before cv_ before others), as the metric; the first of `with_history` (ordered by `history_keys`:
    a learning curve before a one-point history) as the history; the params that differ as
    parallel axes (at most 6); the first differing param against the metric as the scatter.
    """
    ids = comparison.ids
    metrics = comparison.fields("metrics")
    metric = view.metric if view.metric in metrics else _default_metric(comparison, metrics)
    history = view.history if view.history in with_history else next(iter(with_history), None)
    differing = [row.field for row in comparison.rows if row.section == "params" and row.differs]
    params = tuple(p for p in view.params if comparison.row(p)) or tuple(differing[:6])
    numeric = comparison.numeric_fields()
    x = view.x if view.x and comparison.row(view.x) else next(iter(differing), next(iter(numeric), None))
    y = view.y if view.y and comparison.row(view.y) else metric or next(iter(numeric), None)
    baseline = view.baseline if view.baseline in ids else (ids[0] if ids else None)
    return CompareView(
        runs=tuple(ids), baseline=baseline, metric=metric, history=history, x=x, y=y, params=params,
        only_differences=view.only_differences, filter=view.filter, smoothing=view.smoothing, log_y=view.log_y,
    )  # fmt: skip


def _default_metric(comparison: Comparison, metrics: list[str]) -> str | None:
    def rank(name: str) -> tuple[int, int, str]:  # the sweep's objective, then a known direction
        key = name.split(".", 1)[1]
        known = comparison.directions.get(key) is not None
        prefix = 0 if key.startswith("test_") else 1 if key.startswith("cv_") else 2
        return (0 if key in comparison.objectives else 1 if known else 2, prefix, key)

    return min(metrics, key=rank) if metrics else None


def history_keys(store: Store, run_ids: Sequence[int]) -> list[str]:
    """The metric keys with a logged history in any of the runs, those with more than one point in some run
    first (learning curves first: `order_history_keys`)."""
    if not run_ids:
        return []
    query = (
        select(MetricPoint.key, func.count())
        .where(MetricPoint.run_id.in_(list(run_ids)))
        .group_by(MetricPoint.run_id, MetricPoint.key)
    )
    longest: dict[str, int] = {}
    with store.connect() as conn:
        for key, count in conn.execute(query):
            longest[key] = max(count, longest.get(key, 0))
    return order_history_keys(longest)


def histories(
    store: Store, run_ids: Sequence[int], key: str, max_points: int = MAX_HISTORY_POINTS
) -> dict[int, list[tuple[int, float | None]]]:
    """Each run's (step, value) points of one metric, in step order, thinned to `max_points` per run."""
    out: dict[int, list[tuple[int, float | None]]] = {int(i): [] for i in run_ids}
    if not out:
        return out
    query = (
        select(MetricPoint.run_id, MetricPoint.step, MetricPoint.value)
        .where(MetricPoint.run_id.in_(list(out)), MetricPoint.key == key)
        .order_by(MetricPoint.run_id, MetricPoint.step)
    )
    with store.connect() as conn:
        for run_id, step, value in conn.execute(query):
            out[run_id].append((step, value))
    for run_id, points in out.items():
        if len(points) > max_points:
            stride = math.ceil(len(points) / max_points)
            out[run_id] = points[::stride] + ([points[-1]] if (len(points) - 1) % stride else [])
    return out


def number_text(value: Any) -> str:
    """A value as a person reads it: `1,525,560` and `0.80312`, never `1.52556e+06`; text stays text.

    Whole numbers as they are; other numbers to 6 significant digits, with thousands separators from
    10,000 up (at most 2 decimals there) and in scientific notation only below 0.0001 or from 10^15.
    """
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or not math.isfinite(value):
        return str(value)
    size = abs(value)
    if size == 0:
        return "0"
    if size < 1e-4 or size >= 1e15:
        return f"{value:.4g}"
    if size >= 1e4:
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{value:.6g}"


def _run_field(run: RunRecord, name: str) -> Any:
    if name == "dataset":
        return f"{run.dataset['name']}@{run.dataset['hash'][:8]}" if run.dataset else None
    if name == "sweep":
        return run.sweep_id
    if name == "duration":
        return (run.finished_at - run.started_at).total_seconds() if run.finished_at else None
    if name == "started_at":
        return iso(run.started_at)
    return getattr(run, name)


def _row(name: str, values: list[Any], direction: str | None = None) -> CompareRow:
    differs = any(not _same(v, values[0]) for v in values[1:])
    best: tuple[int, ...] = ()
    numbers = [(i, float(v)) for i, v in enumerate(values) if _is_number(v)]
    if direction in ("maximize", "minimize") and numbers and differs:
        target = max(v for _, v in numbers) if direction == "maximize" else min(v for _, v in numbers)
        best = tuple(i for i, v in numbers if v == target)
    return CompareRow(name, tuple(values), differs, direction, best)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _same(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def _verdict(delta: float | None, direction: str | None) -> str | None:
    if delta is None or direction is None:
        return None
    if delta == 0:
        return "same"
    return "better" if (delta > 0) == (direction == "maximize") else "worse"
