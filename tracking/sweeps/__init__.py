"""Sweeps: an Optuna study whose every trial is logged as a run, and the worker processes that run it."""

from __future__ import annotations

from tracking.sweeps._dask import (
    EXECUTORS,
    DaskLaunch,
    check_dask_target,
    dask_worker_task,
    launch_dask_workers,
    start_workers,
)
from tracking.sweeps._remote import (
    TrialService,
    run_remote_worker,
)
from tracking.sweeps._samplers import PRUNERS, SAMPLERS, make_pruner
from tracking.sweeps._sweeps import (
    SweepSpec,
    cancel_sweep,
    create_sweep,
    get_sweep,
    launch_workers,
    list_sweeps,
    load_study,
    optuna_storage,
    reopen_sweep,
    resume_blockers,
    spec_from_record,
    study_storage,
    worker_command,
)
from tracking.sweeps._worker import (
    objective_code_path,
    run_worker,
)

__all__ = [
    "EXECUTORS",
    "PRUNERS",
    "SAMPLERS",
    "DaskLaunch",
    "SweepSpec",
    "TrialService",
    "cancel_sweep",
    "check_dask_target",
    "create_sweep",
    "dask_worker_task",
    "get_sweep",
    "launch_dask_workers",
    "launch_workers",
    "list_sweeps",
    "load_study",
    "make_pruner",
    "objective_code_path",
    "optuna_storage",
    "reopen_sweep",
    "resume_blockers",
    "run_remote_worker",
    "run_worker",
    "spec_from_record",
    "start_workers",
    "study_storage",
    "worker_command",
]
