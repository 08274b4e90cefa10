"""Widgets of the sweep pages: the launch form, live progress, the control buttons and the cached charts."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import streamlit as st

import tracking
from tracking.explore import escape_markdown, sweep_figure, trials_chart
from tracking.governance import UserRecord
from tracking.ml import (
    COST_METRICS,
    DEFAULT_METRIC,
    FAMILIES,
    TYPES,
    metric_direction,
    space_from_rows,
    space_rows,
    task_metrics,
)
from tracking.runs import BUILTIN_TASKS, preview_csv, save_upload
from tracking.sweeps import PRUNERS, SAMPLERS, SweepSpec, check_dask_target, start_workers
from ui.data import get_store, marker, sweep_runs

DEMO = SweepSpec(
    model="hist_gradient_boosting", task="breast_cancer", n_trials=24, folds=3, name="demo",
    experiment="demo", extra={"demo": True},
)  # fmt: skip
DEMO_WORKERS = 2


@st.cache_data(show_spinner=False, max_entries=32)
def _task_info(task: str | None, csv: str | None, target: str | None, sensitive: str | None) -> tuple[str, int, int]:
    data = tracking.load_task(task, csv, target, sensitive)
    return data.task_type, len(data.X), data.X.shape[1]


def data_section() -> dict[str, Any] | None:
    """Dataset choice; returns {task|csv, target, sensitive, task_type} or None while incomplete."""
    source = st.radio("Data", ["Built-in dataset", "Upload a CSV"], horizontal=True, key="data_source")
    if source == "Built-in dataset":
        task = st.selectbox("Dataset", sorted(BUILTIN_TASKS), index=sorted(BUILTIN_TASKS).index("breast_cancer"))
        task_type, rows, cols = _task_info(task, None, None, None)
        st.caption(f"{task}: {task_type}, {rows} rows, {cols} features")
        return {"task": task, "csv": None, "target": None, "sensitive": None, "task_type": task_type}
    upload = st.file_uploader("CSV file (UTF-8, with a header row)", type=["csv"], key="csv_upload")
    if upload is None:
        st.info("Upload a CSV file to choose its target column.")
        return None
    try:
        path = save_upload(get_store(), upload.getvalue(), upload.name)
        head, columns = preview_csv(path)
    except (tracking.ValidationError, tracking.IntegrityError) as err:
        st.error(escape_markdown(err))
        return None
    st.dataframe(head, hide_index=True, height=200)
    left, right = st.columns(2)
    target = left.selectbox("Target column", columns, index=len(columns) - 1, key="csv_target")
    others = ["(none)"] + [c for c in columns if c != target]
    sensitive = right.selectbox("Sensitive attribute (optional, for fairness checks)", others, key="csv_sensitive")
    sensitive = None if sensitive == "(none)" else sensitive
    try:
        task_type, rows, cols = _task_info(None, str(path), target, sensitive)
    except tracking.ValidationError as err:
        st.error(escape_markdown(err))
        return None
    st.caption(f"Detected task: **{task_type}** ({rows} rows, {cols} features)")
    return {"task": None, "csv": str(path), "target": target, "sensitive": sensitive, "task_type": task_type}


def metric_choices(task_type: str) -> list[str]:
    base = list(task_metrics(task_type))
    return [f"cv_{m}" for m in base] + [f"test_{m}" for m in base] + list(COST_METRICS)


def objective_section(task_type: str) -> list[str]:
    """One metric, or two for a Pareto sweep, each with its direction ("key:max")."""
    choices = metric_choices(task_type)
    left, right = st.columns(2)
    first = left.selectbox("Objective metric", choices, index=choices.index(DEFAULT_METRIC[task_type]))
    pareto = right.toggle("Second objective (Pareto front)", key="pareto")
    picked = [first]
    if pareto:
        rest = [c for c in choices if c != first]
        picked.append(right.selectbox("Second metric", rest, index=rest.index("predict_ms_per_row")))
    st.caption(" · ".join(f"{key}: {metric_direction(key, task_type)}" for key in picked))
    return [f"{key}:{'max' if metric_direction(key, task_type) == 'maximize' else 'min'}" for key in picked]


def space_section(family: str, task_type: str) -> tuple[dict[str, Any], dict[int, str]]:
    """The search-space editor, prefilled with the family's defaults, and its per-row problems."""
    st.markdown("**Search space** — one row per hyperparameter; add, remove or change rows.")
    frame = pd.DataFrame(space_rows(FAMILIES[family].space))
    edited = st.data_editor(
        frame,
        num_rows="dynamic",
        hide_index=True,
        key=f"space_editor_{family}_{task_type}",
        column_config={
            "parameter": st.column_config.TextColumn("parameter", required=True),
            "type": st.column_config.SelectboxColumn("type", options=list(TYPES), required=True),
            "low": st.column_config.NumberColumn("low", format="%g"),
            "high": st.column_config.NumberColumn("high", format="%g"),
            "log": st.column_config.CheckboxColumn("log scale"),
            "step": st.column_config.NumberColumn("step", format="%g"),
            "choices": st.column_config.TextColumn("choices (comma-separated)"),
        },
    )
    space, errors = space_from_rows(edited.to_dict("records"), FAMILIES[family].accepted_params(task_type))
    for message in errors.values():
        st.error(escape_markdown(message))
    return space, errors


def settings_section(multi: bool) -> dict[str, Any]:
    """Sampler, pruner, budget, workers, seed and names."""
    a, b, c, d = st.columns(4)
    samplers = [s for s, (_, handles_multi) in SAMPLERS.items() if handles_multi or not multi]
    sampler = a.selectbox("Sampler", samplers, index=samplers.index("nsga2" if multi else "tpe"))
    pruner = b.selectbox(
        "Pruner", ["none"] if multi else list(PRUNERS), disabled=multi, help="Pruning needs one objective."
    )
    trials = c.number_input("Trials", min_value=1, max_value=10_000, value=20, step=1)
    workers = d.number_input("Workers", min_value=1, max_value=16, value=2, step=1)
    e, f, g, h = st.columns(4)
    timeout = e.number_input("Timeout (s, 0 = none)", min_value=0, value=0, step=60)
    seed = f.number_input("Seed", min_value=0, value=0, step=1)
    folds = g.number_input("CV folds", min_value=2, max_value=20, value=5, step=1)
    experiment = h.text_input("Experiment", value="default")
    name = st.text_input("Sweep name (optional)", value="")
    return {
        "sampler": sampler, "pruner": pruner, "n_trials": int(trials), "workers": int(workers),
        "timeout": float(timeout) or None, "seed": int(seed), "folds": int(folds),
        "experiment": experiment.strip() or "default", "name": name.strip() or None,
    }  # fmt: skip


EXECUTOR_LABELS = {"local": "local processes", "dask": "a Dask cluster"}


def executor_section(
    key: str = "executor", disabled: bool = False, last: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Where the workers run: local processes (the default) or tasks on a Dask cluster, with the scheduler's
    address and the tracking server's URL (prefilled from TRACKING_DASK_SCHEDULER and TRACKING_SERVER_URL).
    `last`, where a sweep's workers last ran (`SweepRecord.workers_at`), is offered first, addresses included."""
    last = last or {}
    choices = list(EXECUTOR_LABELS)
    executor = st.radio("Run workers on", choices, format_func=EXECUTOR_LABELS.__getitem__, horizontal=True, key=key,
                        index=choices.index(last["executor"]) if last.get("executor") in choices else 0,
                        disabled=disabled)  # fmt: skip
    if executor != "dask":
        return {"executor": "local"}
    a, b = st.columns(2)
    scheduler = a.text_input("Dask scheduler", value=last.get("scheduler") or tracking.setting("TRACKING_DASK_SCHEDULER") or "",
                             placeholder="tcp://dask.internal:8786", key=f"{key}_scheduler", disabled=disabled)  # fmt: skip
    server = b.text_input("Tracking server URL", value=last.get("server_url") or tracking.setting("TRACKING_SERVER_URL") or "",
                          placeholder="http://tracking.internal:8765", key=f"{key}_server", disabled=disabled)  # fmt: skip
    st.caption(
        "The workers run as tasks on the cluster and log through the tracking server with a token valid for this "
        "sweep only; the cluster's machines need this package installed, not the database or its files."
    )
    return {"executor": "dask", "scheduler": scheduler.strip(), "server_url": server.strip()}


def start_where(sweep_id: int, workers: int, actor: UserRecord, where: dict[str, Any] | None) -> None:
    """Start a sweep's workers where the form says (local processes when `where` is None)."""
    start_workers(get_store(), sweep_id, workers, actor=actor, **(where or {}))


def launch(spec: SweepSpec, workers: int, actor: UserRecord, where: dict[str, Any] | None = None) -> None:
    """Create the sweep as `actor` (its owner), start its workers outside this page (as local processes, or
    where `where` says) and open its detail page."""
    store = get_store()
    try:
        if where and where.get("executor") == "dask":  # a missing address is said before the sweep is made
            check_dask_target(where.get("scheduler"), where.get("server_url"))
        sweep = tracking.create_sweep(store, spec, actor=actor)
        start_where(sweep.id, workers, actor, where)
    except tracking.TrackingError as err:
        st.error(escape_markdown(err))
        return
    st.switch_page("pages/sweep.py", query_params={"id": str(sweep.id)})


def elapsed_and_eta(sweep: Any) -> tuple[float | None, float | None]:
    """Seconds since the sweep started and a linear estimate of the seconds left."""
    if sweep.started_at is None:
        return None, None
    end = sweep.finished_at or datetime.now(UTC)
    elapsed = (end - sweep.started_at).total_seconds()
    done = sweep.finished
    if sweep.finished_at or done == 0:
        return elapsed, None if not sweep.finished_at else 0.0
    return elapsed, elapsed / done * max(sweep.n_trials - done, 0)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return time.strftime("%H:%M:%S", time.gmtime(seconds)) if seconds >= 60 else f"{seconds:.0f} s"


def history_figure(runs: list[Any], key: str, direction: str) -> Any:
    """Objective value per trial, with the best-so-far line: grows as trials finish (Optuna's optimisation history,
    drawn from the runs with Vega-Lite, which the browser loads far faster than Plotly)."""
    trials = [
        {"trial": r.trial_number, "value": r.metrics.get(key), "state": r.status, "run": r.id, "name": r.name}
        for r in runs
        if r.status in ("complete", "pruned")
    ]
    return trials_chart(trials, key, direction)


def progress_panel(sweep_id: int) -> None:
    """Live progress; polls every 2 s while the sweep runs and stops polling when it does not."""
    store = get_store()
    sweep = tracking.get_sweep(store, sweep_id)
    done, total = sweep.finished, sweep.n_trials
    st.progress(min(done / total, 1.0) if total else 1.0, text=f"{done} / {total} trials finished — {sweep.status}")
    counts = sweep.counts
    elapsed, eta = elapsed_and_eta(sweep)
    cols = st.columns(6)
    cols[0].metric("Running", counts.get("running", 0))
    cols[1].metric("Complete", counts.get("complete", 0))
    cols[2].metric("Pruned", counts.get("pruned", 0))
    cols[3].metric("Failed", counts.get("failed", 0) + counts.get("killed", 0))
    cols[4].metric("Elapsed", _duration(elapsed))
    cols[5].metric("Time left (est.)", _duration(eta))
    metrics = sweep.config["metrics"]
    runs = sweep_runs(sweep_id)
    best = next((r for r in runs if r.id == sweep.best_run_id), None)
    if best is not None:
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items())
        st.success(f"Best {escape_markdown(metrics[0]['key'])} = **{sweep.best_value:.5g}** (trial {best.trial_number}, "
                   f"[run {best.id}](run?id={best.id})) with {escape_markdown(params)}")  # fmt: skip
    if sweep.status in ("pending", "running"):  # once it ended, the Charts tab shows the same history
        chart = history_figure(runs, metrics[0]["key"], metrics[0]["direction"])
        st.altair_chart(chart, width="stretch", key=f"live-{marker()}")
    if st.session_state.get(f"live-{sweep_id}") != (sweep.status in ("pending", "running")):
        st.rerun()  # the sweep started or ended: redraw the page, which turns polling on or off


@st.cache_data(show_spinner=False, max_entries=64)
def _sweep_chart(url: str, sweep_id: int, title: str, state: int) -> Any:
    return sweep_figure(get_store(), sweep_id, title)


def show_chart(figure: Any, key: str) -> None:
    """Draw a chart of the sweep page: an Altair chart (the optimisation history, Vega-Lite: the browser loads it
    far faster than Plotly) or a Plotly figure (the analysis charts), as wide as the page."""
    if type(figure).__module__.startswith("altair"):
        st.altair_chart(figure, width="stretch", key=key)
    else:
        st.plotly_chart(figure, key=key)


def sweep_chart(sweep: Any, title: str) -> Any:
    """One chart of the sweep page (an Altair chart, a Plotly figure or why it is missing), drawn once per change of the sweep.

    The key is the sweep's own state (its status and each run's status and end), not the store's change
    marker: the importances and the contour of a finished sweep are computed once, whatever else is written
    to the store after."""
    runs = sweep_runs(sweep.id)  # cached on the store's change marker
    if title == "Optimisation history":  # the live chart's figure: from the runs, without loading Optuna's study
        metric = sweep.config["metrics"][0]
        return history_figure(runs, metric["key"], metric["direction"])
    state = hash((sweep.status, sweep.finished, tuple((r.id, r.status, r.finished_at) for r in runs)))
    return _sweep_chart(get_store().url, sweep.id, title, state)


def sweeps_table(sweeps: list[Any]) -> None:
    """Sweeps as a table: each links to its page, with a progress bar and the best value so far."""
    if not sweeps:
        st.info("No sweeps yet: launch one on the Sweeps page.")
        return
    table = pd.DataFrame(
        [
            {
                "sweep": f"/sweep?id={s.id}",
                "name": s.name,
                "status": s.status,
                "progress": s.finished / s.n_trials if s.n_trials else 0.0,
                "trials": f"{s.finished}/{s.n_trials}",
                "best": s.best_value,
                "objective": ", ".join(f"{m['key']} ({m['direction'][:3]})" for m in s.config["metrics"]),
                "owner": s.owner,
                "experiment": s.experiment,
                "started": s.started_at,
            }
            for s in sweeps
        ]
    )
    chosen = st.dataframe(
        table,
        hide_index=True,
        column_config={
            "sweep": st.column_config.LinkColumn("sweep", display_text=r"/sweep\?id=(\d+)"),
            "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0),
        },
        key="sweeps_table",
        on_select="rerun",
        selection_mode="single-row",
    )
    st.caption("Tick a row to open its sweep here; its link opens it in a new tab.")
    if chosen.selection.rows:  # a link column always opens a new tab; a ticked row opens the sweep in this one
        st.switch_page("pages/sweep.py", query_params={"id": str(sweeps[chosen.selection.rows[0]].id)})
