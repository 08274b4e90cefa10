"""Optuna's samplers and pruners of a sweep, by the names a sweep spec uses, and the pruning rule sized to the sweep.

Optuna is imported inside the functions that use it: `import tracking` stays light.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tracking.ml import FAMILIES, curve_length, to_grid


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


# Pruning, sized to the sweep (README "Sweeps", Pruners). A pruner judges a trial by comparing its learning
# curve with the finished trials' at the same step, so it needs enough finished trials (start-up) and a curve
# that has settled (warm-up): early steps mostly measure the learning rate, not the final score.
SMALL_SWEEP = 10  # auto: a sweep of fewer trials is never pruned; it has too few to compare and little to save
LARGE_SWEEP = 30  # auto: from here the median pruner; below it only the worst quarter is pruned
MIN_TRIALS_AT_STEP = 3  # a step is judged only when at least this many trials reported it


def startup_trials(n_trials: int) -> int:
    """Finished trials a pruner waits for: a quarter of the sweep, at least 5 and at most 20."""
    return min(max(5, n_trials // 4), 20)


def warmup_steps(n_steps: int | None) -> int:
    """Steps of a trial's curve never pruned: the first half of its typical length (1 when unknown)."""
    return max(1, n_steps // 2) if n_steps else 1


def _auto(n_trials: int, n_steps: int | None) -> Any:
    import optuna

    if n_trials < SMALL_SWEEP:
        return optuna.pruners.NopPruner()
    if n_trials >= LARGE_SWEEP:
        return _median(n_trials, n_steps)
    # Optuna's percentile is the best share kept: 75 prunes a trial only when it is in the worst quarter
    return optuna.pruners.PercentilePruner(
        75.0, startup_trials(n_trials), warmup_steps(n_steps), n_min_trials=MIN_TRIALS_AT_STEP
    )


def _median(n_trials: int, n_steps: int | None) -> Any:
    import optuna

    return optuna.pruners.MedianPruner(startup_trials(n_trials), warmup_steps(n_steps), n_min_trials=MIN_TRIALS_AT_STEP)


def _hyperband(n_trials: int, n_steps: int | None) -> Any:
    import optuna

    return optuna.pruners.HyperbandPruner()


def _no_pruner(n_trials: int, n_steps: int | None) -> Any:
    import optuna

    return optuna.pruners.NopPruner()


# name -> factory(n_trials, typical number of steps of a trial's curve, or None when unknown)
PRUNERS: dict[str, Callable[[int, int | None], Any]] = {
    "auto": _auto,
    "median": _median,
    "hyperband": _hyperband,
    "none": _no_pruner,
}


def make_pruner(config: Mapping[str, Any], n_trials: int) -> Any:
    """The Optuna pruner of a sweep with this config and size."""
    n_steps = None
    if config.get("model") and config.get("data"):
        n_steps = curve_length(FAMILIES[config["model"]], config["space"], config["data"]["task_type"], config["folds"])
    return PRUNERS[config["pruner"]](n_trials, n_steps)
