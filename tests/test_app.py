"""The dashboard, run by Streamlit's AppTest against a real store."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

import tracking
from tests.governance import PASSWORD
from tests.pages import signed_in_app
from tracking.governance._access import authenticate


def _app() -> AppTest:
    return signed_in_app(timeout=60)


def test_app_home_on_an_empty_store_explains_how_to_start():
    at = _app()
    assert not at.exception
    assert "store is empty" in at.info[0].value
    assert "python -m tracking sweep" in at.info[0].value


def test_app_home_shows_counts_and_recent_runs():
    store = tracking.open_store()
    with tracking.start_run("churn", params={"C": 1.0}, store=store, name="baseline") as run:
        run.log_metrics({"test_accuracy": 0.91})
    try:
        with tracking.start_run("churn", store=store, name="broken"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    at = _app()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Experiments"] == "1" and metrics["Runs"] == "2"
    runs = at.dataframe[-1].value
    assert list(runs["name"]) == ["broken", "baseline"]
    assert list(runs["status"]) == ["failed", "complete"]
    assert runs.loc[runs["name"] == "baseline", "test_accuracy"].item() == 0.91


def test_app_home_rereads_the_store_after_a_change():
    store = tracking.open_store()
    at = _app()  # signed in: the store now has accounts, so the script needs a credential too
    with tracking.start_run("late", store=store, name="new-run", actor=authenticate(store, "engineer", PASSWORD)):
        pass
    at.run()
    assert "new-run" in list(at.dataframe[-1].value["name"])
