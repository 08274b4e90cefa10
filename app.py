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
    from ui.session_routes import session_routes

    app = st.App("app.py", routes=session_routes())
