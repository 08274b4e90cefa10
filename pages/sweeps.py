"""Sweeps: launch a new one from a form, and see every sweep with its progress."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import tracking
from tracking._families import families_for
from tracking._sweeps import SweepSpec
from ui.data import get_store
from ui.frame import in_frame
from ui.sweeps import data_section, launch, objective_section, owner, settings_section, space_section

in_frame()

st.title("Sweeps")


@st.fragment(run_every=3)
def sweep_list() -> None:
    sweeps = tracking.list_sweeps(get_store())
    if not sweeps:
        st.info("No sweeps yet: launch one below.")
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
                "objective": ", ".join(m["key"] for m in s.config["metrics"]),
                "owner": s.owner,
                "experiment": s.experiment,
                "started": s.started_at,
            }
            for s in sweeps
        ]
    )
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "sweep": st.column_config.LinkColumn("sweep", display_text=r"/sweep\?id=(\d+)"),
            "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0),
        },
    )


sweep_list()

st.header("Launch a sweep")
data = data_section()
if data is not None:
    task_type = data["task_type"]
    fits = families_for(task_type)
    family = st.selectbox("Model family", fits, key=f"family_{task_type}")
    metrics = objective_section(task_type)
    space, problems = space_section(family, task_type)
    settings = settings_section(multi=len(metrics) > 1)
    if st.button("Launch", type="primary", disabled=bool(problems), key="launch"):
        spec = SweepSpec(
            model=family, task=data["task"], csv=data["csv"], target=data["target"], sensitive=data["sensitive"],
            space=space, metrics=metrics, sampler=settings["sampler"], pruner=settings["pruner"],
            n_trials=settings["n_trials"], timeout=settings["timeout"], seed=settings["seed"],
            folds=settings["folds"], name=settings["name"], experiment=settings["experiment"], owner=owner(),
        )  # fmt: skip
        launch(spec, settings["workers"])
    if problems:
        st.caption("Fix the search space above to launch.")
