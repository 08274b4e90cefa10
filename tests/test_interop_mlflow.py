"""Importing from MLflow: a store written by MLflow's own client (several experiments, failed, killed, nested and
running runs, metric histories of thousands of steps, artifact files) brought in through `import_mlflow` and
`python -m tracking import mlflow`, idempotently."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

import tracking
from tests.governance import make_accounts
from tracking.cli import main
from tracking.runs import import_mlflow, read_verified
from tracking.store import MetricPoint

LOSS_STEPS = 3000
VAL_STEPS = 2000
T0 = 1_780_000_000_000  # ms: MLflow's clock for the runs below


def _log_history(client, run_id: str, key: str, n: int, value) -> None:
    from mlflow.entities import Metric

    for start in range(0, n, 1000):  # MLflow takes at most 1000 metrics per batch
        client.log_batch(run_id, metrics=[Metric(key, value(s), T0 + s, s) for s in range(start, min(n, start + 1000))])


def _mlflow_store(folder: Path) -> dict:
    """An MLflow tracking store written by MLflow's own client; what it holds, by run name."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    churn = client.create_experiment("churn", artifact_location=str(folder / "artifacts-churn"))
    fraud = client.create_experiment("fraud", artifact_location=str(folder / "artifacts-fraud"))
    ids = {}

    def run(experiment, name, status="FINISHED", start=0, params=None, metrics=None, tags=None):
        created = client.create_run(experiment, start_time=T0 + start, run_name=name, tags=tags or {})
        run_id = created.info.run_id
        for key, value in (params or {}).items():
            client.log_param(run_id, key, value)
        for key, value in (metrics or {}).items():
            client.log_metric(run_id, key, value, timestamp=T0 + start, step=0)
        if status is not None:
            client.set_terminated(run_id, status, end_time=T0 + start + 60_000)
        ids[name] = run_id
        return run_id

    parent = run(churn, "parent", start=1, params={"alpha": 0.1, "n_estimators": 100, "solver": "lbfgs",
                                                   "warm_start": True},
                 metrics={"test_f1_macro": 0.91}, tags={"team": "ml", "mlflow.note.content": "Baseline **grid**."})  # fmt: skip
    _log_history(client, parent, "loss", LOSS_STEPS, lambda s: 1 / (s + 1))
    (folder / "notes.txt").write_text("hello from mlflow")
    client.log_artifact(parent, str(folder / "notes.txt"), "plots")
    (folder / "model.json").write_text('{"coef": [1, 2]}')
    client.log_artifact(parent, str(folder / "model.json"))
    for k in range(2):  # nested runs, as mlflow.start_run(nested=True) records them
        child = run(
            churn, f"child-{k}", start=2 + k, params={"alpha": 0.2 * (k + 1)}, tags={"mlflow.parentRunId": parent}
        )
        _log_history(client, child, "val_loss", VAL_STEPS, lambda s, k=k: k + 1 / (s + 1))
    run(churn, "broken", status="FAILED", start=5, params={"alpha": "auto"})
    run(churn, "ongoing", status=None, start=6)  # still running: left for a later import
    deleted = run(churn, "deleted", start=7)
    client.delete_run(deleted)
    run(fraud, "fraud-a", start=8, metrics={"auc": 0.8})
    run(fraud, "fraud-stopped", status="KILLED", start=9)
    return {"uri": uri, "ids": ids}


@pytest.fixture(scope="module")
def mlflow_source(tmp_path_factory) -> dict:
    """One MLflow store for the module (MLflow's schema takes seconds to create)."""
    return _mlflow_store(tmp_path_factory.mktemp("mlflow"))


def _by_name(store) -> dict:
    return {run.name: run for run in tracking.list_runs(store)}


def test_import_mlflow_brings_experiments_runs_and_statuses(store, mlflow_source):
    report = import_mlflow(store, mlflow_source["uri"])
    assert (report.imported, report.skipped, report.unfinished) == (6, 0, 1)
    runs = _by_name(store)
    assert set(runs) == {"parent", "child-0", "child-1", "broken", "fraud-a", "fraud-stopped"}
    assert "ongoing" not in runs and "deleted" not in runs
    assert {r.experiment for r in runs.values()} == {"churn", "fraud"}
    assert [runs[n].status for n in ("parent", "broken", "fraud-stopped")] == ["complete", "failed", "killed"]
    assert runs["broken"].error and "MLflow" in runs["broken"].error
    assert runs["parent"].started_at.timestamp() == pytest.approx((T0 + 1) / 1000)
    assert runs["parent"].finished_at.timestamp() == pytest.approx((T0 + 1 + 60_000) / 1000)


def test_import_mlflow_keeps_params_metrics_tags_and_notes(store, mlflow_source):
    import_mlflow(store, mlflow_source["uri"], "churn")
    parent = _by_name(store)["parent"]
    assert parent.params == {"alpha": 0.1, "n_estimators": 100, "solver": "lbfgs", "warm_start": True}
    assert parent.metrics["test_f1_macro"] == pytest.approx(0.91)
    assert parent.metrics["loss"] == pytest.approx(1 / LOSS_STEPS)
    assert parent.tags["team"] == "ml" and parent.tags["mlflow.run_id"] == mlflow_source["ids"]["parent"]
    assert "mlflow.note.content" not in parent.tags
    assert [note.body for note in tracking.list_notes(store, parent.id)] == ["Baseline **grid**."]
    assert _by_name(store)["broken"].params == {"alpha": "auto"}


def test_import_mlflow_keeps_full_metric_histories(store, mlflow_source):
    import_mlflow(store, mlflow_source["uri"])
    runs = _by_name(store)
    loss = tracking.metric_history(store, runs["parent"].id, "loss")["loss"]
    assert len(loss) == LOSS_STEPS and loss[0] == (0, 1.0) and loss[-1][0] == LOSS_STEPS - 1
    val = tracking.metric_history(store, runs["child-1"].id)["val_loss"]
    assert len(val) == VAL_STEPS and val[5] == (5, pytest.approx(1 + 1 / 6))


def test_import_mlflow_links_nested_runs_to_their_parent(store, mlflow_source):
    import_mlflow(store, mlflow_source["uri"])
    runs = _by_name(store)
    for child in ("child-0", "child-1"):
        assert runs[child].tags["parent_run_id"] == str(runs["parent"].id)
        assert runs[child].tags["mlflow.parentRunId"] == mlflow_source["ids"]["parent"]
    assert "parent_run_id" not in runs["parent"].tags


def test_import_mlflow_copies_artifact_files(store, mlflow_source):
    import_mlflow(store, mlflow_source["uri"])
    parent = _by_name(store)["parent"]
    artifacts = {a.name: a for a in tracking.list_artifacts(store, parent.id)}
    assert set(artifacts) == {"plots/notes.txt", "model.json"}
    assert read_verified(store, artifacts["plots/notes.txt"].sha256) == b"hello from mlflow"
    assert artifacts["model.json"].size == len('{"coef": [1, 2]}')


def test_import_mlflow_twice_adds_nothing(store, mlflow_source):
    first = import_mlflow(store, mlflow_source["uri"])
    with store.connect() as conn:
        points = conn.execute(select(func.count()).select_from(MetricPoint)).scalar_one()
    second = import_mlflow(store, mlflow_source["uri"])
    assert first.points == points == LOSS_STEPS + 2 * VAL_STEPS + 2  # + test_f1_macro and auc
    assert (second.imported, second.skipped, second.points, second.artifacts) == (0, 6, 0, 0)
    assert len(tracking.list_runs(store)) == 6
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(MetricPoint)).scalar_one() == points


def test_import_mlflow_brings_a_run_once_it_has_ended(store, mlflow_source, tmp_path):
    from mlflow import MlflowClient

    shutil.copyfile(mlflow_source["uri"].removeprefix("sqlite:///"), tmp_path / "mlflow.db")  # this test's own copy
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert import_mlflow(store, uri).unfinished == 1
    MlflowClient(tracking_uri=uri).set_terminated(mlflow_source["ids"]["ongoing"], "FINISHED")
    again = import_mlflow(store, uri)
    assert (again.imported, again.unfinished) == (1, 0)
    assert _by_name(store)["ongoing"].status == "complete"


def test_import_mlflow_one_experiment_or_a_clear_sentence(store, mlflow_source):
    assert import_mlflow(store, mlflow_source["uri"], "fraud").imported == 2
    assert {r.experiment for r in tracking.list_runs(store)} == {"fraud"}
    with pytest.raises(tracking.NotFoundError, match="no MLflow experiment named 'nope'"):
        import_mlflow(store, mlflow_source["uri"], "nope")


def test_import_mlflow_cli_fills_the_runs_table(mlflow_source, capsys):
    assert main(["import", "mlflow", "--tracking-uri", mlflow_source["uri"]]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("imported 6 run(s) with 7,002 metric point(s) and 2 artifact file(s) from")
    assert "importing" in err and "7/7" in err  # the progress bar, on stderr
    assert main(["runs", "--format", "json"]) == 0
    runs = {run["name"]: run for run in json.loads(capsys.readouterr().out)}
    assert runs["parent"]["params"]["alpha"] == 0.1 and runs["parent"]["experiment"] == "churn"
    assert main(["import", "mlflow", "--tracking-uri", mlflow_source["uri"]]) == 0
    assert capsys.readouterr().out.startswith("imported 0 run(s)")


def test_import_mlflow_cli_missing_store_is_one_line(tmp_path, capsys):
    missing = f"sqlite:///{tmp_path / 'nothing.db'}"
    assert main(["import", "mlflow", "--tracking-uri", missing]) == 2
    err = capsys.readouterr().err
    assert err == f"error: There is no MLflow store at {missing} (no such SQLite file).\n"
    assert not (tmp_path / "nothing.db").exists()


def test_import_mlflow_without_mlflow_installed_is_one_line(mlflow_source, monkeypatch, capsys):
    for name in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` now fails as if it were not installed
    assert main(["import", "mlflow", "--tracking-uri", mlflow_source["uri"]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install mlflow" in err and "Traceback" not in err


def test_import_mlflow_needs_a_role_that_may_import_and_is_audited(mlflow_source):
    store = tracking.open_store()
    users = make_accounts(store)
    with pytest.raises(tracking.PermissionDenied, match="may not import runs"):
        import_mlflow(store, mlflow_source["uri"], actor=users["viewer"])
    with pytest.raises(tracking.PermissionDenied, match="Sign in"):
        import_mlflow(store, mlflow_source["uri"])
    assert tracking.list_runs(store) == []
    import_mlflow(store, mlflow_source["uri"], "fraud", actor=users["data_scientist"])
    events = tracking.list_events(store, action="run.import")
    assert len(events) == 2 and {e.actor for e in events} == {"data_scientist"}
    assert tracking.verify_chain(store).ok
