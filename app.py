"""Streamlit entry point (`streamlit run app.py`): the frame and the router, served with the session routes.

`streamlit run` finds `app` below (an `st.App`) and serves it: the dashboard plus the routes that set and
clear the session cookie (`ui.session_routes`). The server imports this file as the module `app`; each
script run executes it as `__main__`, and runs the pages.
"""

from __future__ import annotations

import streamlit as st

if __name__ == "__main__":  # a script run (and AppTest's)
    from ui.frame import navigation

    navigation().run()
else:  # the server importing its app
    from tracking.explore import warm_chart_imports
    from ui.session_routes import session_routes

    # Optuna's plots and scikit-learn's forests take seconds of CPU to import: from the server's start, not from
    # the first visitor's sign-in, where they competed with the sign-in and the first page (a link followed
    # before signing in was the slowest page to open).
    warm_chart_imports()

    app = st.App("app.py", routes=session_routes())
