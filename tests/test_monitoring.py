"""Monitoring of a served model: drift, prediction drift, quality, thresholds from the policy, reviews.

The requests are what the model server logs: real rows of loan_approval, predicted by the production
model loaded from the store, written with `write_batch`, labels attached with `record_labels`.
"""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from scipy.stats import ks_2samp
from sklearn.metrics import accuracy_score, f1_score, log_loss, mean_squared_error, roc_auc_score

from tests.governance import fixed_c, make_accounts, trained_runs
from tests.traffic import NUMERIC, rows, serve, set_monitoring, shifted
from tracking._errors import NotFoundError, PermissionDenied, ValidationError
from tracking.governance._audit import list_events
from tracking.ml._objective import split
from tracking.production import breach_summary, monitor
from tracking.production._inference import InferenceEntry, record_labels, write_batch
from tracking.production._reviews import close_review, list_reviews, open_review
from tracking.registry import MONITORING_DEFAULTS, GateInputs, default_policy, run_gates, validate_policy
from tracking.registry._models import (
    VersionRecord,
    load_version_model,
    production_version,
    register_version,
    set_policy,
)
from tracking.registry._promotions import approve_promotion, request_promotion
from tracking.runs._datasets import load_task
from tracking.runs._queries import list_runs
from tracking.store._db import Store
from tracking.store._tables import utcnow
from tracking.sweeps._sweeps import SweepSpec, create_sweep
from tracking.sweeps._worker import run_worker


@pytest.fixture
def version(served: Store) -> VersionRecord:
    """`loan` v1, in production."""
    return production_version(served, "loan")


# ---- drift ---------------------------------------------------------------------------------------


def test_monitor_finds_no_drift_on_a_fresh_sample_of_the_same_data(served, version):
    X, _ = rows(served, version, "test")
    serve(served, version, X)
    report = monitor(served, "loan")
    assert report.n_rows == len(X) and len(report.features) == len(NUMERIC) + 1
    assert not [d.name for d in report.features if d.drifted]
    assert all(d.psi < 0.1 for d in report.features)
    assert report.prediction is not None and not report.prediction.drifted
    assert report.breaches == []


def test_monitor_finds_every_moved_feature_on_a_shifted_copy(served, version):
    X, _ = rows(served, version, "test")
    serve(served, version, shifted(X))
    report = monitor(served, "loan")
    drifted = {d.name: d for d in report.features if d.drifted}
    assert set(drifted) == {*NUMERIC, "purpose"}
    assert drifted["income"].test == "ks" and drifted["purpose"].test == "chi2"
    assert "travel" in drifted["purpose"].bins  # a category never seen in training
    assert {b.name for b in report.breaches if b.kind == "drift"} == {*NUMERIC, "purpose"}
    breach = next(b for b in report.breaches if b.name == "credit_score")
    assert breach.sentence.startswith("The feature credit_score drifted") and breach.value >= 0.2


def test_monitor_compares_with_the_rows_the_version_trained_on(served, version):
    X_train, _ = rows(served, version, "train")
    X, _ = rows(served, version, "test")
    serve(served, version, shifted(X))
    income = next(d for d in monitor(served, "loan").features if d.name == "income")
    expected = ks_2samp(X_train["income"], shifted(X)["income"])
    assert (income.statistic, income.pvalue) == pytest.approx((expected.statistic, expected.pvalue))
    assert len(income.bins) == 10 and sum(income.training_share) == pytest.approx(1.0)
    assert all(share == pytest.approx(0.1, abs=0.01) for share in income.training_share)  # quantile bins


def test_monitor_finds_prediction_drift_on_a_shifted_copy(served, version):
    X, _ = rows(served, version, "test")
    serve(served, version, shifted(X))
    report = monitor(served, "loan")
    assert report.prediction.drifted and report.prediction.kind == "categorical"
    assert report.prediction.bins == ["0", "1"]
    assert report.prediction.recent_share[1] > report.prediction.training_share[1]  # more loans approved
    assert report.breaches[0].kind == "prediction_drift"  # before the features it explains


def test_monitor_judges_nothing_on_too_few_rows(served, version):
    X, _ = rows(served, version, "test")
    serve(served, version, shifted(X).iloc[:30])
    report = monitor(served, "loan")
    assert report.n_rows == 30 and report.features == [] and report.prediction is None
    assert report.breaches == []
    assert any("Only 30 row(s)" in note and "50 rows" in note for note in report.notes)


def test_monitor_without_requests_says_so(served):
    report = monitor(served, "loan")
    assert not report.has_data and report.breaches == [] and report.features == []
    assert "No sampled requests of loan v1" in report.notes[0]


def test_monitor_follows_the_policy_thresholds(served, version, users):
    X, _ = rows(served, version, "test")
    serve(served, version, shifted(X))
    assert monitor(served, "loan").breaches
    set_monitoring(served, users, psi=50.0)  # PSI this large never happens: no drift is flagged
    report = monitor(served, "loan")
    assert report.thresholds["psi"] == 50.0 and report.thresholds["ks_pvalue"] == MONITORING_DEFAULTS["ks_pvalue"]
    assert report.breaches == [] and all(d.psi_threshold == 50.0 for d in report.features)
    set_monitoring(served, users, min_rows=len(X) + 1)
    assert monitor(served, "loan").breaches == []


def test_monitor_summarizes_volume_and_latency(served, version):
    X, _ = rows(served, version, "test")
    serve(served, version, X.iloc[:200], batch=20)
    serving = monitor(served, "loan").serving
    assert (serving.requests, serving.rows, serving.errors) == (10, 200, 0)
    assert 0 < serving.latency_mean_ms <= serving.latency_max_ms
    assert sum(m.requests for m in serving.minutes) == 10


def test_monitor_needs_a_version_in_production_or_a_named_one(served, version):
    with pytest.raises(NotFoundError):
        monitor(served, "no such model")
    assert monitor(served, "loan", version_id=version.id).version_id == version.id


# ---- quality -------------------------------------------------------------------------------------


@pytest.mark.parametrize("keyed", [True, False], ids=["probabilities-by-class", "probabilities-as-lists"])
def test_monitor_computes_quality_from_the_labels(served, version, keyed):
    X, y = rows(served, version, "test")
    serve(served, version, X, y, keyed=keyed)
    report = monitor(served, "loan")
    model = load_version_model(served, version)
    predicted, proba = model.predict(X), model.predict_proba(X)
    scores = {q.metric: q for q in report.quality}
    assert report.n_labelled == len(y)
    assert scores["accuracy"].value == pytest.approx(accuracy_score(y, predicted))
    assert scores["f1_macro"].value == pytest.approx(f1_score(y, predicted, average="macro"))
    assert scores["log_loss"].value == pytest.approx(log_loss(y, proba))
    assert scores["roc_auc"].value == pytest.approx(roc_auc_score(y, proba[:, 1]))
    assert scores["accuracy"].held_out == pytest.approx(version.evaluation["candidate_scores"]["accuracy"])
    assert not any(q.breached for q in report.quality)  # no quality bound in the default policy


def test_monitor_flags_quality_below_the_policy_minimum(served, version, users):
    X, y = rows(served, version, "test")
    wrong = y.copy()
    wrong.iloc[: len(y) // 2] = 1 - wrong.iloc[: len(y) // 2]  # half the answers turned out the other way
    serve(served, version, X, wrong)
    set_monitoring(served, users, quality={"accuracy": 0.75, "log_loss": 0.5})
    report = monitor(served, "loan")
    breached = {b.name: b for b in report.breaches if b.kind == "quality"}
    assert set(breached) == {"accuracy", "log_loss"}
    assert breached["accuracy"].value < 0.75 and "below the policy's minimum of 0.75" in breached["accuracy"].sentence
    assert "above the policy's maximum of 0.5" in breached["log_loss"].sentence
    set_monitoring(served, users, quality={"accuracy": 0.3, "log_loss": 5.0})
    assert not [b for b in monitor(served, "loan").breaches if b.kind == "quality"]


def test_monitor_judges_no_quality_on_too_few_labels(served, version, users):
    X, y = rows(served, version, "test")
    serve(served, version, X.iloc[:20], 1 - y.iloc[:20])  # every label wrong, but only 20 of them
    set_monitoring(served, users, quality={"accuracy": 0.75})
    report = monitor(served, "loan")
    assert report.quality == [] and report.n_labelled == 20 and report.breaches == []
    assert any("20 labelled row(s)" in note for note in report.notes)


# ---- a regression model -------------------------------------------------------------------------


def test_monitor_a_regression_model_by_its_predicted_values_and_errors(file_store):
    spec = SweepSpec(model="ridge", task="diabetes", space={"alpha": {"type": "categorical", "choices": [1.0]}},
                     n_trials=1, sampler="random", pruner="none", folds=3)  # fmt: skip
    run_worker(file_store, create_sweep(file_store, spec).id)
    (run,) = list_runs(file_store)
    version = register_version(file_store, run.id, "sugar")
    parts = split(load_task("diabetes"), run.seed or 0)
    model = load_version_model(file_store, version)

    def answer(X, y):
        inputs = json.loads(X.to_json(orient="records"))
        entry = InferenceEntry(uuid.uuid4().hex, version.model_id, version.id, utcnow(), 1.0, len(X), inputs,
                               {"predictions": model.predict(X).tolist()}, True)  # fmt: skip
        write_batch(file_store, [entry])
        record_labels(file_store, entry.request_id, y.tolist())

    answer(parts.X_test, parts.y_test)  # a fresh sample (its two-valued `sex` rounded by JSON): nothing moved
    report = monitor(file_store, "sugar", version_id=version.id)
    assert report.task_type == "regression" and report.breaches == []
    assert report.prediction.kind == "numeric" and report.prediction.test == "ks" and not report.prediction.drifted
    rmse = next(q for q in report.quality if q.metric == "rmse")
    assert rmse.value == pytest.approx(float(np.sqrt(mean_squared_error(parts.y_test, model.predict(parts.X_test)))))

    set_policy(file_store, "sugar", {"monitoring": {"quality": {"rmse": rmse.value / 2}}})
    answer(parts.X_test * 3 + parts.X_test.std(), parts.y_test)  # every feature moved, predictions and errors too
    report = monitor(file_store, "sugar", version_id=version.id)
    assert report.prediction.drifted and {b.kind for b in report.breaches} == {"quality", "prediction_drift", "drift"}
    assert "above the policy's maximum" in next(b.sentence for b in report.breaches if b.name == "rmse")


# ---- policy --------------------------------------------------------------------------------------


def test_validate_policy_fills_the_monitoring_defaults():
    policy = validate_policy({"monitoring": {"psi": 0.3, "quality": {"accuracy": 0.8}}}, "classification")
    assert policy == {"monitoring": {**MONITORING_DEFAULTS, "psi": 0.3, "quality": {"accuracy": 0.8}}}
    assert validate_policy({"monitoring": None})["monitoring"] == MONITORING_DEFAULTS


@pytest.mark.parametrize(
    ("monitoring", "named"),
    [
        ([0.2], "mapping"),
        ({"drift": 0.2}, "'drift'"),
        ({"psi": 0}, "psi"),
        ({"psi": "high"}, "psi"),
        ({"ks_pvalue": 1.0}, "ks_pvalue"),
        ({"chi2_pvalue": -0.1}, "chi2_pvalue"),
        ({"min_rows": 10.5}, "min_rows"),
        ({"min_rows": True}, "min_rows"),
        ({"quality": {"precision": 0.9}}, "'precision'"),
        ({"quality": {"accuracy": "good"}}, "'accuracy'"),
        ({"quality": {"rmse": 10.0}}, "'rmse' is not a classification metric"),
    ],
)
def test_validate_policy_rejects_bad_monitoring_naming_the_problem(monitoring, named):
    with pytest.raises(ValidationError) as raised:
        validate_policy({"monitoring": monitoring}, "classification")
    message = str(raised.value)
    assert named in message and message.endswith(".") and "\n" not in message


def test_monitoring_settings_are_not_a_promotion_gate():
    policy = {**default_policy("classification", True), "monitoring": {"quality": {"accuracy": 0.99}}}
    inputs = GateInputs({}, None, None, True, "", {"name": "loan_approval", "hash": "x"})
    assert {r.gate for r in run_gates(policy, inputs)} == {"integrity", "regression", "fairness"}


# ---- breach summary and reviews ------------------------------------------------------------------


def test_breach_summary_names_the_model_with_breaches(served, version):
    assert breach_summary(served) == []
    X, _ = rows(served, version, "test")
    serve(served, version, shifted(X))
    summary = breach_summary(served)
    assert {name for name, _ in summary} == {"loan"}
    assert any("credit_score" in sentence for _, sentence in summary)


def test_reviews_open_and_close_by_role_with_audit_events(served, version, users):
    with pytest.raises(PermissionDenied, match="viewer"):
        open_review(served, version.id, "Drift", actor=users["viewer"])
    review = open_review(served, version.id, "Income drifted", {"breaches": [{"name": "income"}]},
                         actor=users["data_scientist"])  # fmt: skip
    assert (review.status, review.opened_by, review.label) == ("open", "data_scientist", "loan v1")
    assert review.findings == {"breaches": [{"name": "income"}]}
    with pytest.raises(ValidationError, match="already has an open review"):
        open_review(served, version.id, "Again", actor=users["engineer"])
    with pytest.raises(PermissionDenied, match="product owners and admins can"):
        close_review(served, review.id, "Looked at it", actor=users["data_scientist"])
    closed = close_review(served, review.id, "Retrained on recent data", actor=users["product_owner"])
    assert (closed.status, closed.closed_by, closed.comment) == ("closed", "product_owner", "Retrained on recent data")
    with pytest.raises(ValidationError, match="already closed"):
        close_review(served, review.id, "Twice", actor=users["admin"])
    events = {e.action: e for e in list_events(served, action="review.")}
    assert set(events) == {"review.open", "review.close"}
    assert events["review.open"].actor == "data_scientist" and events["review.open"].after["reason"] == "Income drifted"
    assert events["review.close"].after == {"status": "closed", "comment": "Retrained on recent data"}


def test_reviews_need_a_reason_and_json_findings(served, version, users):
    with pytest.raises(ValidationError, match="reason"):
        open_review(served, version.id, "  ", actor=users["engineer"])
    with pytest.raises(ValidationError, match="JSON"):
        open_review(served, version.id, "Drift", {"psi": float("nan")}, actor=users["engineer"])
    with pytest.raises(NotFoundError):
        open_review(served, 999, "Drift", actor=users["engineer"])
    assert list_reviews(served) == []


def test_list_reviews_filters_by_version_status_and_model(served, version, users):
    first = open_review(served, version.id, "Drift", actor=users["engineer"])
    close_review(served, first.id, "Fine", actor=users["admin"])
    second = open_review(served, version.id, "Quality", actor=users["engineer"])
    assert [r.id for r in list_reviews(served, version_id=version.id)] == [second.id, first.id]
    assert [r.id for r in list_reviews(served, status="open", model="loan")] == [second.id]
    with pytest.raises(ValidationError, match="open or closed"):
        list_reviews(served, status="pending")


@pytest.mark.file_backends  # the model is trained by a sweep, which needs a store workers can share
def test_monitoring_and_reviews_on_every_backend(store):
    users = make_accounts(store)
    (run,) = trained_runs(store, 1, actor=users["data_scientist"], space=fixed_c(10.0))
    version = register_version(store, run.id, "loan", actor=users["data_scientist"])
    request = request_promotion(store, version.id, "Fits well", actor=users["data_scientist"])
    approve_promotion(store, request.id, "Go", actor=users["product_owner"])
    X, _ = rows(store, version, "test")
    serve(store, version, shifted(X))
    report = monitor(store, "loan")
    assert {b.kind for b in report.breaches} == {"drift", "prediction_drift"}
    assert {name for name, _ in breach_summary(store)} == {"loan"}
    review = open_review(store, version.id, "Inputs moved", report.findings(), actor=users["engineer"])
    close_review(store, review.id, "Retraining", actor=users["product_owner"])
    (closed,) = list_reviews(store, model="loan")
    assert (closed.status, closed.findings["breaches"][0]["kind"]) == ("closed", "prediction_drift")
