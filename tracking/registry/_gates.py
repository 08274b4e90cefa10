"""Promotion gates: each gate validates its settings, checks a candidate, and explains itself.

Pure computation, no store access: the caller loads the models, the dataset and the run's metrics,
scores them with `tracking.ml.assess` and calls `tracking.registry._policy.run_gates`.

Adding a gate is adding one entry to `GATES`: how its settings are validated, how they are checked
(one `GateResult` per requirement, with a plain sentence), and the one line that describes it in a
policy. The integrity gate (model file hash, recorded dataset version) needs no settings and always
runs first. Each result is passed, failed, or not applicable (nothing to compare with, e.g. the
no-regression gate while no version is in production): not applicable blocks nothing and is not a pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tracking._errors import ValidationError
from tracking.ml import (
    CLASSIFICATION_METRICS,
    DEFAULT_BOOTSTRAP,
    DEFAULT_CONFIDENCE,
    REGRESSION_METRICS,
    Assessment,
    plain_json,
    task_metrics,
)

MAIN_METRIC = {"classification": "f1_macro", "regression": "rmse"}
BOOTSTRAP_LIMITS = (100, 100_000)

# A gate's three states. "not applicable" (nothing to compare with, e.g. no version in production yet) is
# neither a pass nor a failure: it blocks nothing and is never counted as passed.
PASSED, FAILED, NOT_APPLICABLE = "passed", "failed", "not applicable"
GATE_STATES = (PASSED, FAILED, NOT_APPLICABLE)


@dataclass(frozen=True)
class GateResult:
    """One check of a promotion policy, worded for the person who approves."""

    gate: str  # the policy key ("integrity" for the always-on checks)
    label: str  # what is required, e.g. "test_f1_macro is at least 0.8"
    value: float | None
    threshold: float | None
    passed: bool  # True only in state PASSED
    detail: str  # one plain sentence
    state: str = ""  # PASSED, FAILED or NOT_APPLICABLE; left out, it follows `passed`
    metric: str | None = None  # the metric checked (a recorded key or a base metric), when the gate checks one

    def __post_init__(self) -> None:
        state = self.state or (PASSED if self.passed else FAILED)
        if state not in GATE_STATES or self.passed != (state == PASSED):
            raise ValueError(f"A gate result cannot be passed={self.passed} in state {state!r}.")
        object.__setattr__(self, "state", state)

    def to_json(self) -> dict[str, Any]:
        return plain_json(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GateResult:
        value, threshold = (None if d.get(k) is None else float(d[k]) for k in ("value", "threshold"))
        return cls(
            d["gate"], d["label"], value, threshold, bool(d["passed"]), d["detail"], gate_state(d), d.get("metric")
        )


def gate_state(gate: Mapping[str, Any]) -> str:
    """The state of a stored gate result: PASSED, FAILED or NOT_APPLICABLE (results stored before the third
    state existed have only `passed`)."""
    return gate.get("state") or (PASSED if gate["passed"] else FAILED)


def not_applicable(gate: str, label: str, detail: str, metric: str | None = None) -> GateResult:
    """A gate with nothing to check against: neither passed nor failed."""
    return GateResult(gate, label, None, None, False, detail, NOT_APPLICABLE, metric)


@dataclass(frozen=True)
class GateInputs:
    """What the gates look at for one promotion request."""

    metrics: dict[str, float]  # the candidate run's recorded metrics
    assessment: Assessment | None  # None when the training dataset could not be rebuilt
    baseline_version: int | None  # the version in production, if any
    model_verified: bool  # the model file's sha256 matches the recorded one
    model_detail: str  # one sentence on that check
    dataset: dict[str, Any] | None  # {"name", "hash"} of the recorded dataset version


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
    """`metric` is one base metric (with one number as `tolerance`) or a list of them (with one number for
    all, or a mapping metric -> number; a metric left out of the mapping may not drop at all)."""
    settings = _settings(value, "regression", ("metric", "tolerance", "bootstrap", "confidence"))
    metric: str | list[str]
    tolerance: float | dict[str, float]
    if isinstance(settings.get("metric"), list | tuple):
        names = list(settings["metric"])
        if not names:
            raise ValidationError("The policy's regression metric list is empty; name at least one metric.")
        metric = [_base_metric({"metric": name}, "regression", task_type) for name in names]
        if len(set(metric)) < len(metric):
            raise ValidationError("The policy's regression metric list names a metric twice.")
        given = settings.get("tolerance", 0.0)
        if isinstance(given, Mapping):
            for name in given:
                if name not in metric:
                    raise ValidationError(
                        f"The policy's regression tolerance names {name!r}, which is not in its metric list."
                    )
            tolerance = {m: _threshold(given.get(m, 0.0), f"The policy's regression tolerance of {m}") for m in metric}
        else:
            one = _threshold(given, "The policy's regression tolerance")
            tolerance = dict.fromkeys(metric, one)
    else:
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


# ---- gates -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    """One policy key: how its settings are validated, checked, and described."""

    normalize: Callable[[Any, str | None], Any]  # (settings, task type or None) -> normalized settings
    check: Callable[[Any, GateInputs], list[GateResult]]
    describe: Callable[[Any], str]  # normalized settings -> one markdown line for people


def describe_integrity() -> str:
    """The integrity gate in one line: it needs no settings and always runs."""
    return "**Integrity** (always): the model file's sha256 verifies and its training dataset version is recorded."


def check_integrity(inputs: GateInputs) -> list[GateResult]:
    """The always-on checks: the model file's sha256 verifies, the training dataset version is recorded."""
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
                results.append(GateResult(key, label, None, threshold, False, detail, metric=metric))
                continue
            passed = value >= threshold if at_least else value <= threshold
            detail = f"The run's {metric} is {_fmt(value)}, which {verdicts[passed]} {_fmt(threshold)}."
            results.append(GateResult(key, label, float(value), threshold, passed, detail, metric=metric))
        return results

    return check


def regression_tolerances(settings: Mapping[str, Any]) -> dict[str, float]:
    """The regression gate's metrics, each with its tolerance, in the policy's order."""
    metric, tolerance = settings["metric"], settings["tolerance"]
    if isinstance(metric, str):
        return {metric: float(tolerance)}
    return {m: float(tolerance[m] if isinstance(tolerance, Mapping) else tolerance) for m in metric}


def _check_regression(settings: dict[str, Any], inputs: GateInputs) -> list[GateResult]:
    return [_check_one_regression(m, t, inputs) for m, t in regression_tolerances(settings).items()]


def _check_one_regression(metric: str, tolerance: float, inputs: GateInputs) -> GateResult:
    label = (
        f"{metric} is at most {tolerance:g} worse than in production"
        if tolerance
        else f"{metric} is no worse than in production"
    )

    def result(passed: bool, detail: str, value: float | None = None) -> GateResult:
        return GateResult("regression", label, value, 0.0 - tolerance, passed, detail, metric=metric)  # not -0.0

    assessment = inputs.assessment
    if inputs.baseline_version is None:
        detail = "No version is in production, so there is nothing to regress against: this gate does not apply."
        return not_applicable("regression", label, detail, metric)
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
    values = [(row.candidate.get(metric, math.nan), row.group) for row in assessment.groups if row.n > 0]
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


def _describe_thresholds(key: str) -> Callable[[dict[str, float]], str]:
    label, word = ("Minimum metrics", "at least") if key == "min_metrics" else ("Maximum metrics", "at most")

    def describe(settings: dict[str, float]) -> str:
        if not settings:
            return f"**{label}**: none listed."
        return f"**{label}**: " + "; ".join(f"`{m}` is {word} {v:g}" for m, v in settings.items()) + "."

    return describe


def _describe_regression(settings: dict[str, Any]) -> str:
    parts = [
        f"`{metric}` {f'is at most {tolerance:g} worse' if tolerance else 'is no worse'}"
        for metric, tolerance in regression_tolerances(settings).items()
    ]
    listed = parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
    return (
        f"**No regression**: on the same held-out rows as the production model, the candidate's {listed} "
        f"({settings['confidence']:.0%} interval from {settings['bootstrap']} bootstrap resamples); with no version "
        "in production it does not apply."
    )


def _describe_fairness(settings: dict[str, Any]) -> str:
    return (
        f"**Fairness**: `{settings['metric']}` differs by at most {settings['max_gap']:g} between the groups of the "
        "sensitive attribute."
    )


# Policy key -> gate, in the order results are shown.
GATES: dict[str, Gate] = {
    "min_metrics": Gate(
        _normalize_thresholds("min_metrics"), _check_thresholds("min_metrics"), _describe_thresholds("min_metrics")
    ),
    "max_metrics": Gate(
        _normalize_thresholds("max_metrics"), _check_thresholds("max_metrics"), _describe_thresholds("max_metrics")
    ),
    "regression": Gate(_normalize_regression, _check_regression, _describe_regression),
    "fairness": Gate(_normalize_fairness, _check_fairness, _describe_fairness),
}


# ---- formatting --------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.3f}"
