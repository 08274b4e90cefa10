"""The sweep worker: claims trial slots, runs trials through Optuna's ask-and-tell, logs each as a run.

A worker claims a slot by inserting the trial's run inside a locked transaction that first counts the
sweep's runs, so any number of workers finish exactly the requested number of trials. It recovers the
trials of dead workers (their runs end `killed`, their Optuna trials `FAIL`) and honours the sweep's
cancel flag after each trial, or at once when the flag says so.

On a store with accounts a worker acts as the account of a credential: the sweep token its launch put in
`TRACKING_TOKEN` (or a person's own token, for a worker started by hand on another machine); every run it
claims and every write to it is checked against that credential.
"""

from __future__ import annotations

import importlib
import inspect
import math
import time
import traceback
from collections.abc import Callable, Mapping
from datetime import UTC
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from tracking._errors import ValidationError
from tracking._settings import setting
from tracking.governance import Action, UserRecord, actor_from_env, authorize
from tracking.ml import FAMILIES, task_metrics, to_distributions, train_and_score
from tracking.runs import (
    ActiveRun,
    Heartbeat,
    RunClosed,
    TaskData,
    fail_stale_runs,
    grace_seconds,
    heartbeat_seconds,
    insert_run,
    load_csv_content,
    load_task,
    run_row,
    stored_dataset,
)
from tracking.store import Run, RunStatus, Store, Sweep, SweepStatus, bump_change_counter, utcnow
from tracking.sweeps._samplers import SAMPLERS, make_pruner
from tracking.sweeps._sweeps import PACKAGE_DIR, _settle, get_sweep, import_objective, optuna_storage

# Optuna is imported inside the functions that use it: `import tracking` stays light.

REPORT_EVERY = 10  # iterative learning curves go to Optuna's pruner every 10th iteration (all are logged)


def run_worker(store: Store, sweep_id: int, max_trials: int | None = None, actor: UserRecord | None = None) -> int:
    """Run trials of a sweep until it has its requested number of finished trials, is cancelled,
    times out, or this worker ran `max_trials`. Returns how many trials this worker ran.

    Args:
        actor: who logs the trials on a store with accounts; default the account of `TRACKING_TOKEN`.

    Raises:
        PermissionDenied: no valid credential for this sweep on a store with accounts.
    """
    import optuna

    actor = actor or actor_from_env(store)
    with store.connect() as conn:
        authorize(conn, actor, Action.run_log, sweep_id=sweep_id)
    sweep = get_sweep(store, sweep_id)
    if sweep.cancel_requested:
        raise ValidationError(f"Sweep {sweep_id} was cancelled; resume it with `python -m tracking resume {sweep_id}`.")
    config = sweep.config
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna_storage(store, sweep)
    adopt = setting("TRACKING_WORKER_ID")  # set by launch_workers for the processes it starts
    beat = Heartbeat(
        store, sweep_id, interrupt_when=lambda: _stop_now(store, sweep_id), adopt=int(adopt) if adopt else None
    )
    try:
        data = _load_sweep_data(config, store)
        metrics = [(m["key"], m["direction"]) for m in config["metrics"]]
        sampler_factory = SAMPLERS[config["sampler"]][0]
        study = optuna.load_study(
            study_name=sweep.study_name,
            storage=storage,
            sampler=sampler_factory(config["seed"] + beat.worker_id, config["space"], len(metrics)),
            pruner=make_pruner(config, sweep.n_trials),
        )
        distributions = to_distributions(config["space"])
        objective = _make_objective(config, data, metrics)
        with store.connect(write=True) as conn:
            conn.execute(
                update(Sweep)
                .where(Sweep.id == sweep_id, Sweep.status != SweepStatus.cancelled)
                .values(status=SweepStatus.running, started_at=func.coalesce(Sweep.started_at, utcnow()))
            )
            bump_change_counter(conn)
        deadline = time.monotonic() + config["timeout"] if config.get("timeout") else None
        ran = 0
        reason = "done"
        code_path = objective_code_path(config)
        recovered_at = -float("inf")
        try:
            while max_trials is None or ran < max_trials:
                if time.monotonic() - recovered_at >= heartbeat_seconds():  # a death shows only that often
                    _recover(store, study, sweep_id, [key for key, _ in metrics])
                    recovered_at = time.monotonic()
                if deadline is not None and time.monotonic() >= deadline:
                    reason = "timeout"
                    break
                if config["sampler"] == "grid" and study.sampler.is_exhausted(study):
                    reason = "grid"
                    break
                claimed = _claim(
                    store, sweep_id, beat.worker_id, config["seed"], code_path, lambda: study.ask(distributions), actor
                )
                if claimed is None:  # leaving: a dead worker's trial must not outlive the sweep's last claim
                    _recover(store, study, sweep_id, [key for key, _ in metrics])
                    break
                _run_trial(store, study, *claimed, objective, actor)
                ran += 1
        except KeyboardInterrupt:
            _end_own_runs(store, beat.worker_id)  # a run claimed but not yet started, if any
            if not beat.interrupted:  # Ctrl-C or SIGTERM here, not a "cancel now" from the store
                _settle(store, sweep_id)
                raise
        _settle(store, sweep_id, finished_early=reason in ("timeout", "grid"))
        return ran
    finally:
        beat.stop()


def _end_own_runs(store: Store, worker_id: int) -> None:
    with store.connect(write=True) as conn:
        conn.execute(
            update(Run)
            .where(Run.worker_id == worker_id, Run.status == RunStatus.running)
            .values(status=RunStatus.killed, finished_at=utcnow(), error="The worker was interrupted.")
        )
        bump_change_counter(conn)


def _stop_now(store: Store, sweep_id: int) -> bool:
    with store.connect() as conn:
        return bool(conn.execute(select(Sweep.stop_now).where(Sweep.id == sweep_id)).scalar_one())


def _load_sweep_data(config: Mapping[str, Any], store: Store | None = None) -> TaskData | None:
    """The sweep's dataset: a CSV by its sha256 from the artifact storage (verified) when it is kept there, else
    from its recorded path (sweeps made before CSVs were kept by hash), checked against the recorded sha256."""
    spec = config.get("data")
    if not spec:
        return None
    if not spec["task"] and store is not None:
        raw = stored_dataset(store, spec["sha256"])
        if raw is not None:
            return load_csv_content(raw, spec["csv"], spec["target"], spec["sensitive"])
    data = load_task(spec["task"], None if spec["task"] else spec["csv"], spec["target"], spec["sensitive"])
    if data.sha256 != spec["sha256"]:
        raise ValidationError(
            f"The dataset {spec['name']!r} changed since the sweep was created (sha256 {data.sha256[:12]}… instead "
            f"of {spec['sha256'][:12]}…); start a new sweep for the new data."
        )
    return data


_CLAIM_COLUMNS = (
    Sweep.cancel_requested, Sweep.n_trials, Sweep.experiment_id, Sweep.dataset_version_id, Sweep.name, Sweep.owner
)  # fmt: skip


def _claim(
    store: Store,
    sweep_id: int,
    worker_id: int,
    seed: int,
    code_path: Path,
    ask: Callable[[], Any],
    actor: UserRecord | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> tuple[int, Any] | None:
    """Ask Optuna for the next trial and insert its run, if the sweep still has a free slot.

    The sweep row is locked first (FOR UPDATE on PostgreSQL; SQLite's write transactions are
    serialized already), so counting, asking and inserting are one atomic step across all workers.
    Returns (run id, trial), or None when the sweep is full or cancelled. `provenance` (a remote worker's
    code version and environment) replaces this process's on the run.
    """
    with store.connect(write=True) as conn:
        sweep = conn.execute(select(*_CLAIM_COLUMNS).where(Sweep.id == sweep_id).with_for_update()).one()
        if sweep.cancel_requested:
            return None
        taken = conn.execute(select(func.count()).select_from(Run).where(Run.sweep_id == sweep_id)).scalar_one()
        if taken >= sweep.n_trials:
            return None  # before the credential check: a full sweep has ended, and its workers' token with it
        authorize(conn, actor, Action.run_log, sweep_id=sweep_id)
        # On a SQLite store Optuna's journal is in this transaction too, so trial and run commit together;
        # with the RDB storage (PostgreSQL) an insert that fails leaves a trial that `_recover` fails later.
        trial = ask()
        values = run_row(
            experiment_id=sweep.experiment_id,
            worker_id=worker_id,
            params=trial.params,
            name=f"trial-{trial.number}",
            sweep_id=sweep_id,
            trial_number=trial.number,
            dataset_version_id=sweep.dataset_version_id,
            seed=seed,
            code_path=code_path,
            owner=sweep.owner,
        )
        if provenance is not None:
            env = dict(provenance.get("environment") or {})
            values |= {
                "code_version": provenance.get("code_version"),
                "environment": env,
                "host": str(env.get("host", "")),
            }
        return insert_run(conn, values), trial


def objective_code_path(config: Mapping[str, Any]) -> Path:
    if config.get("objective"):
        module = importlib.import_module(config["objective"].split(":", 1)[0])
        return Path(inspect.getfile(module)).resolve().parent
    return PACKAGE_DIR


def _run_trial(
    store: Store, study: Any, run_id: int, trial: Any, objective: Callable, actor: UserRecord | None = None
) -> None:
    import optuna

    try:
        _trial(store, study, run_id, trial, objective, actor)
    except RunClosed:  # ended meanwhile by someone else (killed after missed heartbeats): its record stands
        study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)


def _trial(store: Store, study: Any, run_id: int, trial: Any, objective: Callable, actor: UserRecord | None) -> None:
    import optuna

    run = ActiveRun(store, run_id, actor)
    try:
        values = objective(trial, run)
    except optuna.TrialPruned:
        run.end(RunStatus.pruned)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return
    except (KeyboardInterrupt, SystemExit):
        run.end(RunStatus.killed, error="The worker was interrupted during this trial.\n" + traceback.format_exc())
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    except Exception:
        run.end(RunStatus.failed, error=traceback.format_exc())
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return
    if any(v is None or v != v or abs(v) == float("inf") for v in values):
        run.end(RunStatus.failed, error=f"The objective returned a value that is not a finite number: {values}.")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return
    run.end(RunStatus.complete)
    # skip_if_finished: a worker recovering a (wrongly) silent one may have told this trial as recorded
    study.tell(trial, values if len(values) > 1 else values[0], skip_if_finished=True)


def _make_objective(config: Mapping[str, Any], data: TaskData | None, metrics: list[tuple[str, str]]) -> Callable:
    """The function (trial, run) -> objective values for this sweep."""
    import optuna

    single = len(metrics) == 1
    if config.get("objective"):
        user_fn = import_objective(config["objective"])
        accepts = inspect.signature(user_fn).parameters

        def user_objective(trial: Any, run: ActiveRun) -> list[float]:
            extra = {k: v for k, v in (("trial", trial), ("data", data)) if k in accepts}
            result = user_fn(dict(trial.params), run, **extra)
            values = [float(v) for v in (result if isinstance(result, list | tuple) else [result])]
            if len(values) != len(metrics):
                raise ValueError(f"The objective returned {len(values)} values for {len(metrics)} metrics.")
            run.log_metrics({key: v for (key, _), v in zip(metrics, values, strict=True)})
            return values

        return user_objective

    family = FAMILIES[config["model"]]
    first = metrics[0][0]
    base = first.split("_", 1)[1] if first.startswith(("cv_", "test_")) else None
    primary = base or next(iter(task_metrics(data.task_type)))
    prune = single and base is not None

    def builtin_objective(trial: Any, run: ActiveRun) -> list[float]:
        def on_step(key: str, step: int, value: float) -> None:
            run.log_metric(key, value, step=step)
            if prune and (not family.iterative or step % REPORT_EVERY == 0) and value == value:
                trial.report(value, step)
                if trial.should_prune():
                    raise optuna.TrialPruned()

        result = train_and_score(data, family, dict(trial.params), config["seed"], primary, on_step, config["folds"])
        for key, history in result.histories.items():
            for step, value in enumerate(history):
                run.log_metric(key, value, step=step)
        run.log_metrics(result.metrics)
        run.log_artifact(result.model_bytes, name="model", kind="model")
        return [result.metrics[key] for key, _ in metrics]

    return builtin_objective


def _recover(store: Store, study: Any, sweep_id: int, keys: list[str]) -> None:
    """Make Optuna agree with the store about the trials of workers that died.

    A dead worker's running run ends `killed` and its trial `FAIL`. A worker killed after its run was
    recorded but before Optuna was told (the two are separate commits: on PostgreSQL, separate database
    connection) leaves a RUNNING trial beside a finished run: the store's record wins, so the trial ends
    as its run did (COMPLETE with the run's objective values, PRUNED, or FAIL), and the sweep still finishes
    exactly its requested number of trials, each counted once on both sides. A trial that no run points at
    (the worker died between `ask` and recording it) fails once it is older than the grace period.
    """
    import optuna

    for stale in fail_stale_runs(store, sweep_id):
        if stale.trial_number is not None:
            study.tell(stale.trial_number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    if not running:
        return
    cutoff = time.time() - grace_seconds()
    with store.connect() as conn:
        runs = {
            row.trial_number: row
            for row in conn.execute(
                select(Run.trial_number, Run.status, Run.metrics, Run.finished_at).where(
                    Run.sweep_id == sweep_id, Run.trial_number.in_([t.number for t in running])
                )
            )
        }
    for trial in running:
        run = runs.get(trial.number)
        if run is None:
            started = trial.datetime_start.timestamp() if trial.datetime_start else cutoff
            if started < cutoff:
                study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        elif run.status != RunStatus.running and _timestamp(run.finished_at) < cutoff:  # its worker would have told
            _tell_as_recorded(study, trial.number, RunStatus(run.status), run.metrics or {}, keys)


def _timestamp(moment: Any) -> float:
    if moment is None:
        return -float("inf")
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _tell_as_recorded(study: Any, number: int, status: RunStatus, metrics: Mapping[str, Any], keys: list[str]) -> None:
    """Finish an Optuna trial the way the store recorded its run."""
    import optuna

    values = [metrics.get(key) for key in keys]
    if status == RunStatus.complete and all(isinstance(v, int | float) and math.isfinite(v) for v in values):
        study.tell(number, values if len(values) > 1 else values[0], skip_if_finished=True)
    elif status == RunStatus.pruned:
        study.tell(number, state=optuna.trial.TrialState.PRUNED, skip_if_finished=True)
    else:
        study.tell(number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
