"""The monitoring page under AppTest, on a copy of a real store with `loan` v1 in production and requests
logged the way the model server logs them."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.pages import signed_in_app
from tests.traffic import rows, serve, shifted
from tracking.production._reviews import list_reviews
from tracking.registry._models import production_version
from tracking.store._db import Store


@pytest.fixture
def drifted(served: Store) -> Store:
    """The store after `loan` v1 answered a shifted copy of its held-out rows."""
    version = production_version(served, "loan")
    X, _ = rows(served, version, "test")
    serve(served, version, shifted(X))
    return served


def _open(role: str, **query: str) -> AppTest:
    at = signed_in_app(role)
    at.switch_page("pages/monitoring.py")
    at.query_params.update(query)
    return _ok(at.run())


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, at.exception[0].value if at.exception else ""
    return at


def _button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def test_pages_monitoring_shows_the_breach_banner_and_the_drift_table(drifted):
    at = _open("viewer", model="loan")
    assert "alerts for loan v1" in at.error[0].value and "credit\\_score drifted" in at.error[0].value
    table = at.dataframe[0].value
    assert list(table.columns[:3]) == ["feature", "type", "PSI"]
    assert set(table["drifted"]) == {"⚠ drifted"} and "purpose" in set(table["feature"])
    assert table.set_index("feature").loc["purpose", "test"] == "χ²"
    assert any("predicted classes" in m.value and "**drifted**" in m.value for m in at.markdown)


def test_pages_monitoring_without_requests_explains_how_to_serve(served):
    at = _open("data_scientist")
    assert "python -m tracking serve --model loan" in at.info[0].value
    assert not at.error and not at.dataframe


def test_pages_monitoring_a_viewer_cannot_open_a_review(drifted):
    at = _open("viewer", model="loan")
    assert _button(at, "Open a review of loan v1").disabled
    assert any("may not open a review" in c.value for c in at.caption)


def test_pages_monitoring_a_review_opened_with_findings_is_closed_by_the_product_owner(drifted):
    at = _open("data_scientist", model="loan")
    next(a for a in at.text_area if a.label == "Reason").input("Inputs moved a lot")
    _ok(_button(at, "Open a review of loan v1").click().run())
    (review,) = list_reviews(drifted, status="open")
    assert review.reason == "Inputs moved a lot" and review.findings["breaches"]
    assert _button(at, "Close review").disabled  # a data scientist does not close reviews

    at = _open("product_owner", model="loan")
    at.text_input(key=f"review_comment_{review.id}").input("Retraining on recent data")
    _ok(_button(at, "Close review").click().run())
    assert list_reviews(drifted, status="open") == [] and not any(b.label == "Close review" for b in at.button)
