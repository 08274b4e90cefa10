"""Charts of a sweep, drawn by `optuna.visualization` (Plotly figures) from the sweep's own study.

Each chart is a figure, or a sentence saying why it cannot be drawn yet (too few trials, one
parameter only, ...). The per-worker timeline comes from the store, where every run knows its worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from tracking.store import Run, Store, SweepRecord, Worker, utcnow
from tracking.sweeps import get_sweep, load_study

# Optuna and Plotly are imported inside the functions that use them: `import tracking` stays light.


def _targets(sweep: SweepRecord) -> list[tuple[str, Callable[[Any], float] | None]]:
    metrics = [m["key"] for m in sweep.config["metrics"]]
    if len(metrics) == 1:
        return [(metrics[0], None)]
    return [(key, (lambda t, i=i: t.values[i])) for i, key in enumerate(metrics)]


def _try(draw: Callable[[], Any]) -> Any:
    try:
        return draw()
    except (ValueError, RuntimeError, ZeroDivisionError, IndexError) as err:
        return f"Not drawn yet: {err}"


def sweep_figures(store: Store, sweep_id: int) -> dict[str, Any]:
    """Every chart of the sweep detail page, by title: a Plotly figure or the reason it is missing."""
    import optuna
    import optuna.visualization as vis
    from optuna.trial import TrialState

    sweep = get_sweep(store, sweep_id)
    study = load_study(store, sweep)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    figures: dict[str, Any] = {}
    targets = _targets(sweep)
    multi = len(targets) > 1
    if len(complete) < 2:
        reason = "Not drawn yet: these charts need at least two complete trials."
        return {title: reason for title in ("Optimisation history", "Parameter importances", "Parallel coordinates")}
    first_name, first_target = targets[0]
    kwargs = {"target": first_target, "target_name": first_name} if multi else {"target_name": first_name}
    figures["Optimisation history"] = _try(lambda: vis.plot_optimization_history(study, **kwargs))
    if not multi:
        figures["Learning curves"] = _try(lambda: _learning_curves(vis, study))
    else:
        names = [name for name, _ in targets]
        figures["Pareto front"] = _try(lambda: vis.plot_pareto_front(study, target_names=names))
    figures["Parameter importances"] = _try(
        lambda: vis.plot_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), **kwargs
        )
    )
    figures["Parallel coordinates"] = _try(lambda: vis.plot_parallel_coordinate(study, **kwargs))
    figures["Slice"] = _try(lambda: vis.plot_slice(study, **kwargs))
    params = list(sweep.config["space"])
    figures["Contour"] = (
        _try(lambda: vis.plot_contour(study, params=params[:2], **kwargs))
        if len(params) >= 2
        else "Not drawn: a contour plot needs two parameters."
    )
    figures["Timeline by worker"] = worker_timeline(store, sweep_id)
    return figures


def _learning_curves(vis: Any, study: Any) -> Any:
    """Optuna's intermediate-values plot, with pruned trials drawn dotted and named as pruned."""
    from optuna.trial import TrialState

    figure = vis.plot_intermediate_values(study)
    pruned = {f"Trial{t.number}" for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))}
    for trace in figure.data:
        if trace.name in pruned:
            trace.update(line={"dash": "dot"}, name=f"{trace.name} (pruned)", opacity=0.6)
    figure.update_layout(showlegend=True)
    return figure


def worker_timeline(store: Store, sweep_id: int) -> Any:
    """A Gantt chart of the sweep's trials, one row per worker process, coloured by status."""
    import plotly.express as px

    with store.connect() as conn:
        rows = conn.execute(
            select(Run.id, Run.trial_number, Run.status, Run.started_at, Run.finished_at, Worker.host, Worker.pid)
            .outerjoin(Worker, Run.worker_id == Worker.id)
            .where(Run.sweep_id == sweep_id)
            .order_by(Run.id)
        ).all()
    if not rows:
        return "Not drawn yet: no trial has started."

    now = utcnow()
    data = [
        {
            "worker": f"{host}:{pid}" if host else "?",
            "trial": trial,
            "run": run_id,
            "status": str(status.value if hasattr(status, "value") else status),
            "start": started,
            "end": finished or now,
        }
        for run_id, trial, status, started, finished, host, pid in rows
    ]
    colors = {
        "complete": "#2e7d32",
        "pruned": "#f9a825",
        "failed": "#c62828",
        "killed": "#6d4c41",
        "running": "#1565c0",
    }
    figure = px.timeline(
        data, x_start="start", x_end="end", y="worker", color="status", hover_data=["trial", "run"],
        color_discrete_map=colors, title="Trials per worker",
    )  # fmt: skip
    figure.update_yaxes(title=None)
    return figure
