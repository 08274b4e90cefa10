"""The registry and promotions: versions from runs, stages, gates stored with requests, approvals by a
second person, failing gates and admin overrides, stale requests, rollback, and racing approvals."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy
from sqlalchemy import update

import tracking
from tests.governance import good_and_bad, make_accounts
from tracking.governance._audit import list_events, verify_chain
from tracking.registry._models import (
    effective_policy,
    get_model,
    lineage,
    list_versions,
    production_version,
    register_version,
    set_policy,
    set_stage,
)
from tracking.registry._promotions import (
    approve_promotion,
    get_request,
    list_requests,
    reject_promotion,
    request_promotion,
    withdraw_promotion,
)
from tracking.runs._artifacts import artifact_file
from tracking.store._tables import ModelVersion, Stage


@pytest.fixture
def two_runs(file_store):
    """Accounts of every role and two real runs: `good` (C=10) and `bad` (C=0.0005, underfits)."""
    users = make_accounts(file_store)
    good, bad = good_and_bad(file_store, users["data_scientist"])
    return file_store, users, good, bad


def _in_production(store, users, run, model="loan"):
    version = register_version(store, run.id, model, actor=users["data_scientist"])
    request = request_promotion(store, version.id, "better recall", actor=users["data_scientist"])
    approve_promotion(store, request.id, "looks right", actor=users["product_owner"])
    return version


def test_registry_versions_are_numbered_per_model_and_audited(two_runs):
    store, users, good, bad = two_runs
    v1 = register_version(store, good.id, "loan", "first", actor=users["data_scientist"])
    v2 = register_version(store, bad.id, "loan", actor=users["engineer"])
    other = register_version(store, bad.id, "loan-lite", actor=users["engineer"])
    assert (v1.version, v2.version, other.version) == (1, 2, 1)
    assert v1.stage == "none" and v1.created_by == "data_scientist"
    assert get_model(store, "loan").n_versions == 2
    registered = [(e.actor, e.after["version"]) for e in list_events(store, action="version.register")]
    assert registered == [("engineer", 1), ("engineer", 2), ("data_scientist", 1)]


def test_registry_version_keeps_held_out_scores_and_per_group_table(two_runs):
    store, users, good, _ = two_runs
    v1 = register_version(store, good.id, "loan", actor=users["data_scientist"])
    evaluation = v1.evaluation
    assert evaluation["sensitive"] == "gender"
    assert sorted(row["group"] for row in evaluation["groups"]) == ["female", "male"]
    assert evaluation["candidate_scores"]["f1_macro"] == pytest.approx(good.metrics["test_f1_macro"])


def test_registry_lineage_reaches_run_sweep_dataset_and_code(two_runs):
    store, users, good, _ = two_runs
    v1 = register_version(store, good.id, "loan", actor=users["data_scientist"])
    found = lineage(store, v1.id)
    assert found["run"]["id"] == good.id
    assert found["sweep"]["id"] == good.sweep_id
    assert found["dataset"]["sha256"] == good.dataset["hash"]
    assert found["code_version"] == good.code_version


def test_registry_refuses_runs_without_a_complete_model(two_runs):
    store, users, _, _ = two_runs
    ds = users["data_scientist"]
    with tracking.start_run("scripts", store=store, actor=ds) as plain:
        plain.log_metrics({"loss": 0.1})
    with pytest.raises(tracking.ValidationError, match="no model artifact"):
        register_version(store, plain.id, "loan", actor=ds)
    with pytest.raises(tracking.NotFoundError):
        register_version(store, 9999, "loan", actor=ds)
    with pytest.raises(tracking.ValidationError, match="name"):
        register_version(store, plain.id, "  ", actor=ds)
    assert list_versions(store) == []


def test_registry_refuses_a_model_file_changed_on_disk(two_runs):
    store, users, good, _ = two_runs
    sha = tracking.list_artifacts(store, good.id)[0].sha256
    artifact_file(store, sha).write_bytes(b"tampered")
    with pytest.raises(tracking.IntegrityError, match="no longer matches"):
        register_version(store, good.id, "loan", actor=users["data_scientist"])


def test_registry_stages_staging_and_archive_but_never_production_directly(two_runs):
    store, users, good, _ = two_runs
    v1 = register_version(store, good.id, "loan", actor=users["data_scientist"])
    assert set_stage(store, v1.id, "staging", actor=users["engineer"]).stage == "staging"
    with pytest.raises(tracking.ValidationError, match="approved promotion request"):
        set_stage(store, v1.id, "production", actor=users["admin"])
    with pytest.raises(tracking.PermissionDenied):
        set_stage(store, v1.id, "archived", actor=users["product_owner"])
    assert set_stage(store, v1.id, "archived", actor=users["engineer"]).stage == "archived"


def test_registry_taking_production_out_needs_an_admin(two_runs):
    store, users, good, _ = two_runs
    v1 = _in_production(store, users, good)
    with pytest.raises(tracking.PermissionDenied, match="Only an admin takes the production version out"):
        set_stage(store, v1.id, "archived", actor=users["engineer"])
    assert set_stage(store, v1.id, "archived", actor=users["admin"]).stage == "archived"


def test_promotion_request_stores_every_gate_with_value_threshold_and_verdict(two_runs):
    store, users, good, _ = two_runs
    v1 = register_version(store, good.id, "loan", actor=users["data_scientist"])
    request = request_promotion(store, v1.id, "first model", actor=users["data_scientist"])
    assert request.status == "pending" and request.baseline_version is None
    gates = {g["gate"]: g for g in request.gates}
    assert set(gates) == {"integrity", "regression", "fairness"}
    assert all(g["state"] == ("not applicable" if g["gate"] == "regression" else "passed") for g in request.gates)
    assert "nothing to regress against" in gates["regression"]["detail"]
    assert gates["fairness"]["threshold"] == 0.1 and 0 <= gates["fairness"]["value"] < 0.1


def test_promotion_nobody_decides_on_their_own_request(two_runs):
    store, users, good, _ = two_runs
    v1 = register_version(store, good.id, "loan", actor=users["admin"])
    request = request_promotion(store, v1.id, "mine", actor=users["admin"])
    for decide in (
        lambda: approve_promotion(store, request.id, "self", actor=users["admin"]),
        lambda: reject_promotion(store, request.id, "self", actor=users["admin"]),
    ):
        with pytest.raises(tracking.PermissionDenied, match="own promotion request"):
            decide()
    assert get_request(store, request.id).status == "pending"
    assert production_version(store, "loan") is None


def test_promotion_approval_archives_the_previous_production_version(two_runs):
    store, users, good, bad = two_runs
    v1 = _in_production(store, users, good)
    v2 = register_version(store, bad.id, "loan", actor=users["engineer"])
    request = request_promotion(store, v2.id, "cheaper", actor=users["engineer"])
    approve_promotion(store, request.id, "cost first", actor=users["admin"], override_justification="budget freeze")
    stages = {v.version: v.stage for v in list_versions(store, "loan")}
    assert stages == {v1.version: "archived", v2.version: "production"}
    stage_events = [(e.object_id, e.after["stage"]) for e in list_events(store, action="version.stage")][:2]
    assert sorted(stage_events) == [(str(v1.id), "archived"), (str(v2.id), "production")]


def test_promotion_failing_gate_blocks_approval_until_an_admin_overrides(two_runs):
    store, users, good, bad = two_runs
    _in_production(store, users, good)
    v2 = register_version(store, bad.id, "loan", actor=users["engineer"])
    request = request_promotion(store, v2.id, "smaller", actor=users["engineer"])
    regression = next(g for g in request.gates if g["gate"] == "regression")
    assert not regression["passed"] and regression["value"] < -0.1
    with pytest.raises(tracking.PermissionDenied, match="A gate failed"):
        approve_promotion(store, request.id, "ok", actor=users["product_owner"])
    with pytest.raises(tracking.PermissionDenied, match="admin"):
        approve_promotion(store, request.id, "ok", actor=users["product_owner"], override_justification="please")
    assert get_request(store, request.id).status == "pending"
    done = approve_promotion(store, request.id, "accepted", actor=users["admin"], override_justification="cost cut")
    assert (done.status, done.decided_by, done.override_justification) == ("approved", "admin", "cost cut")
    event = list_events(store, action="promotion.override")[0]
    assert (event.actor, event.after["override_justification"]) == ("admin", "cost cut")


def test_promotion_regression_gate_compares_on_the_same_held_out_rows(two_runs):
    store, users, good, bad = two_runs
    _in_production(store, users, bad)  # the weak model is in production first
    v2 = register_version(store, good.id, "loan", actor=users["data_scientist"])
    request = request_promotion(store, v2.id, "much better", actor=users["data_scientist"])
    delta = next(d for d in request.evaluation["assessment"]["deltas"] if d["metric"] == "f1_macro")
    assert delta["improvement"] > 0.1 and delta["low"] <= delta["delta"] <= delta["high"]
    assert delta["candidate"] == pytest.approx(good.metrics["test_f1_macro"])
    assert delta["baseline"] == pytest.approx(bad.metrics["test_f1_macro"])
    assert request.evaluation["changes"]["params"] == {"C": {"production": 0.0005, "candidate": 10.0}}
    assert all(g["passed"] for g in request.gates)


def test_promotion_pending_request_goes_stale_when_production_changes(two_runs):
    store, users, good, bad = two_runs
    v1 = register_version(store, good.id, "loan", actor=users["data_scientist"])
    v2 = register_version(store, bad.id, "loan", actor=users["data_scientist"])
    first = request_promotion(store, v1.id, "a", actor=users["data_scientist"])
    second = request_promotion(store, v2.id, "b", actor=users["engineer"])
    approve_promotion(store, first.id, "go", actor=users["product_owner"])
    assert get_request(store, second.id).status == "stale"
    with pytest.raises(tracking.ValidationError, match="not pending"):
        approve_promotion(store, second.id, "go", actor=users["admin"], override_justification="x")


def test_promotion_rollback_is_a_request_for_an_earlier_version(two_runs):
    store, users, good, bad = two_runs
    v1 = _in_production(store, users, good)
    v2 = register_version(store, bad.id, "loan", actor=users["engineer"])
    request = request_promotion(store, v2.id, "try", actor=users["engineer"])
    approve_promotion(store, request.id, "ok", actor=users["admin"], override_justification="experiment")
    back = request_promotion(store, v1.id, "roll back: v2 hurts approvals", actor=users["engineer"])
    assert back.baseline_version == v2.version
    approve_promotion(store, back.id, "restore", actor=users["product_owner"])
    assert production_version(store, "loan").version == v1.version


def test_promotion_withdraw_by_requester_or_admin_only(two_runs):
    store, users, good, _ = two_runs
    v1 = register_version(store, good.id, "loan", actor=users["data_scientist"])
    request = request_promotion(store, v1.id, "a", actor=users["data_scientist"])
    with pytest.raises(tracking.ValidationError, match="already has a pending request"):
        request_promotion(store, v1.id, "again", actor=users["engineer"])
    with pytest.raises(tracking.PermissionDenied):
        withdraw_promotion(store, request.id, actor=users["data_scientist_2"])
    assert withdraw_promotion(store, request.id, actor=users["data_scientist"]).status == "withdrawn"
    again = request_promotion(store, v1.id, "again", actor=users["engineer"])
    assert withdraw_promotion(store, again.id, actor=users["admin"]).status == "withdrawn"
    assert [r.status for r in list_requests(store)] == ["withdrawn", "withdrawn"]


def test_promotion_needs_a_justification_and_a_comment(two_runs):
    store, users, good, _ = two_runs
    v1 = register_version(store, good.id, "loan", actor=users["data_scientist"])
    with pytest.raises(tracking.ValidationError, match="justification"):
        request_promotion(store, v1.id, "   ", actor=users["data_scientist"])
    request = request_promotion(store, v1.id, "why", actor=users["data_scientist"])
    with pytest.raises(tracking.ValidationError, match="comment"):
        approve_promotion(store, request.id, "", actor=users["product_owner"])


def test_promotion_tampered_model_file_fails_the_integrity_gate(two_runs):
    store, users, good, _ = two_runs
    v1 = register_version(store, good.id, "loan", actor=users["data_scientist"])
    artifact_file(store, v1.artifact_sha256).write_bytes(b"swapped after registration")
    request = request_promotion(store, v1.id, "x", actor=users["data_scientist"])
    integrity = [g for g in request.gates if g["gate"] == "integrity"]
    assert not integrity[0]["passed"] and "no longer matches" in integrity[0]["detail"]
    with pytest.raises(tracking.PermissionDenied, match="A gate failed"):
        approve_promotion(store, request.id, "ok", actor=users["product_owner"])


def test_policy_min_metric_gate_and_admin_only_edits(two_runs):
    store, users, good, _ = two_runs
    v1 = register_version(store, good.id, "loan", actor=users["data_scientist"])
    with pytest.raises(tracking.PermissionDenied):
        set_policy(store, "loan", {"min_metrics": {"test_f1_macro": 0.99}}, actor=users["product_owner"])
    with pytest.raises(tracking.ValidationError, match="unknown gate"):
        set_policy(store, "loan", {"min_metric": {"test_f1_macro": 0.99}}, actor=users["admin"])
    set_policy(store, "loan", {"min_metrics": {"test_f1_macro": 0.99}}, actor=users["admin"])
    assert effective_policy(store, "loan") == {"min_metrics": {"test_f1_macro": 0.99}}
    request = request_promotion(store, v1.id, "x", actor=users["data_scientist"])
    gate = next(g for g in request.gates if g["gate"] == "min_metrics")
    assert (gate["passed"], gate["threshold"]) == (False, 0.99)
    assert gate["value"] == pytest.approx(good.metrics["test_f1_macro"])
    edit = list_events(store, action="policy.edit")[0]
    assert edit.before is None and edit.after == {"min_metrics": {"test_f1_macro": 0.99}}
    set_policy(store, "loan", None, actor=users["admin"])
    assert "regression" in effective_policy(store, "loan")


def test_registry_database_refuses_a_second_production_version(two_runs):
    store, users, good, bad = two_runs
    _in_production(store, users, good)
    v2 = register_version(store, bad.id, "loan", actor=users["engineer"])
    with pytest.raises(sqlalchemy.exc.IntegrityError), store.connect(write=True) as conn:
        conn.execute(update(ModelVersion).where(ModelVersion.id == v2.id).values(stage=Stage.production))


@pytest.mark.file_backends
def test_promotion_racing_approvals_leave_exactly_one_production_version(store):
    users = make_accounts(store)
    good, other = good_and_bad(store, users["data_scientist"], 10.0, 1.0)
    v1 = register_version(store, good.id, "loan", actor=users["data_scientist"])
    v2 = register_version(store, other.id, "loan", actor=users["data_scientist"])
    requests = [request_promotion(store, v.id, "race", actor=users["engineer"]) for v in (v1, v2)]
    barrier, outcomes = threading.Barrier(2), {}

    def approve(request, who):
        barrier.wait()
        try:
            outcomes[request.id] = approve_promotion(store, request.id, "go", actor=users[who]).status
        except tracking.TrackingError as err:
            outcomes[request.id] = str(err)

    threads = [
        threading.Thread(target=approve, args=(r, who))
        for r, who in zip(requests, ("product_owner", "admin"), strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    stages = [v.stage for v in list_versions(store, "loan")]
    assert stages.count("production") == 1
    assert sorted(outcomes.values(), key=len)[0] == "approved"
    assert any("stale" in text for text in outcomes.values())  # the loser went stale, whichever ran second
    assert sorted(r.status for r in list_requests(store)) == ["approved", "stale"]
    assert verify_chain(store).ok
