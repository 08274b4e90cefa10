"""Sweeps: an Optuna study whose every trial is logged as a run.

Optuna keeps its own state (a journal file beside a SQLite store, its RDB storage inside a
PostgreSQL store) and decides what to try; the tracking store keeps the record. A worker claims a
trial slot by inserting the trial's run inside a locked transaction that first counts the sweep's
runs, so any number of workers on any number of machines finish exactly the requested number of
trials. Trials are asked and told through Optuna's ask-and-tell interface; a worker that dies leaves
its run `running` until `fail_stale_runs` (heartbeats) ends it as killed and its Optuna trial as FAIL.
"""

from __future__ import annotations

import importlib
import inspect
import os
import socket
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from tracking._datasets import TaskData, load_task, register_dataset
from tracking._db import Store, bump_change_counter
from tracking._errors import NotFoundError, ValidationError
from tracking._families import FAMILIES
from tracking._liveness import Heartbeat, fail_stale_runs, grace_seconds, heartbeat_seconds, live_workers
from tracking._objective import (
    COST_METRICS,
    DEFAULT_METRIC,
    metric_direction,
    task_metrics,
    train_and_score,
)
from tracking._records import SweepRecord
from tracking._runs import ActiveRun, get_or_create_experiment, insert_run, run_row
from tracking._space import parse_space, to_distributions, to_grid
from tracking._tables import Experiment, Run, RunStatus, Sweep, SweepStatus, Worker, utcnow

PACKAGE_DIR = Path(__file__).resolve().parent
REPORT_EVERY = 10  # iterative learning curves go to Optuna's pruner every 10th iteration (all are logged)


def _tpe(seed: int, space: dict, n_objectives: int) -> Any:
    import optuna

    return optuna.samplers.TPESampler(seed=seed, multivariate=True)


def _random(seed: int, space: dict, n_objectives: int) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


def _cmaes(seed: int, space: dict, n_objectives: int) -> Any:
    import optuna

    return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)


def _grid(seed: int, space: dict, n_objectives: int) -> Any:
    import optuna

    class AskTellGridSampler(optuna.samplers.GridSampler):
        """Optuna's grid sampler without its `study.stop()` after the last point, which is only valid
        inside `study.optimize`; the worker asks `is_exhausted` before every trial instead."""

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return AskTellGridSampler(to_grid(space), seed=seed)


def _nsga2(seed: int, space: dict, n_objectives: int) -> Any:
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed)


# name -> (factory(seed, space, n_objectives), handles several objectives)
SAMPLERS: dict[str, tuple[Callable[[int, dict, int], Any], bool]] = {
    "tpe": (_tpe, True),
    "random": (_random, True),
    "cmaes": (_cmaes, False),
    "grid": (_grid, True),
    "nsga2": (_nsga2, True),
}


def _median() -> Any:
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)


def _hyperband() -> Any:
    import optuna

    return optuna.pruners.HyperbandPruner()


def _no_pruner() -> Any:
    import optuna

    return optuna.pruners.NopPruner()


PRUNERS: dict[str, Callable[[], Any]] = {"median": _median, "hyperband": _hyperband, "none": _no_pruner}


@dataclass(frozen=True)
class SweepSpec:
    """What a user asks for; `create_sweep` validates all of it before writing anything."""

    model: str | None = None
    task: str | None = None
    csv: str | None = None
    target: str | None = None
    sensitive: str | None = None
    objective: str | None = None  # "package.module:function" for a user's own objective
    space: Mapping[str, Any] | None = None
    metrics: Sequence[str] = ()  # "cv_f1_macro" or "name:max" / "name:min"
    sampler: str = "tpe"
    pruner: str | None = None  # default: median for one objective, none for several
    n_trials: int = 20
    timeout: float | None = None
    seed: int = 0
    folds: int = 5
    name: str | None = None
    experiment: str = "default"
    owner: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _parse_metrics(spec: SweepSpec, task_type: str | None) -> list[tuple[str, str]]:
    wanted = list(spec.metrics) or ([DEFAULT_METRIC[task_type]] if task_type and not spec.objective else ["value:min"])
    objectives = []
    for item in wanted:
        key, _, way = str(item).partition(":")
        key = key.strip()
        way = {"max": "maximize", "maximize": "maximize", "min": "minimize", "minimize": "minimize", "": None}.get(
            way.strip().lower(), "bad"
        )
        if way == "bad":
            raise ValidationError(f"In metric {item!r}, the direction must be 'max' or 'min'.")
        if not spec.objective:
            known = metric_direction(key, task_type or "")
            if known is None or key.startswith("val_"):
                names = [f"cv_{m}" for m in task_metrics(task_type or "")] + [
                    f"test_{m}" for m in task_metrics(task_type or "")
                ]
                raise ValidationError(
                    f"Unknown metric {key!r} for a {task_type} task; choose from: {', '.join(names + list(COST_METRICS))}."
                )
            way = way or known
        elif way is None:
            raise ValidationError(f"Give the direction of your objective's metric, e.g. '{key}:max' or '{key}:min'.")
        objectives.append((key, way))
    if len({key for key, _ in objectives}) != len(objectives):
        raise ValidationError("Each metric may be optimised only once.")
    return objectives


def import_objective(target: str) -> Callable[..., Any]:
    """Import `package.module:function`, with one clear sentence when that fails."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ValidationError(f"The objective {target!r} must look like 'package.module:function'.")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValidationError(f"Could not import the objective's module {module_name!r}: {err}.") from err
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValidationError(f"The module {module_name!r} has no function {attr!r}.")
    return fn


def _validate(spec: SweepSpec, store: Store) -> tuple[TaskData | None, dict[str, Any], list[tuple[str, str]], str]:
    if not isinstance(spec.n_trials, int) or spec.n_trials < 1:
        raise ValidationError(f"The number of trials must be a whole number of at least 1, not {spec.n_trials!r}.")
    if spec.timeout is not None and not spec.timeout > 0:
        raise ValidationError("The timeout must be a positive number of seconds.")
    if not 2 <= spec.folds <= 20:
        raise ValidationError("The number of CV folds must be between 2 and 20.")
    if spec.sampler not in SAMPLERS:
        raise ValidationError(f"Unknown sampler {spec.sampler!r}; choose from: {', '.join(SAMPLERS)}.")
    if spec.pruner is not None and spec.pruner not in PRUNERS:
        raise ValidationError(f"Unknown pruner {spec.pruner!r}; choose from: {', '.join(PRUNERS)}.")
    if store.is_sqlite and store.engine.url.database in (None, "", ":memory:"):
        raise ValidationError("Sweeps need a store file or server: an in-memory store cannot be shared by workers.")
    has_data = spec.task is not None or spec.csv is not None
    data = load_task(spec.task, spec.csv, spec.target, spec.sensitive) if has_data else None
    if spec.objective:
        import_objective(spec.objective)
        if spec.model:
            raise ValidationError("Give either a built-in model or your own objective, not both.")
        if not spec.space:
            raise ValidationError("Your own objective needs a search-space file (--space FILE).")
        space = parse_space(spec.space)
    else:
        if data is None:
            raise ValidationError("Give a dataset: a built-in task (--task) or a CSV file (--csv with --target).")
        if spec.model not in FAMILIES:
            raise ValidationError(f"Unknown model {spec.model!r}; choose from: {', '.join(FAMILIES)}.")
        family = FAMILIES[spec.model]
        if data.task_type not in family.tasks:
            fits = [n for n, f in FAMILIES.items() if data.task_type in f.tasks]
            raise ValidationError(
                f"The model {spec.model!r} does not do {data.task_type}; for this dataset choose from: {', '.join(fits)}."
            )
        space = parse_space(spec.space or family.space, family.accepted_params(data.task_type))
    objectives = _parse_metrics(spec, data.task_type if data else None)
    multi = len(objectives) > 1
    pruner = spec.pruner or ("none" if multi else "median")
    if multi and pruner != "none":
        raise ValidationError("Pruning works with one objective only; use --pruner none for several metrics.")
    if multi and not SAMPLERS[spec.sampler][1]:
        raise ValidationError(f"The {spec.sampler} sampler handles one objective only; use nsga2, tpe or random.")
    if spec.sampler == "grid":
        to_grid(space)
    return data, space, objectives, pruner


def create_sweep(store: Store, spec: SweepSpec) -> SweepRecord:
    """Validate a sweep, create its Optuna study and record it; workers are started separately.

    Raises:
        ValidationError: anything wrong with the spec, before anything is written.
    """
    import optuna

    data, space, objectives, pruner = _validate(spec, store)
    study_name = f"tracking-{uuid.uuid4().hex}"
    if store.is_sqlite:
        journal = store.artifact_root.parent / "optuna" / f"{study_name}.journal"
        journal.parent.mkdir(parents=True, exist_ok=True)
        storage_ref = f"journal:{journal}"
    else:
        storage_ref = "rdb"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(
        storage=_optuna_storage(store, storage_ref),
        study_name=study_name,
        directions=[way for _, way in objectives],
    )
    dataset_id = register_dataset(store, data) if data else None
    config = {
        "model": spec.model,
        "objective": spec.objective,
        "data": (
            {"task": spec.task, "csv": data.path, "target": data.target, "sensitive": data.sensitive_column,
             "name": data.name, "sha256": data.sha256, "task_type": data.task_type}
            if data else None
        ),
        "space": space,
        "metrics": [{"key": key, "direction": way} for key, way in objectives],
        "sampler": spec.sampler,
        "pruner": pruner,
        "timeout": spec.timeout,
        "seed": spec.seed,
        "folds": spec.folds,
        "cwd": os.getcwd(),
        **spec.extra,
    }  # fmt: skip
    experiment_id = get_or_create_experiment(store, spec.experiment)
    with store.session_scope(write=True) as session:
        row = Sweep(
            name=spec.name or "",
            experiment_id=experiment_id,
            dataset_version_id=dataset_id,
            config=config,
            study_name=study_name,
            optuna_storage=storage_ref,
            n_trials=spec.n_trials,
            owner=spec.owner,
        )
        session.add(row)
        session.flush()
        if not row.name:
            what = spec.model or spec.objective.rsplit(":", 1)[-1]
            row.name = f"{what}-{data.name}-{row.id}" if data else f"{what}-{row.id}"
        bump_change_counter(session)
        sweep_id = int(row.id)
    return get_sweep(store, sweep_id)


def _optuna_storage(store: Store, ref: str) -> Any:
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if ref.startswith("journal:"):
        return optuna.storages.JournalStorage(JournalFileBackend(ref.split(":", 1)[1]))
    return optuna.storages.RDBStorage(store.url, engine_kwargs={"pool_pre_ping": True})


def get_sweep(store: Store, sweep_id: int) -> SweepRecord:
    """A sweep with its progress. Raises NotFoundError."""
    found = list_sweeps(store, sweep_id=sweep_id)
    if not found:
        raise NotFoundError(f"There is no sweep {sweep_id}.")
    return found[0]


def list_sweeps(store: Store, sweep_id: int | None = None, limit: int | None = None) -> list[SweepRecord]:
    """Sweeps, newest first, with run counts by status, live workers and the best value so far."""
    with store.session_scope() as conn:
        query = select(Sweep, Experiment.name).join(Experiment, Sweep.experiment_id == Experiment.id)
        if sweep_id is not None:
            query = query.where(Sweep.id == sweep_id)
        query = query.order_by(Sweep.id.desc())
        if limit:
            query = query.limit(limit)
        sweeps = conn.execute(query).all()
        ids = [int(s.id) for s, _ in sweeps]
        counts: dict[int, dict[str, int]] = {i: {} for i in ids}
        for sid, status, n in conn.execute(
            select(Run.sweep_id, Run.status, func.count())
            .where(Run.sweep_id.in_(ids))
            .group_by(Run.sweep_id, Run.status)
        ):
            counts[sid][status.value if hasattr(status, "value") else str(status)] = int(n)
        live = live_workers(conn, ids)
        best = _best_values(conn, [s for s, _ in sweeps])
        records = [_sweep_record(sweep, experiment, counts, live, best) for sweep, experiment in sweeps]
    return records


def _sweep_record(sweep: Sweep, experiment: str, counts: dict, live: dict, best: dict) -> SweepRecord:
    status = sweep.status.value
    if status == "running" and not live.get(sweep.id):
        status = "interrupted"
    value, run_id = best.get(sweep.id, (None, None))
    return SweepRecord(
        id=sweep.id, name=sweep.name, experiment=experiment, status=status, n_trials=sweep.n_trials,
        config=sweep.config, study_name=sweep.study_name, optuna_storage=sweep.optuna_storage,
        owner=sweep.owner, created_at=sweep.created_at, started_at=sweep.started_at,
        finished_at=sweep.finished_at, cancel_requested=sweep.cancel_requested,
        counts=counts.get(sweep.id, {}), live_workers=int(live.get(sweep.id, 0)),
        best_value=value, best_run_id=run_id,
    )  # fmt: skip


def _best_values(conn: Any, sweeps: list[Sweep]) -> dict[int, tuple[Any, int | None]]:
    """Best value and its run per single-objective sweep (by the first metric and its direction)."""
    out: dict[int, tuple[Any, int | None]] = {}
    for sweep in sweeps:
        metrics = sweep.config.get("metrics") or []
        if len(metrics) != 1:
            continue
        key, way = metrics[0]["key"], metrics[0]["direction"]
        value_col = Run.metrics[key].as_float()
        order = value_col.desc() if way == "maximize" else value_col.asc()
        row = conn.execute(
            select(Run.id, value_col)
            .where(Run.sweep_id == sweep.id, Run.status == RunStatus.complete, value_col.is_not(None))
            .order_by(order)
            .limit(1)
        ).first()
        if row is not None:
            out[sweep.id] = (float(row[1]), int(row[0]))
    return out


def cancel_sweep(store: Store, sweep_id: int, now: bool = False) -> None:
    """Cancel a sweep: workers stop after their current trial, or with `now` interrupt it (that run
    ends `killed`). Finished trials are kept; the sweep ends `cancelled` once no trial runs.
    """
    if get_sweep(store, sweep_id).status == "complete":
        raise ValidationError(f"Sweep {sweep_id} is already complete; there is nothing to cancel.")
    with store.connect(write=True) as conn:
        conn.execute(update(Sweep).where(Sweep.id == sweep_id).values(cancel_requested=True, stop_now=now))
        bump_change_counter(conn)
    _settle(store, sweep_id)


def reopen_sweep(store: Store, sweep_id: int, add_trials: int = 0) -> SweepRecord:
    """Clear a cancel request (and add trials) so that workers can continue the sweep."""
    if add_trials < 0:
        raise ValidationError("The number of trials to add cannot be negative.")
    get_sweep(store, sweep_id)
    with store.connect(write=True) as conn:
        conn.execute(
            update(Sweep)
            .where(Sweep.id == sweep_id)
            .values(
                cancel_requested=False,
                stop_now=False,
                status=SweepStatus.running,
                finished_at=None,
                n_trials=Sweep.n_trials + add_trials,
            )
        )
        bump_change_counter(conn)
    return get_sweep(store, sweep_id)


def launch_workers(store: Store, sweep_id: int, count: int, log_dir: Path | None = None) -> list[subprocess.Popen]:
    """Start `count` worker processes in their own process sessions (they outlive the caller)."""
    if count < 1:
        raise ValidationError("The number of workers must be at least 1.")
    get_sweep(store, sweep_id)
    log_dir = log_dir or store.artifact_root.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join(p for p in (str(PACKAGE_DIR.parent), os.environ.get("PYTHONPATH")) if p)
    env = {
        **os.environ,
        "TRACKING_STORE_URL": store.url,
        "TRACKING_HOME": str(store.artifact_root.parent),
        "PYTHONPATH": path,  # the workers import this very package, whatever their working folder
    }
    procs = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for k in range(count):
        # Register the worker before it starts (it adopts the row), so the sweep shows as running at once.
        with store.session_scope(write=True) as session:
            row = Worker(sweep_id=sweep_id, host=socket.gethostname(), pid=os.getpid())
            session.add(row)
            session.flush()
            worker_id = int(row.id)
        log = open(log_dir / f"sweep-{sweep_id}-{stamp}-worker-{k}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            [sys.executable, "-m", "tracking", "worker", "--sweep", str(sweep_id)],
            env={**env, "TRACKING_WORKER_ID": str(worker_id)},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        with store.connect(write=True) as conn:
            conn.execute(update(Worker).where(Worker.id == worker_id).values(pid=proc.pid, last_seen=utcnow()))
            bump_change_counter(conn)
        procs.append(proc)
    return procs


def worker_command(store: Store, sweep_id: int) -> str:
    """The command that joins this sweep from another machine."""
    return f"python -m tracking worker --sweep {sweep_id} --store '{store.display_url}'"


# ---------------------------------------------------------------- the worker


def run_worker(store: Store, sweep_id: int, max_trials: int | None = None) -> int:
    """Run trials of a sweep until it has its requested number of finished trials, is cancelled,
    times out, or this worker ran `max_trials`. Returns how many trials this worker ran.
    """
    import optuna

    sweep = get_sweep(store, sweep_id)
    if sweep.cancel_requested:
        raise ValidationError(f"Sweep {sweep_id} was cancelled; resume it with `python -m tracking resume {sweep_id}`.")
    config = sweep.config
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _optuna_storage(store, sweep.optuna_storage)
    adopt = os.environ.get("TRACKING_WORKER_ID")  # set by launch_workers for the processes it starts
    beat = Heartbeat(
        store, sweep_id, interrupt_when=lambda: _stop_now(store, sweep_id), adopt=int(adopt) if adopt else None
    )
    try:
        data = _load_sweep_data(config)
        metrics = [(m["key"], m["direction"]) for m in config["metrics"]]
        sampler_factory = SAMPLERS[config["sampler"]][0]
        study = optuna.load_study(
            study_name=sweep.study_name,
            storage=storage,
            sampler=sampler_factory(config["seed"] + beat.worker_id, config["space"], len(metrics)),
            pruner=PRUNERS[config["pruner"]](),
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
        code_path = _code_path(config)
        recovered_at = -float("inf")
        try:
            while max_trials is None or ran < max_trials:
                if time.monotonic() - recovered_at >= heartbeat_seconds():  # a death shows only that often
                    _recover(store, study, sweep_id)
                    recovered_at = time.monotonic()
                if deadline is not None and time.monotonic() >= deadline:
                    reason = "timeout"
                    break
                if config["sampler"] == "grid" and study.sampler.is_exhausted(study):
                    reason = "grid"
                    break
                run_id = _claim(store, sweep_id, beat.worker_id, config["seed"], code_path)
                if run_id is None:
                    break
                _run_trial(store, study, run_id, distributions, objective, metrics)
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


def _load_sweep_data(config: Mapping[str, Any]) -> TaskData | None:
    spec = config.get("data")
    if not spec:
        return None
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


def _claim(store: Store, sweep_id: int, worker_id: int, seed: int, code_path: Path) -> int | None:
    """Insert the next trial's run if the sweep still has a free slot; None when it has not.

    The sweep row is locked first (FOR UPDATE on PostgreSQL; SQLite's write transactions are
    serialized already), so counting and inserting are one atomic step across all workers.
    """
    with store.connect(write=True) as conn:
        sweep = conn.execute(select(*_CLAIM_COLUMNS).where(Sweep.id == sweep_id).with_for_update()).one()
        if sweep.cancel_requested:
            return None
        taken = conn.execute(select(func.count()).select_from(Run).where(Run.sweep_id == sweep_id)).scalar_one()
        if taken >= sweep.n_trials:
            return None
        values = run_row(
            experiment_id=sweep.experiment_id,
            worker_id=worker_id,
            sweep_id=sweep_id,
            name=f"{sweep.name}-pending",
            dataset_version_id=sweep.dataset_version_id,
            seed=seed,
            code_path=code_path,
            owner=sweep.owner,
        )
        return insert_run(conn, values)


def _code_path(config: Mapping[str, Any]) -> Path:
    if config.get("objective"):
        module = importlib.import_module(config["objective"].split(":", 1)[0])
        return Path(inspect.getfile(module)).resolve().parent
    return PACKAGE_DIR


def _run_trial(
    store: Store, study: Any, run_id: int, distributions: dict, objective: Callable, metrics: list[tuple[str, str]]
) -> None:
    import optuna

    trial = study.ask(distributions)
    with store.connect(write=True) as conn:
        conn.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(trial_number=trial.number, name=f"trial-{trial.number}", params=dict(trial.params))
        )
        bump_change_counter(conn)
    run = ActiveRun(store, run_id)
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
    study.tell(trial, values if len(values) > 1 else values[0])


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


def _recover(store: Store, study: Any, sweep_id: int) -> None:
    """Fail the runs and Optuna trials of workers that died."""
    import optuna

    for stale in fail_stale_runs(store, sweep_id):
        if stale.trial_number is not None:
            study.tell(stale.trial_number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
    # A worker that died between `ask` and recording the trial number leaves an Optuna trial that no
    # run points at; once it is older than the grace period, nobody will finish it.
    cutoff = time.time() - grace_seconds()
    with store.connect() as conn:
        live_trials = {
            n for (n,) in conn.execute(
                select(Run.trial_number).where(Run.sweep_id == sweep_id, Run.status == RunStatus.running)
            )
        }  # fmt: skip
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        started = trial.datetime_start.timestamp() if trial.datetime_start else cutoff
        if trial.number not in live_trials and started < cutoff:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)


def _settle(store: Store, sweep_id: int, finished_early: bool = False) -> None:
    """Set the sweep's final status once nothing of it is running any more."""
    with store.session_scope(write=True) as conn:
        sweep = conn.execute(select(Sweep).where(Sweep.id == sweep_id).with_for_update()).scalar_one()
        counts = dict(
            conn.execute(select(Run.status, func.count()).where(Run.sweep_id == sweep_id).group_by(Run.status)).all()
        )
        running = counts.get(RunStatus.running, 0)
        finished = sum(n for status, n in counts.items() if status != RunStatus.running)
        if finished >= sweep.n_trials or (finished_early and running == 0 and not sweep.cancel_requested):
            status = SweepStatus.complete
        elif sweep.cancel_requested and running == 0:
            status = SweepStatus.cancelled
        else:
            return
        if sweep.status != status:
            conn.execute(update(Sweep).where(Sweep.id == sweep_id).values(status=status, finished_at=utcnow()))
            bump_change_counter(conn)


def spec_from_record(record: SweepRecord, **changes: Any) -> SweepSpec:
    """A new spec with the same settings as an existing sweep (for "run again")."""
    config = record.config
    data = config.get("data") or {}
    spec = SweepSpec(
        model=config.get("model"),
        task=data.get("task"),
        csv=None if data.get("task") else data.get("csv"),
        target=data.get("target") if not data.get("task") else None,
        sensitive=data.get("sensitive") if not data.get("task") else None,
        objective=config.get("objective"),
        space=config["space"],
        metrics=[f"{m['key']}:{'max' if m['direction'] == 'maximize' else 'min'}" for m in config["metrics"]],
        sampler=config["sampler"],
        pruner=config["pruner"],
        n_trials=record.n_trials,
        timeout=config.get("timeout"),
        seed=config["seed"],
        folds=config["folds"],
        experiment=record.experiment,
        owner=record.owner,
    )
    return SweepSpec(**{**asdict(spec), **changes})
