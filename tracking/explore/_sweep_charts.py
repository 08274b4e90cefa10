"""Charts of a sweep, drawn by `optuna.visualization` (Plotly figures) from the sweep's own study.

Each chart is a figure, or a sentence saying why it cannot be drawn yet (too few trials, one
parameter only, ...). The per-worker timeline comes from the store, where every run knows its worker.
The sweep page draws one chart at a time (`sweep_figure`), so a page never pays for the charts it does
not show; `sweep_figures` draws them all (e.g. for an export).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from tracking.store import Run, Store, SweepRecord, Worker, utcnow
from tracking.sweeps import get_sweep, load_study

# Optuna and Plotly are imported inside the functions that use them: `import tracking` stays light.

SWEEP_CHARTS = (
    "Optimisation history",
    "Learning curves",  # one objective
    "Pareto front",  # several objectives
    "Parameter importances",
    "Parallel coordinates",
    "Slice",
    "Contour",
    "Timeline by worker",
)
_NEEDS_TWO = "Not drawn yet: this chart needs at least two complete trials."


def sweep_chart_titles(sweep: SweepRecord) -> list[str]:
    """The charts of this sweep, in page order: learning curves for one objective, a Pareto front for several."""
    multi = len(sweep.config["metrics"]) > 1
    return [title for title in SWEEP_CHARTS if title != ("Learning curves" if multi else "Pareto front")]


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


def sweep_figure(store: Store, sweep_id: int, title: str, study: Any = None) -> Any:
    """One chart of the sweep detail page (a title of `sweep_chart_titles`): a Plotly figure or why it is missing.

    Raises:
        NotFoundError: there is no such sweep.
        ValueError: `title` is not one of the sweep's charts.
    """
    sweep = get_sweep(store, sweep_id)
    if title not in sweep_chart_titles(sweep):
        raise ValueError(f"A sweep has no chart {title!r}.")  # a bug: pages pick from sweep_chart_titles
    if title == "Timeline by worker":
        return worker_timeline(store, sweep_id)
    return _draw(sweep, study if study is not None else load_study(store, sweep), title)


def sweep_figures(store: Store, sweep_id: int) -> dict[str, Any]:
    """Every chart of the sweep detail page, by title: a Plotly figure or the reason it is missing."""
    sweep = get_sweep(store, sweep_id)
    study = load_study(store, sweep)
    return {title: sweep_figure(store, sweep_id, title, study) for title in sweep_chart_titles(sweep)}


def _draw(sweep: SweepRecord, study: Any, title: str) -> Any:
    import optuna
    import optuna.visualization as vis
    from optuna.trial import TrialState

    if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) < 2:
        return _NEEDS_TWO
    targets = _targets(sweep)
    multi = len(targets) > 1
    first_name, first_target = targets[0]
    kwargs = {"target": first_target, "target_name": first_name} if multi else {"target_name": first_name}
    if title == "Optimisation history":
        return _try(lambda: whole_number_axis(vis.plot_optimization_history(study, **kwargs), "x"))
    if title == "Learning curves":
        return _try(lambda: whole_number_axis(_learning_curves(vis, study), "x"))
    if title == "Pareto front":
        return _try(lambda: vis.plot_pareto_front(study, target_names=[name for name, _ in targets]))
    if title == "Parameter importances":
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        return _try(lambda: vis.plot_param_importances(study, evaluator=evaluator, **kwargs))
    if title == "Parallel coordinates":
        return _try(lambda: vis.plot_parallel_coordinate(study, **kwargs))
    if title == "Slice":
        return _try(lambda: vis.plot_slice(study, **kwargs))
    params = list(sweep.config["space"])
    if len(params) < 2:
        return "Not drawn: a contour plot needs two parameters."
    return _try(lambda: vis.plot_contour(study, params=params[:2], **kwargs))


def whole_number_axis(figure: Any, axis: str = "x") -> Any:
    """Ticks only at whole numbers on an axis of counts (trial numbers, steps): never a "trial 0.5"."""
    values = [v for trace in figure.data for v in (getattr(trace, axis, None) or ()) if isinstance(v, int | float)]
    span = max(values) - min(values) if values else 0
    ticks: dict[str, Any] = {"tickformat": "d"}
    if span <= 10:  # Plotly's own ticks over a short range fall between whole numbers
        ticks.update(tick0=0, dtick=1)
    (figure.update_xaxes if axis == "x" else figure.update_yaxes)(**ticks)
    return figure


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


_warmed = threading.Event()


def warm_chart_imports() -> None:
    """Import what the charts need (Altair, Optuna's plots, the importance evaluator's forest, Plotly Express) in a
    background thread, once per process: a server's first chart page then does not wait seconds for imports.
    A page that needs a module meanwhile waits for that one import only (Python's import lock), never twice."""
    if _warmed.is_set():
        return
    _warmed.set()

    def load() -> None:
        import importlib

        for name in ("altair", "optuna.visualization", "optuna.importance", "sklearn.ensemble", "plotly.express"):
            try:
                importlib.import_module(name)
            except Exception:  # a head start only: the page imports (and reports) what it needs itself
                return
            if name == "altair":  # its first chart loads and compiles Vega-Lite's schema: 1.5 s of CPU
                from tracking.explore._vega import warm_altair

                warm_altair()

    threading.Thread(target=load, name="warm-chart-imports", daemon=True).start()
