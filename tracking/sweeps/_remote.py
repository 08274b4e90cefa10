"""Sweeps over a tracking server: the server owns each study (Optuna's ask-and-tell), remote workers run
the objective.

`TrialService` is the server's side. It loads a sweep's study from its storage once, and for each remote
worker claims a trial slot exactly as a local worker does (the sweep row locked, the runs counted, `ask`,
the run inserted), answers each reported step with Optuna's pruning decision, and, when the worker ends the
run, tells Optuna its result. It recovers the trials of dead workers as local workers do, so exactly the
requested number of trials finish whichever kind of worker runs them.

`run_remote_worker` is the worker's side: it needs only the server's address and a token. It loads the
sweep's data locally (a built-in dataset, or the sweep's CSV by its sha256: from the object storage of
`TRACKING_ARTIFACTS_URL` when the worker has it, else sent by the server; checked against the sha256 the sweep
recorded either way), runs the same objective as a local worker, and logs through the server.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from tracking._errors import NotFoundError, PermissionDenied, ValidationError
from tracking._settings import setting
from tracking.governance import Action, UserRecord, authorize
from tracking.ml import to_distributions
from tracking.remote import ServerClient
from tracking.runs import RunClosed, TaskData, heartbeat_seconds, load_csv_content, stored_dataset
from tracking.runs._remote_run import RemoteHeartbeat, RemoteRun
from tracking.runs._remote_writes import write_batch
from tracking.store import Run, RunStatus, Store, Sweep, SweepStatus, bump_change_counter, open_blobs, utcnow
from tracking.sweeps._samplers import SAMPLERS, make_pruner
from tracking.sweeps._sweeps import PACKAGE_DIR, _settle, get_sweep, optuna_storage
from tracking.sweeps._worker import _claim, _load_sweep_data, _make_objective, _recover

# Optuna is imported inside the functions that use it: `import tracking` stays light.


@dataclass
class _Hosted:
    """One sweep's study as the server holds it."""

    study: Any
    config: dict[str, Any]
    distributions: dict[str, Any]
    keys: list[str]
    lock: threading.Lock = field(default_factory=threading.Lock)
    trials: dict[int, Any] = field(default_factory=dict)  # asked and not yet told, by trial number
    recovered_at: float = -math.inf


class TrialService:
    """The server's side of remote sweep workers; safe to use from the server's request threads."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._hosted: dict[int, _Hosted] = {}
        self._lock = threading.Lock()

    def _host(self, sweep_id: int) -> _Hosted:
        import optuna

        with self._lock:
            hosted = self._hosted.get(sweep_id)
            if hosted is None:
                sweep = get_sweep(self.store, sweep_id)
                config = sweep.config
                optuna.logging.set_verbosity(optuna.logging.WARNING)
                keys = [m["key"] for m in config["metrics"]]
                study = optuna.load_study(
                    study_name=sweep.study_name,
                    storage=optuna_storage(self.store, sweep),
                    sampler=SAMPLERS[config["sampler"]][0](config["seed"], config["space"], len(keys)),
                    pruner=make_pruner(config, sweep.n_trials),
                )
                hosted = _Hosted(study, config, to_distributions(config["space"]), keys)
                self._hosted[sweep_id] = hosted
            return hosted

    def join(self, sweep_id: int, actor: UserRecord | None) -> dict[str, Any]:
        """A worker joins: the sweep's config (it must not be cancelled); the sweep is marked running.

        Raises:
            NotFoundError, PermissionDenied, ValidationError (a cancelled sweep).
        """
        with self.store.connect() as conn:
            authorize(conn, actor, Action.run_log, sweep_id=sweep_id)
        sweep = get_sweep(self.store, sweep_id)
        if sweep.cancel_requested:
            raise ValidationError(
                f"Sweep {sweep_id} was cancelled; resume it with `python -m tracking resume {sweep_id}`."
            )
        with self.store.connect(write=True) as conn:
            conn.execute(
                update(Sweep)
                .where(Sweep.id == sweep_id, Sweep.status != SweepStatus.cancelled)
                .values(status=SweepStatus.running, started_at=func.coalesce(Sweep.started_at, utcnow()))
            )
            bump_change_counter(conn)
        return {"id": sweep.id, "name": sweep.name, "n_trials": sweep.n_trials, "config": sweep.config}

    def claim(
        self, sweep_id: int, worker_id: int, actor: UserRecord | None, provenance: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The next trial for a worker: `{"run_id", "number", "params"}`, or `{"run_id": None, "reason"}` when
        the sweep is full, cancelled or its grid is exhausted. The run records the worker's provenance (its
        code version and environment), in the transaction that claims it."""
        hosted = self._host(sweep_id)
        study, config = hosted.study, hosted.config
        with hosted.lock:  # one ask at a time per sweep in this server (the store locks across servers)
            if time.monotonic() - hosted.recovered_at >= heartbeat_seconds():
                _recover(self.store, study, sweep_id, hosted.keys)
                hosted.recovered_at = time.monotonic()
            if config["sampler"] == "grid" and study.sampler.is_exhausted(study):
                return {"run_id": None, "reason": "grid"}
            # the trial runs on the worker: the run records the worker's code version and environment
            claimed = _claim(self.store, sweep_id, worker_id, config["seed"], PACKAGE_DIR,
                             lambda: study.ask(hosted.distributions), actor, provenance)  # fmt: skip
            if claimed is None:  # the worker leaves: a dead worker's trial must not outlive the sweep's last claim
                _recover(self.store, study, sweep_id, hosted.keys)
                return {"run_id": None, "reason": "full"}
            run_id, trial = claimed
            hosted.trials[trial.number] = trial
        return {"run_id": run_id, "number": trial.number, "params": dict(trial.params)}

    def _trial_of(self, run_id: int, actor: UserRecord | None) -> tuple[_Hosted, Any]:
        from tracking.runs import check_open

        with self.store.connect() as conn:
            check_open(conn, run_id, actor)
            row = conn.execute(select(Run.sweep_id, Run.trial_number).where(Run.id == run_id)).one()
        if row.sweep_id is None or row.trial_number is None:
            raise ValidationError(f"Run {run_id} is not a trial of a sweep, so it has no steps to report to Optuna.")
        hosted = self._host(row.sweep_id)
        return hosted, row.trial_number

    def report(self, run_id: int, actor: UserRecord | None, step: int, value: float) -> bool:
        """Report an intermediate value of a trial to Optuna; whether the pruner stops the trial."""
        import optuna

        hosted, number = self._trial_of(run_id, actor)
        with hosted.lock:
            trial = hosted.trials.get(number)
            if trial is None:  # asked by an earlier server process: the trial is rebuilt from the storage
                frozen = hosted.study.get_trials(deepcopy=False)[number]
                trial = hosted.trials[number] = optuna.trial.Trial(hosted.study, frozen._trial_id)
            trial.report(value, step)
            return bool(trial.should_prune())

    def finish(
        self,
        run_id: int,
        actor: UserRecord | None,
        batch: str,
        points: list[tuple[str, int, float | None, float]],
        latest: Mapping[str, Any],
        status: RunStatus,
        error: str | None,
        values: list[float] | None,
    ) -> dict[str, Any]:
        """End a run with its last points; for a sweep's trial, tell Optuna the result. Safe to repeat."""
        import optuna

        with self.store.connect() as conn:
            row = conn.execute(select(Run.sweep_id, Run.trial_number).where(Run.id == run_id)).first()
        if row is None:
            raise NotFoundError(f"There is no run {run_id}.")
        trial_run = row.sweep_id is not None and row.trial_number is not None
        finite = bool(values) and all(isinstance(v, int | float) and math.isfinite(v) for v in values or ())
        if trial_run and status == RunStatus.complete and not finite:
            status, error = RunStatus.failed, f"The objective returned a value that is not a finite number: {values}."
        try:
            write_batch(self.store, run_id, actor, batch, points, latest, end=(status, error))
            closed = False
        except RunClosed:
            if not trial_run:
                raise
            closed = True  # ended meanwhile by someone else (killed after missed heartbeats): its record stands
        if not trial_run:
            return {"closed": closed}
        hosted = self._host(row.sweep_id)
        state = {RunStatus.complete: optuna.trial.TrialState.COMPLETE, RunStatus.pruned: optuna.trial.TrialState.PRUNED}
        with hosted.lock:
            hosted.trials.pop(row.trial_number, None)
            if closed or status not in state:
                hosted.study.tell(row.trial_number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            elif status == RunStatus.pruned:
                hosted.study.tell(row.trial_number, state=state[status], skip_if_finished=True)
            else:
                hosted.study.tell(row.trial_number, values if len(values) > 1 else values[0], skip_if_finished=True)
        return {"closed": closed}

    def settle(self, sweep_id: int, actor: UserRecord | None, finished_early: bool) -> None:
        """Set the sweep's final status once nothing of it runs (as a local worker does when it stops)."""
        with self.store.connect() as conn:
            authorize(conn, actor, Action.run_log, sweep_id=sweep_id)
        _settle(self.store, sweep_id, finished_early=finished_early)

    def csv_bytes(self, sweep_id: int, actor: UserRecord | None) -> bytes:
        """The sweep's CSV, as it was when the sweep was made (checked against its recorded sha256)."""
        with self.store.connect() as conn:
            authorize(conn, actor, Action.run_log, sweep_id=sweep_id)
        spec = get_sweep(self.store, sweep_id).config.get("data") or {}
        if not spec or spec.get("task"):
            raise NotFoundError(
                f"Sweep {sweep_id} trains on a built-in dataset or its own objective's data, not a CSV."
            )
        stored = stored_dataset(self.store, spec["sha256"])  # kept by hash (verified) for sweeps made since
        if stored is not None:
            return stored
        _load_sweep_data(get_sweep(self.store, sweep_id).config)  # refuses a file changed since the sweep began
        return Path(spec["csv"]).read_bytes()


# --- the worker's side ---


class _RemoteTrial:
    """What the objective sees of its Optuna trial: params, number, and pruning decided by the server."""

    def __init__(self, client: ServerClient, run_id: int, number: int, params: dict[str, Any]) -> None:
        self.client, self.run_id, self.number, self.params = client, run_id, number, params
        self._prune = False

    def report(self, value: float, step: int) -> None:
        answer = self.client.call("POST", f"/api/runs/{self.run_id}/report", json={"step": int(step),
                                  "value": float(value)}, repeatable=True)  # fmt: skip
        self._prune = bool(answer["prune"])

    def should_prune(self) -> bool:
        return self._prune


def _remote_data(client: ServerClient, sweep_id: int, config: Mapping[str, Any]) -> TaskData | None:
    spec = config.get("data")
    if not spec:
        return None
    if spec["task"]:
        return _load_sweep_data(config)
    raw = None
    if setting("TRACKING_ARTIFACTS_URL"):  # the worker reads the same object storage: the CSV by its hash, verified
        raw = open_blobs(setting("TRACKING_ARTIFACTS_URL"), None).get(spec["sha256"])
    if raw is None:
        raw = client.call("GET", f"/api/sweeps/{sweep_id}/data", repeatable=True, raw=True)
    # the recorded path keeps the dataset's name (the file's stem) and the path runs record
    data = load_csv_content(raw, spec["csv"], spec["target"], spec["sensitive"])
    if data.sha256 != spec["sha256"]:
        raise ValidationError(f"The CSV the server sent for sweep {sweep_id} does not match the sha256 the sweep "
                              "recorded; it was damaged on the way, so try again.")  # fmt: skip
    return data


def run_remote_worker(
    client: ServerClient,
    sweep_id: int,
    max_trials: int | None = None,
    on_stop_now: Callable[[], None] | None = None,
) -> int:
    """Run trials of a sweep through a tracking server until it has its requested number of finished trials,
    is cancelled, times out, or this worker ran `max_trials`. Returns how many trials this worker ran.

    A cancel "at once" interrupts the trial under way with a KeyboardInterrupt in the main thread, or by calling
    `on_stop_now` (which must raise KeyboardInterrupt in the thread running this function) when given.

    Raises:
        PermissionDenied: the token may not log this sweep's runs.
        ValidationError: the sweep was cancelled.
    """
    import optuna

    from tracking.runs._provenance import code_version, environment
    from tracking.sweeps._worker import objective_code_path

    sweep = client.call("POST", f"/api/sweeps/{sweep_id}/join")
    config = sweep["config"]
    data = _remote_data(client, sweep_id, config)
    metrics = [(m["key"], m["direction"]) for m in config["metrics"]]
    objective = _make_objective(config, data, metrics)
    provenance = {"code_version": code_version(objective_code_path(config)), "environment": environment()}
    beat = RemoteHeartbeat(client, sweep_id, interrupt=True, on_stop_now=on_stop_now)
    deadline = time.monotonic() + config["timeout"] if config.get("timeout") else None
    ran, reason = 0, "done"
    try:
        while max_trials is None or ran < max_trials:
            if deadline is not None and time.monotonic() >= deadline:
                reason = "timeout"
                break
            claimed = client.call("POST", f"/api/sweeps/{sweep_id}/trials",
                                  json={"worker_id": beat.worker_id, **provenance})  # fmt: skip
            if claimed["run_id"] is None:
                reason = claimed.get("reason", "full")
                break
            run = RemoteRun(client, int(claimed["run_id"]))
            trial = _RemoteTrial(client, run.id, int(claimed["number"]), claimed["params"])
            try:
                values = objective(trial, run)
            except optuna.TrialPruned:
                run.end(RunStatus.pruned)
            except (KeyboardInterrupt, SystemExit):
                run.end(
                    RunStatus.killed, error="The worker was interrupted during this trial.\n" + traceback.format_exc()
                )
                raise
            except Exception:
                run.end(RunStatus.failed, error=traceback.format_exc())
            else:
                run.end(RunStatus.complete, values=[float(v) for v in values])
            ran += 1
    except KeyboardInterrupt:
        if not beat.interrupted:  # Ctrl-C or SIGTERM here, not a "cancel now" from the server
            _quietly(beat.stop)
            raise
    _quietly(beat.stop)
    _quietly(lambda: client.call("POST", f"/api/sweeps/{sweep_id}/settle",
                                 json={"finished_early": reason in ("timeout", "grid")}, repeatable=True))  # fmt: skip
    return ran


def _quietly(call: Any) -> None:
    """The last calls of a worker: once its sweep has ended, its sweep token has ended too, and refusals are fine."""
    with contextlib.suppress(PermissionDenied):
        call()
