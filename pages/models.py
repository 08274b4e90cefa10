"""Models: the registered models, and the versions of the one chosen (`?model=NAME`)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from tracking.explore import escape_markdown
from ui.explore import seed, show_written, sync_url
from ui.frame import in_frame
from ui.registry import cached_models, cached_versions, stage_badge, versions_frame, when

in_frame()

st.title("Models")
models = cached_models()
if not models:
    st.info(
        "No model is registered yet. Open a complete run that saved a model and use **Register model** on its "
        "**Model registry** tab, or from a terminal:\n\n```\npython -m tracking registry register RUN --name MODEL\n```"
    )
    st.page_link("pages/runs.py", label="Go to the runs", icon=":material/table_rows:")
    st.stop()

st.dataframe(
    pd.DataFrame(
        [
            {"model": m.name, "versions": m.n_versions, "in production": f"v{m.production_version}"
             if m.production_version else "—", "latest": f"v{m.latest_version}" if m.latest_version else "—",
             "description": m.description, "created by": m.created_by, "created": m.created_at}
            for m in models
        ]
    ),
    hide_index=True,
    column_config={"created": st.column_config.DatetimeColumn("created (UTC)", format="YYYY-MM-DD HH:mm")},
)  # fmt: skip

names = [m.name for m in models]
wanted = str(st.query_params.get("model", ""))
seed({"models_model": wanted if wanted in names else names[0]})
if st.session_state["models_model"] not in names:  # the model was renamed or removed since
    st.session_state["models_model"] = names[0]
name = st.selectbox("Show the versions of", names, key="models_model")
sync_url({"model": name}, defaults={"model": names[0]})
model = next(m for m in models if m.name == name)

st.header(escape_markdown(model.name))
if model.description:
    show_written(model.description)
st.caption(
    f"Registered by {escape_markdown(model.created_by)} on {when(model.created_at)} · {model.n_versions} versions"
)
versions = cached_versions(model=model.name)
production = next((v for v in versions if v.stage == "production"), None)
if production is not None:
    left, right = st.columns([1, 4], vertical_alignment="center")
    with left:
        stage_badge("production")
    right.page_link("pages/version.py", label=f"{escape_markdown(production.label)} is in production",
                    query_params={"id": str(production.id)}, icon=":material/verified:")  # fmt: skip
else:
    st.caption("No version is in production yet: request a promotion from a version's page.")

frame, config = versions_frame(versions)
st.dataframe(frame, hide_index=True, column_config=config)
st.caption("Open a version for its lineage, model card and promotion requests.")
for version in versions[:10]:  # the newest, as links that open in this tab
    st.page_link("pages/version.py", label=f"{escape_markdown(version.label)} · {version.stage}",
                 query_params={"id": str(version.id)})  # fmt: skip
