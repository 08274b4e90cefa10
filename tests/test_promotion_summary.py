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
