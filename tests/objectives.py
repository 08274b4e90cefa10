"""Users' own objectives for sweep tests (imported by worker processes as `tests.objectives:NAME`)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import optuna


def quadratic(params, run):
    """(x - 2)^2, logging a small learning curve."""
    for step in range(3):
        run.log_metric("curve", params["x"] * step, step=step)
    return (params["x"] - 2) ** 2


def two_objectives(params, run):
    """A trade-off: (x - 2)^2 against x^2."""
    return [(params["x"] - 2) ** 2, params["x"] ** 2]


def slow_while_flag(params, run):
    """Sleeps while the file named by SLOW_FLAG exists (a trial to kill mid-way), then quadratic."""
    flag = Path(os.environ.get("SLOW_FLAG", "/nonexistent"))
    while flag.exists():
        time.sleep(0.1)  # the behaviour under test: a trial that takes time (until the test removes the flag)
    return quadratic(params, run)


def prunes_positive(params, run, trial):
    """Reports a value; prunes every trial with x > 0."""
    trial.report(params["x"], 0)
    if params["x"] > 0:
        raise optuna.TrialPruned()
    return params["x"]


def fails_negative(params, run):
    """Raises for x < 0."""
    if params["x"] < 0:
        raise ValueError("x must not be negative")
    return params["x"]


def sum_of_params(params, run):
    """The sum of the numeric params, whatever their names (a space keyed by odd names)."""
    return float(sum(v for v in params.values() if isinstance(v, int | float)))
