"""The rules live in the library: each `why_not` / `*_blockers` answer is the sentence the matching change
raises, and the permission sentences are built from the permission table."""

from __future__ import annotations

import pytest

import tracking
from tests.governance import good_and_bad, make_accounts
from tracking.governance import DESCRIPTIONS, PERMISSIONS, ROLE_LABELS, Action, UserRecord, authorize, why_not
from tracking.production import open_review, reproduce_blockers, reproduce_run, review_blockers
from tracking.registry import (
    approve_promotion,
    decision_blockers,
    register_blockers,
    register_version,
    request_blockers,
    request_promotion,
    set_stage,
    stage_blockers,
    withdraw_blockers,
    withdraw_promotion,
)
from tracking.runs import get_run
from tracking.store import Role
from tracking.sweeps import resume_blockers


@pytest.fixture
def promotion(file_store):
    """Accounts of every role, a good and an underfitting run, the good one registered with a pending request."""
    users = make_accounts(file_store)
    good, bad = good_and_bad(file_store, users["data_scientist"])
    version = register_version(file_store, good.id, "loan", actor=users["data_scientist"])
    request = request_promotion(file_store, version.id, "better recall", actor=users["data_scientist"])
    return file_store, users, good, bad, version, request


def _user(role: Role, disabled: bool = False) -> UserRecord:
    return UserRecord(1, "someone", role.value, disabled, None)


@pytest.mark.parametrize("action", list(Action))
def test_why_not_follows_the_permission_table_for_every_role(action):
    for role in Role:
        reason = why_not(_user(role), action)
        if role in PERMISSIONS[action]:
            assert reason is None
        else:
            assert reason.startswith(f"Your role ({ROLE_LABELS[role]}) may not {DESCRIPTIONS[action]}; ")
            assert all(ROLE_LABELS[r] in reason for r in PERMISSIONS[action])


def test_why_not_names_the_only_role_and_refuses_disabled_accounts_and_nobody():
    assert why_not(_user(Role.data_scientist), Action.policy_edit) == (
        "Your role (data scientist) may not edit promotion policies; only admins can."
    )
    assert "is disabled" in why_not(_user(Role.admin, disabled=True), Action.policy_edit)
    assert why_not(None, Action.sweep_launch) == "Sign in to launch sweeps."


def test_authorize_raises_the_sentence_why_not_gives(file_store):
    users = make_accounts(file_store)
    with file_store.connect() as conn, pytest.raises(tracking.PermissionDenied) as raised:
        authorize(conn, users["viewer"], Action.sweep_launch)
    assert str(raised.value) == why_not(users["viewer"], Action.sweep_launch)


def test_resume_needs_both_resume_and_launch():
    assert resume_blockers(_user(Role.engineer)) == []
    assert resume_blockers(_user(Role.product_owner)) == [
        why_not(_user(Role.product_owner), Action.sweep_resume),
        why_not(_user(Role.product_owner), Action.sweep_launch),
    ]


def test_register_blockers_are_what_register_version_raises(promotion):
    store, users, good, _bad, _version, _request = promotion
    ds = users["data_scientist"]
    assert register_blockers(store, ds, good.id) == []
    assert register_blockers(store, users["viewer"], good.id) == [why_not(users["viewer"], Action.version_register)]
    with pytest.raises(RuntimeError), tracking.start_run("scratch", store=store, actor=ds) as failed:
        raise RuntimeError("the script broke")
    [reason] = register_blockers(store, ds, failed.id)
    with pytest.raises(tracking.ValidationError) as raised:
        register_version(store, failed.id, "loan", actor=ds)
    assert str(raised.value) == reason and "only a complete run" in reason


def test_stage_blockers_keep_the_production_version_for_admins(promotion):
    store, users, _good, _bad, version, request = promotion
    approve_promotion(store, request.id, "fine", actor=users["product_owner"])
    in_production = tracking.get_version(store, version.id)
    [reason] = stage_blockers(users["engineer"], in_production)
    with pytest.raises(tracking.PermissionDenied) as raised:
        set_stage(store, version.id, "archived", actor=users["engineer"])
    assert str(raised.value) == reason
    assert stage_blockers(users["admin"], in_production) == []
    assert set_stage(store, version.id, "archived", actor=users["admin"]).stage == "archived"


def test_request_blockers_are_what_request_promotion_raises(promotion):
    store, users, _good, _bad, version, request = promotion
    [reason] = request_blockers(store, users["engineer"], version)
    assert f"pending request ({request.id})" in reason
    with pytest.raises(tracking.ValidationError) as raised:
        request_promotion(store, version.id, "again", actor=users["engineer"])
    assert str(raised.value) == reason


def test_decision_blockers_a_failed_gate_stops_approval_but_not_rejection(promotion):
    store, users, _good, bad, _version, _request = promotion
    weak = register_version(store, bad.id, "weak", actor=users["data_scientist"])
    tracking.set_policy(store, "weak", {"min_metrics": {"test_f1_macro": 0.99}}, actor=users["admin"])
    request = request_promotion(store, weak.id, "try", actor=users["data_scientist"])
    assert request.failed_gates
    po = users["product_owner"]
    [gate] = decision_blockers(request, po)
    assert "gate failed" in gate and decision_blockers(request, po, verdict="reject") == []
    with pytest.raises(tracking.PermissionDenied) as raised:
        approve_promotion(store, request.id, "ok", actor=po)
    assert str(raised.value) == gate
    assert decision_blockers(request, users["admin"]) == []  # an admin may override (with a justification)
    role, own = decision_blockers(request, users["data_scientist"], verdict="reject")  # who asked for it
    assert role == why_not(users["data_scientist"], Action.promotion_decide) and own.startswith("Nobody can decide")


def test_withdraw_blockers_only_the_requester_or_an_admin(promotion):
    store, users, _good, _bad, _version, request = promotion
    assert withdraw_blockers(request, users["data_scientist"]) == []
    assert withdraw_blockers(request, users["admin"]) == []
    [reason] = withdraw_blockers(request, users["data_scientist_2"])
    with pytest.raises(tracking.PermissionDenied) as raised:
        withdraw_promotion(store, request.id, actor=users["data_scientist_2"])
    assert str(raised.value) == reason


def test_review_blockers_one_open_review_per_version(promotion):
    store, users, _good, _bad, version, _request = promotion
    assert review_blockers(store, users["product_owner"], version.id) == []
    open_review(store, version.id, "drift", actor=users["product_owner"])
    [reason] = review_blockers(store, users["engineer"], version.id)
    with pytest.raises(tracking.ValidationError) as raised:
        open_review(store, version.id, "again", actor=users["engineer"])
    assert str(raised.value) == reason


def test_reproduce_blockers_are_what_reproduce_run_raises(promotion):
    store, users, good, _bad, _version, _request = promotion
    run = get_run(store, good.id)
    assert reproduce_blockers(store, users["engineer"], run) == []
    [role] = reproduce_blockers(store, users["product_owner"], run)
    with pytest.raises(tracking.PermissionDenied) as raised:
        reproduce_run(store, run.id, actor=users["product_owner"])
    assert str(raised.value) == role
