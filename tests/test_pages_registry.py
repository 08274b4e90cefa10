"""The registry pages (run page's Register panel, models, version, approvals, request) under AppTest,
signed in as each role, on a real store with real trained models."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

import tracking
from tests.governance import fixed_c, trained_runs
from tests.pages import button, no_exception, open_page
from tracking.registry._models import VersionRecord, get_version, list_versions, register_version, set_policy
from tracking.registry._promotions import approve_promotion, get_request, list_requests, request_promotion
from ui.registry import NEW_MODEL


@pytest.fixture
def loan_v1(run, users) -> VersionRecord:
    """The run's model registered as `loan` v1 by the data scientist."""
    return register_version(tracking.open_store(), run.id, "loan", "first try", actor=users["data_scientist"])


@pytest.fixture
def request_(loan_v1, users):
    """A pending promotion request for `loan` v1 (nothing in production yet), by the data scientist."""
    return request_promotion(tracking.open_store(), loan_v1.id, "Best F1 so far", actor=users["data_scientist"])


def _area(at: AppTest, label: str):
    return next(a for a in at.text_area if a.label == label)


def _link(at: AppTest, label: str):
    return next(link for link in at.page_link if link.value == label)


def _captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption)


def test_pages_registry_register_from_the_run_page_creates_v1_and_links_it(run):
    at = open_page("data_scientist", "pages/run.py", id=run.id)
    assert at.selectbox(key=f"register_model_{run.id}").value == NEW_MODEL
    at.text_input(key=f"register_name_{run.id}").input("loan")
    at.text_area(key=f"register_description_{run.id}").input("C=10 on loan approval")
    no_exception(button(at, "Register model").click().run())
    (version,) = list_versions(tracking.open_store(), model="loan")
    assert (version.version, version.run_id, version.description) == (1, run.id, "C=10 on loan approval")
    assert _link(at, "Open loan v1").proto.query_string == f"id={version.id}"
    assert _link(at, "loan v1 · none").proto.query_string == f"id={version.id}"  # the run's registered versions


def test_pages_registry_a_viewer_sees_register_and_annotations_disabled(run):
    at = open_page("viewer", "pages/run.py", id=run.id)
    assert button(at, "Register model").disabled and button(at, "Save tags").disabled
    assert "may not register model versions" in _captions(at) and "may not tag runs" in _captions(at)


def test_pages_registry_models_page_without_models_explains_how_to_register(users):
    at = open_page("viewer", "pages/models.py")
    assert "python -m tracking registry register RUN --name MODEL" in at.info[0].value


def test_pages_registry_models_page_lists_the_model_and_its_versions(loan_v1, run, users):
    second = register_version(tracking.open_store(), run.id, "loan", "again", actor=users["engineer"])
    at = open_page("viewer", "pages/models.py", model="loan")
    models = at.dataframe[0].value
    assert list(models["model"]) == ["loan"] and list(models["versions"]) == [2]
    versions = at.dataframe[1].value
    assert list(versions["version"]) == [2, 1]
    assert list(versions["open"]) == [f"version?id={second.id}", f"version?id={loan_v1.id}"]
    assert list(versions["run"]) == [f"run?id={run.id}"] * 2 and versions["held-out f1_macro"].iloc[0] > 0.7
    assert _link(at, "loan v1 · none").proto.query_string == f"id={loan_v1.id}"


def test_pages_registry_version_page_links_its_lineage(loan_v1, run):
    at = open_page("viewer", "pages/version.py", id=loan_v1.id)
    assert at.title[0].value == "loan v1"
    assert _link(at, f"Run {run.name} #{run.id}").proto.query_string == f"id={run.id}"
    sweep_link = next(link for link in at.page_link if link.value.startswith("Sweep "))
    assert sweep_link.proto.query_string == f"id={run.sweep_id}"
    lineage = "\n".join(m.value for m in at.markdown)
    assert run.dataset["hash"] in lineage and "2,000 rows" in lineage and run.code_version in lineage
    # a card not written yet reads so to a viewer, and nothing else is drawn for it (a conditional expression drew
    # Streamlit's help for the value it returned)
    unwritten = sum(not text for text in (loan_v1.description, loan_v1.intended_use, loan_v1.limitations))
    assert unwritten and sum(m.value == "_Not written yet._" for m in at.markdown) == unwritten
    assert not at.get("help_info")


def test_pages_registry_stage_buttons_move_a_version_for_a_data_scientist(loan_v1):
    at = open_page("data_scientist", "pages/version.py", id=loan_v1.id)
    no_exception(button(at, "Move to staging").click().run())
    assert get_version(tracking.open_store(), loan_v1.id).stage == "staging"
    assert button(at, "Move to staging").disabled
    no_exception(button(at, "Archive").click().run())
    assert get_version(tracking.open_store(), loan_v1.id).stage == "archived"


def test_pages_registry_stage_buttons_are_disabled_for_a_viewer(loan_v1):
    at = open_page("viewer", "pages/version.py", id=loan_v1.id)
    assert button(at, "Move to staging").disabled and button(at, "Archive").disabled
    assert "may not move versions to staging" in _captions(at)
    assert button(at, "Request promotion to production").disabled


def test_pages_registry_model_card_is_editable_and_offered_as_downloads(loan_v1):
    at = open_page("product_owner", "pages/version.py", id=loan_v1.id)
    assert {b.label for b in at.get("download_button")} == {"Model card (HTML)", "Model card (Markdown)"}
    _area(at, "Intended use").input("Pre-screening loan applications; a person decides.")
    no_exception(button(at, "Save model card").click().run())
    saved = get_version(tracking.open_store(), loan_v1.id)
    assert saved.intended_use == "Pre-screening loan applications; a person decides."
    assert any(d.value["metric"].tolist()[:1] == ["Accuracy"] for d in at.dataframe)  # the held-out scores


def test_pages_registry_request_promotion_from_the_version_page_creates_a_request_with_gates(loan_v1):
    at = open_page("data_scientist", "pages/version.py", id=loan_v1.id)
    _area(at, "Justification").input("Best F1 on the held-out rows")
    no_exception(button(at, "Request promotion to production").click().run())
    (request,) = list_requests(tracking.open_store(), version_id=loan_v1.id)
    assert request.status == "pending" and request.justification == "Best F1 on the held-out rows"
    assert request.gates and request.failed_gates == [] and "not applicable" in request.gate_summary
    assert at.title[0].value == f"Promotion request {request.id}: loan v1"  # switched to the request page


def test_pages_registry_product_owner_approves_and_the_version_goes_to_production(request_, loan_v1):
    at = open_page("product_owner", "pages/request.py", id=request_.id)
    assert "gates passed" in "\n".join(m.value for m in at.markdown)
    _area(at, "Comment (required)").input("Ship it")
    no_exception(button(at, "Approve").click().run())
    assert get_version(tracking.open_store(), loan_v1.id).stage == "production"
    assert get_request(tracking.open_store(), request_.id).comment == "Ship it"
    assert at.success[0].value.startswith("Approved by **product\\_owner**")
    assert _link(at, "In production now: loan v1").proto.query_string == f"id={loan_v1.id}"


def test_pages_registry_the_requester_sees_approve_disabled(request_):
    at = open_page("data_scientist", "pages/request.py", id=request_.id)
    assert button(at, "Approve").disabled and button(at, "Reject").disabled
    assert "another person must review it" in _captions(at)
    no_exception(button(at, "Withdraw").click().run())
    assert get_request(tracking.open_store(), request_.id).status == "withdrawn"


def test_pages_registry_approvals_lists_pending_then_decided(request_, users):
    at = open_page("product_owner", "pages/approvals.py")
    assert _link(at, f"Review request {request_.id}").proto.query_string == f"id={request_.id}"
    approve_promotion(tracking.open_store(), request_.id, "fine", actor=users["product_owner"])
    at.selectbox(key="approvals_status").select("approved")
    decided = no_exception(at.run()).dataframe[0].value
    assert list(decided["request"]) == [f"request?id={request_.id}"] and at.query_params["status"] == "approved"
    assert "No request is waiting" in at.info[0].value


@pytest.fixture
def worse_request(request_, users):
    """`loan` v1 (C=10) in production and a pending request for v2, an underfitting model (C=0.0005)."""
    store = tracking.open_store()
    approve_promotion(store, request_.id, "first", actor=users["product_owner"])
    (bad,) = trained_runs(store, 1, actor=users["data_scientist"], space=fixed_c(0.0005))
    worse = register_version(store, bad.id, "loan", "tiny C", actor=users["data_scientist"])
    return request_promotion(store, worse.id, "Simpler model", actor=users["data_scientist"])


def test_pages_registry_a_failing_gate_blocks_the_product_owner(worse_request):
    at = open_page("product_owner", "pages/request.py", id=worse_request.id)
    assert button(at, "Approve").disabled and not button(at, "Reject").disabled
    assert "can only be approved by an admin overriding it" in _captions(at)
    table = next(d.value for d in at.dataframe if "candidate is" in d.value)
    assert table.set_index("metric").loc["F1 (macro average)", "candidate is"] == "worse"
    text = "\n".join(m.value for m in at.markdown)
    assert "FAILED" in text and "worse" in text and "parameter changed" in text


def test_pages_registry_an_admin_overrides_a_failing_gate_with_a_justification(worse_request):
    at = open_page("admin", "pages/request.py", id=worse_request.id)
    _area(at, "Comment (required)").input("Accepted for the pilot")
    _area(at, "Override justification").input("Latency matters more for two weeks")
    no_exception(button(at, "Approve").click().run())
    decided = get_request(tracking.open_store(), worse_request.id)
    assert decided.status == "approved" and decided.override_justification == "Latency matters more for two weeks"
    assert get_version(tracking.open_store(), worse_request.version_id).stage == "production"
    assert "Override justification" in at.warning[0].value


def test_pages_registry_request_shows_not_applicable_gates_and_metrics_worse_without_a_gate(request_, users):
    at = open_page("product_owner", "pages/request.py", id=request_.id)  # nothing in production yet
    text = "\n".join(m.value for m in at.markdown)
    assert "**3 of 3 gates passed; 3 not applicable.**" in text and text.count("**not applicable**") == 3

    store = tracking.open_store()
    approve_promotion(store, request_.id, "first", actor=users["product_owner"])
    policy = {"regression": {"metric": "f1_macro", "tolerance": 1.0, "bootstrap": 200}}  # only F1, loosely
    set_policy(store, "loan", policy, actor=users["admin"])
    (bad,) = trained_runs(store, 1, actor=users["data_scientist"], space=fixed_c(0.0005))
    v2 = register_version(store, bad.id, "loan", "tiny C", actor=users["data_scientist"])
    request = request_promotion(store, v2.id, "Simpler model", actor=users["data_scientist"])
    at = open_page("product_owner", "pages/request.py", id=request.id)
    text = "\n".join(m.value for m in at.markdown)
    assert "**3 of 3 gates passed; " in text and " metrics got worse without a gate.**" in text
    (log_loss,) = [line for line in text.splitlines() if "Log loss got worse\\: " in line]  # ":" escaped
    assert log_loss.endswith("beyond its 95% interval; no gate covers it.") and not button(at, "Approve").disabled
