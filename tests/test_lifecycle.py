"""Reproducing runs and retraining production models: real sweeps, real data files, real promotions."""

from __future__ import annotations

import argparse

import pandas as pd
import pytest
from sqlalchemy import update

import tracking
from tests.governance import PASSWORD, fixed_c, make_accounts, trained_runs
from tracking.cli._lifecycle import COMMANDS, add_parsers, parse_assignments
from tracking.governance._audit import list_events, verify_chain
from tracking.production._lifecycle import list_reproductions, reproduce_run, retrain
from tracking.registry._models import list_versions, register_version
from tracking.registry._promotions import approve_promotion, request_promotion
from tracking.runs._datasets import SHIPPED
from tracking.runs._queries import list_runs
from tracking.store._tables import Run
from tracking.sweeps._sweeps import SweepSpec, create_sweep
from tracking.sweeps._worker import run_worker

ROWS = 600  # a subset of loan_approval: quick to train, and rows 600+ are there to append


def _write_loans(path, rows):
    pd.read_csv(SHIPPED / "loan_approval.csv").iloc[rows].to_csv(path, index=False)


def _csv_run(store, path, actor):
    """The one run of a sweep of a well-fitting logistic regression on the CSV at `path`."""
    spec = SweepSpec(model="logistic_regression", csv=str(path), target="approved", sensitive="gender",
                     space=fixed_c(10.0), sampler="grid", pruner="none", n_trials=1, folds=3,
                     experiment="loans")  # fmt: skip
    sweep = create_sweep(store, spec, actor=actor)
    run_worker(store, sweep.id, actor=actor)
    (run,) = list_runs(store, sweep_id=sweep.id)
    return run


@pytest.fixture
def in_production(file_store, tmp_path):
    """Accounts of every role and the model `loans` v1, trained by a sweep on a CSV file, in production."""
    users = make_accounts(file_store)
    path = tmp_path / "loans.csv"
    _write_loans(path, slice(0, ROWS))
    run = _csv_run(file_store, path, users["data_scientist"])
    version = register_version(file_store, run.id, "loans", actor=users["data_scientist"])
    request = request_promotion(file_store, version.id, "first model", actor=users["data_scientist"])
    approve_promotion(file_store, request.id, "fine", actor=users["product_owner"])
    return file_store, users, path, run


def test_lifecycle_reproduce_matches_a_recorded_sweep_run(file_store):
    (run,) = trained_runs(file_store, 1, task="iris")
    attempt = reproduce_run(file_store, run.id)
    assert attempt.outcome == "matched", attempt.summary
    assert attempt.details["metrics"] and all(row["within_tolerance"] for row in attempt.details["metrics"])
    assert not any(row["key"] in ("fit_seconds", "model_bytes") for row in attempt.details["metrics"])
    new = tracking.get_run(file_store, attempt.new_run_id)
    assert new.tags["reproduces"] == str(run.id) and new.sweep_id is None
    assert (new.experiment, new.dataset, new.seed, new.params) == (run.experiment, run.dataset, run.seed, run.params)
    assert [a.kind for a in tracking.list_artifacts(file_store, new.id)] == ["model"]
    assert attempt.details["code_version"]["differs"] is False
    assert list_reproductions(file_store, run_id=run.id) == [attempt]
    (event,) = list_events(file_store, action="run.reproduce")
    assert (event.object_id, event.after["outcome"]) == (str(run.id), "matched")
    assert verify_chain(file_store).ok


def test_lifecycle_reproduce_reports_each_metric_that_differs(file_store):
    (run,) = trained_runs(file_store, 1, task="iris")
    recorded = {**run.metrics, "cv_accuracy": run.metrics["cv_accuracy"] + 0.01}  # a record that no longer holds
    with file_store.connect(write=True) as conn:
        conn.execute(update(Run).where(Run.id == run.id).values(metrics=recorded))
    attempt = reproduce_run(file_store, run.id, tolerance=0.001)
    assert attempt.outcome == "differs"
    (off,) = [row for row in attempt.details["metrics"] if not row["within_tolerance"]]
    assert off["key"] == "cv_accuracy" and off["difference"] == pytest.approx(-0.01)
    assert attempt.summary.startswith(f"1 of {len(attempt.details['metrics'])} recorded metrics of run {run.id} differ")


def test_lifecycle_reproduce_fails_with_a_sentence_when_the_csv_changed(file_store, tmp_path):
    path = tmp_path / "loans.csv"
    _write_loans(path, slice(0, ROWS))
    run = _csv_run(file_store, path, None)
    _write_loans(path, slice(0, ROWS + 50))
    attempt = reproduce_run(file_store, run.id)
    assert (attempt.outcome, attempt.new_run_id) == ("failed", None)
    assert "changed since the run trained on it" in attempt.summary
    assert list_reproductions(file_store, run_id=run.id) == [attempt]
    assert list_events(file_store, action="run.reproduce")[0].after["outcome"] == "failed"


def test_lifecycle_reproduce_refuses_a_run_without_a_sweep_recipe(file_store):
    with tracking.start_run("scripts", {"C": 1.0}, store=file_store) as run:
        run.log_metrics({"cv_accuracy": 0.9})
    with pytest.raises(tracking.ValidationError, match="not trained by a sweep of a built-in model"):
        reproduce_run(file_store, run.id)
    assert list_reproductions(file_store) == []


def test_lifecycle_retrain_skips_when_nothing_changed(in_production):
    store, users, _, run = in_production
    runs_before = len(list_runs(store))
    result = retrain(store, "loans", actor=users["engineer"])
    assert (result.outcome, result.version, result.new_run_id) == ("skipped", None, None)
    assert "Nothing changed" in result.summary and run.dataset["hash"][:12] in result.summary
    assert len(list_runs(store)) == runs_before
    assert [v.version for v in list_versions(store, "loans")] == [1]
    (event,) = list_events(store, action="model.retrain")
    assert (event.actor, event.object_id, event.after["outcome"]) == ("engineer", "loans", "skipped")


def test_lifecycle_retrain_on_a_changed_dataset_registers_a_candidate(in_production):
    store, users, path, run = in_production
    _write_loans(path, slice(0, ROWS + 200))
    result = retrain(store, "loans", actor=users["data_scientist"])
    assert result.outcome == "retrained", result.summary
    new = tracking.get_run(store, result.new_run_id)
    assert new.tags["retrained_from"] == str(run.id) and new.tags["retrain_changes"] == "dataset"
    assert new.dataset["id"] != run.dataset["id"] and new.dataset["hash"] != run.dataset["hash"]
    assert (new.params, new.seed, new.experiment) == (run.params, run.seed, run.experiment)
    assert (result.version.version, result.version.stage, result.version.run_id) == (2, "none", new.id)
    assert result.version.description.startswith("retrained from v1: dataset changed (")
    assert list_events(store, action="model.retrain")[0].after["version"] == 2
    # the retrained run has no sweep of its own, yet it reproduces through the retrain that made it
    assert reproduce_run(store, new.id, actor=users["engineer"]).outcome == "matched"


def test_lifecycle_retrain_with_changed_params_retrains(in_production):
    store, users, _, run = in_production
    result = retrain(store, "loans", params={"C": 0.5}, actor=users["data_scientist"])
    assert result.outcome == "retrained"
    assert result.changes == {"params": {"C": {"before": 10.0, "after": 0.5}}}
    new = tracking.get_run(store, result.new_run_id)
    assert new.params == {"C": 0.5} and new.dataset == run.dataset
    with pytest.raises(tracking.ValidationError, match="has no parameter 'Cee'"):
        retrain(store, "loans", params={"Cee": 1}, actor=users["data_scientist"])


def test_lifecycle_viewer_may_not_retrain_or_reproduce(in_production):
    store, users, _, run = in_production
    with pytest.raises(tracking.PermissionDenied, match="may not retrain models"):
        retrain(store, "loans", actor=users["viewer"])
    with pytest.raises(tracking.PermissionDenied, match="may not reproduce runs"):
        reproduce_run(store, run.id, actor=users["viewer"])
    with pytest.raises(tracking.PermissionDenied, match="Sign in"):
        retrain(store, "loans")
    assert list_reproductions(store) == []


def test_lifecycle_cli_reproduces_and_skips_a_retrain(in_production, monkeypatch, capsys):
    store, _, _, run = in_production
    parser, store_option = argparse.ArgumentParser(), argparse.ArgumentParser(add_help=False)
    store_option.add_argument("--store")
    add_parsers(parser.add_subparsers(dest="command"), store_option)
    monkeypatch.setenv("TRACKING_USER", "engineer")
    monkeypatch.setenv("TRACKING_PASSWORD", PASSWORD)
    args = parser.parse_args(["reproduce", str(run.id), "--tolerance", "0.001", "--store", store.url])
    assert COMMANDS[args.command](args) == 0
    assert f"run {run.id} reproduced as run" in capsys.readouterr().out
    args = parser.parse_args(["retrain", "--model", "loans", "--store", store.url])
    assert COMMANDS[args.command](args) == 0
    assert capsys.readouterr().out.startswith("nothing changed: dataset sha256 ")
    assert parse_assignments(["C=0.5", "solver=saga", "class_weight=null"]) == {
        "C": 0.5, "solver": "saga", "class_weight": None
    }  # fmt: skip
    with pytest.raises(tracking.ValidationError, match="KEY=VALUE"):
        parse_assignments(["C"])
