"""Streamlit entry point: the frame and the router (`streamlit run app.py`)."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="Experiment tracking", page_icon=":material/science:", layout="wide")

page = st.navigation(
    [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/sweeps.py", title="Sweeps", icon=":material/tune:", url_path="sweeps"),
        st.Page("pages/sweep.py", title="Sweep", icon=":material/monitoring:", url_path="sweep", visibility="hidden"),
    ]
)
page.run()
