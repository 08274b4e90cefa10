"""A registered model's promotion policy: its format, the one parser (CLI and Policies page), its
validation, its plain-language description, and the check of a candidate against it.

A policy is a plain dict (stored as JSON, typed as YAML or JSON); every key is optional:

    {
        "min_metrics": {"test_f1_macro": 0.8},  # recorded run metrics that must be >= value
        "max_metrics": {"test_rmse": 60.0},  # recorded run metrics that must be <= value
        "regression": {"metric": "f1_macro", "tolerance": 0.01, "bootstrap": 1000, "confidence": 0.95},
        # or several metrics: {"metric": ["f1_macro", "log_loss"], "tolerance": {"f1_macro": 0.01, "log_loss": 0.02}}
        "fairness": {"metric": "accuracy", "max_gap": 0.1},
        "monitoring": {"psi": 0.2, "min_rows": 50},  # alerts on the served model: never a gate
    }

The gate keys are those of `tracking.registry._gates.GATES`; `monitoring` holds the thresholds of
`tracking.production.monitor` (see that module for what they mean).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import yaml

from tracking._errors import ValidationError
from tracking.ml import (
    CLASSIFICATION,
    CLASSIFICATION_METRICS,
    DEFAULT_BOOTSTRAP,
    DEFAULT_CONFIDENCE,
    REGRESSION_METRICS,
    task_metrics,
)
from tracking.registry._gates import GATES, GateInputs, GateResult, check_integrity, describe_integrity

MONITORING = "monitoring"  # the policy key of the monitoring thresholds
POLICY_FORMAT = (  # the format in a paragraph, for people writing a policy
    "Every gate is optional: `min_metrics` / `max_metrics` map recorded run metrics (e.g. `test_f1_macro`) to "
    "a bound; `regression` has `metric` (one metric, or a list), `tolerance` (one number, or a number per "
    "metric), `bootstrap` (resamples) and `confidence`; `fairness` "
    "has `metric` and `max_gap`. `{}` keeps only the integrity checks. `monitoring` is not a gate but the "
    "thresholds of the alerts on the version in production: `psi` (drift when the population stability index "
    "reaches it, e.g. 0.2), `ks_pvalue` and `chi2_pvalue` (and the test's p-value falls below it, e.g. 0.01), "
    "`min_rows` (logged rows needed before anything is judged, e.g. 50) and `quality` (a metric on requests "
    "whose labels came back, mapped to its bound, e.g. `{accuracy: 0.75}`); each is optional."
)
MONITORING_DEFAULTS: dict[str, Any] = {
    "psi": 0.2,
    "ks_pvalue": 0.01,
    "chi2_pvalue": 0.01,
    "min_rows": 50,
    "quality": {},
}


def parse_policy(text: str, source: str = "The policy") -> Any:
    """The policy written as YAML (JSON is YAML too), not yet validated.

    Raises:
        ValidationError: the text is empty or not YAML, in one sentence naming the line.
    """
    if not text.strip():
        raise ValidationError(f"{source} is empty: write at least one gate, or `{{}}` for none.")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(err, "problem", None) or "it cannot be read"
        raise ValidationError(f"{source} is not valid YAML{line}: {problem}.") from None


def read_policy_file(path: str) -> Any:
    """`parse_policy` of a file's text.

    Raises:
        ValidationError: the file cannot be read, or is not YAML.
    """
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as err:
        raise ValidationError(f"The policy file {path!r} cannot be read: {err.strerror}.") from None
    except UnicodeDecodeError:
        raise ValidationError(f"The policy file {path!r} is not UTF-8 text.") from None
    return parse_policy(text, source=f"The policy file {path!r}")


def policy_yaml(policy: Mapping[str, Any]) -> str:
    """A policy as YAML, gates in their order (what `parse_policy` reads back)."""
    return yaml.safe_dump(dict(policy), sort_keys=False, default_flow_style=False) if policy else "{}\n"


# The task's main metrics, each with how much worse than production the default policy lets it get: a
# classifier's balance of errors (F1 macro), its ranking (ROC AUC) and its probabilities (log loss, which
# can get much worse while F1 stays put); a regressor's squared and absolute errors.
DEFAULT_REGRESSION = {
    CLASSIFICATION: {"f1_macro": 0.01, "roc_auc": 0.01, "log_loss": 0.02},
    "regression": {"rmse": 0.0, "mae": 0.0},
}


def default_policy(task_type: str, has_sensitive: bool) -> dict[str, Any]:
    """The policy used when an admin has set none.

    No regression on the task's main metrics (`DEFAULT_REGRESSION`: F1 macro and ROC AUC within 0.01 and
    log loss within 0.02, or RMSE and MAE not worse at all), and for classification with a sensitive
    column, accuracy within 0.1 between its groups.
    """
    tolerances = DEFAULT_REGRESSION[task_type]
    policy: dict[str, Any] = {"regression": {"metric": list(tolerances), "tolerance": dict(tolerances)}}
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
        normalized[MONITORING] = normalize_monitoring(policy[MONITORING], task_type)
    return normalized


def bootstrap_settings(policy: Mapping[str, Any]) -> tuple[int, float]:
    """The (resamples, confidence) that `assess` should use for a validated policy."""
    regression = policy.get("regression") or {}
    return regression.get("bootstrap", DEFAULT_BOOTSTRAP), regression.get("confidence", DEFAULT_CONFIDENCE)


def run_gates(policy: Mapping[str, Any], inputs: GateInputs) -> list[GateResult]:
    """Integrity first, then every gate the policy sets, in `GATES` order.

    A policy metric that does not belong to the assessed task fails its gate rather than raising.

    Raises:
        ValidationError: the policy itself is malformed.
    """
    settings = validate_policy(policy)
    results = check_integrity(inputs)
    for key, gate in GATES.items():
        if key in settings:
            results.extend(gate.check(settings[key], inputs))
    return results


def describe_policy(policy: Mapping[str, Any]) -> list[str]:
    """A validated policy in plain language (markdown): integrity first (it always runs), one line per gate
    it sets, each gate's own sentence, then the monitoring thresholds."""
    lines = [describe_integrity()]
    lines += [gate.describe(policy[key]) for key, gate in GATES.items() if key in policy]
    lines.append(describe_monitoring(policy.get(MONITORING)))
    return lines


# ---- monitoring thresholds -------------------------------------------------------------------------


def normalize_monitoring(value: Any, task_type: str | None = None) -> dict[str, Any]:
    """The policy's `monitoring` settings with defaults filled in (called by `validate_policy`).

    Raises:
        ValidationError: one sentence naming the bad setting.
    """
    value = {} if value is None else value
    if not isinstance(value, Mapping):
        raise ValidationError(
            f"The policy's monitoring must be a mapping with the settings: {', '.join(MONITORING_DEFAULTS)}."
        )
    for name in value:
        if name not in MONITORING_DEFAULTS:
            raise ValidationError(
                f"The policy's monitoring has no setting {name!r}; it has: {', '.join(MONITORING_DEFAULTS)}."
            )
    settings = {**MONITORING_DEFAULTS, **value}
    if not _is_number(settings["psi"]) or settings["psi"] <= 0:
        raise ValidationError(
            f"The policy's monitoring psi must be a number above 0 (e.g. 0.2), not {settings['psi']!r}."
        )
    for key in ("ks_pvalue", "chi2_pvalue"):
        if not _is_number(settings[key]) or not 0 < settings[key] < 1:
            raise ValidationError(
                f"The policy's monitoring {key} must be between 0 and 1 (e.g. 0.01), not {settings[key]!r}."
            )
    rows = settings["min_rows"]
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ValidationError(f"The policy's monitoring min_rows must be a whole number of at least 1, not {rows!r}.")
    quality = settings["quality"] if settings["quality"] is not None else {}
    if not isinstance(quality, Mapping):
        raise ValidationError("The policy's monitoring quality must map metrics to bounds, e.g. {'accuracy': 0.75}.")
    known = task_metrics(task_type) if task_type else {**CLASSIFICATION_METRICS, **REGRESSION_METRICS}
    for metric, bound in quality.items():
        if metric not in known:
            kind = f"{task_type} " if task_type else ""
            raise ValidationError(
                f"The policy's monitoring quality metric {metric!r} is not a {kind}metric; "
                f"use one of: {', '.join(known)}."
            )
        if not _is_number(bound):
            raise ValidationError(
                f"The policy's monitoring quality bound for {metric!r} must be a number, not {bound!r}."
            )
    return {
        "psi": float(settings["psi"]), "ks_pvalue": float(settings["ks_pvalue"]),
        "chi2_pvalue": float(settings["chi2_pvalue"]), "min_rows": rows,
        "quality": {metric: float(bound) for metric, bound in quality.items()},
    }  # fmt: skip


def describe_monitoring(settings: Mapping[str, Any] | None) -> str:
    """The policy's `monitoring` thresholds (or the defaults) in plain words: alerts on the served model, no gate."""
    m = normalize_monitoring(settings)
    own = "" if settings else "; none are set, so the defaults apply"
    directions = {**CLASSIFICATION_METRICS, **REGRESSION_METRICS}
    bounds = [
        f"`{metric}` {'at most' if directions.get(metric) == 'minimize' else 'at least'} {bound:g}"
        for metric, bound in m["quality"].items()
    ]
    quality = f"on requests whose true labels came back, {'; '.join(bounds)}" if bounds else "no bound set"
    return (
        f"**Monitoring** (alerts on the version in production, never a gate{own}): an input feature or the predictions "
        f"drift when their population stability index reaches {m['psi']:g} and the test's p-value falls below "
        f"{m['ks_pvalue']:g} (Kolmogorov-Smirnov, for numbers) or {m['chi2_pvalue']:g} (chi-square, for "
        f"categories); nothing is judged on fewer than {m['min_rows']} logged rows. Quality: {quality}."
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
