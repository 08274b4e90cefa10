"""Helpers for registry and approval tests: accounts of every role, and real runs with real models."""

from __future__ import annotations

from tracking.governance._access import UserRecord, authenticate, create_user
from tracking.runs._queries import list_runs
from tracking.store._db import Store
from tracking.store._records import RunRecord
from tracking.sweeps._sweeps import SweepSpec, create_sweep
from tracking.sweeps._worker import run_worker

PASSWORD = "s3cret-enough"
ROLES = ("admin", "viewer", "data_scientist", "engineer", "product_owner")
# A small, fast logistic regression space: a low C underfits, a high C fits well.
SPACE = {"C": {"type": "float", "low": 0.001, "high": 10.0, "log": True}}


def make_accounts(store: Store) -> dict[str, UserRecord]:
    """One account per role (named after it, password `PASSWORD`), each signed in: the records act as those
    accounts (a record built by hand, or read with `get_user`, cannot). The admin is created first."""
    create_user(store, None, "admin", "admin", PASSWORD)
    admin = authenticate(store, "admin", PASSWORD)
    for name, role in [(role, role) for role in ROLES[1:]] + [("data_scientist_2", "data_scientist")]:
        create_user(store, admin, name, role, PASSWORD)
    return {name: authenticate(store, name, PASSWORD) for name in (*ROLES, "data_scientist_2")}


def first_admin(store: Store, name: str = "root") -> UserRecord:
    """Create the store's first account (an admin, password `PASSWORD`) and sign it in."""
    create_user(store, None, name, "admin", PASSWORD)
    return authenticate(store, name, PASSWORD)


def fixed_c(value: float) -> dict:
    """A space with one value of C: a run whose model is known to fit well (high C) or underfit (tiny C)."""
    return {"C": {"type": "categorical", "choices": [value]}}


def trained_runs(
    store: Store,
    n_trials: int = 3,
    task: str = "loan_approval",
    actor: UserRecord | None = None,
    space: dict | None = None,
    sampler: str = "random",
) -> list[RunRecord]:
    """Complete runs of a real sweep (logistic regression on a bundled dataset), trained in this process."""
    space = space or SPACE
    spec = SweepSpec(model="logistic_regression", task=task, space=space, n_trials=n_trials, sampler=sampler,
                     pruner="none", folds=3)  # fmt: skip
    sweep = create_sweep(store, spec, actor=actor)
    run_worker(store, sweep.id, actor=actor)
    return [run for run in list_runs(store, sweep_id=sweep.id) if run.status == "complete"]


def good_and_bad(store: Store, actor: UserRecord | None = None, *values: float) -> list[RunRecord]:
    """Runs of one grid sweep over C, in the order given (default: 10, which fits well, then 0.0005, which
    underfits)."""
    values = values or (10.0, 0.0005)
    runs = trained_runs(store, len(values), actor=actor, space={"C": {"type": "categorical", "choices": list(values)}},
                        sampler="grid")  # fmt: skip
    return sorted(runs, key=lambda run: values.index(run.params["C"]))
