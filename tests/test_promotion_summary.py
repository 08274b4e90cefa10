"""Honest gate summaries on a real store (SQLite and PostgreSQL): a gate with nothing to compare with is
stored as not applicable, and a request whose gates all pass still names every metric that got worse."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from tests.governance import good_and_bad, make_accounts
from tracking.registry import (
    NOT_APPLICABLE,
    approve_promotion,
    get_request,
    register_version,
    request_promotion,
    set_policy,
)
from tracking.store._tables import PromotionRequest


@pytest.mark.file_backends  # the runs come from a real sweep, whose workers need a shared store
def test_gate_summaries_say_not_applicable_and_name_metrics_worse_without_a_gate(store):
    users = make_accounts(store)
    good, bad = good_and_bad(store, users["data_scientist"])  # C=10 fits well, C=0.0005 underfits

    # nothing in production: the default policy's no-regression gates do not apply, and block nothing
    v1 = register_version(store, good.id, "loan", actor=users["data_scientist"])
    first = get_request(store, request_promotion(store, v1.id, "first", actor=users["data_scientist"]).id)
    regression = [g for g in first.gates if g["gate"] == "regression"]
    assert [g["metric"] for g in regression] == ["f1_macro", "roc_auc", "log_loss"]  # the default policy
    assert all(g["state"] == NOT_APPLICABLE and g["passed"] is False for g in regression)
    assert first.failed_gates == [] and first.gate_summary == "3 of 3 gates passed; 3 not applicable."
    assert approve_promotion(store, first.id, "go", actor=users["product_owner"]).status == "approved"

    # a policy that only guards F1 (and lets it drop a lot): every gate passes, yet log loss got worse
    policy = {"regression": {"metric": "f1_macro", "tolerance": 1.0, "bootstrap": 200}}
    set_policy(store, "loan", policy, actor=users["admin"])
    v2 = register_version(store, bad.id, "loan", actor=users["data_scientist"])
    second = get_request(store, request_promotion(store, v2.id, "cheaper", actor=users["data_scientist"]).id)
    worse = {w.metric: w for w in second.worse_metrics}
    assert second.failed_gates == [] and {"f1_macro", "roc_auc", "log_loss"} <= set(worse)
    assert not worse["log_loss"].covered and worse["f1_macro"].covered
    uncovered = sum(not w.covered for w in worse.values())
    assert second.gate_summary == f"3 of 3 gates passed; {uncovered} metrics got worse without a gate."
    assert worse["log_loss"].sentence().endswith("beyond its 95% interval; no gate covers it.")

    # a request stored before gates had states (no `state`, no `metric`) reads the same way
    old = [{k: v for k, v in g.items() if k not in ("state", "metric")} for g in second.gates]
    with store.session_scope(write=True) as session:
        session.execute(update(PromotionRequest).where(PromotionRequest.id == second.id).values(gates=old))
    again = get_request(store, second.id)
    assert again.gate_summary == second.gate_summary and again.worse_metrics == second.worse_metrics


OLD_FIRST_REQUEST = [  # as a first promotion's gates were stored before the third state
    {"gate": "integrity", "label": "Model file sha256 verifies", "value": None, "threshold": None, "passed": True,
     "detail": "The model file's sha256 verifies."},
    {"gate": "regression", "label": "f1_macro drops by at most 0.01 from production", "value": None,
     "threshold": -0.01, "passed": True, "detail": "No version is in production, so there is nothing to regress against."},
    {"gate": "fairness", "label": "accuracy differs by at most 0.1 between groups", "value": 0.2, "threshold": 0.1,
     "passed": False, "detail": "accuracy ranges from 0.700 (a) to 0.900 (b) across gender groups."},
]  # fmt: skip


def test_migration_0014_marks_old_first_promotion_regression_gates_not_applicable(backend_url, tmp_path):
    from tests.migrations import legacy_run, store_at_revision
    from tracking.store._db import migrate
    from tracking.store._tables import ModelVersion, RegisteredModel, utcnow

    old = store_at_revision(backend_url, tmp_path, "0011")
    run_id = legacy_run(old, "loan", "kept", {"C": 10}, {"test_f1_macro": 0.8})
    now = utcnow()
    with old.connect(write=True) as conn:
        model_id = conn.execute(
            RegisteredModel.__table__.insert().values(name="loan", description="", created_by="ann", created_at=now)
        ).inserted_primary_key[0]
        version_id = conn.execute(
            ModelVersion.__table__.insert().values(
                model_id=model_id, version=1, run_id=run_id, artifact_sha256="ab" * 32, stage="none", description="",
                intended_use="", limitations="", created_by="ann", created_at=now, stage_changed_at=now)
        ).inserted_primary_key[0]  # fmt: skip
        request_id = conn.execute(
            PromotionRequest.__table__.insert().values(
                version_id=version_id, status="pending", requested_by="ann", justification="first",
                gates=OLD_FIRST_REQUEST, policy={}, created_at=now)
        ).inserted_primary_key[0]  # fmt: skip
    migrate(old)
    request = get_request(old, request_id)
    integrity, regression, fairness = request.gates
    assert integrity == OLD_FIRST_REQUEST[0] and fairness == OLD_FIRST_REQUEST[2]  # the others stay as they were
    assert (regression["state"], regression["passed"], regression["metric"]) == (NOT_APPLICABLE, False, "f1_macro")
    assert request.gate_summary == "1 of 2 gates passed; 1 not applicable."
    assert [g["label"] for g in request.failed_gates] == ["accuracy differs by at most 0.1 between groups"]
    old.dispose()
