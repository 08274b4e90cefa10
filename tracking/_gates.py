"""Promotion policy gates: a held-out comparison of a candidate with production, and the policy checks.

Pure computation, no store access: the caller loads the models, the dataset and the run's metrics,
then calls `assess` and `run_gates`. A policy is a plain dict (as stored in JSON); every key is optional:

    {
        "min_metrics": {"test_f1_macro": 0.8},  # recorded run metrics that must be >= value
        "max_metrics": {"test_rmse": 60.0},  # recorded run metrics that must be <= value
        "regression": {"metric": "f1_macro", "tolerance": 0.01, "bootstrap": 1000, "confidence": 0.95},
        "fairness": {"metric": "accuracy", "max_gap": 0.1},
        "monitoring": {"psi": 0.2, "min_rows": 50},  # drift and quality alerts: not a gate (`_monitoring.py`)
    }

Adding a gate is adding one entry to `GATES` (how to validate its settings, how to check them). The
integrity gate (model file hash, recorded dataset version) needs no settings and always runs first.

Both models predict once on the candidate's fixed-seed held-out split. Every metric is then computed
from per-row arrays weighted by row counts, so the full split (weight 1 per row), each sensitive group
(its rows) and each bootstrap resample (how often a row was drawn, the same draw for both models) go
through one vectorized computation that matches scikit-learn's metrics.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from tracking._datasets import TaskData
from tracking._errors import ValidationError
from tracking._families import CLASSIFICATION
from tracking._objective import CLASSIFICATION_METRICS, REGRESSION_METRICS, split, task_metrics

MAIN_METRIC = {"classification": "f1_macro", "regression": "rmse"}
MONITORING = "monitoring"  # the policy key of the monitoring thresholds (see `tracking._monitoring`)
DEFAULT_BOOTSTRAP = 1000
DEFAULT_CONFIDENCE = 0.95
BOOTSTRAP_LIMITS = (100, 100_000)
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
        return _plain(self)

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


@dataclass(frozen=True)
class GateResult:
    """One check of a promotion policy, worded for the person who approves."""

    gate: str  # the policy key ("integrity" for the always-on checks)
    label: str  # what is required, e.g. "test_f1_macro is at least 0.8"
    value: float | None
    threshold: float | None
    passed: bool
    detail: str  # one plain sentence

    def to_json(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GateResult:
        value, threshold = (None if d.get(k) is None else float(d[k]) for k in ("value", "threshold"))
        return cls(d["gate"], d["label"], value, threshold, bool(d["passed"]), d["detail"])


@dataclass(frozen=True)
class GateInputs:
    """What the gates look at for one promotion request."""

    metrics: dict[str, float]  # the candidate run's recorded metrics
    assessment: Assessment | None  # None when the training dataset could not be rebuilt
    baseline_version: int | None  # the version in production, if any
    model_verified: bool  # the model file's sha256 matches the recorded one
    model_detail: str  # one sentence on that check
    dataset: dict[str, Any] | None  # {"name", "hash"} of the recorded dataset version


# ---- policies ----------------------------------------------------------------------------------


def default_policy(task_type: str, has_sensitive: bool) -> dict[str, Any]:
    """The policy used when an admin has set none.

    No regression on the task's main metric (`f1_macro` within 0.01, or `rmse` not worse at all),
    and for classification with a sensitive column, accuracy within 0.1 between its groups.
    """
    tolerance = 0.01 if task_type == CLASSIFICATION else 0.0
    policy: dict[str, Any] = {"regression": {"metric": MAIN_METRIC[task_type], "tolerance": tolerance}}
    if task_type == CLASSIFICATION and has_sensitive:
        policy["fairness"] = {"metric": "accuracy", "max_gap": 0.1}
    return validate_policy(policy, task_type)


def validate_policy(policy: Any, task_type: str | None = None) -> dict[str, Any]:
    """A normalized copy of a policy (defaults filled in), in `GATES` order, then its `monitoring` settings.

    Args:
        policy: the policy as loaded from JSON or YAML; None (an empty file) is the empty policy.
        task_type: when given, the regression and fairness metrics must belong to this task type.

    Raises:
        ValidationError: one sentence naming what is wrong.
    """
    if policy is None:
        return {}
    if not isinstance(policy, Mapping):
        raise ValidationError(
            f"A promotion policy must be a mapping of gates to settings, not {type(policy).__name__}."
        )
    for key in policy:
        if key not in GATES and key != MONITORING:
            raise ValidationError(
                f"The policy has an unknown gate {key!r}; the gates are: {', '.join(GATES)} "
                f"(and {MONITORING}, the thresholds of the served model's alerts)."
            )
    normalized = {key: gate.normalize(policy[key], task_type) for key, gate in GATES.items() if key in policy}
    if MONITORING in policy:  # thresholds of the served model's alerts, never checked at promotion
        from tracking._monitoring import normalize_monitoring

        normalized[MONITORING] = normalize_monitoring(policy[MONITORING], task_type)
    return normalized


def bootstrap_settings(policy: Mapping[str, Any]) -> tuple[int, float]:
    """The (resamples, confidence) that `assess` should use for a validated policy."""
    regression = policy.get("regression") or {}
    return regression.get("bootstrap", DEFAULT_BOOTSTRAP), regression.get("confidence", DEFAULT_CONFIDENCE)


def _normalize_thresholds(key: str) -> Callable[[Any, str | None], dict[str, float]]:
    def normalize(value: Any, task_type: str | None) -> dict[str, float]:
        if not isinstance(value, Mapping):
            raise ValidationError(f"The policy's {key} must map recorded metrics to numbers, e.g. {{'test_r2': 0.5}}.")
        for metric in value:
            if not isinstance(metric, str) or not metric:
                raise ValidationError(f"The policy's {key} has a metric name that is not text: {metric!r}.")
        return {metric: _threshold(v, f"The policy's {key} value for {metric!r}") for metric, v in value.items()}

    return normalize


def _normalize_regression(value: Any, task_type: str | None) -> dict[str, Any]:
    settings = _settings(value, "regression", ("metric", "tolerance", "bootstrap", "confidence"))
    metric = _base_metric(settings, "regression", task_type)
    tolerance = _threshold(settings.get("tolerance", 0.0), "The policy's regression tolerance")
    resamples, (low, high) = settings.get("bootstrap", DEFAULT_BOOTSTRAP), BOOTSTRAP_LIMITS
    if isinstance(resamples, bool) or not isinstance(resamples, int) or not low <= resamples <= high:
        raise ValidationError(
            f"The policy's regression bootstrap must be a whole number from {low} to {high}, not {resamples!r}."
        )
    confidence = settings.get("confidence", DEFAULT_CONFIDENCE)
    if not _is_number(confidence) or not 0.5 < confidence < 1:
        raise ValidationError(
            f"The policy's regression confidence must be between 0.5 and 1 (e.g. 0.95), not {confidence!r}."
        )
    return {"metric": metric, "tolerance": tolerance, "bootstrap": resamples, "confidence": float(confidence)}


def _normalize_fairness(value: Any, task_type: str | None) -> dict[str, Any]:
    settings = _settings(value, "fairness", ("metric", "max_gap"))
    metric = _base_metric(settings, "fairness", task_type)
    if "max_gap" not in settings:
        raise ValidationError("The policy's fairness gate needs max_gap, the largest allowed gap between groups.")
    return {"metric": metric, "max_gap": _threshold(settings["max_gap"], "The policy's fairness max_gap")}


def _settings(value: Any, key: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError(f"The policy's {key} gate must be a mapping with the settings: {', '.join(allowed)}.")
    for name in value:
        if name not in allowed:
            raise ValidationError(f"The policy's {key} gate has no setting {name!r}; it has: {', '.join(allowed)}.")
    return value


def _base_metric(settings: Mapping[str, Any], key: str, task_type: str | None) -> str:
    known = task_metrics(task_type) if task_type else {**CLASSIFICATION_METRICS, **REGRESSION_METRICS}
    metric = settings.get("metric")
    if not isinstance(metric, str) or metric not in known:
        kind = f"{task_type} " if task_type else ""
        problem = f"metric {metric!r} is not a {kind}metric" if "metric" in settings else "gate needs a metric"
        raise ValidationError(f"The policy's {key} {problem}; use one of: {', '.join(known)}.")
    return metric


def _threshold(value: Any, what: str) -> float:
    if not _is_number(value):
        raise ValidationError(f"{what} must be a number, not {value!r}.")
    if value < 0:
        raise ValidationError(f"{what} must be zero or more, not {value!r}.")
    return float(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


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


# ---- gates -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    """One policy key: how its settings are validated, and how they are checked."""

    normalize: Callable[[Any, str | None], Any]  # (settings, task type or None) -> normalized settings
    check: Callable[[Any, GateInputs], list[GateResult]]

    def __call__(self, settings: Any, inputs: GateInputs) -> list[GateResult]:
        return self.check(settings, inputs)


def run_gates(policy: Mapping[str, Any], inputs: GateInputs) -> list[GateResult]:
    """Integrity first, then every gate the policy sets, in `GATES` order.

    A policy metric that does not belong to the assessed task fails its gate rather than raising.

    Raises:
        ValidationError: the policy itself is malformed.
    """
    settings = validate_policy(policy)
    results = _check_integrity(inputs)
    for key, gate in GATES.items():
        if key in settings:
            results.extend(gate(settings[key], inputs))
    return results


def _check_integrity(inputs: GateInputs) -> list[GateResult]:
    model_detail = inputs.model_detail or (
        f"The model file {'matches' if inputs.model_verified else 'does not match'} its recorded sha256."
    )
    dataset = inputs.dataset
    dataset_detail = (
        f"The run trained on dataset {dataset.get('name')!r} version {str(dataset.get('hash'))[:12]}."
        if dataset
        else "The run does not record which dataset version it trained on."
    )
    return [
        GateResult("integrity", "Model file sha256 verifies", None, None, inputs.model_verified, model_detail),
        GateResult("integrity", "Training dataset version is recorded", None, None, bool(dataset), dataset_detail),
    ]


def _check_thresholds(key: str) -> Callable[[dict[str, float], GateInputs], list[GateResult]]:
    at_least = key == "min_metrics"
    word = "at least" if at_least else "at most"
    verdicts = (
        ("is below the required minimum of", "meets the required minimum of")
        if at_least
        else ("exceeds the allowed maximum of", "is within the allowed maximum of")
    )

    def check(settings: dict[str, float], inputs: GateInputs) -> list[GateResult]:
        results = []
        for metric, threshold in settings.items():
            label = f"{metric} is {word} {threshold:g}"
            value = inputs.metrics.get(metric)
            if value is None or not math.isfinite(value):
                detail = f"The run recorded no value of {metric}, so it cannot be checked against {_fmt(threshold)}."
                results.append(GateResult(key, label, None, threshold, False, detail))
                continue
            passed = value >= threshold if at_least else value <= threshold
            detail = f"The run's {metric} is {_fmt(value)}, which {verdicts[passed]} {_fmt(threshold)}."
            results.append(GateResult(key, label, float(value), threshold, passed, detail))
        return results

    return check


def _check_regression(settings: dict[str, Any], inputs: GateInputs) -> list[GateResult]:
    metric, tolerance = settings["metric"], settings["tolerance"]
    label = (
        f"{metric} drops by at most {tolerance:g} from production"
        if tolerance
        else f"{metric} is no worse than in production"
    )

    def result(passed: bool, detail: str, value: float | None = None) -> list[GateResult]:
        return [GateResult("regression", label, value, 0.0 - tolerance, passed, detail)]  # 0.0, not -0.0

    assessment = inputs.assessment
    if inputs.baseline_version is None:
        return result(True, "No version is in production, so there is nothing to regress against.")
    if assessment is None:
        return result(False, "The training dataset could not be rebuilt, so the candidate could not be compared.")
    if assessment.baseline_scores is None:
        return result(False, "The production model was not scored on the held-out rows, so there is no comparison.")
    delta = assessment.delta(metric)
    if delta is None:
        return result(False, f"{metric} is not a metric of this {assessment.task_type} task, so it cannot be compared.")
    if not math.isfinite(delta.improvement):
        return result(False, f"{metric} could not be computed on the held-out rows, so it cannot be compared.")
    passed = delta.improvement >= -tolerance
    interval = (
        f"{assessment.confidence * 100:g}% CI {delta.low:+.3f} to {delta.high:+.3f}"
        if math.isfinite(delta.low) and math.isfinite(delta.high)
        else "no confidence interval"
    )
    if delta.improvement >= 0:
        verdict = "no worse than production"
    elif not tolerance:
        verdict = "worse than production"
    else:
        verdict = f"worse than production {'but within' if passed else 'by more than'} the allowed {_fmt(tolerance)}"
    detail = (
        f"{metric} {_fmt(delta.candidate)} vs {_fmt(delta.baseline)} in production: {delta.delta:+.3f} ({interval}) "
        f"on the same {assessment.n_test} held-out rows, {verdict}."
    )
    return result(passed, detail, delta.improvement)


def _check_fairness(settings: dict[str, Any], inputs: GateInputs) -> list[GateResult]:
    metric, max_gap = settings["metric"], settings["max_gap"]
    label = f"{metric} differs by at most {max_gap:g} between groups"

    def result(passed: bool, detail: str, value: float | None = None) -> list[GateResult]:
        return [GateResult("fairness", label, value, max_gap, passed, detail)]

    assessment = inputs.assessment
    if assessment is None:
        return result(False, "The training dataset could not be rebuilt, so no group gap was measured.")
    if assessment.sensitive is None:
        return result(False, "The dataset has no sensitive attribute, so no group gap was measured.")
    values = [(row.candidate.get(metric, _NAN), row.group) for row in assessment.groups if row.n > 0]
    values = [(value, group) for value, group in values if math.isfinite(value)]
    if len(values) < 2:
        groups = f"{assessment.sensitive} groups"
        return result(False, f"Fewer than two {groups} have a measurable {metric}, so no gap was measured.")
    (low, low_group), (high, high_group) = min(values), max(values)
    gap = high - low
    passed = gap <= max_gap
    detail = (
        f"{metric} ranges from {_fmt(low)} ({low_group}) to {_fmt(high)} ({high_group}) across "
        f"{assessment.sensitive} groups: a gap of {_fmt(gap)}, {'within' if passed else 'over'} the allowed "
        f"{_fmt(max_gap)}."
    )
    return result(passed, detail, gap)


# Policy key -> gate, in the order results are shown.
GATES: dict[str, Gate] = {
    "min_metrics": Gate(_normalize_thresholds("min_metrics"), _check_thresholds("min_metrics")),
    "max_metrics": Gate(_normalize_thresholds("max_metrics"), _check_thresholds("max_metrics")),
    "regression": Gate(_normalize_regression, _check_regression),
    "fairness": Gate(_normalize_fairness, _check_fairness),
}


# ---- formatting --------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.3f}"


def _plain(value: Any) -> Any:
    """Dataclasses, dicts and lists as JSON values; NaN and infinities (undefined metrics) as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    return value


def _float(value: Any) -> float:
    return _NAN if value is None else float(value)


def _scores(scores: Mapping[str, Any] | None) -> dict[str, float] | None:
    return None if scores is None else {k: _float(v) for k, v in scores.items()}
