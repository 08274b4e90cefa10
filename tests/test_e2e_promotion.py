"""End to end in a real browser: a data scientist registers a run's model and requests its promotion; a
product owner opens Approvals, reads the comparison with production and approves; the version is in
production and the Audit page shows the request and the approval."""

from __future__ import annotations

import pytest

import tracking
from tests.e2e import SLOW, open_app, sign_in
from tests.governance import PASSWORD, fixed_c, trained_runs
from tests.polling import wait_until
from tracking.registry._models import list_versions, register_version
from tracking.registry._promotions import approve_promotion, request_promotion

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # each wait has its own bound
WAIT = SLOW  # ms: a rerun that scores two models on a loaded machine


@pytest.fixture
def candidate_run(users):
    """`loan` v1 (C=10) in production, and a second complete run of the same model: the unregistered candidate."""
    store = tracking.open_store()
    scientist = users["data_scientist"]
    (first,) = trained_runs(store, 1, actor=scientist, space=fixed_c(10.0))
    v1 = register_version(store, first.id, "loan", "first", actor=scientist)
    request = request_promotion(store, v1.id, "the first model", actor=scientist)
    approve_promotion(store, request.id, "go", actor=users["product_owner"])
    (second,) = trained_runs(store, 1, actor=scientist, space=fixed_c(10.0))
    return second


def _open_tab(page, name: str, inside) -> None:
    """Open a tab and wait until `inside` shows; a rerun still drawing the page may redraw the tabs and show the
    first one again, so the tab is clicked whenever it is not the selected one."""
    tab = page.get_by_role("tab", name=name)

    def opened() -> bool:
        if tab.get_attribute("aria-selected", timeout=WAIT) != "true":
            tab.click(timeout=WAIT)
        return inside.is_visible()

    wait_until(opened, timeout=WAIT / 1000, what=f"the tab {name!r} to show its content")


def _sign_out(page) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in").wait_for(timeout=WAIT)


def test_e2e_register_request_approve_and_audit(candidate_run, app_url, browser, tmp_path):
    page = open_app(browser, f"{app_url}/run?id={candidate_run.id}", viewport={"width": 1400, "height": 1100})
    sign_in(page, "data_scientist", PASSWORD)

    # the data scientist registers the run's model as the next version of `loan`
    description = page.get_by_label("Description of this version")
    _open_tab(page, "Model registry", description)
    description.fill("Retrained on the same data")
    page.get_by_role("button", name="Register model").click()
    page.get_by_text("Registered as loan v2.").wait_for(timeout=WAIT)  # the run that registered it has drawn
    page.get_by_role("link", name="Open loan v2").click()
    page.wait_for_url("**/version?id=*", timeout=WAIT)
    page.get_by_role("heading", name="loan v2").wait_for(timeout=WAIT)
    page.get_by_role("link", name=f"Run {candidate_run.name} #{candidate_run.id}").wait_for(timeout=WAIT)

    # ... and requests its promotion
    page.get_by_label("Justification").fill("Same quality, fresh training run")
    page.get_by_role("button", name="Request promotion to production").click()
    page.wait_for_url("**/request?id=*", timeout=WAIT)
    page.get_by_text("gates passed").first.wait_for(timeout=WAIT)
    page.screenshot(path=str(tmp_path / "requested.png"), full_page=True)
    _sign_out(page)

    # the product owner reviews it from Approvals
    sign_in(page, "product_owner", PASSWORD)
    page.get_by_role("link", name="Approvals").click()
    page.get_by_role("link", name="Review request 2").click()
    page.wait_for_url("**/request?id=2", timeout=WAIT)
    page.get_by_role("heading", name="Candidate vs production").wait_for(timeout=WAIT)
    page.get_by_text("6 of 6 gates passed.").wait_for(timeout=WAIT)
    page.get_by_text("Model file sha256 verifies").wait_for(timeout=WAIT)
    page.locator('[data-testid="stDataFrame"]').first.wait_for(state="visible", timeout=WAIT)  # the metric table
    page.get_by_text("F1 (macro average)").first.wait_for(timeout=WAIT)
    page.get_by_text("Nothing changed:").wait_for(timeout=WAIT)
    page.get_by_role("textbox", name="Comment (required)").fill("Looks as good as v1; approved")
    page.get_by_role("button", name="Approve").click()
    page.get_by_text("Approved by").wait_for(timeout=WAIT)
    page.screenshot(path=str(tmp_path / "approved.png"), full_page=True)

    # the version page shows it in production
    page.get_by_role("link", name="In production now: loan v2").click()
    page.wait_for_url("**/version?id=*", timeout=WAIT)
    page.get_by_role("heading", name="loan v2").wait_for(timeout=WAIT)
    page.get_by_text("production", exact=True).first.wait_for(timeout=WAIT)
    stages = {v.version: v.stage for v in list_versions(tracking.open_store(), model="loan")}
    assert stages == {2: "production", 1: "archived"}

    # the Audit page shows the request and the approval (newest first, so on the first screen)
    page.get_by_role("link", name="Audit").click()
    page.get_by_role("heading", name="Audit trail").wait_for(timeout=WAIT)
    table = page.locator('[data-testid="stDataFrame"] table').first  # the grid's accessible copy of its rows
    table.get_by_text("promotion.approve").first.wait_for(state="attached", timeout=WAIT)
    page.screenshot(path=str(tmp_path / "audit.png"), full_page=True)
    expected = {
        ("data_scientist", "promotion.request", "promotion_request", "2"),
        ("product_owner", "promotion.approve", "promotion_request", "2"),
    }  # actor, action, object type, object id

    def shown() -> set[tuple[str, ...]]:  # the grid fills its accessible copy as it draws: read until both are in
        rows = table.evaluate("t => [...t.rows].map(r => [...r.cells].map(c => c.textContent))")
        return {tuple(row[2:6]) for row in rows}

    wait_until(lambda: expected <= shown(), timeout=WAIT / 1000, what=f"the audit table to show {expected}")
