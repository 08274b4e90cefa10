"""Sweeps: launch a new one from a form, and see every sweep with its progress."""

from __future__ import annotations

import streamlit as st

import tracking
from tracking.explore import escape_markdown
from tracking.governance import Action, why_not
from tracking.ml import families_for
from tracking.sweeps import SweepSpec
from ui.data import get_store
from ui.frame import in_frame
from ui.sweeps import (
    data_section,
    executor_section,
    launch,
    objective_section,
    settings_section,
    space_section,
    sweeps_table,
)

user = in_frame()

st.title("Sweeps")


def _live(sweeps: list) -> bool:
    return any(s.status in ("pending", "running") for s in sweeps)


sweeps = tracking.list_sweeps(get_store())


@st.fragment(run_every=3 if _live(sweeps) else None)  # polls only while a sweep runs
def sweep_list() -> None:
    current = tracking.list_sweeps(get_store())
    if _live(current) != _live(sweeps):
        st.rerun()  # a sweep started or ended: redraw the page, which turns polling on or off
    sweeps_table(current)


sweep_list()

st.header("Launch a sweep")
if reason := why_not(user, Action.sweep_launch):  # said first, in place of a form that could not be sent
    st.info(
        f"{escape_markdown(reason)} You can follow every sweep above; an admin can give your account a role "
        "that launches sweeps.",
        icon=":material/visibility:",
    )
    st.stop()
data = data_section()
if data is not None:
    task_type = data["task_type"]
    fits = families_for(task_type)
    family = st.selectbox("Model family", fits, key=f"family_{task_type}")
    metrics = objective_section(task_type)
    space, problems = space_section(family, task_type)
    settings = settings_section(multi=len(metrics) > 1)
    where = executor_section()
    if st.button("Launch", type="primary", disabled=bool(problems), key="launch"):
        spec = SweepSpec(
            model=family, task=data["task"], csv=data["csv"], target=data["target"], sensitive=data["sensitive"],
            space=space, metrics=metrics, sampler=settings["sampler"], pruner=settings["pruner"],
            n_trials=settings["n_trials"], timeout=settings["timeout"], seed=settings["seed"],
            folds=settings["folds"], name=settings["name"], experiment=settings["experiment"],
        )  # fmt: skip
        launch(spec, settings["workers"], user, where)  # the library checks the role again, inside its transaction
    if problems:
        st.caption("Fix the search space above to launch.")
