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
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.engine import Connection

from tracking._errors import NotFoundError, ValidationError
from tracking.governance import (
    Action,
    UserRecord,
    authorize,
    create_sweep_token,
    expire_sweep_tokens,
    record,
    require,
    why_not,
)
from tracking.ml import (
    COST_METRICS,
    DEFAULT_METRIC,
    FAMILIES,
    metric_direction,
    parse_space,
    task_metrics,
    to_grid,
)
from tracking.runs import (
    TaskData,
    get_or_create_experiment,
    live_workers,
    load_task,
    register_dataset,
    store_dataset,
)
from tracking.store import (
    Experiment,
    Run,
    RunStatus,
    Store,
    Sweep,
    SweepRecord,
    SweepStatus,
    Worker,
    bump_change_counter,
    journal_storage,
    utcnow,
)
from tracking.sweeps._samplers import PRUNERS, SAMPLERS

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the `tracking` package: the built-in objective's code


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
    pruner: str | None = None  # default: auto for one objective, none for several
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
    pruner = spec.pruner or ("none" if multi else "auto")
    if multi and pruner != "none":
        raise ValidationError("Pruning works with one objective only; use --pruner none for several metrics.")
    if multi and not SAMPLERS[spec.sampler][1]:
        raise ValidationError(f"The {spec.sampler} sampler handles one objective only; use nsga2, tpe or random.")
    if spec.sampler == "grid":
        to_grid(space)
    return data, space, objectives, pruner


def create_sweep(store: Store, spec: SweepSpec, actor: UserRecord | None = None) -> SweepRecord:
    """Validate a sweep, create its Optuna study and record it; workers are started separately.

    Raises:
        ValidationError: anything wrong with the spec, before anything is written.
        PermissionDenied: the actor may not launch sweeps.
    """
    import optuna

    require(store, actor, Action.sweep_launch)
    data, space, objectives, pruner = _validate(spec, store)
    if data is not None:
        store_dataset(store, data)  # by its sha256 in the artifact storage: any worker loads it from there
    study_name = f"tracking-{uuid.uuid4().hex}"
    storage_ref = "store-journal" if store.is_sqlite else "rdb"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(
        storage=study_storage(store, storage_ref, study_name),
        study_name=study_name,
        directions=[way for _, way in objectives],
    )
    dataset_id = register_dataset(store, data, actor) if data else None
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
        who = authorize(session, actor, Action.sweep_launch)
        row = Sweep(
            name=spec.name or "",
            experiment_id=experiment_id,
            dataset_version_id=dataset_id,
            config=config,
            study_name=study_name,
            optuna_storage=storage_ref,
            n_trials=spec.n_trials,
            owner=who if actor is not None else (spec.owner or who),
        )
        session.add(row)
        session.flush()
        if not row.name:
            what = spec.model or spec.objective.rsplit(":", 1)[-1]
            row.name = f"{what}-{data.name}-{row.id}" if data else f"{what}-{row.id}"
        record(session, who, "sweep.launch", "sweep", row.id, None,
               {"name": row.name, "n_trials": row.n_trials, "config": config})  # fmt: skip
        bump_change_counter(session)
        sweep_id = int(row.id)
    return get_sweep(store, sweep_id)


def study_storage(store: Store, ref: str, study_name: str) -> Any:
    """The Optuna storage a sweep's record names: `store-journal` (its journal in the SQLite store), `rdb`
    (Optuna's RDB storage in the PostgreSQL store's database) or `journal:PATH` (a journal file, older sweeps)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if ref == "store-journal":
        return journal_storage(store, study_name)
    if ref.startswith("journal:"):
        return optuna.storages.JournalStorage(JournalFileBackend(ref.split(":", 1)[1]))
    return optuna.storages.RDBStorage(store.url, engine_kwargs={"pool_pre_ping": True})


def optuna_storage(store: Store, sweep: int | SweepRecord) -> Any:
    """The Optuna storage that holds a sweep's study, for Optuna's own tools (`optuna.load_study`,
    optuna-dashboard, `optuna.copy_study`).

    On a SQLite store it is a `JournalStorage` over the store's `optuna_journal` table (one journal per
    sweep, holding only that sweep's study); on PostgreSQL it is Optuna's `RDBStorage` on the store's own
    database (every sweep's study). Either one pickles. Writing to it changes the sweep's Optuna state,
    not the runs: tell trials through the sweep's workers, not through this storage.

    Args:
        store: the tracking store.
        sweep: a sweep id or a `SweepRecord` (from `get_sweep` / `list_sweeps`).

    Raises:
        NotFoundError: there is no such sweep.
    """
    record = sweep if isinstance(sweep, SweepRecord) else get_sweep(store, int(sweep))
    return study_storage(store, record.optuna_storage, record.study_name)


def load_study(store: Store, sweep: int | SweepRecord) -> Any:
    """A sweep's `optuna.Study`, loaded from its storage: `study.trials`, `study.best_trial`,
    `study.trials_dataframe()`, `optuna.visualization.*(study)`.

    Args:
        store: the tracking store.
        sweep: a sweep id or a `SweepRecord`.

    Raises:
        NotFoundError: there is no such sweep.
    """
    import optuna

    record = sweep if isinstance(sweep, SweepRecord) else get_sweep(store, int(sweep))
    return optuna.load_study(
        study_name=record.study_name, storage=study_storage(store, record.optuna_storage, record.study_name)
    )


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
        # a sweep in the trash is found by its id only
        query = query.where(Sweep.id == sweep_id if sweep_id is not None else Sweep.trash_id.is_(None))
        query = query.order_by(Sweep.id.desc())
        if limit:
            query = query.limit(limit)
        sweeps = conn.execute(query).all()
        ids = [int(s.id) for s, _ in sweeps]
        counts: dict[int, dict[str, int]] = {i: {} for i in ids}
        for sid, status, n in conn.execute(
            select(Run.sweep_id, Run.status, func.count())
            .join(Sweep, Sweep.id == Run.sweep_id)
            .where(Run.sweep_id.in_(ids), _with_its_sweep())
            .group_by(Run.sweep_id, Run.status)
        ):
            counts[sid][status.value if hasattr(status, "value") else str(status)] = int(n)
        live = live_workers(conn, ids)
        best = _best_values(conn, [s for s, _ in sweeps])
        records = [_sweep_record(sweep, experiment, counts, live, best) for sweep, experiment in sweeps]
    return records


def _with_its_sweep() -> Any:
    """A sweep's runs that count: not in the trash, or gone to the trash with the sweep (shown on its page)."""
    return or_(Run.trash_id.is_(None), Run.trash_id == Sweep.trash_id)


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
        best_value=value, best_run_id=run_id, workers_at=sweep.workers_at,
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
            .where(or_(Run.trash_id.is_(None), Run.trash_id == sweep.trash_id))
            .order_by(order)
            .limit(1)
        ).first()
        if row is not None:
            out[sweep.id] = (float(row[1]), int(row[0]))
    return out


def cancel_sweep(store: Store, sweep_id: int, now: bool = False, actor: UserRecord | None = None) -> None:
    """Cancel a sweep: workers stop after their current trial, or with `now` interrupt it (that run
    ends `killed`). Finished trials are kept; the sweep ends `cancelled` once no trial runs.

    Raises:
        NotFoundError, ValidationError (already complete), PermissionDenied.
    """
    require(store, actor, Action.sweep_cancel)
    if get_sweep(store, sweep_id).status == "complete":
        raise ValidationError(f"Sweep {sweep_id} is already complete; there is nothing to cancel.")
    with store.connect(write=True) as conn:
        who = authorize(conn, actor, Action.sweep_cancel)
        conn.execute(update(Sweep).where(Sweep.id == sweep_id).values(cancel_requested=True, stop_now=now))
        record(conn, who, "sweep.cancel", "sweep", sweep_id, None, {"stop_now": now})
        bump_change_counter(conn)
    _settle(store, sweep_id)


def reopen_sweep(store: Store, sweep_id: int, add_trials: int = 0, actor: UserRecord | None = None) -> SweepRecord:
    """Clear a cancel request (and add trials) so that workers can continue the sweep.

    Raises:
        NotFoundError, ValidationError (negative trials), PermissionDenied.
    """
    if add_trials < 0:
        raise ValidationError("The number of trials to add cannot be negative.")
    before = get_sweep(store, sweep_id)
    with store.connect(write=True) as conn:
        who = authorize(conn, actor, Action.sweep_resume)
        record(conn, who, "sweep.resume", "sweep", sweep_id, {"status": before.status, "n_trials": before.n_trials},
               {"status": "running", "n_trials": before.n_trials + add_trials})  # fmt: skip
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


def resume_blockers(actor: UserRecord | None) -> list[str]:
    """Why `actor` cannot resume a sweep, add trials or run it again (empty: they can): resuming reopens the
    sweep (`reopen_sweep`) and starts workers (`launch_workers`), so it takes both permissions."""
    return list(
        dict.fromkeys(r for r in (why_not(actor, Action.sweep_resume), why_not(actor, Action.sweep_launch)) if r)
    )


def launch_workers(
    store: Store, sweep_id: int, count: int, log_dir: Path | None = None, actor: UserRecord | None = None
) -> list[subprocess.Popen]:
    """Start `count` worker processes in their own process sessions (they outlive the caller).

    On a store with accounts the workers get a token scoped to this sweep (it may only log and tag the
    sweep's runs, and ends with the sweep) in their environment, never on their command line, which any
    user of the machine can read; the launcher's own credentials are not passed on.

    Raises:
        NotFoundError, ValidationError (count below 1), PermissionDenied (the actor may not launch sweeps).
    """
    require(store, actor, Action.sweep_launch)
    if count < 1:
        raise ValidationError("The number of workers must be at least 1.")
    get_sweep(store, sweep_id)
    log_dir = log_dir or store.artifact_root.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join(p for p in (str(PACKAGE_DIR.parent), os.environ.get("PYTHONPATH")) if p)
    token = create_sweep_token(store, actor, sweep_id)
    inherited = {
        k: v for k, v in os.environ.items() if k not in ("TRACKING_USER", "TRACKING_PASSWORD", "TRACKING_TOKEN")
    }
    env = {
        **inherited,
        **({"TRACKING_TOKEN": token} if token else {}),
        "TRACKING_STORE_URL": store.url,
        "TRACKING_HOME": str(store.artifact_root.parent),
        "PYTHONPATH": path,  # the workers import this very package, whatever their working folder
    }
    if "OMP_NUM_THREADS" not in env:
        # OpenMP (histogram gradient boosting) spins a thread per core in every worker: two workers on two
        # cores each with two threads ran a trial 5x slower than with one thread each on a busy machine.
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // count))
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
            if k == 0:
                remember_workers_at(conn, sweep_id, {"executor": "local"})
            bump_change_counter(conn)
        procs.append(proc)
    return procs


def remember_workers_at(conn: Connection, sweep_id: int, where: dict[str, str]) -> None:
    """Record where a sweep's workers were last started (inside the caller's write transaction): its page offers
    the same place to Resume and Run again."""
    conn.execute(update(Sweep).where(Sweep.id == sweep_id).values(workers_at=where))


def worker_command(store: Store, sweep_id: int) -> str:
    """The command that joins this sweep from another machine."""
    return f"python -m tracking worker --sweep {sweep_id} --store '{store.display_url}'"


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
        expire_sweep_tokens(conn, sweep_id)  # a sweep's workers' token ends with the sweep


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
