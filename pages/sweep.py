"""One sweep: live progress, control, charts and its trials (`?id=N`, `&view=` tab, `&chart=` chart)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pandas as pd
import streamlit as st

import tracking
from tracking.explore import escape_markdown, sweep_chart_titles
from tracking.governance import Action, why_not
from tracking.ml import space_rows
from tracking.sweeps import resume_blockers
from ui.address import query_id
from ui.data import get_store, sweep_runs
from ui.frame import in_frame
from ui.sweeps import executor_section, launch, progress_panel, show_chart, start_where, sweep_chart
from ui.trash import trash_block

user = in_frame()


def _control(*changes: Callable[[], object]) -> None:
    """Make the changes in order as the signed-in user and redraw, or show why the store refused one."""
    try:
        for change in changes:
            change()
    except tracking.TrackingError as err:
        st.error(escape_markdown(err))
        return
    st.rerun()


store = get_store()
sweep_id = query_id("sweep")
found = tracking.list_sweeps(store, sweep_id=sweep_id) if sweep_id is not None else []
sweep = found[0] if found else None
if sweep is None:
    st.title("Sweep")
    st.warning(f"There is no sweep {sweep_id}." if sweep_id is not None else "No sweep chosen.")
    st.page_link("pages/sweeps.py", label="All sweeps")
    st.stop()

st.title(f"Sweep {sweep.id}: {escape_markdown(sweep.name)}")
config = sweep.config
data = config.get("data") or {}
st.caption(
    escape_markdown(
        f"{config.get('model') or config.get('objective')} on {data.get('name', '–')} · "
        f"{', '.join(m['key'] + ' (' + m['direction'] + ')' for m in config['metrics'])} · sampler "
        f"{config['sampler']}, pruner {config['pruner']} · experiment {sweep.experiment} · owner {sweep.owner or '–'}"
    )
)

live = sweep.status in ("pending", "running")
st.session_state[f"live-{sweep.id}"] = live
st.fragment(lambda: progress_panel(sweep.id), run_every=2 if live else None)()


controls = st.columns([1, 1, 1, 1, 2], vertical_alignment="bottom")
if live and not sweep.cancel_requested:
    cannot = why_not(user, Action.sweep_cancel)
    if controls[0].button(
        "Cancel",
        disabled=bool(cannot),
        help=escape_markdown(cannot) if cannot else "Workers stop after their current trial.",
    ):
        _control(lambda: tracking.cancel_sweep(store, sweep.id, actor=user))
    if controls[1].button(
        "Stop now",
        disabled=bool(cannot),
        help=escape_markdown(cannot) if cannot else "Interrupt the trials under way (they end as killed).",
    ):
        _control(lambda: tracking.cancel_sweep(store, sweep.id, now=True, actor=user))
    if cannot:
        controls[4].caption(escape_markdown(cannot))
elif sweep.status in ("interrupted", "cancelled", "complete"):
    cannot = next(iter(resume_blockers(user)), None)
    # drawn below the buttons, read first; where the workers last ran comes first
    where = executor_section("resume_executor", disabled=bool(cannot), last=sweep.workers_at)
    workers = controls[0].number_input("Workers", min_value=1, max_value=16, value=2, disabled=bool(cannot))
    more = controls[1].number_input(
        "Add trials", min_value=0, value=0 if sweep.status != "complete" else 10, disabled=bool(cannot)
    )
    label = "Resume" if sweep.status != "complete" else "Add trials"
    if controls[2].button(
        label,
        disabled=bool(cannot) or (sweep.status == "complete" and more == 0),
        help=escape_markdown(cannot) if cannot else None,
    ):
        _control(
            lambda: tracking.reopen_sweep(store, sweep.id, add_trials=int(more), actor=user),
            lambda: start_where(sweep.id, int(workers), user, where),
        )
    if controls[3].button(
        "Run again",
        disabled=bool(cannot),
        help=escape_markdown(cannot) if cannot else "A new sweep with the same settings.",
    ):
        launch(tracking.spec_from_record(sweep, name=None), int(workers), user, where)
    if cannot:
        controls[4].caption(escape_markdown(cannot))
if sweep.cancel_requested and live:
    st.info("Cancel requested: the workers stop after their current trial.")
trash_block("sweep", sweep.id, user)

# Built only when opened: a code block loads the browser's syntax highlighter (1.5 MB of script to compile).
workers_box = st.expander("Run more workers on other machines", key="workers_box", on_change="rerun")
if workers_box.open:
    with workers_box:
        st.code(tracking.worker_command(store, sweep.id), language="bash")
        st.caption("Any machine with this repository and its requirements that reaches the store can join.")

# Lazy tabs bound to the address: only the open tab (and in it the chosen chart) is built, and a copied
# address reopens the same one. The header, progress and numbers above are on screen before any chart.
charts, trials, settings = st.tabs(["Charts", "Trials", "Settings"], key="view", bind="query-params")
if charts.open:
    with charts:
        titles = sweep_chart_titles(sweep)
        for tab, title in zip(st.tabs(titles, key="chart", bind="query-params"), titles, strict=True):
            if tab.open:
                with tab, st.spinner(f"Drawing {title.lower()}…"):
                    figure = sweep_chart(sweep, title)
                    if isinstance(figure, str):
                        st.caption(escape_markdown(figure))
                    else:
                        show_chart(figure, key=f"chart-{title}")
if trials.open:
    with trials:
        runs = sweep_runs(sweep.id)
        keys = [m["key"] for m in config["metrics"]]
        table = pd.DataFrame(
            [
                {"trial": r.trial_number, "run": f"run?id={r.id}", "status": r.status, **{k: r.metrics.get(k) for k in keys},
                 **{f"params.{k}": v for k, v in r.params.items()}, "started": r.started_at, "finished": r.finished_at}
                for r in runs
            ]
        )  # fmt: skip
        st.dataframe(
            table,
            hide_index=True,
            column_config={"run": st.column_config.LinkColumn("run", display_text=r"run\?id=(\d+)")},
        )
if settings.open:
    with settings:
        st.markdown("**Search space**")
        st.dataframe(pd.DataFrame(space_rows(config["space"])), hide_index=True)
        st.markdown("**Settings**")
        st.code(json.dumps({k: v for k, v in config.items() if k != "space"}, indent=2), language="json")
