"""Cached reads for the pages.

`st.cache_data` entries are keyed on the store's change marker, so a page re-reads the store only
after something was written to it, never on a fixed timer.
"""

from __future__ import annotations

import streamlit as st

import tracking
from tracking import store_url, tracking_home
from tracking.explore import escape_markdown, warm_chart_imports
from tracking.governance import start_deliverer


@st.cache_resource(show_spinner=False)
def _open(url: str, home: str) -> tracking.Store:
    store = tracking.open_store(url, home=home)
    start_deliverer(store)  # webhook deliveries queued by the CLI and scripts go out from the dashboard too
    warm_chart_imports()  # while the first visitor signs in, not when they open their first chart
    return store


def get_store() -> tracking.Store:
    """The store named by TRACKING_STORE_URL / TRACKING_HOME, opened once per process; a store that cannot be
    opened or is refused (emptied, replaced, rolled back, damaged) stops the page with its one sentence."""
    home = tracking_home()
    try:
        return _open(store_url(home), str(home))
    except tracking.TrackingError as err:  # not cached: the next rerun tries again, e.g. after a restore
        st.error(escape_markdown(err), icon=":material/database:")
        st.stop()


def marker() -> int:
    """The store's change marker: cached reads below are keyed on it."""
    return tracking.change_marker(get_store())


@st.cache_data(show_spinner=False, max_entries=8)
def _overview(url: str, change: int) -> tracking.Overview:
    return tracking.overview(get_store())


def overview() -> tracking.Overview:
    """Counts, recent sweeps and runs, re-read only when the store changed."""
    return _overview(get_store().url, marker())


@st.cache_data(show_spinner=False, max_entries=16)
def _sweep_runs(url: str, sweep_id: int, change: int) -> list:
    return tracking.list_runs(get_store(), sweep_id=sweep_id, newest_first=False)


def sweep_runs(sweep_id: int) -> list:
    """A sweep's runs in trial order, re-read only after the store changed (the live view polls this).

    Sweep records themselves are not cached: whether a sweep is still running depends on its workers'
    heartbeats, which age without any write to the store.
    """
    return _sweep_runs(get_store().url, sweep_id, marker())
