"""Home: monitoring alerts of the models in production, what is in the store, the latest sweeps and runs."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from tracking.explore import escape_markdown
from tracking.governance import Action, why_not
from ui.data import get_store, overview
from ui.frame import in_frame
from ui.lifecycle import alerts_banner
from ui.sweeps import DEMO, DEMO_WORKERS, launch, sweeps_table

user = in_frame()

st.title("Experiment tracking")
st.caption(f"Store: `{get_store().display_url}`")
summary = overview()

if summary.runs == 0 and summary.sweeps == 0:
    st.info(
        "The store is empty. Run the demo — 24 trials of histogram gradient boosting on the breast cancer "
        "data, two workers, about a minute — or launch your own sweep on the Sweeps page. From a terminal:"
        "\n\n```\npython -m tracking sweep --task breast_cancer --model random_forest --trials 20 --workers 2\n```"
    )
    if reason := why_not(user, Action.sweep_launch):  # said before any button: this account only looks
        st.info(
            f"{escape_markdown(reason)} An admin can give your account a role that launches sweeps.",
            icon=":material/visibility:",
        )
        st.stop()
    if st.button("Run a demo sweep", type="primary"):
        launch(DEMO, DEMO_WORKERS, user)
    st.page_link("pages/sweeps.py", label="Launch a sweep of your own", icon=":material/tune:")
    st.stop()

alerts_banner()
cols = st.columns(5)
cols[0].metric("Experiments", summary.experiments)
cols[1].metric("Sweeps", summary.sweeps)
cols[2].metric("Runs", summary.runs)
cols[3].metric("Running", summary.runs_by_status.get("running", 0))
cols[4].metric("Dataset versions", summary.datasets)

st.subheader("Recent sweeps")
sweeps_table(summary.recent_sweeps)

st.subheader("Recent runs")
runs = pd.DataFrame(
    [
        {
            "run": f"run?id={r.id}",  # each id a link to its page, as on the Runs page
            "name": r.name,
            "experiment": r.experiment,
            "sweep": None if r.sweep_id is None else f"sweep?id={r.sweep_id}",
            "status": r.status,
            "dataset": r.dataset["name"] if r.dataset else None,
            "code version": (r.code_version or "")[:12],
            **{k: v for k, v in r.metrics.items() if k.startswith("test_")},
            "started": r.started_at,
        }
        for r in summary.recent_runs
    ]
)
st.dataframe(
    runs,
    hide_index=True,
    column_config={
        "run": st.column_config.LinkColumn("run", display_text=r"run\?id=(\d+)", help="Open the run", width="small"),
        "sweep": st.column_config.LinkColumn("sweep", display_text=r"sweep\?id=(\d+)", help="Open the sweep"),
    },
)
