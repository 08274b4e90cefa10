"""The held-out comparison behind promotion gates and model cards: two models on the same rows.

Both models predict once on the candidate's fixed-seed held-out split. Every metric is then computed
from per-row arrays weighted by row counts, so the full split (weight 1 per row), each sensitive group
(its rows) and each bootstrap resample (how often a row was drawn, the same draw for both models) go
through one vectorized computation that matches scikit-learn's metrics. Pure computation, no store.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from tracking._errors import ValidationError
from tracking.ml._families import CLASSIFICATION
from tracking.ml._objective import split, task_metrics
from tracking.runs import TaskData

# NumPy is imported inside the functions that use it: `import tracking` stays light.

DEFAULT_BOOTSTRAP = 1000
DEFAULT_CONFIDENCE = 0.95
_BLOCK = 500  # resamples computed at once, so memory stays at block x rows floats
_NAN = float("nan")


@dataclass(frozen=True)
class MetricDelta:
    """Candidate minus production on one metric, with a bootstrap interval of the difference."""

    metric: str
    direction: str  # "maximize" or "minimize"
    candidate: float
    baseline: float
    delta: float  # candidate - baseline
    low: float  # percentile interval of delta over paired resamples of the held-out rows
    high: float
    improvement: float  # delta signed so that positive is better


@dataclass(frozen=True)
class GroupRow:
    """Every metric of both models on the held-out rows of one sensitive group (NaN where undefined)."""

    group: str
    n: int
    candidate: dict[str, float]
    baseline: dict[str, float] | None


@dataclass(frozen=True)
class Assessment:
    """The candidate and the production model scored on the same held-out rows."""

    task_type: str
    n_test: int
    candidate_scores: dict[str, float]
    baseline_scores: dict[str, float] | None  # None when no version is in production
    deltas: list[MetricDelta]  # one per metric of the task type; empty without a baseline
    sensitive: str | None  # the sensitive column's name, or None
    groups: list[GroupRow]  # one per sensitive group, sorted by name; empty without a sensitive column
    confidence: float = DEFAULT_CONFIDENCE
    bootstrap: int = DEFAULT_BOOTSTRAP

    def delta(self, metric: str) -> MetricDelta | None:
        """The comparison on one base metric, or None (no baseline, or not a metric of this task)."""
        return next((d for d in self.deltas if d.metric == metric), None)

    def to_json(self) -> dict[str, Any]:
        """A plain dict that `json.dumps(..., allow_nan=False)` accepts: undefined metrics become null."""
        return plain_json(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Assessment:
        """The assessment back from `to_json` (nulls become NaN again)."""
        numbers = ("candidate", "baseline", "delta", "low", "high", "improvement")
        return cls(
            task_type=d["task_type"],
            n_test=int(d["n_test"]),
            candidate_scores=_scores(d["candidate_scores"]),
            baseline_scores=_scores(d["baseline_scores"]),
            deltas=[MetricDelta(x["metric"], x["direction"], *(_float(x[k]) for k in numbers)) for x in d["deltas"]],
            sensitive=d["sensitive"],
            groups=[
                GroupRow(g["group"], int(g["n"]), _scores(g["candidate"]), _scores(g["baseline"])) for g in d["groups"]
            ],
            confidence=float(d.get("confidence", DEFAULT_CONFIDENCE)),
            bootstrap=int(d.get("bootstrap", DEFAULT_BOOTSTRAP)),
        )


# ---- held-out assessment -----------------------------------------------------------------------


def assess(
    candidate_model: Any,
    baseline_model: Any | None,
    data: TaskData,
    seed: int,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Assessment:
    """Score the candidate and the production model on the candidate's held-out rows.

    The rows are the candidate run's fixed-seed test split, so the candidate never trained on them;
    a production model trained with another seed or dataset version may have.

    Args:
        candidate_model: the fitted model asking for promotion.
        baseline_model: the fitted production model, or None when no version is in production.
        data: the candidate's training dataset.
        seed: the candidate run's split seed (also seeds the resampling).
        bootstrap: paired resamples of the held-out rows for the interval of each difference.
        confidence: the interval's coverage, e.g. 0.95.

    Raises:
        ValidationError: a model cannot predict on this dataset's columns.
    """
    import numpy as np

    parts = split(data, seed)
    n = len(parts.X_test)
    candidate = _rows(candidate_model, "candidate", parts.X_test, parts.y_test, data)
    baseline = None if baseline_model is None else _rows(baseline_model, "production", parts.X_test, parts.y_test, data)
    candidate_scores = _column(_weighted(candidate, np.ones((1, n))), 0)
    baseline_scores = None if baseline is None else _column(_weighted(baseline, np.ones((1, n))), 0)
    deltas = []
    if baseline is not None:
        intervals = _paired_intervals(candidate, baseline, n, bootstrap, confidence, seed)
        for metric, direction in task_metrics(data.task_type).items():
            c, b = candidate_scores[metric], baseline_scores[metric]
            sign = 1.0 if direction == "maximize" else -1.0
            deltas.append(MetricDelta(metric, direction, c, b, c - b, *intervals[metric], sign * (c - b)))
    groups: list[GroupRow] = []
    if parts.groups_test is not None:
        labels = parts.groups_test.astype(str).to_numpy(dtype=object)
        names = sorted(set(labels))
        members = (labels[None, :] == np.array(names, dtype=object)[:, None]).astype(float)
        of_candidate = _weighted(candidate, members)
        of_baseline = None if baseline is None else _weighted(baseline, members)
        for i, name in enumerate(names):
            base = None if of_baseline is None else _column(of_baseline, i)
            groups.append(GroupRow(name, int(members[i].sum()), _column(of_candidate, i), base))
    sensitive = data.sensitive_column if parts.groups_test is not None else None
    return Assessment(
        data.task_type, n, candidate_scores, baseline_scores, deltas, sensitive, groups, float(confidence), bootstrap
    )


@dataclass(frozen=True)
class _Ranked:
    """One score column sorted once, with its runs of tied scores, for weighted ROC AUC."""

    order: Any  # row order by ascending score
    positive: Any  # 1.0 / 0.0 per sorted row
    tie_start: Any  # per sorted row, the position where its run of equal scores starts
    tie_end: Any  # ... and one past where it ends


@dataclass(frozen=True)
class _Rows:
    """One model's held-out predictions reduced to per-row arrays; metrics are weighted sums of them."""

    task_type: str
    truth: Any  # classification: one-hot true labels (n, labels); regression: targets (n,)
    predicted: Any  # classification: one-hot predicted labels (n, labels); regression: predictions (n,)
    row_loss: Any = None  # log loss per row, 0 where the true label is unknown to the model
    unknown: Any = None  # 1.0 where the true label is not among the model's classes
    ranked: tuple[_Ranked, ...] = ()  # the score columns ROC AUC averages over


def _rows(model: Any, role: str, X: Any, y: Any, data: TaskData) -> _Rows:
    import numpy as np

    n = len(X)
    if data.task_type != CLASSIFICATION:
        pred = np.asarray(_predict(model, role, X, data, "predict"), dtype=float).ravel()
        if pred.shape != (n,):
            raise ValidationError(f"The {role} model gave {pred.size} predictions for {n} rows of {data.name!r}.")
        return _Rows(data.task_type, y.to_numpy(dtype=float), pred)
    if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
        raise ValidationError(f"The {role} model gives no class probabilities, so it cannot score {data.name!r}.")
    proba = np.asarray(_predict(model, role, X, data, "predict_proba"), dtype=float)
    classes = list(model.classes_)
    if proba.shape != (n, len(classes)):
        raise ValidationError(f"The {role} model gave probabilities of shape {proba.shape} for {n} rows.")
    # Columns: the model's classes in its order, then any true label it never saw (always wrong for it).
    column = {label: i for i, label in enumerate(dict.fromkeys([*classes, *sorted(set(y), key=str)]))}
    y_index = np.array([column[v] for v in y])
    truth, predicted = np.zeros((n, len(column))), np.zeros((n, len(column)))
    truth[np.arange(n), y_index] = 1.0
    predicted[np.arange(n), np.argmax(proba, axis=1)] = 1.0  # as the recorded test_ metrics: argmax of proba
    known = y_index < len(classes)
    eps = np.finfo(float).eps  # sklearn's log_loss clips the same way
    chosen = proba[np.arange(n), np.where(known, y_index, 0)]
    row_loss = np.where(known, -np.log(np.clip(chosen, eps, 1 - eps)), 0.0)
    columns = [1] if len(classes) == 2 else range(len(classes))  # binary: the positive class; else one-vs-rest
    ranked = tuple(_rank(proba[:, k], y_index == k) for k in columns)
    return _Rows(data.task_type, truth, predicted, row_loss, (~known).astype(float), ranked)


def _predict(model: Any, role: str, X: Any, data: TaskData, method: str) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # feature-name and convergence chatter is not the user's problem
            return getattr(model, method)(X)
    except (ValueError, KeyError, TypeError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200].rstrip(".")
        raise ValidationError(
            f"The {role} model does not accept the columns of dataset {data.name!r} ({reason}); "
            "it was trained on different features."
        ) from err


def _rank(score: Any, positive: Any) -> _Ranked:
    import numpy as np

    order = np.argsort(score, kind="mergesort")
    ordered = score[order]
    last = np.append(ordered[1:] != ordered[:-1], True)  # the row ends its run of equal scores
    ends = np.flatnonzero(last) + 1
    run = np.cumsum(np.insert(last[:-1], 0, False))  # run number of every sorted row
    starts = np.insert(ends[:-1], 0, 0)
    return _Ranked(order, positive[order].astype(float), starts[run], ends[run])


def _weighted(rows: _Rows, W: Any) -> dict[str, Any]:
    """Every metric of the task type, one value per row of the weight matrix W (k, n); NaN if undefined."""
    import numpy as np

    total = W.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if rows.task_type != CLASSIFICATION:
            error = rows.predicted - rows.truth
            centred = rows.truth - rows.truth.mean()  # shifted so the variance below does not cancel badly
            spread = W @ centred**2
            variance = spread - (W @ centred) ** 2 / total
            undefined = (total < 2) | (variance <= 1e-12 * spread)  # a constant target has no r2
            return {
                "rmse": np.sqrt((W @ error**2) / total),
                "mae": (W @ np.abs(error)) / total,
                "r2": np.where(undefined, np.nan, 1 - (W @ error**2) / variance),
            }
        true, predicted = W @ rows.truth, W @ rows.predicted
        hits = W @ (rows.truth * rows.predicted)
        present = true > 0  # balanced accuracy averages recall over the labels present
        seen = (true + predicted) > 0  # f1_macro averages over labels that are true or predicted
        unknown = (W @ rows.unknown) > 0  # sklearn refuses log loss and ROC AUC on labels the model lacks
        auc = np.mean([_weighted_auc(r, W) for r in rows.ranked], axis=0)
        return {
            "accuracy": hits.sum(axis=1) / total,
            "balanced_accuracy": np.where(present, hits / true, 0.0).sum(axis=1) / present.sum(axis=1),
            "f1_macro": np.where(seen, 2 * hits / (true + predicted), 0.0).sum(axis=1) / seen.sum(axis=1),
            "roc_auc": np.where(unknown, np.nan, auc),
            "log_loss": np.where(unknown, np.nan, (W @ rows.row_loss) / total),
        }


def _weighted_auc(ranked: _Ranked, W: Any) -> Any:
    """ROC AUC per weight row: the weighted share of (positive, negative) pairs ordered right, ties half."""
    import numpy as np

    weights = W[:, ranked.order]
    negatives, positives = weights * (1 - ranked.positive), weights * ranked.positive
    below = np.concatenate([np.zeros((len(W), 1)), np.cumsum(negatives, axis=1)], axis=1)
    under, tied = below[:, ranked.tie_start], below[:, ranked.tie_end] - below[:, ranked.tie_start]
    pairs = positives.sum(axis=1) * negatives.sum(axis=1)
    ordered_right = (positives * (under + 0.5 * tied)).sum(axis=1)
    return np.where(pairs > 0, ordered_right / np.where(pairs > 0, pairs, 1), np.nan)  # one class: undefined


def _paired_intervals(
    candidate: _Rows, baseline: _Rows, n: int, resamples: int, confidence: float, seed: int
) -> dict[str, tuple[float, float]]:
    """Percentile interval of candidate - baseline per metric, over resamples of the same rows for both."""
    import numpy as np

    rng = np.random.default_rng(seed)
    differences: dict[str, list[Any]] = {}
    for start in range(0, resamples, _BLOCK):
        size = min(_BLOCK, resamples - start)
        drawn = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
        W = np.bincount(drawn.ravel(), minlength=size * n).reshape(size, n).astype(float)  # draws per row
        of_baseline = _weighted(baseline, W)
        for metric, values in _weighted(candidate, W).items():
            differences.setdefault(metric, []).append(values - of_baseline[metric])
    tail = (1 - confidence) / 2 * 100
    out = {}
    for metric, parts in differences.items():
        values = np.concatenate(parts)
        values = values[np.isfinite(values)]  # resamples where the metric is undefined do not count
        low, high = np.percentile(values, [tail, 100 - tail]) if values.size else (_NAN, _NAN)
        out[metric] = (float(low), float(high))
    return out


def _column(scores: dict[str, Any], i: int) -> dict[str, float]:
    return {metric: float(values[i]) for metric, values in scores.items()}


def plain_json(value: Any) -> Any:
    """Dataclasses, dicts and lists as JSON values; NaN and infinities (undefined metrics) as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    if is_dataclass(value):
        return {f.name: plain_json(getattr(value, f.name)) for f in fields(value)}
    return value


def _float(value: Any) -> float:
    return _NAN if value is None else float(value)


def _scores(scores: Mapping[str, Any] | None) -> dict[str, float] | None:
    return None if scores is None else {k: _float(v) for k, v in scores.items()}
