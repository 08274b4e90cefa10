"""Reproducing a run from the run page, the Home page's monitoring alerts, a version's alerts and reviews, and
the policies page's monitoring thresholds, under AppTest on real stores with real trained models."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

import tracking
from tests.pages import button, no_exception, open_page
from tests.traffic import rows, serve, set_monitoring, shifted
from tracking.production._lifecycle import list_reproductions, reproduce_run
from tracking.production._reviews import open_review
from tracking.registry._models import production_version
from tracking.store._db import Store


def _serve(store: Store, moved: bool) -> None:
    """`loan` v1 answers its held-out rows: moved (shifted) or as they are."""
    version = production_version(store, "loan")
    X, _ = rows(store, version, "test")
    serve(store, version, shifted(X) if moved else X)


def _link(at: AppTest, label: str):
    return next(link for link in at.page_link if link.value == label)


def _monitoring_links(at: AppTest) -> list:
    return [link for link in at.page_link if link.proto.page == "monitoring"]


def _captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption)


# -- the run page -------------------------------------------------------------------------------------


def test_pages_lifecycle_reproduce_records_a_matched_outcome_and_lists_it(run):
    at = open_page("data_scientist", "pages/run.py", id=run.id)
    assert at.number_input(key=f"reproduce_tolerance_{run.id}").value == 1e-6
    assert "None yet." in _captions(at)
    no_exception(button(at, "Reproduce").click().run())
    (attempt,) = list_reproductions(tracking.open_store(), run_id=run.id)
    assert (attempt.outcome, attempt.created_by, attempt.tolerance) == ("matched", "data_scientist", 1e-6)
    assert at.success[0].value.startswith(f"**Matched.** All {len(attempt.details['metrics'])} recorded metrics")
    assert _link(at, f"Run #{attempt.new_run_id}").proto.query_string == f"id={attempt.new_run_id}"
    assert any("by **data\\_scientist** · tolerance 1e-06" in m.value for m in at.markdown)
    table = at.dataframe[-1].value
    assert set(table["metric"]) == {row["key"] for row in attempt.details["metrics"]} and set(table["matched"]) == {"✓"}


def test_pages_lifecycle_a_reproduced_run_links_back_to_its_original(run, users):
    attempt = reproduce_run(tracking.open_store(), run.id, actor=users["engineer"])
    at = open_page("viewer", "pages/run.py", id=attempt.new_run_id)
    assert at.info[0].value.startswith(f"This run reproduces run #{run.id} from its record")
    assert "Made by **engineer**" in at.info[0].value and "**matched**" in at.info[0].value
    assert _link(at, f"Original run #{run.id}").proto.query_string == f"id={run.id}"


def test_pages_lifecycle_a_viewer_sees_reproduce_disabled(run):
    at = open_page("viewer", "pages/run.py", id=run.id)
    assert button(at, "Reproduce").disabled and at.number_input(key=f"reproduce_tolerance_{run.id}").disabled
    assert "may not reproduce runs; data scientists, engineers and admins can" in _captions(at)


def test_pages_lifecycle_a_run_logged_by_a_script_cannot_be_reproduced(users):
    with tracking.start_run(
        "scripts", {"C": 1.0}, store=tracking.open_store(), actor=users["data_scientist"]
    ) as logged:
        logged.log_metrics({"cv_accuracy": 0.9})
    at = open_page("data_scientist", "pages/run.py", id=logged.id)
    assert button(at, "Reproduce").disabled
    assert "not trained by a sweep of a built-in model" in _captions(at)


# -- Home ----------------------------------------------------------------------------------------------


def test_pages_lifecycle_home_lists_the_alerts_of_shifted_traffic(served):
    _serve(served, moved=True)
    at = open_page("viewer", "pages/home.py")
    (banner,) = at.warning
    assert banner.value.startswith("**8 monitoring alerts on loan** in production")
    assert "\n- The predicted classes drifted" in banner.value
    assert "\n- The feature credit\\_score drifted from its training distribution" in banner.value
    (link,) = _monitoring_links(at)
    assert (link.value, link.proto.query_string) == ("Open the monitoring of loan", "model=loan")


def test_pages_lifecycle_home_is_quiet_when_traffic_looks_like_training(served):
    _serve(served, moved=False)
    at = open_page("viewer", "pages/home.py")
    assert not at.warning and not _monitoring_links(at)
    assert at.metric  # the rest of Home is there


# -- the version page ----------------------------------------------------------------------------------


def test_pages_lifecycle_version_page_shows_alerts_and_the_open_review(served, template):
    _serve(served, moved=True)
    version = production_version(served, "loan")
    open_review(served, version.id, "Inputs moved a lot", actor=template.users["data_scientist"])
    at = open_page("viewer", "pages/version.py", id=version.id)
    assert "alerts for loan v1" in at.warning[0].value and "credit\\_score drifted" in at.warning[0].value
    assert any(m.value.startswith("**Open review 1**, opened by **data\\_scientist**") for m in at.markdown)
    assert _link(at, "Monitoring and reviews of loan").proto.query_string == "model=loan"
    assert f"Reproductions of run #{version.run_id}" in [h.value for h in at.subheader]


# -- policies ------------------------------------------------------------------------------------------


def test_pages_lifecycle_policies_explain_the_monitoring_thresholds(served, template):
    at = open_page("admin", "pages/policies.py", model="loan")
    lines = at.markdown[0].value
    assert "**Monitoring** (alerts on the version in production, never a gate; none are set, so the defaults" in lines
    assert "reaches 0.2" in lines and "fewer than 50" in lines and "Quality: no bound set." in lines
    assert "`monitoring` is not a gate" in at.text_area[0].help and "`min_rows`" in at.text_area[0].help
    set_monitoring(served, template.users, psi=0.3, quality={"accuracy": 0.75})
    at = open_page("viewer", "pages/policies.py", model="loan")
    lines = at.markdown[0].value
    assert "so the defaults" not in lines and "reaches 0.3" in lines and "`accuracy` at least 0.75" in lines
