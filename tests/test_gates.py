"""Promotion gates: held-out comparison of real fitted models, policy validation, and each gate's verdict."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.metrics import accuracy_score

from tracking._errors import ValidationError
from tracking.ml._assess import Assessment, assess
from tracking.ml._families import FAMILIES, make_pipeline
from tracking.ml._objective import CLASSIFICATION_METRICS, REGRESSION_METRICS, score, split
from tracking.registry import (
    GATES,
    GateInputs,
    GateResult,
    bootstrap_settings,
    clearly_worse,
    default_policy,
    gate_state,
    gate_summary,
    run_gates,
    validate_policy,
    worse_metrics,
)
from tracking.runs._datasets import load_task

SEED = 0


def _fit(task: str, family: str, params: dict, rows: int | None = None):
    data = load_task(task)
    parts = split(data, SEED)
    X, y = parts.X_train, parts.y_train
    if rows is not None:
        X, y = X.iloc[:rows], y.iloc[:rows]
    return make_pipeline(FAMILIES[family], params, SEED, data.task_type, X).fit(X, y)


@pytest.fixture(scope="module")
def loan():
    """The loan_approval task (sensitive column: gender)."""
    return load_task("loan_approval")


@pytest.fixture(scope="module")
def good_loan_model():
    """A logistic regression fitted on loan_approval's full training split."""
    return _fit("loan_approval", "logistic_regression", {"C": 1.0})


@pytest.fixture(scope="module")
def weak_loan_model(loan):
    """A model that always predicts the class priors: clearly worse than any real fit."""
    parts = split(loan, SEED)
    return DummyClassifier(strategy="prior").fit(parts.X_train, parts.y_train)


@pytest.fixture(scope="module")
def better(loan, good_loan_model, weak_loan_model):
    """The good model as candidate against the weak one in production."""
    return assess(good_loan_model, weak_loan_model, loan, SEED)


@pytest.fixture(scope="module")
def worse(loan, good_loan_model, weak_loan_model):
    """The weak model as candidate against the good one in production."""
    return assess(weak_loan_model, good_loan_model, loan, SEED)


@pytest.fixture(scope="module")
def cancer():
    """breast_cancer: a classification task without a sensitive column, two real models compared."""
    data = load_task("breast_cancer")
    strong = _fit("breast_cancer", "logistic_regression", {"C": 1.0})
    small = _fit("breast_cancer", "logistic_regression", {"C": 0.001}, rows=30)
    return data, strong, small


@pytest.fixture(scope="module")
def diabetes():
    """diabetes (regression): ridge as candidate against a mean-only model in production."""
    data = load_task("diabetes")
    parts = split(data, SEED)
    mean_only = DummyRegressor().fit(parts.X_train, parts.y_train)
    return assess(_fit("diabetes", "ridge", {"alpha": 1.0}), mean_only, data, SEED)


@pytest.fixture(scope="module")
def solo(loan, good_loan_model):
    """An assessment whose extra group "solo" holds approved loans only, so its ROC AUC is undefined."""
    solo = (loan.y == 1) & (np.arange(len(loan.y)) % 5 == 0)
    data = dataclasses.replace(loan, sensitive=loan.sensitive.where(~solo, "solo"))
    return assess(good_loan_model, None, data, SEED)


def _inputs(assessment: Assessment | None, **changes) -> GateInputs:
    base = GateInputs(
        metrics={},
        assessment=assessment,
        baseline_version=1,
        model_verified=True,
        model_detail="The model file matches its recorded sha256.",
        dataset={"name": "loan_approval", "hash": "ab" * 32},
    )
    return dataclasses.replace(base, **changes)


# ---- assess -------------------------------------------------------------------------------------


def test_assess_scores_equal_the_recorded_test_metrics(loan, good_loan_model, weak_loan_model, better):
    parts = split(loan, SEED)
    for model, scores in ((good_loan_model, better.candidate_scores), (weak_loan_model, better.baseline_scores)):
        expected = score(model, parts.X_test, parts.y_test, "classification")
        assert scores == pytest.approx(expected, abs=1e-12)


def test_assess_better_candidate_has_positive_improvement_inside_its_interval(better):
    delta = better.delta("f1_macro")
    assert delta.improvement == delta.delta > 0
    assert delta.low <= delta.delta <= delta.high and delta.low < delta.high


def test_assess_deltas_cover_every_metric_with_signed_improvement(better):
    assert [d.metric for d in better.deltas] == list(CLASSIFICATION_METRICS)
    for d in better.deltas:
        sign = 1 if CLASSIFICATION_METRICS[d.metric] == "maximize" else -1
        assert d.direction == CLASSIFICATION_METRICS[d.metric]
        assert d.delta == pytest.approx(d.candidate - d.baseline) and d.improvement == pytest.approx(sign * d.delta)
        assert d.improvement > 0  # the prior-only model is worse on every metric, log loss included


def test_assess_group_rows_match_sklearn_on_each_groups_rows(loan, good_loan_model, better):
    parts = split(loan, SEED)
    assert better.sensitive == "gender"
    assert [g.group for g in better.groups] == sorted(set(parts.groups_test))
    assert sum(g.n for g in better.groups) == better.n_test == len(parts.X_test)
    for row in better.groups:
        rows = parts.groups_test == row.group
        expected = score(good_loan_model, parts.X_test[rows], parts.y_test[rows], "classification")
        assert row.n == int(rows.sum()) and row.candidate == pytest.approx(expected, abs=1e-12)


def test_assess_without_baseline_has_no_deltas(loan, good_loan_model):
    assessment = assess(good_loan_model, None, loan, SEED, bootstrap=100)
    assert assessment.baseline_scores is None and assessment.deltas == []
    assert all(row.baseline is None for row in assessment.groups)


def test_assess_same_seed_gives_same_interval(cancer):
    data, strong, small = cancer
    first, second = (assess(strong, small, data, SEED, bootstrap=200) for _ in range(2))
    assert first.deltas == second.deltas


def test_assess_regression_task_signs_improvement_by_direction(diabetes):
    rmse, r2 = diabetes.delta("rmse"), diabetes.delta("r2")
    assert [d.metric for d in diabetes.deltas] == list(REGRESSION_METRICS)
    assert rmse.delta < 0 < rmse.improvement and rmse.high < 0  # lower rmse is better
    assert r2.delta == r2.improvement > 0
    assert diabetes.sensitive is None and diabetes.groups == []


def test_assess_interval_skips_resamples_where_metric_is_undefined(loan):
    # 6 held-out rows: about one resample in ten holds a single class and has no ROC AUC.
    small = dataclasses.replace(loan, X=loan.X.iloc[:24], y=loan.y.iloc[:24], sensitive=None, sensitive_column=None)
    parts = split(small, SEED)
    candidate = make_pipeline(FAMILIES["logistic_regression"], {}, SEED, "classification", parts.X_train)
    prior = DummyClassifier(strategy="prior").fit(parts.X_train, parts.y_train)
    roc_auc = assess(candidate.fit(parts.X_train, parts.y_train), prior, small, SEED).delta("roc_auc")
    assert math.isfinite(roc_auc.low) and math.isfinite(roc_auc.high)


def test_assess_candidate_without_a_class_gets_nan_instead_of_error():
    data = load_task("iris")
    parts = split(data, SEED)
    two = parts.y_train != 2  # the candidate never saw class 2, which the held-out rows contain
    candidate = make_pipeline(FAMILIES["logistic_regression"], {}, SEED, "classification", parts.X_train)
    candidate.fit(parts.X_train[two], parts.y_train[two])
    baseline = _fit("iris", "logistic_regression", {})
    assessment = assess(candidate, baseline, data, SEED, bootstrap=100)
    scores = assessment.candidate_scores
    assert math.isnan(scores["log_loss"]) and math.isnan(scores["roc_auc"])
    assert scores["accuracy"] == pytest.approx(accuracy_score(parts.y_test, candidate.predict(parts.X_test)))
    assert math.isnan(assessment.delta("log_loss").low) and math.isfinite(assessment.delta("accuracy").low)


def test_assess_group_metric_undefined_on_one_class_group_is_nan(solo):
    row = next(g for g in solo.groups if g.group == "solo")
    assert row.n > 0 and math.isnan(row.candidate["roc_auc"]) and math.isfinite(row.candidate["accuracy"])


def test_assess_model_trained_on_other_columns_raises(loan, cancer):
    _, strong, _ = cancer
    with pytest.raises(ValidationError, match="does not accept the columns"):
        assess(strong, None, loan, SEED)


def test_assess_regressor_on_classification_data_raises(loan):
    parts = split(loan, SEED)
    regressor = DummyRegressor().fit(parts.X_train, parts.y_train)
    with pytest.raises(ValidationError, match="no class probabilities"):
        assess(regressor, None, loan, SEED)


def test_assessment_json_round_trip(better):
    plain = better.to_json()
    assert Assessment.from_json(json.loads(json.dumps(plain, allow_nan=False))) == better


def test_assessment_json_stores_undefined_metrics_as_null(solo):
    plain = json.loads(json.dumps(solo.to_json(), allow_nan=False))
    assert next(g for g in plain["groups"] if g["group"] == "solo")["candidate"]["roc_auc"] is None
    assert Assessment.from_json(plain).to_json() == solo.to_json()


# ---- policies -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "named"),
    [
        (["regression"], "mapping"),
        ({"speed": {}}, "'speed'"),
        ({"regression": {"metric": "precision"}}, "'precision'"),
        ({"regression": {}}, "metric"),
        ({"regression": {"metric": "f1_macro", "tol": 0.1}}, "'tol'"),
        ({"regression": {"metric": "f1_macro", "tolerance": "small"}}, "tolerance"),
        ({"regression": {"metric": "f1_macro", "tolerance": -0.1}}, "tolerance"),
        ({"regression": {"metric": "f1_macro", "bootstrap": 50}}, "bootstrap"),
        ({"regression": {"metric": "f1_macro", "bootstrap": 1000.5}}, "bootstrap"),
        ({"regression": {"metric": "f1_macro", "bootstrap": True}}, "bootstrap"),
        ({"regression": {"metric": "f1_macro", "confidence": 1.0}}, "confidence"),
        ({"regression": {"metric": "f1_macro", "confidence": 0.5}}, "confidence"),
        ({"fairness": {"metric": "accuracy"}}, "max_gap"),
        ({"fairness": {"metric": "accuracy", "max_gap": -1}}, "max_gap"),
        ({"fairness": {"metric": "accuracy", "max_gap": float("nan")}}, "max_gap"),
        ({"min_metrics": [0.8]}, "min_metrics"),
        ({"min_metrics": {"test_f1_macro": "high"}}, "'test_f1_macro'"),
        ({"max_metrics": {"test_rmse": -1}}, "'test_rmse'"),
    ],
)
def test_validate_policy_rejects_bad_input_naming_the_problem(policy, named):
    with pytest.raises(ValidationError) as raised:
        validate_policy(policy)
    message = str(raised.value)
    assert named in message and message.endswith(".") and "\n" not in message


def test_validate_policy_rejects_metric_of_other_task_type():
    with pytest.raises(ValidationError, match="'rmse' is not a classification metric"):
        validate_policy({"regression": {"metric": "rmse"}}, "classification")


def test_validate_policy_fills_defaults_in_a_copy():
    policy = {"fairness": {"metric": "accuracy", "max_gap": 0.1}, "regression": {"metric": "f1_macro"}}
    normalized = validate_policy(policy)
    assert normalized["regression"] == {"metric": "f1_macro", "tolerance": 0.0, "bootstrap": 1000, "confidence": 0.95}
    assert list(normalized) == [k for k in GATES if k in policy]
    assert policy["regression"] == {"metric": "f1_macro"}


def test_validate_policy_accepts_none_as_empty():
    assert validate_policy(None) == {}


@pytest.mark.parametrize(
    ("task_type", "has_sensitive", "metrics", "fairness"),
    [
        ("classification", True, ["f1_macro", "roc_auc", "log_loss"], True),
        ("classification", False, ["f1_macro", "roc_auc", "log_loss"], False),
        ("regression", True, ["rmse", "mae"], False),
    ],
)
def test_default_policy_gates_the_main_metrics(task_type, has_sensitive, metrics, fairness):
    policy = default_policy(task_type, has_sensitive)
    assert validate_policy(policy, task_type) == policy
    assert policy["regression"]["metric"] == metrics and ("fairness" in policy) == fairness
    assert list(policy["regression"]["tolerance"]) == metrics
    assert bootstrap_settings(policy) == (1000, 0.95)


def test_validate_policy_regression_takes_a_list_of_metrics_with_one_or_each_tolerance():
    listed = validate_policy({"regression": {"metric": ["f1_macro", "log_loss"], "tolerance": {"log_loss": 0.05}}})
    assert listed["regression"]["tolerance"] == {"f1_macro": 0.0, "log_loss": 0.05}
    one = validate_policy({"regression": {"metric": ["f1_macro", "roc_auc"], "tolerance": 0.02}})
    assert one["regression"]["tolerance"] == {"f1_macro": 0.02, "roc_auc": 0.02}
    for bad, named in [
        ({"metric": []}, "empty"),
        ({"metric": ["f1_macro", "f1_macro"]}, "twice"),
        ({"metric": ["f1_macro", "precision"]}, "'precision'"),
        ({"metric": ["f1_macro"], "tolerance": {"log_loss": 0.1}}, "not in its metric list"),
        ({"metric": ["f1_macro"], "tolerance": {"f1_macro": -1}}, "tolerance of f1_macro"),
    ]:
        with pytest.raises(ValidationError, match=named):
            validate_policy({"regression": bad})


def test_regression_gate_checks_each_listed_metric_with_its_tolerance(worse):
    settings = validate_policy({"regression": {"metric": ["f1_macro", "log_loss"], "tolerance": {"f1_macro": 1.0}}})
    results = GATES["regression"].check(settings["regression"], _inputs(worse))
    assert [(r.metric, r.threshold, r.state) for r in results] == [
        ("f1_macro", -1.0, "passed"),
        ("log_loss", 0.0, "failed"),
    ]
    assert results[1].label == "log_loss is no worse than in production"
    assert results[0].label == "f1_macro is at most 1 worse than in production"


# ---- gates --------------------------------------------------------------------------------------


def test_regression_gate_fails_clearly_worse_candidate(worse):
    delta = worse.delta("f1_macro")
    assert delta.improvement < -0.01  # the premise: much worse than the allowed loss
    [result] = GATES["regression"].check({"metric": "f1_macro", "tolerance": 0.01}, _inputs(worse))
    assert not result.passed and result.value == delta.improvement and result.threshold == -0.01
    assert f"on the same {worse.n_test} held-out rows" in result.detail and "95% CI" in result.detail


def test_regression_gate_passes_better_candidate(better):
    [result] = GATES["regression"].check({"metric": "f1_macro", "tolerance": 0.0}, _inputs(better))
    assert result.passed and result.value == better.delta("f1_macro").improvement > 0
    assert result.threshold == 0.0 and result.detail.endswith("no worse than production.")


def test_regression_gate_passes_lower_rmse_on_regression_task(diabetes):
    [result] = GATES["regression"].check({"metric": "rmse", "tolerance": 0.0}, _inputs(diabetes))
    assert result.passed and result.value == diabetes.delta("rmse").improvement > 0


def test_regression_gate_does_not_apply_without_production_version(worse):
    [result] = GATES["regression"].check(
        {"metric": "f1_macro", "tolerance": 0.0}, _inputs(worse, baseline_version=None)
    )
    assert (result.state, result.passed, result.value) == ("not applicable", False, None)
    assert (
        result.detail
        == "No version is in production, so there is nothing to regress against: this gate does not apply."
    )


def test_regression_gate_fails_without_assessment():
    [result] = GATES["regression"].check({"metric": "f1_macro", "tolerance": 0.0}, _inputs(None))
    assert not result.passed and result.value is None


def test_regression_gate_fails_on_metric_of_other_task(better):
    [result] = GATES["regression"].check({"metric": "rmse", "tolerance": 0.0}, _inputs(better))
    assert not result.passed and "not a metric of this classification task" in result.detail


def test_fairness_gate_value_is_the_spread_of_the_group_table(better):
    accuracies = [row.candidate["accuracy"] for row in better.groups]
    [result] = GATES["fairness"].check({"metric": "accuracy", "max_gap": 1.0}, _inputs(better))
    assert result.value == max(accuracies) - min(accuracies) and result.passed


def test_fairness_gate_fails_when_gap_exceeds_max(better):
    accuracies = [row.candidate["accuracy"] for row in better.groups]
    gap = max(accuracies) - min(accuracies)
    assert gap > 0  # the premise: the groups differ at all
    [result] = GATES["fairness"].check({"metric": "accuracy", "max_gap": gap / 2}, _inputs(better))
    assert not result.passed and "over the allowed" in result.detail


def test_fairness_gate_fails_without_sensitive_attribute(cancer):
    data, strong, small = cancer
    assessment = assess(strong, small, data, SEED, bootstrap=100)
    [result] = GATES["fairness"].check({"metric": "accuracy", "max_gap": 0.1}, _inputs(assessment))
    assert not result.passed
    assert result.detail == "The dataset has no sensitive attribute, so no group gap was measured."


def test_min_metrics_gate_fails_metric_the_run_did_not_record():
    [result] = GATES["min_metrics"].check({"test_f1_macro": 0.8}, _inputs(None, metrics={"test_accuracy": 0.9}))
    assert not result.passed and result.value is None and "recorded no value of test_f1_macro" in result.detail


def test_min_metrics_gate_compares_recorded_value(loan, good_loan_model):
    parts = split(loan, SEED)
    recorded = {f"test_{k}": v for k, v in score(good_loan_model, parts.X_test, parts.y_test, "classification").items()}
    value = recorded["test_f1_macro"]
    inputs = _inputs(None, metrics=recorded)
    assert recorded["test_accuracy"] < 1.0  # the premise: a minimum of 1.0 cannot be met
    results = GATES["min_metrics"].check({"test_f1_macro": value - 0.01, "test_accuracy": 1.0}, inputs)
    assert [r.passed for r in results] == [True, False]
    assert results[0].label == f"test_f1_macro is at least {value - 0.01:g}" and results[0].value == value


def test_max_metrics_gate_fails_value_above_maximum(loan, good_loan_model):
    parts = split(loan, SEED)
    log_loss = score(good_loan_model, parts.X_test, parts.y_test, "classification")["log_loss"]
    [result] = GATES["max_metrics"].check(
        {"test_log_loss": log_loss / 2}, _inputs(None, metrics={"test_log_loss": log_loss})
    )
    assert not result.passed and "exceeds the allowed maximum" in result.detail


def test_run_gates_puts_integrity_first_then_policy_order(better):
    policy = {"fairness": {"metric": "accuracy", "max_gap": 1.0}, "min_metrics": {"test_f1_macro": 0.0}}
    results = run_gates(policy, _inputs(better, metrics={"test_f1_macro": 0.5}))
    assert [r.gate for r in results] == ["integrity", "integrity", "min_metrics", "fairness"]


def test_run_gates_integrity_fails_unverified_model_and_missing_dataset(better):
    results = run_gates({}, _inputs(better, model_verified=False, model_detail="", dataset=None))
    assert [(r.label, r.passed) for r in results] == [
        ("Model file sha256 verifies", False),
        ("Training dataset version is recorded", False),
    ]
    assert "does not match" in results[0].detail


def test_run_gates_rejects_malformed_policy(better):
    with pytest.raises(ValidationError, match="'speed'"):
        run_gates({"speed": {}}, _inputs(better))


def test_gate_result_json_round_trip(worse):
    for result in run_gates(default_policy("classification", True), _inputs(worse)):
        assert GateResult.from_json(json.loads(json.dumps(result.to_json(), allow_nan=False))) == result


# ---- summaries ----------------------------------------------------------------------------------


def test_gate_summary_names_metrics_worse_without_a_gate(worse):
    policy = {"regression": {"metric": "f1_macro", "tolerance": 1.0}}  # f1_macro may drop: every gate passes
    gates = [r.to_json() for r in run_gates(policy, _inputs(worse))]
    found = {w.metric: w for w in worse_metrics(gates, worse)}
    assert {"f1_macro", "roc_auc", "log_loss"} <= set(found)  # the premise: the weak model is clearly worse there
    assert found["f1_macro"].gates == (("f1_macro is at most 1 worse than in production", "passed"),)
    uncovered = len(found) - 1
    assert (
        gate_summary(gates, list(found.values()))
        == f"3 of 3 gates passed; {uncovered} metrics got worse without a gate."
    )
    d = worse.delta("log_loss")
    assert found["log_loss"].sentence("Log loss") == (
        f"Log loss got worse: {d.baseline:.3f} → {d.candidate:.3f}, beyond its 95% interval; no gate covers it."
    )


def test_gate_summary_counts_gates_that_do_not_apply_apart(better):
    results = run_gates(default_policy("classification", True), _inputs(better, baseline_version=None))
    assert [r.state for r in results].count("not applicable") == 3
    assert gate_summary([r.to_json() for r in results]) == "3 of 3 gates passed; 3 not applicable."


def test_gate_summary_reads_results_stored_before_gate_states(worse):
    old = {"gate": "max_metrics", "label": "test_log_loss is at most 0.9", "value": 0.89, "threshold": 0.9,
           "passed": True, "detail": "The run's test_log_loss is 0.890, which is within the allowed maximum of 0.900."}  # fmt: skip
    assert gate_state(old) == "passed" and GateResult.from_json(old).state == "passed"
    (log_loss,) = [w for w in worse_metrics([old], worse) if w.metric == "log_loss"]
    assert log_loss.gates == (("test_log_loss is at most 0.9", "passed"),)  # its label names the metric it checks
    with pytest.raises(ValueError, match="passed=True in state 'failed'"):
        GateResult("x", "y", None, None, True, "z", "failed")


def test_clearly_worse_needs_the_whole_interval_on_the_worse_side(worse, better):
    assert clearly_worse(worse.delta("log_loss")) and not clearly_worse(better.delta("log_loss"))
    within_chance = dataclasses.replace(worse.delta("log_loss"), low=-0.01)
    assert not clearly_worse(within_chance)
