"""The dashboard works with no internet, in a real Chromium: a signed-in walk over the main pages sends no
request to another host than its own server (every other one is recorded and refused, so the test does not
depend on the machine's network), the favicon included; a table's hover toolbar covers no control above it;
the theme switch in the app menu turns the app and its charts dark."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

import tracking
from tests.e2e import SLOW, idle, open_app, sign_in
from tests.governance import PASSWORD

pytestmark = pytest.mark.slow
LOCAL = {"127.0.0.1", "localhost"}
# 0-255: how bright an element's colour is (its computed style's `property`, an rgb() or rgba() value)
BRIGHTNESS = "(element, property) => getComputedStyle(element)[property].match(/\\d+/g).slice(0, 3).reduce((a, b) => a + +b, 0) / 3"
TOOLBAR = '[data-testid="stElementToolbar"]'
# The first words of every control on screen that a table's toolbar covers at its centre or a lower corner
# (where a select's arrow and a toggle's switch are): what lies on top there catches the click.
CONTROLS = ", ".join(
    f'[data-testid="{kind}"]'
    for kind in ("stSelectbox", "stMultiSelect", "stCheckbox", "stTextInput", "stNumberInput", "stButton")
)
COVERED = f"""() => [...document.querySelectorAll('{CONTROLS}')].filter((control) => {{
    const r = control.getBoundingClientRect();
    return r.width > 0 && [[r.left + 2, r.bottom - 2], [r.right - 2, r.bottom - 2], [r.left + r.width / 2, r.top + r.height / 2]]
      .some(([x, y]) => document.elementFromPoint(x, y)?.closest('{TOOLBAR}'));
  }}).map((control) => control.innerText.split(String.fromCharCode(10))[0])"""


def _hover_table(page, table) -> None:
    table.hover()
    expect(page.locator(f"{TOOLBAR}:visible").first).to_have_css("opacity", "1", timeout=SLOW)  # faded in


def _shown(page, text: str) -> None:
    page.get_by_text(text).first.wait_for(timeout=SLOW)
    idle(page)


def test_e2e_offline_walk_sends_nothing_off_the_machine_and_toolbars_cover_no_control(served, app_url, browser):
    runs = tracking.list_runs(served)
    sweep = tracking.list_sweeps(served)[0]
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    outside: list[str] = []

    def refuse(route) -> None:  # the machine may well have internet: pretend it has none, and remember the try
        outside.append(route.request.url)
        route.abort("internetdisconnected")

    context.route(lambda url: urlsplit(url).hostname not in LOCAL, refuse)
    requested: list[str] = []
    context.on("request", lambda request: requested.append(request.url))

    page = open_app(context, app_url)
    sign_in(page, "data_scientist", PASSWORD)
    _shown(page, "Recent runs")
    icon = page.locator('link[rel~="icon"]').first.get_attribute("href")
    assert urlsplit(icon).hostname in (None, *LOCAL)  # a path on this server, not a font CDN's

    for path, text in [
        ("/sweeps", "Launch a sweep"),
        (f"/sweep?id={sweep.id}", "trials finished"),
        (f"/run?id={runs[0].id}", "Final metrics"),
        ("/models", "Models"),
        ("/reports", "Reports"),
    ]:
        page.goto(app_url + path)
        _shown(page, text)

    page.goto(f"{app_url}/runs")
    _shown(page, "matching")
    _hover_table(page, page.locator('[data-testid="stDataFrame"]').first)
    assert page.evaluate(COVERED) == []  # the Descending toggle, the sort and column pickers

    page.goto(f"{app_url}/compare?runs={runs[0].id},{runs[1].id}")
    _shown(page, "Show only differences")
    page.get_by_role("tab", name="Champion / challenger").click()
    _hover_table(page, page.locator('[data-testid="stTabPanel"]:visible [data-testid="stDataFrame"]').first)
    assert page.evaluate(COVERED) == []  # the metric selector right above the table
    page.locator(".js-plotly-plot:visible").first.wait_for(timeout=SLOW)  # Plotly's code is loaded too

    page.get_by_test_id("stMainMenu").click()  # the theme switch: the app and its charts turn dark
    page.get_by_role("menuitemradio", name="Dark").click()
    page.wait_for_function(f"({BRIGHTNESS})(document.querySelector('.stApp'), 'backgroundColor') < 80", timeout=SLOW)
    chart_text = "document.querySelector('.js-plotly-plot .xtick text')"
    page.wait_for_function(f"({BRIGHTNESS})({chart_text}, 'fill') > 170", timeout=SLOW)  # light text on dark

    assert outside == []
    assert {urlsplit(url).hostname for url in requested} <= LOCAL
