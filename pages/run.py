"""Run: params, final metrics, metric histories, provenance, artifacts, the traceback, tags and notes,
registering its model, and reproducing it."""

from __future__ import annotations

import streamlit as st

import tracking
from tracking.explore import default_history_keys, escape_markdown, order_history_keys, parse_smoothing
from tracking.governance import Action, why_not
from tracking.runs import add_note, read_verified, replace_tags
from ui.address import query_id
from ui.data import get_store
from ui.explore import cached_run, error_box, seed, show_written, sync_url
from ui.frame import in_frame
from ui.lifecycle import origin_note, reproduce_panel
from ui.registry import reasons, register_panel
from ui.run_detail import (
    artifact_rows,
    history_charts,
    history_controls,
    provenance,
    sweep_trials,
    tags_frame,
    value_frame,
)
from ui.trash import trash_block

user = in_frame()

run_id = query_id("run")
if run_id is None:
    st.title("Run")
    st.info("Open a run from the **Runs** page (click its number), or type its id.")
    typed = st.number_input("Run id", min_value=1, step=1, value=None)
    if typed:
        st.switch_page("pages/run.py", query_params={"id": str(int(typed))})
    st.stop()
run, artifacts, notes, history = cached_run(run_id)
if run is None:
    st.title("Run")
    st.error(f"There is no run {run_id} in this store.")
    st.page_link("pages/runs.py", label="Back to the runs", icon=":material/arrow_back:")
    st.stop()

st.title(f"{escape_markdown(run.name)} #{run.id}")
st.page_link("pages/runs.py", label="Back to the runs", icon=":material/arrow_back:")
sweep = f" · [sweep {run.sweep_id}](sweep?id={run.sweep_id}), trial {run.trial_number}" if run.sweep_id else ""
st.caption(
    f"Experiment **{escape_markdown(run.experiment)}**{sweep} · status **{run.status}** · started {run.started_at:%Y-%m-%d %H:%M:%S} UTC"
)
if run.status == "failed":
    st.error("This run failed. Its traceback is below.", icon=":material/error:")
if run.error:
    with st.expander("Traceback", expanded=run.status == "failed"):
        st.code(run.error, language="python")
origin_note(run)
trash_block("run", run.id, user)

overview, metrics_tab, files_tab, notes_tab, registry_tab, reproduce_tab = st.tabs(
    ["Overview", "Metric histories", "Artifacts", "Tags and notes", "Model registry", "Reproduce"]
)
with overview:
    left, right = st.columns(2)
    left.subheader("Params")
    left.dataframe(value_frame(run.params, "param"), hide_index=True, width="stretch")
    right.subheader("Final metrics")
    right.dataframe(value_frame(run.metrics, "metric"), hide_index=True, width="stretch")
    st.subheader("Provenance")
    st.dataframe(provenance(run), hide_index=True, width="stretch")
    with st.expander("Environment"):
        st.json(run.environment)

with metrics_tab:
    if not history:
        st.info("This run logged no metric history.")
    else:
        points = {key: len(series) for key, series in history.items()}  # learning curves first, one-point keys last
        wanted = [k for k in str(st.query_params.get("keys", "")).split(",") if k in history]
        seed({"run_keys": wanted or default_history_keys(points), "run_logy": st.query_params.get("logy") == "1",
              "run_smooth": parse_smoothing(st.query_params.get("smooth"))})  # fmt: skip
        keys = st.multiselect("Metrics", order_history_keys(points), key="run_keys")
        smoothing, log_y = history_controls("run")
        seed({"run_overlay": st.query_params.get("overlay") == "1"})
        overlay = run.sweep_id is not None and st.toggle(
            "Overlay the sweep's other trials", key="run_overlay", help="Up to 49 trials, each in its own colour."
        )
        history_charts(history, keys, smoothing, log_y, sweep_trials(run) if overlay else None)
        sync_url({"id": str(run_id), "keys": ",".join(keys), "smooth": f"{smoothing:g}" if smoothing else "",
                  "logy": "1" if log_y else "", "overlay": "1" if overlay else ""},
                 defaults={"keys": ",".join(default_history_keys(points))})  # fmt: skip

with files_tab:
    if not artifacts:
        st.info("This run stored no artifacts.")
    for artifact, size, present in artifact_rows(get_store(), artifacts):
        name, download = st.columns([4, 1], vertical_alignment="center")
        name.markdown(f"**{escape_markdown(artifact.name)}** · {escape_markdown(artifact.kind)} · {size}  \n"
                      f"`sha256 {artifact.sha256}`")  # fmt: skip
        if present:
            store, digest = get_store(), artifact.sha256
            download.download_button(
                "Download",
                lambda digest=digest, store=store: read_verified(store, digest),
                file_name=artifact.name.rsplit("/", 1)[-1],
                key=f"artifact_{artifact.id}",
                on_click="ignore",
                icon=":material/download:",
                help="The bytes are checked against the sha256 before they are sent.",
            )
        else:
            download.warning("File missing")

with notes_tab:
    annotate_blocked = why_not(user, Action.run_annotate)
    reasons([annotate_blocked] if annotate_blocked else [])  # first: the forms below are disabled
    st.subheader("Tags")
    edited = st.data_editor(
        tags_frame(run.tags), num_rows="dynamic", hide_index=True, key=f"tags_{run_id}", disabled=bool(annotate_blocked)
    )
    if st.button("Save tags", icon=":material/sell:", disabled=bool(annotate_blocked)):
        rows = [
            (str(k or "").strip(), "" if v is None else str(v))
            for k, v in zip(edited["key"], edited["value"], strict=True)
        ]
        try:
            replace_tags(get_store(), run_id, {k: v for k, v in rows if k or v}, actor=user)
            st.toast("Tags saved.")
            st.rerun()
        except tracking.TrackingError as err:
            error_box(err)
    st.subheader("Notes")
    for note in notes:
        with st.container(border=True):
            st.caption(
                f"{note.created_at:%Y-%m-%d %H:%M} UTC" + (f" · {escape_markdown(note.author)}" if note.author else "")
            )
            show_written(note.body)
    with st.form("add_note", clear_on_submit=True):
        body = st.text_area("Add a note (markdown)", height=120, disabled=bool(annotate_blocked))
        if st.form_submit_button("Add note", disabled=bool(annotate_blocked)):
            try:
                add_note(get_store(), run_id, body, actor=user)
                st.rerun()
            except tracking.TrackingError as err:
                error_box(err)

with registry_tab:
    register_panel(run, user)

with reproduce_tab:
    reproduce_panel(run, user)

if "run_keys" not in st.session_state:
    sync_url({"id": str(run_id)})
