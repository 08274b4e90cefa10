"""The explorer pages (runs, run, compare, reports) run by Streamlit's AppTest through `app.py`, against a
real store filled with `tracking.start_run`."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

import tracking
from tests import vega
from tests.pages import signed_in_app
from tracking.explore._compare import CompareView
from tracking.explore._reports import list_reports, save_report


@pytest.fixture
def runs():
    """Six complete runs in two experiments (lr, depth, test_accuracy, a loss history) and one failed run."""
    store = tracking.open_store()
    ids = []
    for i in range(6):
        params = {"lr": round(0.1 * (i + 1), 2), "depth": i % 3, "kind": "rf" if i % 2 else "svm"}
        with tracking.start_run("alpha" if i < 4 else "beta", params=params, store=store, name=f"r{i}") as run:
            for step in range(4):
                run.log_metrics({"loss": 1 / (step + 1 + i)}, step=step)
            run.log_metrics({"test_accuracy": 0.7 + i / 50, "fit_seconds": 1.0 + i})
            run.set_tags({"team": "growth" if i % 2 else "risk"})
        ids.append(run.id)
    try:
        with tracking.start_run("alpha", params={"lr": 9.0}, store=store, name="broken") as run:
            run.log_artifact(b"partial output", name="logs/out.txt")
            raise RuntimeError("diverged at step 3")
    except RuntimeError:
        pass
    ids.append(run.id)
    return ids


def _page(path: str, **query: str) -> AppTest:
    at = signed_in_app(timeout=60)  # as users reach it: via the frame, signed in
    at.switch_page(path)
    at.query_params.update(query)
    return at.run()


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, at.exception[0].value if at.exception else ""
    return at


def _charts(at: AppTest) -> int:
    return len(at.get("plotly_chart")) + len(at.get("vega_lite_chart"))


def test_pages_runs_on_an_empty_store_shows_an_empty_table():
    at = _ok(_page("pages/runs.py"))
    assert at.dataframe[0].value.empty
    assert any("of **0** matching" in c.value for c in at.caption)


def test_pages_runs_reads_filter_columns_and_order_from_the_url(runs):
    at = _ok(
        _page(
            "pages/runs.py",
            filter='experiment = "alpha" and status = "complete"',
            cols="params.lr,metrics.test_accuracy",
            sort="metrics.test_accuracy",
            asc="1",
        )
    )
    table = at.dataframe[0].value
    assert list(table["name"]) == ["r0", "r1", "r2", "r3"]
    assert list(table.columns)[:3] == ["run", "name", "metrics.test_accuracy"]  # the sorted column, on screen
    assert list(table.columns)[-1] == "params.lr" and "params.depth" not in table
    assert list(table["run"]) == [f"run?id={i}" for i in runs[:4]]
    assert any("of **4** matching" in c.value for c in at.caption)
    assert at.multiselect(key="runs_cols").value == ["params.lr", "metrics.test_accuracy"]
    assert at.query_params["sort"] == "metrics.test_accuracy" and at.query_params["asc"] == "1"


def test_pages_runs_search_and_sort_control_order_every_matching_run(runs):
    at = _ok(_page("pages/runs.py", size="25"))
    at.text_input(key="runs_search").input("GROWTH").run()  # a tag value, in another case
    assert sorted(_ok(at).dataframe[0].value["name"]) == ["r1", "r3", "r5"]
    assert at.query_params["q"] == "GROWTH"
    at.selectbox(key="runs_sort").select("params.lr").run()  # a param not among the columns
    table = _ok(at).dataframe[0].value
    assert list(table.columns)[:3] == ["run", "name", "params.lr"] and list(table["name"]) == ["r5", "r3", "r1"]
    at.toggle(key="runs_desc").set_value(False).run()
    assert list(_ok(at).dataframe[0].value["name"]) == ["r1", "r3", "r5"]
    assert at.query_params["sort"] == "params.lr" and at.query_params["asc"] == "1"
    at.text_input(key="runs_filter").input("params.depth = 0").run()  # search and filter together
    assert list(_ok(at).dataframe[0].value["name"]) == ["r3"]


def test_pages_runs_a_bad_filter_is_one_clear_sentence(runs):
    at = _ok(_page("pages/runs.py", filter="metrics.test_accuracy >"))
    assert at.error[0].value.startswith("Filter error at column 24")
    assert not at.dataframe


def test_pages_runs_typing_a_filter_narrows_the_table_and_the_address(runs):
    at = _ok(_page("pages/runs.py"))
    assert len(at.dataframe[0].value) == 7
    at.text_input(key="runs_filter").input('tags.team = "growth"').run()
    assert sorted(_ok(at).dataframe[0].value["name"]) == ["r1", "r3", "r5"]
    assert at.query_params["filter"] == 'tags.team = "growth"'


def test_pages_runs_selection_survives_paging_and_opens_the_comparison(runs):
    at = _ok(_page("pages/runs.py", size="25", sort="id", asc="1"))
    table_key = at.dataframe[0].key
    at.session_state[table_key] = {"selection": {"rows": [0, 2], "columns": [], "cells": []}}
    _ok(at.run())
    assert at.session_state["runs_selected"] == [runs[0], runs[2]]
    assert at.query_params["sel"] == f"{runs[0]},{runs[2]}"
    at.text_input(key="runs_filter").input("id > 0").run()  # another view of the table keeps the selection
    assert _ok(at).session_state["runs_selected"] == [runs[0], runs[2]]
    next(b for b in at.button if b.label.startswith("Compare selected")).click().run()
    _ok(at)
    assert at.title[0].value == "Compare runs"
    assert at.query_params["runs"] == f"{runs[0]},{runs[2]}" and at.query_params["filter"] == "id > 0"


def test_pages_runs_view_comes_back_after_visiting_another_page(runs):
    at = _ok(_page("pages/runs.py", filter="params.depth = 1", sel=str(runs[1])))
    at.switch_page("pages/reports.py").run()
    at.query_params.clear()
    at.switch_page("pages/runs.py").run()
    assert _ok(at).text_input(key="runs_filter").value == "params.depth = 1"
    assert at.session_state["runs_selected"] == [runs[1]] and at.query_params["sel"] == str(runs[1])


def test_pages_run_shows_params_metrics_history_provenance_and_artifacts(runs):
    at = _ok(_page("pages/run.py", id=str(runs[2])))
    assert at.title[0].value == f"r2 #{runs[2]}"
    params = at.dataframe[0].value
    assert dict(zip(params["param"], params["value"], strict=True)) == {"depth": "2", "kind": "svm", "lr": "0.3"}
    metrics = at.dataframe[1].value
    assert dict(zip(metrics["metric"], metrics["value"], strict=True))["test_accuracy"] == "0.74"
    provenance = dict(zip(at.dataframe[2].value["what"], at.dataframe[2].value["value"], strict=True))
    assert provenance["code version"] and provenance["host"]
    assert at.multiselect(key="run_keys").value == ["loss"]  # the one key with more than one point
    assert at.multiselect(key="run_keys").options == ["loss", "fit_seconds", "test_accuracy"]
    assert _charts(at) == 1 and "keys" not in at.query_params  # the default stays out of the address (Back)
    at.multiselect(key="run_keys").set_value(["loss", "fit_seconds"]).run()
    assert at.query_params["keys"] == "loss,fit_seconds"  # a choice is kept


def test_pages_run_opens_on_the_learning_curve_and_keeps_smoothing_in_the_url():
    store = tracking.open_store()
    with tracking.start_run("exp", store=store, name="trial") as run:
        for step in range(30):
            run.log_metric("val_f1_macro", 0.5 + step / 100, step=step)
        run.log_metrics({"cv_accuracy": 0.8, "cv_f1_macro": 0.79, "test_f1_macro": 0.77})
    at = _ok(_page("pages/run.py", id=str(run.id)))
    assert at.multiselect(key="run_keys").value == ["val_f1_macro"] and _charts(at) == 1
    at.slider(key="run_smooth").set_value(0.6).run()
    at.toggle(key="run_logy").set_value(True).run()
    assert at.query_params["smooth"] == "0.6" and at.query_params["logy"] == "1"
    again = _ok(_page("pages/run.py", **dict(at.query_params)))  # a reload: the state comes from the URL
    assert again.slider(key="run_smooth").value == 0.6 and again.toggle(key="run_logy").value is True
    (chart,) = vega.specs(again)  # Vega-Lite: the browser loads it far faster than Plotly
    assert vega.y_scale(chart) == "log" and [layer["encoding"]["y"]["field"] for layer in chart["layer"]] == [
        "raw",
        "value",
    ]
    assert vega.lines(chart) == ["this run"] and len(vega.rows(chart)) == 30  # raw and smoothed of each step


def test_pages_run_overlays_the_other_trials_of_its_sweep():
    store = tracking.open_store()
    space = {"x": {"type": "float", "low": 1.0, "high": 5.0}}
    sweep = tracking.create_sweep(store, tracking.SweepSpec(objective="tests.objectives:quadratic", space=space,
                                                            metrics=["value:min"], n_trials=3))  # fmt: skip
    tracking.run_worker(store, sweep.id)
    first = tracking.list_runs(store, sweep_id=sweep.id)[0]
    at = _ok(_page("pages/run.py", id=str(first.id), overlay="1"))
    assert at.multiselect(key="run_keys").value == ["curve"] and at.toggle(key="run_overlay").value is True
    (chart,) = vega.specs(at)
    assert vega.lines(chart)[0] == "this run" and len(vega.lines(chart)) == 3  # this run and the two others
    at.toggle(key="run_overlay").set_value(False).run()
    assert vega.lines(vega.specs(at)[0]) == ["this run"] and "overlay" not in at.query_params


def test_pages_run_of_a_failed_run_shows_its_traceback_and_artifact(runs):
    at = _ok(_page("pages/run.py", id=str(runs[-1])))
    assert at.error[0].value.startswith("This run failed")
    assert "RuntimeError: diverged at step 3" in at.code[0].value
    assert any("logs/out.txt" in m.value and "14 B" in m.value for m in at.markdown)
    assert at.get("download_button")


def test_pages_run_edits_tags_and_adds_a_note(runs):
    at = _ok(_page("pages/run.py", id=str(runs[0])))
    at.session_state[f"tags_{runs[0]}"] = {
        "edited_rows": {"0": {"value": "fraud"}},
        "added_rows": [{"key": "stage", "value": "review"}],
        "deleted_rows": [],
    }
    next(b for b in at.button if b.label == "Save tags").click().run()
    assert _ok(at) and tracking.get_run(tracking.open_store(), runs[0]).tags == {"team": "fraud", "stage": "review"}
    at.text_area[0].input("Looks **good**; <b>not bold</b>")
    at.form_submit_button[0].click().run()  # typed and submitted together, as in the browser
    assert any(m.value == "Looks **good**; <b>not bold</b>" for m in _ok(at).markdown)


def test_pages_run_unknown_or_missing_id_says_so(runs):
    assert "There is no run 9999" in _ok(_page("pages/run.py", id="9999")).error[0].value
    assert "Open a run from the **Runs** page" in _ok(_page("pages/run.py")).info[0].value


def test_pages_compare_builds_only_the_open_tab_and_keeps_the_view_in_the_url(runs):
    ids = ",".join(map(str, runs[:3]))
    at = _ok(_page("pages/compare.py", runs=ids, baseline=str(runs[1]), metric="metrics.fit_seconds"))
    side = at.dataframe[0].value
    assert list(side.columns) == [f"r{i} #{runs[i]}" for i in range(3)]
    assert side.loc["metrics.test_accuracy ↑"].tolist() == ["0.7", "0.72", "0.74 ★"]
    assert side.loc["metrics.fit_seconds ↓"].tolist() == ["1 ★", "2", "3"]
    assert len(at.dataframe) == 1 and _charts(at) == 0  # the other tabs are not built
    assert f"[r0 #{runs[0]}](run?id={runs[0]})" in at.caption[0].value  # each run links its page
    at.session_state["tab"] = "Champion / challenger"
    deltas = _ok(at.run()).dataframe[0].value
    assert deltas.loc["metrics.test_accuracy"].tolist() == ["0.72", "-0.02 (-2.8%)", "+0.02 (+2.8%)"]
    assert _charts(at) == 1
    charts = _ok(_page("pages/compare.py", runs=ids, baseline=str(runs[1]), metric="metrics.fit_seconds", tab="Charts"))
    assert _charts(charts) == 1 and not charts.dataframe  # the chosen chart only: the metric histories
    assert vega.specs(charts)[0]["title"] == "History of loss"
    assert charts.query_params["tab"] == "Charts"  # the address keeps the open tab: a copy of it reopens it
    for view in (at, charts):  # choices of tabs not open stay in the address; the page's own defaults stay out
        assert view.query_params["baseline"] == str(runs[1]) and view.query_params["metric"] == "metrics.fit_seconds"
        assert view.query_params["runs"] == ids and "history" not in view.query_params
        assert view.session_state["cmp_history"] == "loss"  # the default history: the curve, not a point
    for chart, title in (
        ("Parallel coordinates", "Params -&gt; "),
        ("Scatter", " against "),
        ("Bar chart", "fit_seconds"),
    ):
        charts.session_state["chart"] = charts.query_params["chart"] = chart  # a click on the chart's tab
        assert _charts(_ok(charts.run())) == 1 and title in charts.get("plotly_chart")[0].proto.spec
        assert charts.query_params["chart"] == chart and charts.session_state["cmp_history"] == "loss"
    charts.session_state["tab"] = charts.query_params["tab"] = "Share"  # a click on the tab sets both
    _ok(charts.run())
    assert len(charts.get("download_button")) == 3  # the HTML report, the table as CSV, the runs as JSON
    link = charts.code[0].value  # the tab and chart looked at
    assert ("tab=Charts" in link and "chart=Bar+chart" in link) or link.startswith("(copy")


def test_pages_compare_warns_when_runs_come_from_different_data():
    store = tracking.open_store()
    ids = []
    for task in ("iris", "wine"):
        version = tracking.register_dataset(store, tracking.load_task(task))
        with tracking.start_run("data", store=store, dataset_version_id=version) as run:
            run.log_metrics({"test_accuracy": 0.9})
        ids.append(run.id)
    at = _ok(_page("pages/compare.py", runs=",".join(map(str, ids))))
    assert "different data versions" in at.warning[0].value and "iris@" in at.warning[0].value


def test_pages_compare_history_keeps_smoothing_and_log_scale_from_the_url(runs):
    at = _ok(_page("pages/compare.py", runs=",".join(map(str, runs[:3])), smooth="0.5", logy="1", tab="Charts"))
    assert at.slider(key="cmp_smooth").value == 0.5 and at.toggle(key="cmp_logy").value is True
    (history,) = vega.specs(at)
    assert history["title"] == "History of loss" and vega.y_scale(history) == "log"
    assert len(vega.lines(history)) == 3 and len(history["layer"]) == 2  # three runs, raw and smoothed
    assert at.query_params["smooth"] == "0.5" and at.query_params["logy"] == "1"


def test_pages_compare_only_differences_hides_equal_fields(runs):
    at = _ok(_page("pages/compare.py", runs=f"{runs[0]},{runs[2]}"))
    assert "experiment" in at.dataframe[0].value.index
    at.toggle(key="cmp_diff").set_value(True).run()
    fields = _ok(at).dataframe[0].value.index
    assert "experiment" not in fields and "params.lr" in fields and "params.kind" not in fields
    assert at.query_params["diff"] == "1"


def test_pages_compare_with_too_few_or_unknown_runs_explains(runs):
    at = _ok(_page("pages/compare.py", runs=str(runs[0])))
    assert "Pick 2 to 50 runs" in at.info[0].value
    at = _ok(_page("pages/compare.py", runs=f"{runs[0]},{runs[1]},9999"))
    assert "#9999" in at.warning[0].value and list(at.dataframe[0].value.columns) == [
        f"r0 #{runs[0]}",
        f"r1 #{runs[1]}",
    ]


def test_pages_compare_saves_a_report_that_the_reports_page_reopens(runs):
    at = _ok(_page("pages/compare.py", runs=f"{runs[3]},{runs[4]}", diff="1", tab="Share"))
    at.text_input(key="cmp_title").input("Growth vs risk").run()
    at.text_area(key="cmp_notes").input("The **growth** run wins.").run()
    next(b for b in at.button if b.label == "Save as report").click().run()
    (report,) = list_reports(tracking.open_store())
    assert report.title == "Growth vs risk" and report.view.runs == (runs[3], runs[4]) and report.view.only_differences
    assert _ok(at).title[0].value == "Growth vs risk" and at.query_params["report"] == str(report.id)
    at = _ok(_page("pages/reports.py"))
    assert "Growth vs risk" in at.markdown[0].value
    at.button(key=f"open_{report.id}").click().run()
    assert _ok(at).title[0].value == "Growth vs risk" and at.query_params["runs"] == f"{runs[3]},{runs[4]}"
    assert at.toggle(key="cmp_diff").value is True


def test_pages_reports_lists_searches_and_deletes(runs):
    store = tracking.open_store()
    keep = save_report(store, title="Keep me", notes="about churn", view=CompareView(runs=tuple(runs[:2])))
    drop = save_report(store, title="Drop me", view=CompareView(runs=tuple(runs[2:4])))
    at = _ok(_page("pages/reports.py"))
    assert [m.value for m in at.markdown if m.value.startswith("####")] == ["#### Drop me", "#### Keep me"]
    at.text_input(key="reports_search").input("churn").run()
    assert [m.value for m in _ok(at).markdown if m.value.startswith("####")] == ["#### Keep me"]
    assert at.query_params["q"] == "churn"
    shared = _ok(_page("pages/reports.py", q="churn"))
    assert [m.value for m in shared.markdown if m.value.startswith("####")] == ["#### Keep me"]
    at.text_input(key="reports_search").input("").run()
    at.button(key=f"delete_{drop.id}").click().run()
    assert [r.id for r in list_reports(store)] == [keep.id]


def test_pages_reports_when_there_are_none():
    assert "No saved reports yet" in _ok(_page("pages/reports.py")).info[0].value
