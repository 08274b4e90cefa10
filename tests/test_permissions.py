"""The permission matrix: every role against every state-changing action, from the library and the CLI.

The expected table is written out here, independently of `tracking.governance._access.PERMISSIONS`, so a change
to the code's table that is not also a deliberate change here fails.
"""

from __future__ import annotations

import io
import itertools
import os
import subprocess
import sys

import pytest

import tracking
from tests.conftest import ROOT
from tests.governance import PASSWORD, good_and_bad, make_accounts
from tracking.cli import main
from tracking.explore._compare import CompareView
from tracking.explore._reports import save_report
from tracking.governance._access import PERMISSIONS, get_user
from tracking.production._lifecycle import reproduce_run, retrain
from tracking.production._reviews import close_review, list_reviews, open_review
from tracking.registry._models import production_version, register_version, set_policy, set_stage, update_version_text
from tracking.registry._promotions import approve_promotion, reject_promotion, request_promotion
from tracking.runs._annotations import replace_tags

ROLES = ("viewer", "data_scientist", "engineer", "product_owner", "admin")
B, W, P, A = (
    {"data_scientist", "engineer", "admin"},
    {"data_scientist", "engineer", "product_owner", "admin"},
    {"product_owner", "admin"},
    {"admin"},
)
EXPECTED = {
    "sweep.launch": B, "sweep.cancel": B, "sweep.resume": B, "run.annotate": W, "report.share": W,
    "version.register": B, "model.edit": W, "version.stage": B, "promotion.request": B,
    "promotion.decide": P, "promotion.override": A, "policy.edit": A, "user.manage": A,
    "model.serve": B, "feedback.import": B, "review.open": W, "review.close": P, "model.retrain": B,
    "run.reproduce": B, "webhook.manage": A, "run.import": B, "run.log": B, "run.trash": B, "trash.purge": A,
}  # fmt: skip
NOT_IN_LIBRARY = ("model.serve", "feedback.import")  # checked by the `serve` and `feedback` commands
SPEC = tracking.SweepSpec(objective="tests.objectives:quadratic", space={"x": {"type": "float", "low": -1, "high": 1}},
                          metrics=["value:min"], n_trials=1)  # fmt: skip


def test_permissions_table_matches_the_documented_matrix():
    assert {action.value: {role.value for role in roles} for action, roles in PERMISSIONS.items()} == EXPECTED


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One store for the whole matrix: accounts, two trained runs, a registered model in production."""
    home = tmp_path_factory.mktemp("matrix")
    store = tracking.open_store(f"sqlite:///{home / 'tracking.db'}", home=home)
    users = make_accounts(store)
    good, bad = good_and_bad(store, users["data_scientist"])
    v1 = register_version(store, good.id, "loan", actor=users["data_scientist"])
    approve_promotion(
        store, request_promotion(store, v1.id, "base", actor=users["data_scientist"]).id, "ok",
        actor=users["product_owner"],
    )  # fmt: skip
    register_version(store, bad.id, "strict", actor=users["data_scientist"])
    set_policy(store, "strict", {"min_metrics": {"test_f1_macro": 0.999}}, actor=users["admin"])  # always fails
    yield {"store": store, "home": home, "users": users, "good": good, "bad": bad}
    store.dispose()


def _candidate(world, model: str = "loan"):
    """A fresh pending request by data_scientist_2 (nobody in the matrix decides on their own request)."""
    store, users = world["store"], world["users"]
    version = register_version(store, world["bad"].id, model, actor=users["admin"])
    return request_promotion(store, version.id, "matrix", actor=users["data_scientist_2"])


def _mlflow_uri(world) -> str:
    """An empty MLflow tracking store (its schema made by MLflow's client), made once for the matrix."""
    if "mlflow" not in world:
        from mlflow import MlflowClient

        world["mlflow"] = f"sqlite:///{world['home'] / 'mlflow.db'}"
        MlflowClient(tracking_uri=world["mlflow"]).search_experiments()
    return world["mlflow"]


def _library_call(action: str, world, actor):
    store, users = world["store"], world["users"]
    admin = users["admin"]
    if action == "run.import":
        return lambda: tracking.import_mlflow(store, _mlflow_uri(world), actor=actor)
    if action == "sweep.launch":
        return lambda: tracking.create_sweep(store, SPEC, actor=actor)
    if action == "sweep.cancel":
        sweep = tracking.create_sweep(store, SPEC, actor=admin)
        return lambda: tracking.cancel_sweep(store, sweep.id, actor=actor)
    if action == "sweep.resume":
        sweep = tracking.create_sweep(store, SPEC, actor=admin)
        tracking.cancel_sweep(store, sweep.id, actor=admin)
        return lambda: tracking.reopen_sweep(store, sweep.id, actor=actor)
    if action == "run.annotate":
        return lambda: replace_tags(store, world["good"].id, {"checked": "yes"}, actor=actor)
    if action == "report.share":
        return lambda: save_report(store, title="matrix", view=CompareView(runs=(world["good"].id,)), actor=actor)
    if action == "version.register":
        return lambda: register_version(store, world["good"].id, "loan", actor=actor)
    if action == "model.edit":
        version = register_version(store, world["good"].id, "loan", actor=admin)
        return lambda: update_version_text(store, version.id, intended_use="loans", actor=actor)
    if action == "version.stage":
        version = register_version(store, world["good"].id, "loan", actor=admin)
        return lambda: set_stage(store, version.id, "staging", actor=actor)
    if action == "promotion.request":
        version = register_version(store, world["good"].id, "loan", actor=admin)
        return lambda: request_promotion(store, version.id, "why", actor=actor)
    if action == "promotion.decide":
        request = _candidate(world)
        return lambda: reject_promotion(store, request.id, "no", actor=actor)
    if action == "promotion.override":
        request = _candidate(world, "strict")
        assert request.failed_gates
        return lambda: approve_promotion(store, request.id, "ok", actor=actor, override_justification="because")
    if action == "policy.edit":
        return lambda: set_policy(store, "loan", {"regression": {"metric": "f1_macro", "tolerance": 0.02}}, actor=actor)
    if action == "review.open":  # opened, then closed by the admin so the next role can open one
        version = production_version(store, "loan")
        for review in list_reviews(store, version_id=version.id, status="open"):  # left by a refused close
            close_review(store, review.id, "tidy", actor=admin)
        return lambda: close_review(store, open_review(store, version.id, "drift", actor=actor).id, "ok", actor=admin)
    if action == "review.close":
        for review in list_reviews(store, status="open"):
            close_review(store, review.id, "tidy", actor=admin)
        review = open_review(store, production_version(store, "loan").id, "drift", actor=admin)
        return lambda: close_review(store, review.id, "looked at it", actor=actor)
    if action == "model.retrain":
        return lambda: retrain(store, "loan", actor=actor)  # nothing changed: skipped, but checked
    if action == "run.reproduce":
        return lambda: reproduce_run(store, world["good"].id, actor=actor)
    if action == "webhook.manage":
        return lambda: tracking.add_webhook(store, actor, "https://hooks.example.com/x", ["promotion.approved"])
    if action == "run.log":
        return lambda: _log_a_run(store, actor)
    if action == "run.trash":
        run_id = _log_a_run(store, admin)
        return lambda: tracking.trash_run(store, run_id, actor=actor)
    if action == "trash.purge":
        return lambda: tracking.apply_retention(store, actor=actor)
    assert action == "user.manage"
    return lambda: tracking.create_user(store, actor, f"new-{actor.name if actor else 'x'}-{os.urandom(3).hex()}",
                                        "viewer", PASSWORD)  # fmt: skip


def _log_a_run(store, actor) -> int:
    with tracking.start_run("matrix", store=store, actor=actor) as run:
        run.log_metric("loss", 0.5)
    return run.id


LIBRARY_ACTIONS = [a for a in EXPECTED if a not in NOT_IN_LIBRARY]


@pytest.mark.parametrize(("role", "action"), list(itertools.product(ROLES, LIBRARY_ACTIONS)))
def test_permissions_library_allows_exactly_the_matrix(world, role, action):
    actor = world["users"][role]
    call = _library_call(action, world, actor)
    if role in EXPECTED[action]:
        call()
    else:
        with pytest.raises(tracking.PermissionDenied):
            call()


@pytest.mark.parametrize("action", LIBRARY_ACTIONS)
def test_permissions_nobody_signed_in_may_change_a_store_with_accounts(world, action):
    with pytest.raises(tracking.PermissionDenied, match="Sign in"):
        _library_call(action, world, None)()


def test_permissions_disabled_account_may_do_nothing(world):
    store, users = world["store"], world["users"]
    tracking.set_disabled(store, users["admin"], "engineer")
    try:
        with pytest.raises(tracking.PermissionDenied, match="disabled"):
            tracking.create_sweep(store, SPEC, actor=world["users"]["engineer"])
    finally:
        tracking.set_disabled(store, users["admin"], "engineer", disabled=False)


# --- the same checks through `python -m tracking`, signed in with TRACKING_USER / TRACKING_PASSWORD ---


def _cli(world, role: str | None, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRACKING_HOME": str(world["home"])}
    env.pop("TRACKING_USER", None)
    if role is not None:
        env.update(TRACKING_USER=role, TRACKING_PASSWORD=PASSWORD)
    return subprocess.run([sys.executable, "-m", "tracking", *args], env=env, capture_output=True, text=True,
                          input=stdin, timeout=300, cwd=ROOT)  # fmt: skip


def _cli_args(action: str, world) -> tuple[list[str], str | None]:
    store, users = world["store"], world["users"]
    admin = users["admin"]
    if action == "sweep.launch":
        return ["sweep", "--objective", "tests.objectives:quadratic", "--trials", "1", "--metric", "value:min",
                "--space", str(ROOT / "tests" / "x_space.yaml"), "--detach"], None  # fmt: skip
    if action in ("sweep.cancel", "sweep.resume"):
        sweep = tracking.create_sweep(store, SPEC, actor=admin)
        if action == "sweep.cancel":
            return ["cancel", str(sweep.id)], None
        tracking.cancel_sweep(store, sweep.id, actor=admin)
        return ["resume", str(sweep.id), "--add-trials", "0", "--detach"], None
    if action == "version.register":
        return ["registry", "register", str(world["good"].id), "--name", "loan"], None
    if action == "version.stage":
        version = register_version(store, world["good"].id, "loan", actor=admin)
        return ["registry", "stage", "loan", str(version.version), "staging"], None
    if action == "promotion.request":
        version = register_version(store, world["good"].id, "loan", actor=admin)
        return ["registry", "request", "loan", str(version.version), "--justification", "why"], None
    if action == "promotion.decide":
        return ["registry", "reject", str(_candidate(world).id), "--comment", "no"], None
    if action == "promotion.override":
        return [
            "registry",
            "approve",
            str(_candidate(world, "strict").id),
            "--comment",
            "ok",
            "--override",
            "because",
        ], None
    if action == "policy.edit":
        path = world["home"] / "policy.yaml"
        path.write_text("regression: {metric: f1_macro, tolerance: 0.02}\n")
        return ["registry", "policy", "loan", "--file", str(path)], None
    if action == "model.serve":  # a model that does not exist: allowed roles get as far as looking it up
        return ["serve", "--model", "no-such-model", "--port", "8999"], None
    if action == "feedback.import":
        path = world["home"] / "labels.csv"
        path.write_text("request_id,label\nno-such-request,1\n")
        return ["feedback", "--file", str(path)], None
    if action == "model.retrain":
        return ["retrain", "--model", "loan"], None
    if action == "run.reproduce":
        return ["reproduce", str(world["good"].id)], None
    if action == "webhook.manage":
        return ["webhooks", "add", "https://hooks.example.com/x", "--event", "promotion.approved"], None
    if action == "run.import":
        return ["import", "mlflow", "--tracking-uri", _mlflow_uri(world)], None
    if action == "run.trash":
        return ["runs", "trash", str(_log_a_run(store, admin))], None
    if action == "trash.purge":
        return ["retention", "run"], None
    if action == "run.log":  # a worker logs the sweep's trials as runs
        return ["worker", "--sweep", str(tracking.create_sweep(store, SPEC, actor=admin).id), "--trials", "1"], None
    assert action == "user.manage"
    return ["users", "add", f"cli-{os.urandom(3).hex()}", "--role", "viewer", "--password-stdin"], PASSWORD + "\n"


NO_CLI = ("run.annotate", "report.share", "model.edit", "review.open", "review.close")  # dashboard only
CLI_ACTIONS = [a for a in EXPECTED if a not in NO_CLI]
CLI_REFUSES_LATER = {"model.serve": 2, "feedback.import": 1}  # allowed roles then meet the missing model / request


@pytest.mark.parametrize(("role", "action"), list(itertools.product(ROLES, CLI_ACTIONS)))
def test_permissions_cli_allows_exactly_the_matrix(world, role, action, monkeypatch, capsys):
    args, stdin = _cli_args(action, world)
    capsys.readouterr()  # what making the arguments printed (MLflow logs creating its store)
    monkeypatch.setenv("TRACKING_HOME", str(world["home"]))
    monkeypatch.setenv("TRACKING_USER", role)
    monkeypatch.setenv("TRACKING_PASSWORD", PASSWORD)
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin or ""))
    code = main(args)  # the CLI's own entry point, in this process (the subprocess path is tested below)
    err = capsys.readouterr().err
    if role in EXPECTED[action]:
        assert code == CLI_REFUSES_LATER.get(action, 0), err
        assert "may not" not in err
    else:
        assert code == 2
        assert err.startswith("error: ") and "may not" in err


def test_permissions_cli_without_a_user_is_told_to_sign_in(world):
    out = _cli(world, None, "registry", "register", str(world["good"].id), "--name", "loan")
    assert out.returncode == 2 and "TRACKING_USER" in out.stderr


@pytest.mark.parametrize(("role", "code"), [("viewer", 2), ("engineer", 0)])
def test_permissions_cli_process_checks_the_role(world, role, code):
    version = register_version(world["store"], world["good"].id, "loan", actor=world["users"]["admin"])
    out = _cli(world, role, "registry", "stage", "loan", str(version.version), "staging")
    assert out.returncode == code, out.stderr
    assert ("may not" in out.stderr) == (code == 2) and "Traceback" not in out.stderr


def test_permissions_cli_wrong_password_is_one_line(world):
    env_args = ["users", "set-role", "viewer", "engineer"]
    out = subprocess.run([sys.executable, "-m", "tracking", *env_args], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "TRACKING_HOME": str(world["home"]),
                              "TRACKING_USER": "admin", "TRACKING_PASSWORD": "wrong-password"})  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip() == "error: Wrong account name or password."
    assert get_user(world["store"], "viewer").role == "viewer"
