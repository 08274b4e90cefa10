"""Monitoring of a served model: drift of its inputs and predictions, quality once labels arrive, reviews.

`monitor` compares the newest sampled requests of a version (`tracking.production._inference`) with the rows the
version trained on (its run's dataset version, the training part of its fixed-seed split):

- a numeric feature: the population stability index (PSI) over 10 quantile bins of the training
  values, and a two-sample Kolmogorov-Smirnov test (both sides at 6 significant digits, so values
  rounded on their way through JSON still equal their training values);
- a categorical feature: a chi-square test of homogeneity of the training and the recent category
  counts, and the PSI over the same categories. Categories too rare for the test (fewer than 5
  expected rows on either side), including ones never seen in training, are pooled into "(other)";
- the predictions: the same, on the predicted classes (classification) or values (regression), against
  the model's own predictions on its training rows;
- quality: the task's metrics on the requests whose labels came back, beside the version's held-out scores.

Something drifts only when its PSI reaches `psi` AND the test's p-value falls below `ks_pvalue` /
`chi2_pvalue`: with thousands of rows the test alone flags shifts too small to matter, and on few rows
PSI alone is noisy. With fewer than `min_rows` rows (labelled rows, for quality) nothing is judged: a
note says so. The thresholds are the registered model's policy key `monitoring` (every setting optional):

    monitoring:
      psi: 0.2          # PSI at or above this, with a small p-value, is drift
      ks_pvalue: 0.01   # numeric features and regression predictions
      chi2_pvalue: 0.01 # categorical features and predicted classes
      min_rows: 50
      quality:          # a base metric on labelled requests -> its bound: a minimum for metrics where
        accuracy: 0.75  # higher is better, a maximum for rmse, mae and log_loss (default: none)

A review records that someone looked into a version's alerts: anyone but a viewer opens one (with a
reason and the findings), a product owner or admin closes it with a comment; both are audited.
"""

from __future__ import annotations

import hashlib
import math
import threading
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

from sqlalchemy import select

from tracking._errors import TrackingError, ValidationError
from tracking.governance import queue_event
from tracking.ml import split, task_metrics
from tracking.production._inference import MinuteRecord, recent_inferences, serving_series
from tracking.registry import (
    VersionRecord,
    effective_policy,
    get_model,
    get_version,
    load_version_model,
    model_task_type,
    normalize_monitoring,
    production_version,
    rebuild_dataset,
)
from tracking.runs import get_run
from tracking.store import InferenceEvent, ModelVersion, RegisteredModel, Stage, Store

# pandas, NumPy, SciPy and scikit-learn are imported inside the functions that use them: `import tracking` stays light.

BINS = 10  # quantile bins of a numeric feature's training values
SIGNIFICANT = 6  # digits at which two numbers are the same value when drift is measured
EPSILON = 1e-4  # the share given to an empty bin, so PSI stays finite
MIN_EXPECTED = 5  # rows a category needs on both sides of the chi-square test, else it is pooled
OTHER = "(other)"
MISSING = "(missing)"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# ---- the report ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    """How far one feature (or the predictions) moved from the training rows."""

    name: str
    kind: str  # "numeric" or "categorical"
    test: str  # "ks" (two-sample Kolmogorov-Smirnov) or "chi2" (chi-square test of homogeneity)
    psi: float
    statistic: float
    pvalue: float
    psi_threshold: float
    pvalue_threshold: float
    drifted: bool  # psi >= psi_threshold and pvalue < pvalue_threshold
    n_recent: int
    bins: list[str]  # quantile bins or categories, for a chart of the two distributions
    training_share: list[float]
    recent_share: list[float]


@dataclass(frozen=True)
class Quality:
    """One metric of the task on the labelled requests, beside the version's held-out score."""

    metric: str
    direction: str  # "maximize" or "minimize"
    value: float  # NaN when it cannot be computed from these rows
    held_out: float | None
    threshold: float | None  # the policy's bound: a minimum when maximized, a maximum when minimized
    breached: bool


@dataclass(frozen=True)
class ServingSummary:
    """Requests of the monitored version in the window, and every version's per-minute counts."""

    requests: int
    errors: int
    rows: int
    latency_mean_ms: float
    latency_max_ms: float
    minutes: list[MinuteRecord]  # all versions of the model, oldest first


@dataclass(frozen=True)
class Breach:
    """A threshold crossed, in one plain sentence."""

    kind: str  # "drift", "prediction_drift" or "quality"
    name: str  # the feature, "prediction", or the metric
    value: float  # PSI for drift, the metric's value for quality
    threshold: float
    sentence: str


@dataclass(frozen=True)
class MonitoringReport:
    """Drift, quality and serving health of one version over its newest logged requests."""

    model: str
    model_id: int
    version_id: int
    version: int
    task_type: str
    thresholds: dict[str, Any]
    since: datetime | None
    n_requests: int  # sampled requests read
    n_rows: int
    n_labelled: int  # labelled rows behind the quality metrics
    first_at: datetime | None
    last_at: datetime | None
    features: list[Drift]
    prediction: Drift | None
    quality: list[Quality]
    serving: ServingSummary
    breaches: list[Breach]
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.model} v{self.version}"

    @property
    def has_data(self) -> bool:
        return self.n_requests > 0 or self.serving.requests > 0

    def findings(self) -> dict[str, Any]:
        """What a review keeps of this report (JSON)."""
        return {
            "version": self.label, "since": self.since.isoformat() if self.since else None, "rows": self.n_rows,
            "labelled_rows": self.n_labelled, "thresholds": self.thresholds,
            "breaches": [{"kind": b.kind, "name": b.name, "value": b.value, "threshold": b.threshold,
                          "sentence": b.sentence} for b in self.breaches],
        }  # fmt: skip


def monitor(
    store: Store,
    model: str,
    *,
    version_id: int | None = None,
    since: datetime | None = None,
    limit: int = 5000,
) -> MonitoringReport:
    """Drift, prediction drift, quality and serving health of a registered model's production version.

    Args:
        store: the store.
        model: the registered model's name.
        version_id: monitor this version of it instead of the one in production.
        since: only requests received from then on (default: the newest `limit`, and 24 hours of volume).
        limit: the newest sampled requests read (and as many labelled ones).

    Raises:
        NotFoundError: no such model or version.
        ValidationError: nothing is in production and no version was given, or the version is another model's.
    """
    registered = get_model(store, model)
    version = _monitored_version(store, model, version_id)
    notes: list[str] = []
    try:
        thresholds = normalize_monitoring(effective_policy(store, model).get("monitoring"))
    except TrackingError as err:  # a stored policy that no longer fits the task: alert with the defaults
        thresholds = normalize_monitoring(None)
        notes.append(f"The policy could not be read ({err}); the default thresholds apply.")
    task_type = (version.evaluation or {}).get("task_type") or model_task_type(store, model)[0]
    serving = _serving(serving_series(store, registered.id, since=since), version.id)
    records = recent_inferences(store, registered.id, version_id=version.id, since=since, limit=limit)
    rows = [row for r in records for row in r.inputs]
    predictions = [p for r in records for p in (r.outputs.get("predictions") or [])]
    min_rows = thresholds["min_rows"]
    features: list[Drift] = []
    prediction: Drift | None = None
    if not records:
        notes.append(f"No sampled requests of {version.label} were logged{' in this window' if since else ''} yet.")
    elif len(rows) < min_rows:
        notes.append(
            f"Only {len(rows)} row(s) of {version.label} were logged; drift is judged from {min_rows} rows "
            "(the policy's monitoring min_rows)."
        )
    else:
        try:
            reference = _reference(store, version)
        except TrackingError as err:
            notes.append(f"Drift was not measured: {err}")
        else:
            features, missing = _feature_drift(reference, rows, thresholds)
            if missing:
                notes.append(f"The logged requests carry no values of {', '.join(map(repr, missing))}.")
            prediction = _prediction_drift(reference, predictions, thresholds)
    labelled = recent_inferences(store, registered.id, version_id=version.id, since=since, limit=limit, labelled=True)
    quality, n_labelled = _quality(task_type, version, labelled, thresholds, notes)
    breaches = _breaches(features, prediction, quality, n_labelled)
    report = MonitoringReport(
        model, registered.id, version.id, version.version, task_type, thresholds, since, len(records), len(rows),
        n_labelled, min((r.received_at for r in records), default=None),
        max((r.received_at for r in records), default=None), features, prediction, quality, serving, breaches, notes,
    )  # fmt: skip
    if breaches and version.stage == Stage.production:
        _alert(store, report)
    return report


def _alert(store: Store, report: MonitoringReport) -> None:
    """Queue the `monitoring.alert` webhook event of a production version's breaches; whoever looks (a page, the
    `monitor` command), the same breaches of a version are sent at most once a day."""
    breaches = ",".join(sorted(f"{b.kind}/{b.name}" for b in report.breaches))
    key = f"monitoring.alert:{report.version_id}:{hashlib.sha256(breaches.encode()).hexdigest()[:16]}"
    queue_event(store, "monitoring.alert", actor=None, object_type="model_version", object_id=report.version_id,
                data=report.findings(), dedup_key=key)  # fmt: skip


def breach_summary(store: Store) -> list[tuple[str, str]]:
    """(model name, sentence) for every breach of the production versions that have logged requests."""
    served = (
        select(RegisteredModel.name)
        .join(ModelVersion, ModelVersion.model_id == RegisteredModel.id)
        .where(
            ModelVersion.stage == Stage.production,
            select(InferenceEvent.id).where(InferenceEvent.version_id == ModelVersion.id).exists(),
        )
        .order_by(RegisteredModel.name)
    )
    with store.connect() as conn:
        names = list(conn.execute(served).scalars())
    summary = []
    for name in names:
        try:
            report = monitor(store, name)
        except TrackingError:  # promoted away or removed since the query: nothing to say about it
            continue
        summary.extend((name, breach.sentence) for breach in report.breaches)
    return summary


def _monitored_version(store: Store, model: str, version_id: int | None) -> VersionRecord:
    if version_id is not None:
        version = get_version(store, version_id)
        if version.model != model:
            raise ValidationError(f"Version {version_id} belongs to {version.model!r}, not {model!r}.")
        return version
    version = production_version(store, model)
    if version is None:
        raise ValidationError(f"{model!r} has no version in production; promote one, or name the version to monitor.")
    return version


def _serving(minutes: list[MinuteRecord], version_id: int) -> ServingSummary:
    mine = [m for m in minutes if m.version_id == version_id]
    requests = sum(m.requests for m in mine)
    mean = sum(m.latency_mean_ms * m.requests for m in mine) / requests if requests else 0.0
    return ServingSummary(
        requests, sum(m.errors for m in mine), sum(m.rows for m in mine), mean,
        max((m.latency_max_ms for m in mine), default=0.0), minutes,
    )  # fmt: skip


# ---- the training reference ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Reference:
    """What the version's training rows look like: per feature values or category counts, and predictions."""

    task_type: str
    numeric: dict[str, Any]  # feature -> finite training values (numpy array)
    categorical: dict[str, Counter]  # feature -> training category counts
    predictions: Any  # regression: predicted values (numpy array); classification: Counter of predicted classes


# Keyed on content (model file sha256, dataset sha256, split seed), so it holds for any store.
_REFERENCES: dict[tuple[str, str, int], _Reference] = {}
_REFERENCES_LOCK = threading.Lock()
_MAX_REFERENCES = 16


def _reference(store: Store, version: VersionRecord) -> _Reference:
    """The training side of every comparison, computed once per model file and dataset version."""
    run = get_run(store, version.run_id)
    if not run.dataset:
        raise ValidationError(f"the run behind {version.label} recorded no dataset version to compare with.")
    key = (version.artifact_sha256, run.dataset["hash"], run.seed or 0)
    with _REFERENCES_LOCK:
        if key in _REFERENCES:
            return _REFERENCES[key]
    data = rebuild_dataset(store, run.dataset["id"])
    X = split(data, run.seed or 0).X_train
    model = load_version_model(store, version)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            predicted = model.predict(X)
    except (ValueError, KeyError, TypeError) as err:
        raise ValidationError(f"{version.label} could not predict on its own training rows ({err}).") from err
    numeric, categorical = {}, {}
    for column in X.columns:
        if _is_numeric(X[column]):
            numeric[column] = _floats(X[column])
        else:
            categorical[column] = _counts(X[column])
    classification = data.task_type == "classification"
    predictions = _counts(predicted) if classification else _floats(predicted)
    reference = _Reference(data.task_type, numeric, categorical, predictions)
    with _REFERENCES_LOCK:
        if len(_REFERENCES) >= _MAX_REFERENCES:
            _REFERENCES.pop(next(iter(_REFERENCES)))
        _REFERENCES[key] = reference
    return reference


def _is_numeric(column: Any) -> bool:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    return is_numeric_dtype(column) and not is_bool_dtype(column)


def _category(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return str(value.item() if hasattr(value, "item") else value)  # numpy scalars read like JSON values


def _floats(values: Any) -> Any:
    """The finite numbers among the values (text that is no number, and missing values, left out)."""
    import numpy as np
    import pandas as pd

    array = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=float)
    return array[np.isfinite(array)]


def _snap(values: Any) -> Any:
    """The values at `SIGNIFICANT` digits: a number whose last digits were lost on the way (JSON writers
    round) is still the same number, so a feature of a few distinct values does not seem to move."""
    import numpy as np

    magnitude = np.floor(np.log10(np.abs(values), where=values != 0, out=np.zeros_like(values)))
    scale = 10.0 ** (SIGNIFICANT - 1 - magnitude)
    return np.round(values * scale) / scale


def _counts(values: Any) -> Counter:
    """How often each category occurs, missing values as one category of their own."""
    import pandas as pd

    counts: Counter = Counter()
    for value, n in pd.Series(values, dtype=object).value_counts(dropna=False).items():
        counts[_category(value)] += int(n)
    return counts


# ---- drift ---------------------------------------------------------------------------------------


def _feature_drift(
    reference: _Reference, rows: list[dict[str, Any]], thresholds: dict[str, Any]
) -> tuple[list[Drift], list[str]]:
    import pandas as pd

    frame = pd.DataFrame.from_records([row for row in rows if isinstance(row, dict)])  # a row without a column: NaN
    missing, out = [], []
    for feature in [*reference.numeric, *reference.categorical]:
        values = frame[feature] if feature in frame.columns else None
        if values is None or values.isna().all():
            missing.append(feature)
        elif feature in reference.numeric:
            recent = _floats(values)
            if len(recent):
                out.append(_numeric_drift(feature, reference.numeric[feature], recent, thresholds))
            else:
                missing.append(feature)
        else:
            out.append(_categorical_drift(feature, reference.categorical[feature], values, thresholds))
    return out, missing


def _prediction_drift(reference: _Reference, predictions: list[Any], thresholds: dict[str, Any]) -> Drift | None:
    if len(predictions) < thresholds["min_rows"]:
        return None
    if isinstance(reference.predictions, Counter):
        return _categorical_drift("prediction", reference.predictions, predictions, thresholds)
    recent = _floats(predictions)
    return _numeric_drift("prediction", reference.predictions, recent, thresholds) if len(recent) else None


def _numeric_drift(name: str, training: Any, recent: Any, thresholds: dict[str, Any]) -> Drift:
    import numpy as np
    from scipy.stats import ks_2samp

    training, recent = _snap(training), _snap(recent)
    edges = np.unique(np.quantile(training, np.linspace(0, 1, BINS + 1)[1:-1]))
    expected = np.bincount(np.searchsorted(edges, training, side="right"), minlength=len(edges) + 1) / len(training)
    actual = np.bincount(np.searchsorted(edges, recent, side="right"), minlength=len(edges) + 1) / len(recent)
    test = ks_2samp(training, recent)
    labels = [f"< {edges[0]:.4g}"] + [f"{lo:.4g} to {hi:.4g}" for lo, hi in pairwise(edges)]
    labels.append(f"≥ {edges[-1]:.4g}")
    return _drift(name, "numeric", "ks", expected, actual, float(test.statistic), float(test.pvalue), len(recent),
                  labels, thresholds["psi"], thresholds["ks_pvalue"])  # fmt: skip


def _categorical_drift(name: str, training: Counter, values: Any, thresholds: dict[str, Any]) -> Drift:
    import numpy as np
    from scipy.stats import chi2_contingency

    recent = _counts(values)
    n_train, n_recent = sum(training.values()), sum(recent.values())
    total = n_train + n_recent
    kept, pooled = [], []
    for category in sorted(set(training) | set(recent), key=lambda c: (-training[c], -recent[c], c)):
        both = training[category] + recent[category]
        rare = min(n_train, n_recent) * both / total < MIN_EXPECTED
        (pooled if rare else kept).append(category)
    bins = kept + ([OTHER] if pooled else [])
    counts = np.array(
        [[training[c] for c in kept] + ([sum(training[c] for c in pooled)] if pooled else []),
         [recent[c] for c in kept] + ([sum(recent[c] for c in pooled)] if pooled else [])],
        dtype=float,
    )  # fmt: skip
    if len(bins) < 2:  # one category on both sides: nothing can have moved
        statistic, pvalue = 0.0, 1.0
    else:
        test = chi2_contingency(counts)
        statistic, pvalue = float(test.statistic), float(test.pvalue)
    return _drift(name, "categorical", "chi2", counts[0] / n_train, counts[1] / n_recent, statistic, pvalue, n_recent,
                  bins, thresholds["psi"], thresholds["chi2_pvalue"])  # fmt: skip


def _drift(name: str, kind: str, test: str, expected: Any, actual: Any, statistic: float, pvalue: float, n: int,
           bins: list[str], psi_threshold: float, pvalue_threshold: float) -> Drift:  # fmt: skip
    import numpy as np

    e, a = np.clip(expected, EPSILON, None), np.clip(actual, EPSILON, None)
    psi = float(np.sum((a - e) * np.log(a / e)))
    drifted = psi >= psi_threshold and pvalue < pvalue_threshold
    return Drift(name, kind, test, psi, statistic, pvalue, psi_threshold, pvalue_threshold, drifted, n, bins,
                 [float(x) for x in expected], [float(x) for x in actual])  # fmt: skip


# ---- quality -------------------------------------------------------------------------------------


def _quality(
    task_type: str, version: VersionRecord, labelled: list[Any], thresholds: dict[str, Any], notes: list[str]
) -> tuple[list[Quality], int]:
    truth, predicted, proba, classes, with_proba = [], [], [], None, True
    for r in labelled:
        labels, outputs = r.labels or [], r.outputs
        preds = outputs.get("predictions") or []
        if len(preds) != len(labels):
            continue  # a malformed record says nothing about quality
        truth.extend(labels)
        predicted.extend(preds)
        probabilities = outputs.get("probabilities")
        classes = classes if classes is not None else outputs.get("classes")
        if probabilities is None or len(probabilities) != len(labels) or outputs.get("classes") != classes:
            with_proba = False
        else:  # the server sends one {class: probability} per row; a list in the order of `classes` also does
            keys = [str(c) for c in classes]
            proba.extend([row.get(k, 0.0) for k in keys] if isinstance(row, Mapping) else row for row in probabilities)
    if not truth:
        return [], 0
    if len(truth) < thresholds["min_rows"]:
        notes.append(
            f"Only {len(truth)} labelled row(s) came back; quality is judged from {thresholds['min_rows']} rows."
        )
        return [], len(truth)
    scores = (
        _classification_quality(truth, predicted, proba if with_proba and classes else None, classes)
        if task_type == "classification"
        else _regression_quality(truth, predicted)
    )
    held_out = (version.evaluation or {}).get("candidate_scores") or {}
    out = []
    for metric, direction in task_metrics(task_type).items():
        value, bound = scores.get(metric, math.nan), thresholds["quality"].get(metric)
        breached = (
            bound is not None and math.isfinite(value) and (value < bound if direction == "maximize" else value > bound)
        )
        base = held_out.get(metric)
        out.append(Quality(metric, direction, value, float(base) if base is not None else None, bound, breached))
    return out, len(truth)


def _classification_quality(truth: list, predicted: list, proba: list | None, classes: list | None) -> dict:
    import numpy as np
    from sklearn import metrics as m

    y, pred = np.array([_category(v) for v in truth]), np.array([_category(v) for v in predicted])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # labels never predicted (or never true) are part of the answer
        out = {
            "accuracy": float(m.accuracy_score(y, pred)),
            "balanced_accuracy": float(m.balanced_accuracy_score(y, pred)),
            "f1_macro": float(m.f1_score(y, pred, average="macro")),
        }
        names = [_category(c) for c in classes or []]
        if proba is not None and set(y) <= set(names):  # a label the model lacks has no probability
            index = np.array([names.index(v) for v in y])
            P, k = np.asarray(proba, dtype=float), len(names)
            out["log_loss"] = float(m.log_loss(index, P, labels=list(range(k))))
            try:
                out["roc_auc"] = float(
                    m.roc_auc_score(index == 1, P[:, 1])
                    if k == 2
                    else m.roc_auc_score(index, P, multi_class="ovr", labels=list(range(k)))
                )
            except ValueError:  # one class only among the labels: no ROC AUC
                out["roc_auc"] = math.nan
    return out


def _regression_quality(truth: list, predicted: list) -> dict:
    import numpy as np
    from sklearn import metrics as m

    y, pred = _floats(truth), _floats(predicted)
    if len(y) != len(pred) or len(y) < 2:
        return {}
    return {
        "rmse": float(np.sqrt(m.mean_squared_error(y, pred))),
        "mae": float(m.mean_absolute_error(y, pred)),
        "r2": float(m.r2_score(y, pred)),
    }


# ---- breaches ------------------------------------------------------------------------------------


def _breaches(features: list[Drift], prediction: Drift | None, quality: list[Quality], n_labelled: int) -> list:
    out = []
    for q in quality:
        if q.breached:
            word = "below the policy's minimum" if q.direction == "maximize" else "above the policy's maximum"
            held = f" (held-out {q.held_out:.3f})" if q.held_out is not None else ""
            out.append(Breach("quality", q.metric, q.value, q.threshold,
                              f"{q.metric} on {n_labelled} labelled rows is {q.value:.3f}, {word} of {q.threshold:g}"
                              f"{held}."))  # fmt: skip
    if prediction is not None and prediction.drifted:
        what = "predicted classes" if prediction.kind == "categorical" else "predicted values"
        out.append(Breach("prediction_drift", "prediction", prediction.psi, prediction.psi_threshold,
                          f"The {what} drifted from the model's predictions on its training rows: "
                          f"{_evidence(prediction)}."))  # fmt: skip
    for d in sorted(features, key=lambda d: -d.psi):
        if d.drifted:
            sentence = f"The feature {d.name} drifted from its training distribution: {_evidence(d)}."
            out.append(Breach("drift", d.name, d.psi, d.psi_threshold, sentence))
    return out


def _evidence(d: Drift) -> str:
    test = "KS test" if d.test == "ks" else "chi-square test"
    return (
        f"PSI {d.psi:.2f} (alert at {d.psi_threshold:g}), {test} p = {d.pvalue:.2g} (alert below "
        f"{d.pvalue_threshold:g}), over {d.n_recent:,} recent rows"
    )
