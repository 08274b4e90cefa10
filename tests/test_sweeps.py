"""Sweeps: every family and sampler, pruning and failures, several workers, crashed workers."""

from __future__ import annotations

import os
import signal

import numpy as np
import optuna
import pytest
from threadpoolctl import threadpool_limits

import tracking
from tests.polling import wait_until
from tracking.ml._families import FAMILIES
from tracking.ml._objective import _classification_scores, curve_score
from tracking.runs._artifacts import load_model
from tracking.runs._queries import list_runs, metric_history
from tracking.sweeps._samplers import make_pruner
from tracking.sweeps._sweeps import (
    SweepSpec,
    cancel_sweep,
    create_sweep,
    get_sweep,
    launch_workers,
    load_study,
    reopen_sweep,
)
from tracking.sweeps._worker import run_worker

X_SPACE = {"x": {"type": "float", "low": -5.0, "high": 5.0}}
# Small, fast corners of each family's space: the test is that every family trains and logs.
FAST = {
    "logistic_regression": {"C": {"type": "float", "low": 0.1, "high": 10, "log": True}},
    "random_forest": {"n_estimators": {"type": "int", "low": 5, "high": 10}, "max_depth": {"type": "int", "low": 2, "high": 4}},
    "hist_gradient_boosting": {"max_iter": {"type": "int", "low": 10, "high": 20}},
    "svm": {"C": {"type": "float", "low": 0.1, "high": 10, "log": True}},
    "knn": {"n_neighbors": {"type": "int", "low": 3, "high": 9}},
    "mlp": {"hidden_units": {"type": "int", "low": 8, "high": 16}, "max_iter": {"type": "int", "low": 5, "high": 10}},
    "ridge": {"alpha": {"type": "float", "low": 0.1, "high": 10, "log": True}},
    "gradient_boosting": {"n_estimators": {"type": "int", "low": 10, "high": 20}},
}  # fmt: skip


def _trials(store, sweep_id):
    record = get_sweep(store, sweep_id)
    study = load_study(store, record)
    return study.get_trials(deepcopy=False)


def _worker_inside_a_slow_trial(store, tmp_path, monkeypatch, n_trials):
    """A sweep whose one worker process is inside a trial that lasts until `flag` is removed."""
    flag = tmp_path / "slow"
    flag.touch()
    monkeypatch.setenv("SLOW_FLAG", str(flag))
    spec = SweepSpec(
        objective="tests.objectives:slow_while_flag", space=X_SPACE, metrics=["value:min"], n_trials=n_trials
    )
    sweep = create_sweep(store, spec)
    (proc,) = launch_workers(store, sweep.id, 1, log_dir=tmp_path / "logs")
    wait_until(lambda: [r for r in list_runs(store, sweep_id=sweep.id) if r.status == "running" and r.trial_number is not None],
               timeout=60, what="the worker to start a trial")  # fmt: skip
    return sweep, proc, flag


@pytest.mark.file_backends
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_sweep_every_family_trains_logs_and_saves_a_loadable_model(store, family):
    task = "iris" if "classification" in FAMILIES[family].tasks else "diabetes"
    spec = SweepSpec(model=family, task=task, space=FAST[family], sampler="random", n_trials=2, folds=2)
    sweep = create_sweep(store, spec)
    assert run_worker(store, sweep.id) == 2
    runs = list_runs(store, sweep_id=sweep.id)
    assert sorted(r.trial_number for r in runs) == [0, 1]
    for run in runs:
        assert run.status == "complete", run.error
        assert set(FAST[family]) == set(run.params)
        expected = ("test_accuracy", "cv_f1_macro", "test_roc_auc") if task == "iris" else ("test_rmse", "cv_r2")
        assert all(key in run.metrics for key in (*expected, "fit_seconds", "predict_ms_per_row", "model_bytes"))
        assert run.dataset["name"] == task and len(run.dataset["hash"]) == 64
        model = load_model(store, run.id)
        assert model.predict(tracking.load_task(task).X.head(3)).shape == (3,)
        assert metric_history(store, run.id)  # a learning curve or fold scores
    assert get_sweep(store, sweep.id).status == "complete"


@pytest.mark.file_backends
@pytest.mark.parametrize("sampler", ["tpe", "random", "cmaes", "grid"])
def test_sweep_every_sampler_finishes_its_trials(store, sampler):
    space = {
        "C": {"type": "float", "low": 0.01, "high": 10, "log": True},
        "max_iter": {"type": "int", "low": 50, "high": 200, "step": 50},
    }
    spec = SweepSpec(model="logistic_regression", task="iris", space=space, sampler=sampler, n_trials=3, folds=2)
    sweep = create_sweep(store, spec)
    run_worker(store, sweep.id)
    states = [t.state for t in _trials(store, sweep.id)]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3
    assert get_sweep(store, sweep.id).best_value is not None


@pytest.mark.file_backends
def test_sweep_nsga2_optimises_two_metrics(store):
    spec = SweepSpec(
        model="knn", task="iris", space=FAST["knn"], sampler="nsga2", n_trials=3, folds=2,
        metrics=["test_f1_macro", "predict_ms_per_row"],
    )  # fmt: skip
    sweep = create_sweep(store, spec)
    assert sweep.config["pruner"] == "none"
    assert [m["direction"] for m in sweep.config["metrics"]] == ["maximize", "minimize"]
    run_worker(store, sweep.id)
    trials = _trials(store, sweep.id)
    assert len(trials) == 3 and all(len(t.values) == 2 for t in trials)


@pytest.mark.file_backends
def test_sweep_grid_stops_when_the_grid_is_exhausted(store):
    space = {"n_neighbors": {"type": "categorical", "choices": [3, 5]}}
    sweep = create_sweep(store, SweepSpec(model="knn", task="iris", space=space, sampler="grid", n_trials=10, folds=2))
    assert run_worker(store, sweep.id) == 2
    assert sorted(r.params["n_neighbors"] for r in list_runs(store, sweep_id=sweep.id)) == [3, 5]
    assert get_sweep(store, sweep.id).status == "complete"


@pytest.mark.file_backends
def test_sweep_pruned_and_failed_trials_are_recorded(store):
    spec = SweepSpec(
        objective="tests.objectives:prunes_positive", space=X_SPACE, metrics=["value:min"], n_trials=6, seed=3
    )
    sweep = create_sweep(store, spec)
    run_worker(store, sweep.id)
    runs = list_runs(store, sweep_id=sweep.id)
    by_state = {t.number: t.state for t in _trials(store, sweep.id)}
    for run in runs:
        expected = "pruned" if run.params["x"] > 0 else "complete"
        assert run.status == expected
        assert by_state[run.trial_number].name == ("PRUNED" if expected == "pruned" else "COMPLETE")
    spec = SweepSpec(
        objective="tests.objectives:fails_negative", space=X_SPACE, metrics=["value:max"], n_trials=6, seed=1
    )
    failing = create_sweep(store, spec)
    run_worker(store, failing.id)
    failed = [r for r in list_runs(store, sweep_id=failing.id) if r.params["x"] < 0]
    assert failed and all(r.status == "failed" and "x must not be negative" in r.error for r in failed)


@pytest.mark.file_backends
def test_sweep_hist_gradient_boosting_reports_a_learning_curve(store):
    space = {"max_iter": {"type": "int", "low": 30, "high": 30}}
    spec = SweepSpec(
        model="hist_gradient_boosting", task="breast_cancer", space=space, n_trials=1, folds=2, pruner="hyperband"
    )
    sweep = create_sweep(store, spec)
    run_worker(store, sweep.id)
    (run,) = list_runs(store, sweep_id=sweep.id)
    curve = metric_history(store, run.id)["val_f1_macro"]
    assert [step for step, _ in curve] == list(range(30))
    (trial,) = _trials(store, sweep.id)
    assert sorted(trial.intermediate_values) == list(range(0, 30, 10))


@pytest.mark.file_backends
def test_sweep_cancel_then_reopen_with_more_trials(store):
    spec = SweepSpec(objective="tests.objectives:quadratic", space=X_SPACE, metrics=["value:min"], n_trials=3)
    sweep = create_sweep(store, spec)
    assert run_worker(store, sweep.id, max_trials=1) == 1
    cancel_sweep(store, sweep.id)
    assert get_sweep(store, sweep.id).status == "cancelled"
    with pytest.raises(tracking.ValidationError, match="cancelled"):
        run_worker(store, sweep.id)
    reopen_sweep(store, sweep.id, add_trials=2)
    assert run_worker(store, sweep.id) == 4
    record = get_sweep(store, sweep.id)
    assert record.status == "complete" and record.finished == 5 and record.n_trials == 5


@pytest.mark.slow
@pytest.mark.file_backends
def test_sweep_four_worker_processes_finish_exactly_the_requested_trials(store, tmp_path):
    spec = SweepSpec(objective="tests.objectives:quadratic", space=X_SPACE, metrics=["value:min"], n_trials=24)
    sweep = create_sweep(store, spec)
    procs = launch_workers(store, sweep.id, 4, log_dir=tmp_path / "logs")
    codes = [p.wait(timeout=240) for p in procs]
    logs = "\n".join(f.read_text() for f in (tmp_path / "logs").iterdir())
    assert codes == [0, 0, 0, 0], logs
    assert "locked" not in logs and "Traceback" not in logs
    runs = list_runs(store, sweep_id=sweep.id)
    assert len(runs) == 24 and all(r.status == "complete" for r in runs)
    assert sorted(r.trial_number for r in runs) == list(range(24))
    assert len({r.id for r in runs}) == 24
    trials = _trials(store, sweep.id)
    assert len(trials) == 24 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert sum(len(metric_history(store, r.id)["curve"]) for r in runs) == 72  # no lost points
    assert get_sweep(store, sweep.id).status == "complete"


@pytest.mark.slow
@pytest.mark.file_backends
def test_sweep_worker_killed_mid_trial_leaves_no_running_run_after_resume(store, tmp_path, monkeypatch):
    sweep, proc, flag = _worker_inside_a_slow_trial(store, tmp_path, monkeypatch, n_trials=4)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert get_sweep(store, sweep.id).status == "interrupted"
    flag.unlink()
    run_worker(store, sweep.id)  # resume in this process
    runs = list_runs(store, sweep_id=sweep.id)
    assert not [r for r in runs if r.status == "running"]
    killed = [r for r in runs if r.status == "killed"]
    assert len(killed) == 1 and "stopped without finishing" in killed[0].error
    assert len(runs) == 4 and sum(r.status == "complete" for r in runs) == 3
    states = {t.number: t.state for t in _trials(store, sweep.id)}
    assert states[killed[0].trial_number] == optuna.trial.TrialState.FAIL
    assert optuna.trial.TrialState.RUNNING not in states.values()
    assert get_sweep(store, sweep.id).status == "complete"


@pytest.mark.slow
@pytest.mark.file_backends
def test_sweep_sigterm_ends_the_current_run_as_killed(store, tmp_path, monkeypatch):
    sweep, proc, _ = _worker_inside_a_slow_trial(store, tmp_path, monkeypatch, n_trials=2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) != 0
    (run,) = list_runs(store, sweep_id=sweep.id)
    assert run.status == "killed" and "interrupted" in run.error


def test_sweep_in_memory_store_is_refused():
    store = tracking.open_store("sqlite://")
    with pytest.raises(tracking.ValidationError, match="in-memory"):
        create_sweep(store, SweepSpec(model="knn", task="iris"))


def test_sweep_workers_started_from_another_folder_import_the_users_module(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a user's project folder: neither the package nor tests/ are here
    (tmp_path / "objective_mod.py").write_text("def f(params, run):\n    return params['x']\n")
    store = tracking.open_store()
    spec = SweepSpec(objective="objective_mod:f", space=X_SPACE, metrics=["value:min"], n_trials=1)
    sweep = create_sweep(store, spec)
    (proc,) = launch_workers(store, sweep.id, 1, log_dir=tmp_path / "logs")
    assert proc.wait(timeout=120) == 0, (tmp_path / "logs").iterdir().__next__().read_text()
    assert list_runs(store, sweep_id=sweep.id)[0].status == "complete"


@pytest.mark.slow
@pytest.mark.file_backends
def test_sweep_cancel_now_interrupts_the_running_trial(store, tmp_path, monkeypatch):
    sweep, proc, _ = _worker_inside_a_slow_trial(store, tmp_path, monkeypatch, n_trials=5)
    cancel_sweep(store, sweep.id, now=True)
    assert proc.wait(timeout=30) == 0
    (run,) = list_runs(store, sweep_id=sweep.id)
    assert run.status == "killed"
    assert get_sweep(store, sweep.id).status == "cancelled"
    (trial,) = _trials(store, sweep.id)
    assert trial.state == optuna.trial.TrialState.FAIL


@pytest.mark.slow
def test_sweep_cancel_now_reaches_a_worker_started_with_sigint_ignored(file_store, tmp_path, monkeypatch):
    """A dashboard started in the background by a script (`streamlit run app.py &`) ignores SIGINT, and so do the
    workers it launches: "stop now" must still interrupt their trial (it did nothing there before)."""
    saved = signal.signal(signal.SIGINT, signal.SIG_IGN)  # what the launcher's own process had
    try:
        sweep, proc, _ = _worker_inside_a_slow_trial(file_store, tmp_path, monkeypatch, n_trials=5)
    finally:
        signal.signal(signal.SIGINT, saved)
    cancel_sweep(file_store, sweep.id, now=True)
    assert proc.wait(timeout=60) == 0
    assert [r.status for r in list_runs(file_store, sweep_id=sweep.id)] == ["killed"]


def test_sweep_on_sqlite_keeps_optunas_journal_in_the_store(file_store, tmp_path):
    from sqlalchemy import select

    from tracking.store._tables import OptunaJournalEntry

    spec = SweepSpec(objective="tests.objectives:quadratic", space=X_SPACE, metrics=["value:min"], n_trials=3)
    sweep = create_sweep(file_store, spec)
    run_worker(file_store, sweep.id)
    assert sweep.optuna_storage == "store-journal"
    with file_store.connect() as conn:
        seqs = (
            conn.execute(select(OptunaJournalEntry.seq).where(OptunaJournalEntry.journal == sweep.study_name))
            .scalars()
            .all()
        )
    assert sorted(seqs) == list(range(len(seqs))) and len(seqs) > 3  # numbered without gaps
    assert [t.state.name for t in _trials(file_store, sweep.id)] == ["COMPLETE"] * 3
    assert not list(tmp_path.rglob("*.journal"))  # no journal file beside the store


def _study_trial_ids(store, sweep_id) -> dict[int, int]:
    """Optuna's own trial ids (its `trials` table) by trial number."""
    study = tracking.load_study(store, sweep_id)
    return {t.number: t._trial_id for t in study.get_trials(deepcopy=False)}


def _recovered(store, sweep_id, number):
    """Run a recovering worker in this process; the trial's state once it is no longer RUNNING."""
    run_worker(store, sweep_id)
    state = {t.number: t for t in _trials(store, sweep_id)}[number]
    return state if state.state != optuna.trial.TrialState.RUNNING else None


@pytest.mark.slow
@pytest.mark.postgres_only  # holds Optuna's trial row with a PostgreSQL row lock, so the worker dies inside its tell
def test_sweep_worker_killed_between_its_run_and_optuna_is_reconciled_on_postgresql(store, tmp_path, monkeypatch):
    """SIGKILL after the run was recorded complete but before Optuna heard of it: recovery completes the trial."""
    from sqlalchemy import create_engine, text

    sweep, proc, flag = _worker_inside_a_slow_trial(store, tmp_path, monkeypatch, n_trials=1)
    (run,) = list_runs(store, sweep_id=sweep.id)
    trial_id = _study_trial_ids(store, sweep.id)[run.trial_number]
    engine = create_engine(store.url)
    try:
        with engine.connect() as lock:
            lock.execute(text("SELECT trial_id FROM trials WHERE trial_id = :id FOR UPDATE"), {"id": trial_id})
            flag.unlink()  # the trial finishes: its run is recorded complete, then Optuna's tell waits for the lock
            wait_until(lambda: list_runs(store, sweep_id=sweep.id)[0].status == "complete", timeout=60,
                       what="the worker to record its run complete")  # fmt: skip
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            lock.rollback()
    finally:
        engine.dispose()
    (run,) = list_runs(store, sweep_id=sweep.id)
    assert {t.number: t.state for t in _trials(store, sweep.id)}[run.trial_number] == optuna.trial.TrialState.RUNNING
    trial = wait_until(lambda: _recovered(store, sweep.id, run.trial_number), timeout=60, what="recovery")
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.value == run.metrics["value"]
    assert run.status == "complete" and list_runs(store, sweep_id=sweep.id)[0].status == "complete"
    assert get_sweep(store, sweep.id).status == "complete" and get_sweep(store, sweep.id).finished == 1


@pytest.mark.file_backends
def test_sweep_trial_of_a_worker_dead_after_recording_its_run_ends_as_recorded(store, monkeypatch):
    """A worker that dies after recording its run complete, before telling Optuna: on every backend, a later
    worker tells the trial COMPLETE with the run's value, and the sweep still finishes exactly its trials."""
    spec = SweepSpec(objective="tests.objectives:quadratic", space=X_SPACE, metrics=["value:min"], n_trials=3)
    sweep = create_sweep(store, spec)
    tell = optuna.Study.tell

    def die_before_telling(study, trial, values=None, state=None, skip_if_finished=False):
        if state is None and values is not None:
            raise SystemExit("killed")  # the process ends here, after its run was committed
        return tell(study, trial, values, state, skip_if_finished)

    monkeypatch.setattr(optuna.Study, "tell", die_before_telling)
    with pytest.raises(SystemExit):
        run_worker(store, sweep.id)
    monkeypatch.setattr(optuna.Study, "tell", tell)
    (run,) = list_runs(store, sweep_id=sweep.id)
    assert run.status == "complete"
    trial = wait_until(lambda: _recovered(store, sweep.id, run.trial_number), timeout=60, what="recovery")
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.value == run.metrics["value"]
    runs = list_runs(store, sweep_id=sweep.id)
    trials = _trials(store, sweep.id)
    assert len(runs) == 3 and all(r.status == "complete" for r in runs)
    assert len(trials) == 3 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert get_sweep(store, sweep.id).status == "complete"


def _pruner_config(model: str, space: dict | None = None, folds: int = 5) -> dict:
    return {"pruner": "auto", "model": model, "space": space or FAMILIES[model].space, "folds": folds,
            "data": {"task_type": "classification"}}  # fmt: skip


def test_sweep_auto_pruner_fits_the_sweep_size():
    hist = _pruner_config("hist_gradient_boosting")  # max_iter 20..200: curves of about 110 steps
    assert isinstance(make_pruner(hist, 9), optuna.pruners.NopPruner)
    small = make_pruner(hist, 12)
    assert isinstance(small, optuna.pruners.PercentilePruner) and not isinstance(small, optuna.pruners.MedianPruner)
    assert (small._percentile, small._n_startup_trials, small._n_warmup_steps) == (75.0, 5, 55)
    large = make_pruner(hist, 120)
    assert isinstance(large, optuna.pruners.MedianPruner)
    assert (large._n_startup_trials, large._n_warmup_steps) == (20, 55)
    assert make_pruner(_pruner_config("knn", folds=4), 40)._n_warmup_steps == 2  # fold scores: half the folds
    fixed = _pruner_config("mlp", {"alpha": {"type": "float", "low": 1e-4, "high": 1e-2}})
    assert make_pruner(fixed, 40)._n_warmup_steps == 50  # the family's own max_iter, 100


@pytest.mark.slow
def test_sweep_with_the_default_pruner_completes_most_of_a_small_sweep(file_store):
    # Learning rates from 0.01 to 0.3: at the early steps the slow learners look worst, whatever they end at.
    space = {"max_iter": {"type": "int", "low": 20, "high": 60},
             "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True}}  # fmt: skip
    spec = SweepSpec(model="hist_gradient_boosting", task="breast_cancer", space=space, n_trials=12, folds=2)
    sweep = create_sweep(file_store, spec)
    assert (sweep.config["sampler"], sweep.config["pruner"]) == ("tpe", "auto")
    with threadpool_limits(1, user_api="openmp"):  # a worker's share of 2 cores; spinning OpenMP threads cost 5x
        run_worker(file_store, sweep.id)
    statuses = [run.status for run in list_runs(file_store, sweep_id=sweep.id)]
    assert len(statuses) == 12 and statuses.count("complete") > 6, statuses


@pytest.mark.parametrize("metric", ["accuracy", "balanced_accuracy", "f1_macro"])
def test_sweep_curve_score_equals_the_final_metric(metric):
    # Three labels, one never predicted and one predicted but absent from y: the cases macro F1 counts apart.
    classes = np.array(["a", "b", "c"])
    proba = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.4, 0.5, 0.1], [0.5, 0.4, 0.1]])
    y = np.array(["a", "b", "b", "a", "b"])
    assert curve_score(classes, proba, y, metric) == pytest.approx(_classification_scores(classes, proba, y)[metric])
