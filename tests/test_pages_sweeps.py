"""The Sweeps pages under Streamlit's AppTest: form validation, launching, live progress, control."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

import tracking
from tests import vega
from tests.conftest import ROOT
from tests.governance import PASSWORD
from tests.pages import shown_text, signed_in_app, tiny_sweep_form
from tests.polling import wait_until
from tracking.governance._access import authenticate
from tracking.sweeps._sweeps import SweepSpec, remember_workers_at

EDITOR = "space_editor_logistic_regression_classification"
X_SPACE = {"x": {"type": "float", "low": -5.0, "high": 5.0}}


def _page(path: str, **params: str) -> AppTest:
    at = signed_in_app(timeout=90)
    for key, value in params.items():
        at.query_params[key] = value
    return at.switch_page(path).run()


def _launch_button(at: AppTest):
    return at.button(key="launch")


def test_pages_sweeps_form_starts_valid_with_the_family_defaults():
    at = _page("pages/sweeps.py")
    assert not at.exception
    assert not at.error
    editor = at.data_editor(key=EDITOR).value
    assert list(editor["parameter"]) == ["C", "class_weight"]
    assert not _launch_button(at).disabled


BAD_EDITS = [
    ({"edited_rows": {0: {"low": 1000.0}}}, "greater than high"),
    ({"edited_rows": {0: {"low": 0.0}}}, "log-scale range needs low > 0"),
    ({"edited_rows": {1: {"choices": ""}}}, "non-empty list of choices"),
    ({"edited_rows": {0: {"step": 0.5}}}, "step cannot be combined with log"),
    ({"added_rows": [{"parameter": "bogus", "type": "int", "low": 1, "high": 3}]}, "no such parameter"),
    ({"added_rows": [{"parameter": "C", "type": "float", "low": 1.0, "high": 2.0}]}, "appears twice"),
    ({"added_rows": [{"type": "int", "low": 1, "high": 3}]}, "give the parameter a name"),
    ({"deleted_rows": [0, 1]}, "at least one parameter"),
]


@pytest.mark.parametrize(("edit", "message"), BAD_EDITS, ids=[m for _, m in BAD_EDITS])
def test_pages_sweeps_bad_search_space_is_named_and_blocks_launch(edit, message):
    at = _page("pages/sweeps.py")
    at.session_state[EDITOR] = {"edited_rows": {}, "added_rows": [], "deleted_rows": [], **edit}
    at.run()
    assert not at.exception
    errors = [shown_text(e.value) for e in at.error]
    assert any(message in e for e in errors), errors
    assert _launch_button(at).disabled
    assert tracking.list_sweeps(tracking.open_store()) == []


def test_pages_sweeps_csv_upload_previews_and_detects_the_task():
    at = _page("pages/sweeps.py")
    at.radio(key="data_source").set_value("Upload a CSV").run()
    at.file_uploader(key="csv_upload").set_value(
        ("loans.csv", (ROOT / "tracking/data/loan_approval.csv").read_bytes(), "text/csv")
    )
    at.run()
    at.selectbox(key="csv_target").set_value("approved").run()
    at.selectbox(key="csv_sensitive").set_value("gender").run()
    assert not at.exception and not at.error
    assert any("classification" in c.value for c in at.caption)
    assert "income" in at.dataframe[-2].value.columns or "income" in at.dataframe[0].value.columns


def test_pages_sweeps_broken_csv_gets_one_sentence():
    at = _page("pages/sweeps.py")
    at.radio(key="data_source").set_value("Upload a CSV").run()
    at.file_uploader(key="csv_upload").set_value(("bad.csv", "a,b\ncaf\xe9,1\n".encode("latin-1"), "text/csv"))
    at.run()
    assert len(at.error) == 1 and "not UTF-8" in at.error[0].value
    assert not [b for b in at.button if b.key == "launch"]  # the form stops at the data step


@pytest.mark.slow
def test_pages_sweeps_launch_a_tiny_sweep_that_finishes_in_the_store():
    at = tiny_sweep_form(_page("pages/sweeps.py"), workers=1)
    at.text_input[-1].set_value("from-the-page")
    at.run()
    assert not at.error, [e.value for e in at.error]
    _launch_button(at).click().run()
    store = tracking.open_store()
    (sweep,) = tracking.list_sweeps(store)
    assert sweep.name == "from-the-page" and sweep.n_trials == 3 and sweep.config["folds"] == 2
    assert sweep.owner == "data_scientist"
    assert sweep.config["space"]["n_neighbors"] == {"type": "int", "low": 3, "high": 7, "log": False}
    wait_until(lambda: tracking.get_sweep(store, sweep.id).status == "complete", 180, "the sweep to complete")
    runs = tracking.list_runs(store, sweep_id=sweep.id)
    assert len(runs) == 3 and all(r.status == "complete" for r in runs)
    detail = _page("pages/sweep.py", id=str(sweep.id))
    assert not detail.exception
    assert "3 / 3 trials finished" in detail.get("progress")[0].proto.text


def test_pages_sweep_offers_the_dask_cluster_its_workers_ran_on(users):
    store = tracking.open_store()
    sweep = tracking.create_sweep(store, SweepSpec(model="knn", task="iris", n_trials=2), actor=users["data_scientist"])
    with store.connect(write=True) as conn:  # as `launch_dask_workers` records a launch it saw accepted
        remember_workers_at(conn, sweep.id, {"executor": "dask", "scheduler": "tcp://dask.internal:8786",
                                             "server_url": "http://tracking.internal:8765"})  # fmt: skip
    tracking.cancel_sweep(store, sweep.id, actor=users["data_scientist"])
    at = _page("pages/sweep.py", id=str(sweep.id))
    assert at.radio(key="resume_executor").value == "dask"
    assert at.text_input(key="resume_executor_scheduler").value == "tcp://dask.internal:8786"
    assert at.text_input(key="resume_executor_server").value == "http://tracking.internal:8765"


@pytest.mark.slow
def test_pages_sweep_cancel_and_resume_from_the_detail_page(tmp_path, monkeypatch, users):
    flag = tmp_path / "slow"
    flag.touch()
    monkeypatch.setenv("SLOW_FLAG", str(flag))
    store = tracking.open_store()
    spec = SweepSpec(objective="tests.objectives:slow_while_flag", space=X_SPACE, metrics=["value:min"], n_trials=3)
    sweep = tracking.create_sweep(store, spec, actor=users["data_scientist"])
    tracking.launch_workers(store, sweep.id, 1, actor=users["data_scientist"])  # its worker gets a sweep token
    assert tracking.get_sweep(store, sweep.id).workers_at == {"executor": "local"}
    wait_until(lambda: tracking.get_sweep(store, sweep.id).counts.get("running", 0) == 1, 180, "a running trial")
    at = _page("pages/sweep.py", id=str(sweep.id))
    live, history = vega.specs(at)  # while it runs: the live chart above the tabs and the Charts tab's, Vega-Lite
    assert not at.get("plotly_chart") and live["layer"][0]["encoding"]["y"]["title"] == "value"
    assert history["layer"][0]["encoding"] == live["layer"][0]["encoding"]  # the same optimisation history
    next(b for b in at.button if b.label == "Cancel").click().run()
    assert tracking.get_sweep(store, sweep.id).cancel_requested
    flag.unlink()
    wait_until(lambda: tracking.get_sweep(store, sweep.id).status == "cancelled", 180, "the cancel")
    at = _page("pages/sweep.py", id=str(sweep.id))
    assert at.radio(key="resume_executor").value == "local"  # where its workers ran
    inputs = {n.label: n for n in at.number_input}
    inputs["Workers"].set_value(1).run()
    next(b for b in at.button if b.label == "Resume").click().run()
    wait_until(lambda: tracking.get_sweep(store, sweep.id).status == "complete", 180, "the sweep to complete")
    assert tracking.get_sweep(store, sweep.id).finished == 3


@pytest.mark.slow
def test_pages_sweep_detail_draws_every_chart():
    store = tracking.open_store()
    space = {
        "max_iter": {"type": "int", "low": 10, "high": 40},
        "learning_rate": {"type": "float", "low": 0.05, "high": 0.3, "log": True},
    }
    spec = SweepSpec(
        model="hist_gradient_boosting", task="iris", space=space, n_trials=5, folds=2, sampler="random", pruner="none"
    )
    sweep = tracking.create_sweep(store, spec)
    tracking.run_worker(store, sweep.id)
    at = _page("pages/sweep.py", id=str(sweep.id))
    assert not at.exception
    titles = ["Optimisation history", "Learning curves", "Parameter importances", "Parallel coordinates", "Slice",
              "Contour", "Timeline by worker"]  # fmt: skip
    assert [t.label for t in at.tabs] == ["Charts", *titles, "Trials", "Settings"]
    for title in titles:  # one chart at a time: the live history and the chosen one
        at.session_state["chart"] = title
        at.run()
        charts = len(at.get("plotly_chart")) + len(at.get("vega_lite_chart"))
        assert not at.exception and charts == 1, title  # the live chart only while it runs
        assert not [c.value for c in at.caption if c.value.startswith("Not drawn")], title
    assert not at.code  # the workers' command is built when its expander opens (a code block is heavy to draw)
    at.session_state["workers_box"] = True  # a click on the expander
    assert "python -m tracking worker --sweep" in at.run().code[0].value


def _quadratic_sweep(n_trials: int = 4) -> tracking.SweepRecord:
    store = tracking.open_store()
    spec = SweepSpec(objective="tests.objectives:quadratic", space=X_SPACE, metrics=["value:min"], n_trials=n_trials,
                     sampler="random")  # fmt: skip
    sweep = tracking.create_sweep(store, spec)
    tracking.run_worker(store, sweep.id)
    return tracking.get_sweep(store, sweep.id)


def test_pages_sweep_builds_only_the_open_tab_and_chart_once_per_change(monkeypatch):
    import ui.sweeps

    drawn = []
    real = ui.sweeps.sweep_figure
    monkeypatch.setattr(ui.sweeps, "sweep_figure", lambda *a, **k: drawn.append(a[2]) or real(*a, **k))
    sweep = _quadratic_sweep(n_trials=2)  # two trials: Plotly alone would tick the trial axis at 0, 0.5, 1
    at = _page("pages/sweep.py", id=str(sweep.id))
    assert not at.exception and drawn == []  # the optimisation history is drawn from the runs, without Optuna
    (history,) = vega.specs(at)  # Vega-Lite, no Plotly; no live chart: it ended
    assert not at.get("plotly_chart") and [row["trial"] for row in vega.rows(history, 0)] == [0, 1]
    assert history["layer"][0]["encoding"]["x"]["axis"] == {"format": "d", "tickMinStep": 1}  # never a trial 0.5
    assert {row["run"] for row in vega.rows(history, 0)} == {
        r.id for r in tracking.list_runs(tracking.open_store(), sweep_id=sweep.id)
    }
    assert f"(run?id={sweep.best_run_id})" in at.success[0].value  # the best banner links its run
    store = tracking.open_store()
    actor = authenticate(store, "data_scientist", PASSWORD)
    at.session_state["chart"] = "Slice"
    at.run()
    assert drawn == ["Slice"] and len(at.get("plotly_chart")) == 1 and not at.get("vega_lite_chart")
    with tracking.start_run("elsewhere", params={"x": 1.0}, actor=actor) as run:  # a write outside the sweep
        run.log_metrics({"value": 1.0})
    at.run()
    assert drawn == ["Slice"]  # still the cached chart: the sweep did not change
    at.session_state["view"] = "Trials"
    at.run()
    assert drawn == ["Slice"] and not at.get("plotly_chart") and len(at.dataframe) == 1


def test_pages_sweep_unknown_id_says_so():
    at = _page("pages/sweep.py", id="999")
    assert not at.exception
    assert at.warning[0].value == "There is no sweep 999."


@pytest.mark.slow
def test_pages_home_demo_button_launches_the_demo_sweep():
    at = signed_in_app(timeout=90)
    next(b for b in at.button if b.label == "Run a demo sweep").click().run()
    store = tracking.open_store()
    (sweep,) = tracking.list_sweeps(store)
    try:
        assert sweep.name == "demo" and sweep.n_trials == 24 and sweep.config["model"] == "hist_gradient_boosting"
        assert sweep.owner == "data_scientist"
    finally:
        tracking.cancel_sweep(store, sweep.id, now=True, actor=authenticate(store, "data_scientist", PASSWORD))
        wait_until(
            lambda: tracking.get_sweep(store, sweep.id).status in ("cancelled", "interrupted", "complete"),
            120,
            "the sweep to stop",
        )
