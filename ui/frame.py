"""The dashboard's frame: page config and navigation, shared by app.py and every page."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from tracking.governance import Action, UserRecord

# Shipped with the dashboard and served by its own server: an emoji favicon is drawn by the browser's fonts
# (a box where it has none) and a :material/…: one is fetched from fonts.gstatic.com, and the dashboard must
# work without any internet. The Material Symbols flask (Apache 2.0), drawn from Streamlit's bundled font.
ICON = Path(__file__).resolve().parent / "static" / "icon.png"
# A table's or chart's toolbar (search, download, full screen) appears on hover 44 px above the element, over
# the control above it (the Runs page's Descending toggle, Compare's metric selector), and catches its clicks.
# Every element that has one keeps that much room above it, on every page.
STYLE = """<style>
[data-testid="stElementContainer"]:has(> [data-testid="stFullScreenFrame"]) { margin-top: 1.75rem; }
</style>"""


def _shown_to(user: UserRecord | None, action: Action) -> str:
    """A menu entry's visibility: shown to a signed-in account whose role may do `action`, else hidden from the
    menu (its address still opens the page, which says why it refuses; the store checks every change anyway)."""
    return "visible" if user is not None and user.may(action) else "hidden"


def navigation() -> st.navigation:
    """Configure the page and return the navigation over the dashboard's views."""
    st.set_page_config(page_title="Experiment tracking", page_icon=ICON, layout="wide")
    st.html(STYLE)  # style only: Streamlit adds it to the page without taking room
    from ui.auth import menu_user

    user = menu_user()
    return st.navigation(
        {
            "Experiments": [
                st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
                st.Page("pages/sweeps.py", title="Sweeps", icon=":material/tune:", url_path="sweeps"),
                st.Page("pages/runs.py", title="Runs", icon=":material/table_rows:", url_path="runs"),
                st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
                st.Page("pages/reports.py", title="Reports", icon=":material/summarize:", url_path="reports"),
                st.Page("pages/trash.py", title="Trash", icon=":material/delete:", url_path="trash"),
            ],
            "Models": [
                st.Page("pages/models.py", title="Models", icon=":material/inventory_2:", url_path="models"),
                st.Page("pages/approvals.py", title="Approvals", icon=":material/approval:", url_path="approvals"),
                st.Page("pages/policies.py", title="Policies", icon=":material/policy:", url_path="policies"),
                st.Page(
                    "pages/monitoring.py", title="Monitoring", icon=":material/monitor_heart:", url_path="monitoring"
                ),
            ],
            # every account's own tokens, not an admin's tool (admins also see everyone's there)
            "Account": [
                st.Page("pages/tokens.py", title="Access tokens", icon=":material/key:", url_path="tokens"),
            ],
            "Admin": [
                st.Page("pages/audit.py", title="Audit", icon=":material/history:", url_path="audit"),
                st.Page(
                    "pages/users.py",
                    title="Users",
                    icon=":material/group:",
                    url_path="users",
                    visibility=_shown_to(user, Action.user_manage),
                ),
                st.Page(
                    "pages/webhooks.py",
                    title="Webhooks",
                    icon=":material/webhook:",
                    url_path="webhooks",
                    visibility=_shown_to(user, Action.webhook_manage),
                ),
            ],
            # reached through links (?id=N), not from the menu
            "": [
                st.Page("pages/sweep.py", title="Sweep", url_path="sweep", visibility="hidden"),
                st.Page("pages/run.py", title="Run", url_path="run", visibility="hidden"),
                st.Page("pages/version.py", title="Model version", url_path="version", visibility="hidden"),
                st.Page("pages/request.py", title="Promotion request", url_path="request", visibility="hidden"),
            ],
        },
        expanded=True,  # every page in view: collapsed, Streamlit hides all past the tenth behind "View N more"
    )


def in_frame() -> UserRecord:
    """Run this page inside the frame when Streamlit ran it on its own, behind the sign-in; the signed-in user.

    Streamlit 1.67 decides at a server's very first script run (and at every AppTest run) whether the
    app is an old-style "pages/ folder" app; it is, until some run calls `st.navigation`. A deep link
    such as `/sweep?id=3` as that first request runs `pages/sweep.py` by itself: no page config, a
    sidebar listing file names. Here the frame takes over within the same run (a rerun would drop the
    button click that may have started it): the page runs once more inside `st.navigation`, then the
    bare run stops.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        navigation().run()  # st.navigation switches the old mode off for the rest of the server's life
        st.stop()
    from ui.address import clean_address
    from ui.auth import require_user

    user = require_user()
    clean_address()  # after the sign-in: a signed-out visitor sees only the form
    return user
