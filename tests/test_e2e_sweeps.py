"""End to end in a real browser, signed in as a data scientist: launch a sweep from the form, watch it,
close and reopen the tab (a new browser signs in again; a reload stays signed in), cancel, resume, and open a detail page
whose charts are drawn."""

from __future__ import annotations

from datetime import datetime

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect
from sqlalchemy import func, select

import tracking
from tests.e2e import CHARTS, SLOW, idle, open_app, rerun, sign_in
from tests.governance import PASSWORD
from tests.polling import wait_until
from tracking.store._tables import Worker
from tracking.sweeps._sweeps import SweepSpec

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # each wait has its own bound


def _last_beat(store, sweep_id: int) -> datetime:
    """When a worker of the sweep last refreshed its heartbeat."""
    with store.connect() as conn:
        return conn.execute(select(func.max(Worker.last_seen)).where(Worker.sweep_id == sweep_id)).scalar_one()


def _state(store, sweep_id: int) -> str:
    """The sweep, its runs and its workers as the store has them (for a failure message)."""
    sweep = tracking.get_sweep(store, sweep_id)
    with store.connect() as conn:
        workers = conn.execute(select(Worker.id, Worker.pid, Worker.last_seen, Worker.stopped_at)
                               .where(Worker.sweep_id == sweep_id)).all()  # fmt: skip
    return f"{sweep.status}, counts {sweep.counts}, cancel {sweep.cancel_requested}, workers {workers}"


def _open(browser, url: str):
    page = open_app(browser, url, viewport={"width": 1400, "height": 1000})
    sign_in(page, "data_scientist", PASSWORD)
    return page


def test_e2e_launch_from_the_form_reaches_5_of_5_and_draws_charts(app_url, browser, tmp_path):
    page = _open(browser, f"{app_url}/sweeps")
    page.get_by_text("Launch a sweep").wait_for(timeout=SLOW)
    trials = page.get_by_label("Trials")
    trials.fill("5")
    rerun(page, lambda: trials.press("Enter"))
    name = page.get_by_label("Sweep name (optional)")
    name.fill("browser-sweep")
    rerun(page, lambda: name.press("Enter"))
    page.get_by_role("button", name="Launch").click()
    page.wait_for_url("**/sweep?id=*", timeout=SLOW)
    page.get_by_text("5 / 5 trials finished — complete").wait_for(timeout=240_000)
    page.screenshot(path=str(tmp_path / "sweep-finished.png"), full_page=True)
    store = tracking.open_store()
    (sweep,) = tracking.list_sweeps(store)
    assert sweep.name == "browser-sweep" and sweep.n_trials == 5 and sweep.owner == "data_scientist"
    wait_until(lambda: tracking.get_sweep(store, sweep.id).status == "complete", timeout=120,
               what="the sweep to be complete in the store")  # fmt: skip
    page.reload()  # the session is the browser's: still signed in
    page.get_by_text("Signed in as data_scientist").wait_for(timeout=SLOW)
    for title in ("Optimisation history", "Learning curves", "Parameter importances", "Parallel coordinates", "Slice",
                  "Contour", "Timeline by worker"):  # fmt: skip
        page.get_by_role("tab", name=title).click()  # only the open chart is built (the live one left with the run)
        page.get_by_role("tab", name=title, selected=True).wait_for(timeout=SLOW)
        expect(page.locator(CHARTS)).to_have_count(1, timeout=SLOW)  # the history with Vega-Lite, the others Plotly
        idle(page)  # a chart that could not be drawn says so by now
        assert page.get_by_text("Not drawn").count() == 0, title


def test_e2e_close_reopen_cancel_resume(app_url, users, browser, tmp_path, monkeypatch):
    flag = tmp_path / "slow"
    flag.touch()
    monkeypatch.setenv("SLOW_FLAG", str(flag))
    store = tracking.open_store()
    spec = SweepSpec(objective="tests.objectives:slow_while_flag", space={"x": {"type": "float", "low": -5, "high": 5}},
                     metrics=["value:min"], n_trials=5, name="long-sweep")  # fmt: skip
    sweep = tracking.create_sweep(store, spec, actor=users["data_scientist"])
    tracking.launch_workers(store, sweep.id, 1, actor=users["data_scientist"])
    page = _open(browser, f"{app_url}/sweep?id={sweep.id}")  # a deep link as the server's first request
    page.get_by_text("0 / 5 trials finished — running").wait_for(timeout=SLOW)
    nav = page.locator('[data-testid="stSidebarNav"]')
    nav.get_by_text("Sweeps").wait_for(timeout=SLOW)
    assert nav.get_by_text("Sweeps").count() == 1 and nav.get_by_text("app", exact=True).count() == 0
    beat = _last_beat(store, sweep.id)
    page.close()  # the browser goes away; the sweep does not: its worker beats on
    wait_until(lambda: _last_beat(store, sweep.id) > beat, what="a heartbeat of the worker after the tab closed")
    page = _open(browser, f"{app_url}/sweep?id={sweep.id}")
    page.get_by_text("0 / 5 trials finished — running").wait_for(timeout=SLOW)
    wait_until(lambda: tracking.get_sweep(store, sweep.id).counts.get("running", 0) == 1, timeout=SLOW / 1000,
               what="the worker to be inside its trial")  # fmt: skip
    page.get_by_role("button", name="Cancel").click()
    page.get_by_text("Cancel requested").wait_for(timeout=SLOW)
    flag.unlink()  # the trial under way finishes; then the worker stops
    page.get_by_text("1 / 5 trials finished — cancelled").wait_for(timeout=SLOW)
    resume = page.get_by_role("button", name="Resume")
    resume.wait_for()
    idle(page)  # the rerun that drew the button is over: a click while it runs may go to a button being replaced
    resume.click()
    wait_until(lambda: tracking.get_sweep(store, sweep.id).status != "cancelled", timeout=SLOW / 1000,
               what="the click on Resume to reopen the sweep")  # fmt: skip
    try:
        page.get_by_text("5 / 5 trials finished — complete").wait_for(timeout=2 * SLOW)  # two workers, 4 trials
    except PlaywrightTimeout:
        page.screenshot(path=str(tmp_path / "resume-timeout.png"), full_page=True)
        raise AssertionError(f"the page never said 5 / 5 complete; the store: {_state(store, sweep.id)}") from None
    page.screenshot(path=str(tmp_path / "resumed.png"), full_page=True)
    # Under load the store once still said `running` just after the page said complete: wait for it to settle.
    wait_until(lambda: tracking.get_sweep(store, sweep.id).status == "complete", timeout=120,
               what="the resumed sweep to be complete in the store")  # fmt: skip
