"""End to end in a real browser: sign in, open Runs, filter, tick three runs, compare them, open the copied
address as a colleague (a stakeholder with the viewer role) and see the same comparison, export the HTML report
and open the file offline.

Rows are selected by clicking the row checkboxes of Streamlit's canvas table (glide-data-grid) at their
coordinates: the grid draws no DOM per cell, but its row markers sit at fixed offsets.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

import tracking
from tests.e2e import CHARTS, SLOW, controls_ready, idle, open_app, rerun, sign_in
from tests.governance import PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # each wait has its own bound

HEADER, ROW, MARKER_X = 35, 35, 16  # pixels: header height, row height, centre of the row checkbox column
HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture
def six_runs():
    """Six runs in two experiments with params, final metrics and a loss history; one has a hostile name."""
    store = tracking.open_store()
    ids = []
    for i in range(6):
        params = {"lr": round(0.1 * (i + 1), 2), "depth": i % 3}
        name = HOSTILE if i == 5 else f"r{i}"
        with tracking.start_run("alpha" if i < 4 else "beta", params=params, store=store, name=name) as run:
            for step in range(5):
                run.log_metrics({"loss": 1 / (step + 1 + i)}, step=step)
            run.log_metrics({"test_accuracy": 0.7 + i / 50})
        ids.append(run.id)
    return ids


def _watch(page, dialogs: list[str]):
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    return page


def test_e2e_filter_select_compare_share_and_export(six_runs, app_url, browser, tmp_path):
    dialogs: list[str] = []
    page = _watch(open_app(browser, app_url, viewport={"width": 1400, "height": 1000}, accept_downloads=True), dialogs)
    sign_in(page, "data_scientist", PASSWORD)
    page.get_by_role("link", name="Runs").click()
    page.get_by_text("of 6 matching").wait_for(timeout=SLOW)
    controls_ready(
        page,
        *(page.get_by_label(label, exact=True) for label in ("Columns", "Descending", "Page (of 1)", "Rows per page")),
    )
    # the hostile run name is on screen now: it must stay text, never an element (nor a dialog)
    grid_text = page.locator('[data-testid="stDataFrame"] table').first  # the grid's accessible copy of its cells
    grid_text.get_by_text(HOSTILE, exact=True).wait_for(state="attached", timeout=SLOW)
    assert page.locator("img[src=x]").count() == 0

    box = page.get_by_label("Filter", exact=True).and_(page.locator("input"))
    box.fill('experiment = "alpha"')
    box.press("Enter")
    page.get_by_text("of 4 matching").wait_for(timeout=SLOW)
    idle(page)  # the filtered grid is drawn: a click before may land on the grid being replaced
    grid = page.locator('[data-testid="stDataFrame"]').first.bounding_box()
    for row in (0, 1, 2):  # newest first: r3, r2, r1
        page.mouse.click(grid["x"] + MARKER_X, grid["y"] + HEADER + ROW * row + ROW / 2)
        page.get_by_text(f"{row + 1} selected").wait_for(timeout=SLOW)
        idle(page)
    page.get_by_role("button", name="Compare selected (3)").click()
    page.get_by_text("Show only differences").wait_for(timeout=SLOW)
    page.wait_for_url(lambda url: "/compare?" in url and "runs=" in url, timeout=SLOW)
    _drawn(page)
    shared = page.url
    query = parse_qs(urlsplit(shared).query)
    assert query["runs"] == [f"{six_runs[3]},{six_runs[2]},{six_runs[1]}"]
    assert query["filter"] == ['experiment = "alpha"']
    # the page's own choices (the newest run as baseline, the first metric) stay out of the address, so Back leaves
    # the page in one press; the same address still opens the same view for a colleague (below)
    assert "baseline" not in query and "metric" not in query
    mine = _view(page)

    colleague = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    other = _watch(open_app(colleague, shared), dialogs)
    sign_in(other, "viewer", PASSWORD)  # the same address, back after signing in
    other.get_by_text("Show only differences").wait_for(timeout=SLOW)
    _drawn(other)
    expect(other).to_have_url(shared, timeout=SLOW)
    assert _view(other) == mine

    other.get_by_role("tab", name="Charts").click()  # its chosen chart (the last one _view opened) is drawn
    other.locator(CHARTS).first.wait_for(timeout=SLOW)
    other.get_by_role("tab", name="Share").click()
    title = other.get_by_label("Report title")
    title.fill("Alpha: three runs <script>alert(2)</script>")
    rerun(other, lambda: title.press("Enter"))
    notes = other.get_by_label("Notes (markdown)")
    notes.fill("r3 wins on **test accuracy**.")
    rerun(other, lambda: notes.press("Tab"))  # the report to download is made from what this rerun saw
    with other.expect_download(timeout=SLOW) as download:
        other.get_by_role("button", name="Export HTML report").click()
    report = tmp_path / "report.html"
    download.value.save_as(report)

    offline = browser.new_context(offline=True)
    opened = _watch(offline.new_page(), dialogs)
    opened.goto(report.as_uri())
    opened.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 5", timeout=SLOW)
    assert opened.locator("h1").inner_text() == "Alpha: three runs <script>alert(2)</script>"
    assert opened.locator(".notes strong").inner_text() == "test accuracy"
    assert opened.locator(".chart").count() == 5 and opened.locator(".js-plotly-plot").count() == 5
    assert f"\n{six_runs[3]}\tr3\talpha" in opened.locator("table").first.inner_text()  # the runs table
    assert f"r3 #{six_runs[3]}" in opened.locator("table").nth(1).inner_text()  # the side-by-side table
    assert dialogs == []


def _drawn(page) -> None:
    """Wait until the comparison's open tab is drawn (only that one is built): its side-by-side table, the app idle."""
    main = page.locator('[data-testid="stMain"]')
    main.locator('[data-testid="stDataFrame"]').first.wait_for(state="attached", timeout=SLOW)
    idle(page)


# What each tab of a comparison of three runs draws in the main area: (tables, charts). The Charts tab draws
# the chart chosen in it, one at a time: its histories first, then each other chart's tab.
DRAWN = {
    "Side by side": (1, 0), "Champion / challenger": (1, 1), "Charts": (0, 1), "Parallel coordinates": (0, 1),
    "Scatter": (0, 1), "Bar chart": (0, 1),
}  # fmt: skip


def _view(page) -> dict[str, list[str]]:
    """What a person sees of a comparison: on each tab, every choice made and the charts and tables drawn (the
    main area only: the sidebar names who is signed in). Each tab is read once all it draws shows: a table or a
    chart on a tab just opened takes a moment to lay out, and a read before would count it missing."""
    seen: dict[str, list[str]] = {}
    main = page.locator('[data-testid="stMain"]')
    for tab, (tables, charts) in DRAWN.items():
        page.get_by_role("tab", name=tab).click()
        page.get_by_role("tab", name=tab, selected=True).wait_for(timeout=SLOW)  # its panel is the one shown
        expect(main.locator('[data-testid="stDataFrame"]:visible')).to_have_count(tables, timeout=SLOW)
        expect(main.locator(CHARTS)).to_have_count(charts, timeout=SLOW)  # Plotly's, or Vega-Lite's once drawn
        seen[tab], before = _choices(main), None
        while seen[tab] != before:  # a lazy tab's controls draw in over the run that builds it: read till it holds
            idle(page)
            seen[tab], before = _choices(main), seen[tab]
    return seen


def _choices(main) -> list[str]:
    """Every choice shown in the main area's visible controls, then its captions."""
    inputs = main.locator('[data-testid="stSelectbox"]:visible input, [data-testid="stTextInput"]:visible input')
    chosen = inputs.evaluate_all("els => els.map(e => `${e.getAttribute('aria-label')}=${e.value}`)")
    tags = main.locator('[data-testid="stMultiSelect"]:visible').all_inner_texts()
    return [*chosen, *tags, *main.locator('[data-testid="stCaptionContainer"]:visible').all_inner_texts()]
