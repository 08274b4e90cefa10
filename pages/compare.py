"""Compare 2 to 50 runs: side by side, champion/challenger, charts, and sharing (link, HTML report, saved report).

The open tab is in the address (`&tab=Charts`), and only that tab is built."""

from __future__ import annotations

import streamlit as st

import tracking
from tracking.explore import (
    MAX_COMPARE,
    CompareView,
    bar_figure,
    champion_challenger,
    complete_view,
    delta_figure,
    escape_markdown,
    get_report,
    history_chart,
    parallel_figure,
    parse_ids,
    scatter_figure,
)
from ui.compare import deltas_table, seed_choice, share_panel, side_by_side_table
from ui.data import get_store
from ui.explore import cached_comparison, cached_histories, error_box, page_url, seed, show_written, sync_url
from ui.frame import in_frame
from ui.run_detail import history_controls

user = in_frame()

url_view = CompareView.from_query(st.query_params)
report_id = next(iter(parse_ids(str(st.query_params.get("report", "")))), None)
report = None
if report_id is not None:
    try:
        report = get_report(get_store(), report_id)
    except tracking.NotFoundError as err:
        error_box(err)
TABS = ["Side by side", "Champion / challenger", "Charts", "Share"]
CHARTS = ["Metric histories", "Parallel coordinates", "Scatter", "Bar chart"]  # the Charts tab draws one at a time
CHOICES = ("cmp_diff", "cmp_baseline", "cmp_metric", "cmp_history", "cmp_smooth", "cmp_logy", "cmp_params", "cmp_x",
           "cmp_y", "cmp_title", "cmp_notes")  # fmt: skip
if "cmp_runs" not in st.session_state:  # arriving on the page: its widgets start from the URL
    for key in (*CHOICES, "tab_shown", "chart_shown"):
        st.session_state.pop(key, None)
seed({
    "cmp_runs": ", ".join(map(str, url_view.runs)), "cmp_diff": url_view.only_differences,
    "cmp_smooth": url_view.smoothing, "cmp_logy": url_view.log_y,
})  # fmt: skip
for key in CHOICES:  # only the open tab draws its widgets: the others' choices are kept, not dropped with them
    if key in st.session_state:
        st.session_state[key] = st.session_state[key]

st.title(escape_markdown(report.title) if report else "Compare runs")
st.page_link(
    "pages/runs.py", label="Back to the runs (your filter and selection are kept)", icon=":material/arrow_back:"
)
if report:
    st.caption(f"Saved report #{report.id} · last changed {report.updated_at:%Y-%m-%d %H:%M} UTC")
    if report.notes.strip():
        show_written(report.notes)
typed = st.text_input("Runs", key="cmp_runs", help=f"Run ids, separated by commas: 2 to {MAX_COMPARE} runs.")
ids = list(dict.fromkeys(parse_ids(typed)))
if not 2 <= len(ids) <= MAX_COMPARE:
    st.info(f"Pick 2 to {MAX_COMPARE} runs on the Runs page and press **Compare selected**, or type their ids above.")
    st.page_link("pages/runs.py", label="Go to the runs", icon=":material/table_rows:")
    sync_url({**CompareView(runs=tuple(ids)).to_query(), "report": str(report_id or "")})
    st.stop()

comparison, with_history = cached_comparison(tuple(ids))
if comparison.missing:
    st.warning(f"Not in this store (left out): {', '.join(f'#{i}' for i in comparison.missing)}.")
if len(comparison.runs) < 2:
    st.info("At least two of these runs must exist to compare them.")
    st.stop()
start = complete_view(comparison, url_view, with_history)
labels = dict(zip(comparison.ids, comparison.labels, strict=True))
metrics, fields = comparison.fields("metrics"), [row.field for row in comparison.rows]
numeric = comparison.numeric_fields()
seed_choice("cmp_baseline", comparison.ids, start.baseline)
seed_choice("cmp_metric", metrics, start.metric)
seed_choice("cmp_history", with_history, start.history)
seed_choice("cmp_params", comparison.fields("params"), list(start.params), multi=True)
seed_choice("cmp_x", fields, start.x)
seed_choice("cmp_y", fields, start.y)

st.caption(
    f"{len(comparison.runs)} runs"
    + (f" · picked with the filter {escape_markdown(url_view.filter)}" if url_view.filter else "")
    + " · open "
    + ", ".join(
        f"[{escape_markdown(label)}](run?id={i})" for i, label in zip(comparison.ids, comparison.labels, strict=True)
    )
)
if len(comparison.datasets) > 1:
    st.warning(
        "These runs were trained on different data versions ("
        + ", ".join(escape_markdown(d) for d in comparison.datasets)
        + "): their metrics may not be comparable.",
        icon=":material/dataset:",
    )
# Lazy tabs bound to the address: only the open tab is built, and a copied address reopens it.
table_tab, baseline_tab, charts_tab, share_tab = st.tabs(TABS, key="tab", bind="query-params")
if table_tab.open:
    with table_tab:
        st.toggle("Show only differences", key="cmp_diff")
        side_by_side_table(comparison, st.session_state["cmp_diff"])

if baseline_tab.open:
    with baseline_tab:
        left, right = st.columns(2)
        baseline = left.selectbox("Baseline (champion)", comparison.ids, format_func=labels.get, key="cmp_baseline")
        metric = right.selectbox(
            "Metric",
            metrics,
            key="cmp_metric",
            help="Also the metric of the bar chart and the colour of parallel coordinates.",
        )
        deltas_table(comparison, baseline)
        if metric:
            st.plotly_chart(
                delta_figure(comparison, champion_challenger(comparison, baseline), metric, baseline), key="chart_delta"
            )
state = st.session_state  # the choices of the tabs not open, kept at the top of the page
baseline, metric = state["cmp_baseline"], state["cmp_metric"]

if charts_tab.open:
    with charts_tab:  # one chart at a time, chosen like a tab and kept in the address (`&chart=Scatter`)
        chosen = st.tabs(CHARTS, key="chart", bind="query-params")
        if chosen[0].open:
            with chosen[0]:
                history = st.selectbox(
                    "Metric history", with_history, key="cmp_history", placeholder="No run logged a history"
                )
                smoothing, log_y = history_controls("cmp")
                if history:
                    points = cached_histories(tuple(comparison.ids), history)
                    chart = history_chart(comparison, points, history, smoothing, log_y)  # Vega-Lite: loads fast
                    st.altair_chart(chart, width="stretch", key="chart_history")
        if chosen[1].open:
            with chosen[1]:
                params = st.multiselect("Params (axes)", comparison.fields("params"), key="cmp_params")
                if metric and params:
                    st.plotly_chart(parallel_figure(comparison, params, metric), key="chart_parallel")
                elif not metric:
                    st.info("The runs have no metric to colour the lines by.")
        if chosen[2].open:
            with chosen[2]:
                left, right = st.columns(2)
                x = left.selectbox("x", fields, key="cmp_x")
                y = right.selectbox("y", fields, key="cmp_y")
                if x and y:
                    st.plotly_chart(scatter_figure(comparison, x, y), key="chart_scatter")
        if chosen[3].open:
            with chosen[3]:
                if metric:
                    st.plotly_chart(bar_figure(comparison, metric, baseline), key="chart_bar")
                else:
                    st.caption("Pick a metric on the Champion / challenger tab to draw the bar chart.")

view = CompareView(
    runs=tuple(comparison.ids), baseline=baseline, metric=metric, history=state["cmp_history"], x=state["cmp_x"],
    y=state["cmp_y"], params=tuple(state["cmp_params"]), only_differences=bool(state["cmp_diff"]),
    filter=url_view.filter, smoothing=state["cmp_smooth"], log_y=state["cmp_logy"],
)  # fmt: skip
query = {**view.to_query(), "report": str(report.id) if report else ""}
# the open tab and chart stay in the address (a copy reopens them); the choices the page made itself stay out
arrived = complete_view(comparison, CompareView(runs=tuple(comparison.ids), filter=url_view.filter), with_history)
sync_url(query, bound=("tab", "chart"), defaults=arrived.to_query())
if share_tab.open:
    with share_tab:
        shown = state.get("tab_shown") or TABS[0]  # the link opens the tab (and chart) looked at before this one
        chart = state.get("chart_shown") or CHARTS[0]
        chart = chart if shown == "Charts" and chart != CHARTS[0] else ""
        share_panel(
            comparison,
            view,
            report,
            page_url({**query, "tab": shown if shown != TABS[0] else "", "chart": chart}),
            user,
        )
else:
    state["tab_shown"], state["chart_shown"] = state.get("tab"), state.get("chart")
