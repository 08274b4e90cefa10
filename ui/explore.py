"""Cached reads and shared widgets of the explorer pages (runs, run, compare, reports).

Every cached read is keyed on the store URL and its change marker (`ui.data.marker`), so a page
re-reads the store only after something was written, never on a timer. Page state lives in the URL:
`seed` puts the URL's values into the widgets on a page's first run, `sync_url` writes the widgets'
values back, so a copied address reopens the same view.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import pandas as pd
import streamlit as st

import tracking
from tracking.explore import (
    Comparison,
    ReportRecord,
    RunKeys,
    RunsPage,
    compare_runs,
    escape_markdown,
    histories,
    history_keys,
    list_keys,
    list_reports,
    local_markdown,
    runs_page,
)
from tracking.runs import list_notes
from ui.data import get_store, marker

FILTER_HELP = (
    "The filter language: `metrics.<key>`, `params.<key>`, `tags.<key>`, `status`, `name`, `experiment`, "
    "`sweep`, `dataset`, `code_version`, `host`, `id`, `trial_number`, `started_at`, `finished_at` with "
    "`=`, `!=`, `<`, `<=`, `>`, `>=`, `in (...)`, `like`, `is null`, `and`, `or`, `not`. "
    'Example: `metrics.test_f1_macro > 0.9 and status = "complete"`.'
)

SEARCH_HELP = (
    "Finds runs by words of their name, experiment, sweep, tags, notes and param values, case-insensitive: "
    "every word typed must start a word of the run (`loan` finds loans-v2). Combines with the filter."
)


# -- cached reads ------------------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=4)
def _keys(url: str, change: int) -> RunKeys:
    return list_keys(get_store())


def run_keys() -> RunKeys:
    """Param, metric and tag keys of the store."""
    return _keys(get_store().url, marker())


@st.cache_data(show_spinner=False, max_entries=64)
def _page(
    url: str,
    change: int,
    filter: str,
    search: str,
    columns: tuple[str, ...],
    sort: str,
    descending: bool,
    offset: int,
    limit: int,
    after: str | None,
) -> RunsPage:
    return runs_page(
        get_store(), filter=filter, search=search, columns=columns, sort=sort, descending=descending,
        offset=0 if after else offset, limit=limit, after=after,
    )  # fmt: skip


def cached_page(
    filter: str, search: str, columns: tuple[str, ...], sort: str, descending: bool, offset: int, limit: int
) -> RunsPage:
    """One page of the runs table, sorted over every matching run. Raises FilterError.

    The page after one already read starts from that page's cursor (keyset paging) instead of an offset.
    """
    change = marker()
    view = (get_store().url, change, filter, search, columns, sort, descending, limit)
    cursors: dict[tuple, str] = st.session_state.setdefault("runs_cursors", {})
    page = _page(*view[:-1], offset, limit, cursors.get((*view, offset)))
    if page.next_after:
        if len(cursors) > 200:
            cursors.clear()
        cursors[(*view, offset + limit)] = page.next_after
    return page


@st.cache_data(show_spinner=False, max_entries=32)
def _run(url: str, change: int, run_id: int) -> tuple[Any, list, list, dict]:
    store = get_store()
    run = tracking.find_run(store, run_id)
    if run is None:
        return None, [], [], {}
    return (
        run,
        tracking.list_artifacts(store, run_id),
        list_notes(store, run_id),
        tracking.metric_history(store, run_id),
    )


def cached_run(run_id: int) -> tuple[Any, list, list, dict]:
    """A run (or None), its artifacts, notes and metric histories."""
    return _run(get_store().url, marker(), run_id)


@st.cache_data(show_spinner=False, max_entries=16)
def _comparison(url: str, change: int, ids: tuple[int, ...]) -> tuple[Comparison, list[str]]:
    store = get_store()
    comparison = compare_runs(store, ids)
    return comparison, history_keys(store, comparison.ids)


def cached_comparison(ids: tuple[int, ...]) -> tuple[Comparison, list[str]]:
    """The comparison of the runs and the metric keys with histories. Raises ValidationError."""
    return _comparison(get_store().url, marker(), ids)


@st.cache_data(show_spinner=False, max_entries=16)
def _histories(url: str, change: int, ids: tuple[int, ...], key: str) -> dict[int, list]:
    return histories(get_store(), ids, key)


def cached_histories(ids: tuple[int, ...], key: str) -> dict[int, list]:
    """Each run's points of one metric."""
    return _histories(get_store().url, marker(), ids, key)


@st.cache_data(show_spinner=False, max_entries=4)
def _reports(url: str, change: int) -> list[ReportRecord]:
    return list_reports(get_store())


def cached_reports() -> list[ReportRecord]:
    """Saved reports, most recently changed first."""
    return _reports(get_store().url, marker())


# -- state in the URL --------------------------------------------------------------------------------


def seed(values: Mapping[str, Any]) -> None:
    """Give widgets their starting values (from the URL) on the page's first run; later runs keep theirs."""
    for key, value in values.items():
        if key not in st.session_state:
            st.session_state[key] = value


def sync_url(query: Mapping[str, str], bound: Sequence[str] = (), defaults: Mapping[str, str] | None = None) -> None:
    """Make the address bar show these query params (only those that changed), leaving those of `bound` alone:
    params a widget owns (`st.tabs(..., bind="query-params")`) are the widget's to set, and stay in the address.

    A value equal to the page's default (`defaults`) stays out of an address that does not name it yet: every
    change of the address is a browser history entry, and a default written on arrival was a second one, so
    Back from the page landed on the same page again. An address that names it (a link, a choice made) keeps it.
    """
    named = st.query_params.to_dict()
    wanted = {
        key: value
        for key, value in query.items()
        if value and not (defaults and key not in named and defaults.get(key) == value)
    }
    current = {key: value for key, value in st.query_params.to_dict().items() if key not in bound}
    if current == wanted:
        return
    if bound:  # key by key: a bound param may be neither set nor cleared from here
        for key in current.keys() - wanted.keys():
            del st.query_params[key]
        st.query_params.update({key: value for key, value in wanted.items() if current.get(key) != value})
    else:
        st.query_params.from_dict(wanted)


def page_url(query: Mapping[str, str]) -> str | None:
    """The address of this page with these query params (None when the browser's address is unknown)."""
    current = st.context.url
    if not current:
        return None
    parts = urlsplit(current)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode({k: v for k, v in query.items() if v}), ""))


# -- tables ------------------------------------------------------------------------------------------


SORT_OF_COLUMN = {"run": "id"}  # the table's link column sorts by run id


def runs_frame(page: RunsPage, sort: str = "") -> pd.DataFrame:
    """A page of runs as a DataFrame: a link column to each run, one type per column, the sorted column
    right after the name (so it is on screen however many columns there are)."""
    frame = pd.DataFrame(list(page.rows), columns=list(page.columns))
    frame.insert(0, "run", [f"run?id={run_id}" for run_id in page.ids])
    frame = frame.drop(columns=["id"])
    if sort in frame.columns and sort != "name":
        order = [c for c in frame.columns if c != sort]
        order.insert(order.index("name") + 1, sort)
        frame = frame[order]
    for column in frame.columns:
        if "." in column:
            frame[column] = _one_type(frame[column])
    return frame


def _one_type(values: pd.Series) -> pd.Series:
    """Numbers stay numbers; a column mixing kinds (0.5 and "sqrt") becomes text, missing stays missing."""
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pd.to_numeric(values, errors="coerce")
    if present and all(isinstance(v, bool) for v in present):
        return values.astype("boolean")
    return values.map(lambda v: None if v is None else str(v)).astype("string")


def runs_column_config(columns: list[str], sort: str = "", descending: bool = True) -> dict[str, Any]:
    """How the runs table shows its columns; the sorted one's header carries an arrow."""
    config: dict[str, Any] = {
        "run": st.column_config.LinkColumn("run", display_text=r"run\?id=(\d+)", help="Open the run", width="small"),
        "duration": st.column_config.NumberColumn("duration (s)", format="%.1f"),
        "started_at": st.column_config.DatetimeColumn("started (UTC)", format="YYYY-MM-DD HH:mm:ss"),
        "code_version": st.column_config.TextColumn("code version", width="small"),
    }
    for column in columns:
        if column.startswith("metrics."):
            config[column] = st.column_config.NumberColumn(column, format="%.4g")
    shown = next((name for name, key in SORT_OF_COLUMN.items() if key == sort), sort)
    if shown:
        arrow = " ▼" if descending else " ▲"
        current = config.get(shown)
        label = (current["label"] if current and current.get("label") else shown) + arrow
        config[shown] = {**(current or {}), "label": label}
    return config


def sort_by_clicked_column(table_key: str, sort_key: str, descending_key: str) -> None:
    """The table's selection callback: a clicked column header sorts every matching run by that column.

    Clicking the column already sorted reverses the direction; metrics, times and durations start highest
    first, other columns A to Z. Row selections pass through untouched (the page reads them itself).
    """
    event = st.session_state.get(table_key)
    picked = list(event["selection"].get("columns", [])) if event else []
    if not picked:
        return
    column = SORT_OF_COLUMN.get(picked[0], picked[0])
    if column == st.session_state.get(sort_key):
        st.session_state[descending_key] = not st.session_state.get(descending_key, True)
        return
    st.session_state[sort_key] = column
    st.session_state[descending_key] = column.startswith("metrics.") or column in (
        "id", "duration", "started_at", "finished_at", "trial_number",
    )  # fmt: skip


def value_text(value: Any) -> str:
    """A cell of a side-by-side table."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def show_written(text: str) -> None:
    """Markdown a person wrote (a note, a description), without images or links from other hosts."""
    current = st.context.url
    st.markdown(local_markdown(text, own_hosts=(urlsplit(current).netloc,) if current else ()))


def error_box(err: Exception) -> None:
    """A user's mistake, as the one sentence the library wrote for it."""
    st.error(escape_markdown(err), icon=":material/error:")
