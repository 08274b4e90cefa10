"""Runs: every run across experiments and sweeps — filter, search, choose columns, sort, page, pick runs to compare."""

from __future__ import annotations

import hashlib

import streamlit as st

import tracking
from tracking.explore import (
    MAX_COMPARE,
    SORTABLE,
    CompareView,
    RunsView,
    default_columns,
    runs_table_csv,
    runs_table_json,
)
from ui.data import get_store
from ui.explore import (
    FILTER_HELP,
    SEARCH_HELP,
    cached_page,
    error_box,
    run_keys,
    runs_column_config,
    runs_frame,
    seed,
    sort_by_clicked_column,
    sync_url,
)
from ui.frame import in_frame

in_frame()

PAGE_SIZES = [25, 50, 100, 250, 500]

st.title("Runs")
keys = run_keys()
if not keys.params and not keys.metrics and not st.query_params:
    st.caption(
        "Runs appear here as soon as a script or a sweep logs them (`tracking.start_run`, `python -m tracking sweep`)."
    )
# A shared address wins; with none (the menu, or back from Compare) the session's last view comes back.
url_view = RunsView.from_query(st.query_params)
last = st.session_state.get("runs_last_view")
view = last if not st.query_params and last is not None else url_view
if "runs_filter" not in st.session_state:  # arriving on the page: its widgets start from `view`
    st.session_state.runs_selected = list(view.selected)
    st.session_state.pop("runs_view_signature", None)
seed(
    {
        "runs_filter": view.filter,
        "runs_search": view.search,
        "runs_cols": list(view.columns or default_columns(keys)),
        "runs_sort": view.sort,
        "runs_desc": view.descending,
        "runs_size": view.page_size if view.page_size in PAGE_SIZES else 100,
        "runs_page": view.page,
    }
)

filter_box, search_box = st.columns([3, 2], vertical_alignment="bottom")
filter_text = filter_box.text_input(
    "Filter", key="runs_filter", placeholder='metrics.test_f1_macro > 0.9 and status = "complete"', help=FILTER_HELP
)
search = search_box.text_input("Search", key="runs_search", placeholder="loans, rf, baseline…", help=SEARCH_HELP)
choices = list(dict.fromkeys([*keys.columns(), *st.session_state.runs_cols]))
left, middle, right = st.columns([5, 2, 1], vertical_alignment="bottom")
columns = left.multiselect("Columns", choices, key="runs_cols", placeholder="Params, metrics and tags to show")
sort = middle.selectbox(
    "Sort by", list(dict.fromkeys([*SORTABLE, *choices, st.session_state.runs_sort])), key="runs_sort"
)
descending = right.toggle("Descending", key="runs_desc")

signature = (filter_text, search, tuple(columns), sort, descending, st.session_state.runs_size)
if st.session_state.get("runs_view_signature", signature) != signature:
    st.session_state.runs_page = 1  # a new filter, order or page size starts on its first page
st.session_state.runs_view_signature = signature
size, number = st.session_state.runs_size, max(1, int(st.session_state.runs_page))

# the sorted column is always shown: a sort by a param or metric not chosen adds it to the table
shown = tuple(dict.fromkeys([sort, *columns])) if "." in sort else tuple(columns)
try:
    page = cached_page(filter_text, search, shown, sort, descending, (number - 1) * size, size)
except tracking.TrackingError as err:
    error_box(err)
    st.stop()
pages = max(1, -(-page.total // size))
if number > pages:
    st.session_state.runs_page = number = pages
    page = cached_page(filter_text, search, shown, sort, descending, (number - 1) * size, size)

selected: list[int] = st.session_state.runs_selected
table_key = (
    "runs_table_"
    + hashlib.sha1(repr((signature, number, st.session_state.get("runs_generation", 0))).encode()).hexdigest()[:12]
)
on_page = [i for i, run_id in enumerate(page.ids) if run_id in set(selected)]
st.caption("Click a column's header to sort every matching run by it (click again to reverse).")
event = st.dataframe(
    runs_frame(page, sort),
    key=table_key,
    on_select=lambda: sort_by_clicked_column(table_key, "runs_sort", "runs_desc"),
    selection_mode=["multi-row", "single-column"],
    selection_default={"selection": {"rows": on_page}},
    hide_index=True,
    column_config=runs_column_config(list(shown), sort, descending),
    height=min(38 + 35 * max(len(page.rows), 1), 740),
)
picked = [page.ids[i] for i in event.selection.rows if i < len(page.ids)]
selected = [i for i in selected if i not in set(page.ids)] + [i for i in page.ids if i in set(picked)]
st.session_state.runs_selected = selected

first = (number - 1) * size + 1 if page.rows else 0
pager = st.columns([3, 1, 1], vertical_alignment="bottom")
pager[0].caption(f"Runs {first:,}–{first + len(page.rows) - 1 if page.rows else 0:,} of **{page.total:,}** matching")
pager[1].number_input(f"Page (of {pages:,})", min_value=1, max_value=pages, step=1, key="runs_page")
pager[2].selectbox("Rows per page", PAGE_SIZES, key="runs_size")

current = RunsView(filter_text, tuple(columns), sort, descending, number, size, tuple(selected), search)
st.session_state.runs_last_view = current
sync_url(current.to_query(), defaults={"cols": ",".join(default_columns(keys))})


def _clear() -> None:
    st.session_state.runs_selected = []
    st.session_state.runs_generation = st.session_state.get("runs_generation", 0) + 1


actions = st.columns([2, 1, 1, 1, 1], vertical_alignment="center")
actions[0].markdown(
    f"**{len(selected)} selected**"
    + (f": {', '.join(f'[#{i}](run?id={i})' for i in selected[:12])}" if selected else " — tick rows to compare them")
)
if actions[1].button(
    f"Compare selected ({len(selected)})", type="primary", disabled=not 2 <= len(selected) <= MAX_COMPARE,
    help=f"Compare 2 to {MAX_COMPARE} runs side by side",
):  # fmt: skip
    st.switch_page("pages/compare.py", query_params=CompareView(runs=tuple(selected), filter=filter_text).to_query())
if len(selected) == 1 and actions[2].button("Open run"):
    st.switch_page("pages/run.py", query_params={"id": str(selected[0])})
actions[3].button("Clear selection", on_click=_clear, disabled=not selected)
store, export = (
    get_store(),
    {"filter": filter_text, "search": search, "columns": shown, "sort": sort, "descending": descending},
)
with actions[4].popover("Download", icon=":material/download:"):
    st.caption(f"All {page.total:,} matching runs with the chosen columns.")
    st.download_button("CSV", lambda: runs_table_csv(store, **export), "runs.csv", "text/csv", on_click="ignore")
    st.download_button(
        "JSON", lambda: runs_table_json(store, **export), "runs.json", "application/json", on_click="ignore"
    )
if page.total > 10_000:
    st.caption("Tip: with this many runs, a filter finds what you want faster than paging.")
