"""End to end in a real browser: a sweep and a run named like markdown images and links, and a note with
images and links to another host, fetch nothing from outside and show their text as written.

Chromium records every request the page makes; all of them must go to the dashboard's own host.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

import tracking
from tests.e2e import SLOW, controls_ready, idle, sign_in
from tests.governance import PASSWORD
from tracking.runs import add_note
from tracking.sweeps import SweepSpec

pytestmark = pytest.mark.slow

IMAGE = "![x](http://evil.example/x.png)"
LINK = "[x](http://evil.example/page)"
NOTE = (
    "Trained **well**: ![chart](http://evil.example/chart.png), [the docs](https://evil.example/docs), "
    "<img src='http://evil.example/raw.png'>, http://evil.example/bare and www.evil.example."
)


@pytest.fixture
def hostile(users) -> tuple[int, int]:
    """A finished sweep named IMAGE in the experiment LINK over a parameter named IMAGE; a run named IMAGE
    with a note NOTE."""
    store = tracking.open_store()
    author = users["data_scientist"]
    sweep = tracking.create_sweep(store, SweepSpec(
        objective="tests.objectives:sum_of_params", space={IMAGE: {"type": "float", "low": 0.0, "high": 1.0}},
        metrics=["value:min"], n_trials=2, name=IMAGE, experiment=LINK,
    ), actor=author)  # fmt: skip
    tracking.run_worker(store, sweep.id, actor=author)
    with tracking.start_run(LINK, name=IMAGE, params={LINK: 1}, store=store, actor=author) as run:
        run.log_metrics({"value": 0.5})
    add_note(store, run.id, NOTE, actor=author)
    return sweep.id, run.id


def _visible_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text().replace("\u2060", "")


def test_e2e_markdown_like_names_and_notes_fetch_nothing_from_outside(hostile, app_url, browser):
    sweep_id, run_id = hostile
    requested: list[str] = []
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("request", lambda request: requested.append(request.url))

    page.goto(f"{app_url}/sweep?id={sweep_id}")
    sign_in(page, "data_scientist", PASSWORD)
    page.get_by_text("evil.example/x.png").first.wait_for(timeout=60_000)
    page.get_by_text("Optimisation history").wait_for(timeout=60_000)
    idle(page)
    shown = _visible_text(page)
    assert f"Sweep {sweep_id}: {IMAGE}" in shown and f"experiment {LINK}" in shown, shown
    assert f"{IMAGE}=0." in shown  # the best trial's params, by the parameter's own name

    page.goto(f"{app_url}/run?id={run_id}")  # still signed in: the session is the browser's
    tab = page.get_by_role("tab", name="Tags and notes")
    controls_ready(page, page.get_by_text("Signed in as data_scientist"), tab)  # a click before that is lost
    tab.click()
    page.get_by_role("tab", name="Tags and notes", selected=True).wait_for(timeout=SLOW)  # its panel is shown
    page.get_by_text("evil.example/chart.png").first.wait_for(timeout=60_000)
    # the run's caption (on a busy machine it can be drawn after the notes); its text holds word joiners
    page.locator('[data-testid="stCaptionContainer"]', has_text="Experiment").first.wait_for(timeout=60_000)
    idle(page)
    shown = _visible_text(page)
    assert f"{IMAGE} #{run_id}" in shown and f"Experiment {LINK}" in shown, shown
    assert "![chart](http://evil.example/chart.png)" in shown and "[the docs](https://evil.example/docs)" in shown
    assert page.locator("strong", has_text="well").count() == 1  # the note is still markdown

    addresses = page.evaluate(
        "() => [...document.querySelectorAll('[href], [src], [srcset]')].map(e => e.href || e.src || e.srcset)"
    )
    app_host = urlsplit(app_url).hostname
    outside = [url for url in requested if urlsplit(url).hostname not in (app_host, None) and url.startswith("http")]
    assert requested and not outside, outside  # nothing was fetched from another host
    elsewhere = [a for a in addresses if "evil" in a and urlsplit(a).hostname != app_host]
    assert not elsewhere, elsewhere  # nor is there an image, a frame or a link to it
