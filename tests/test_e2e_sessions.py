"""A session belongs to the browser, not the tab, in a real Chromium against `streamlit run app.py`: a reload,
a second tab, a pasted link and a table's link stay signed in and land on the address asked for; another
browser signs in on its own; signing out ends every tab; the cookie's flags; the session routes refuse
other sites and redirect only to this server."""

from __future__ import annotations

import pytest

import tracking
from tests.e2e import idle, sign_in
from tests.governance import PASSWORD
from tracking.governance import get_user, issue_sign_in_ticket

pytestmark = pytest.mark.slow
WAIT = 60_000
HEADER, ROW, LINK_X = 35, 35, 44  # pixels: the grid's header and row heights, the sweep link's text
POINTER = "([x, y]) => getComputedStyle(document.elementFromPoint(x, y)).cursor === 'pointer'"


def _signed_in(page, name: str = "viewer") -> None:
    page.get_by_text(f"Signed in as {name}").wait_for(timeout=WAIT)
    idle(page)


def test_e2e_sessions_reload_second_tab_and_pasted_link_stay_signed_in(run, app_url, browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    asked = f"{app_url}/sweep?id={run.sweep_id}"
    page = context.new_page()
    page.goto(asked)
    sign_in(page, "viewer", PASSWORD)
    assert page.url == asked  # back on the address asked for, now signed in
    page.get_by_text("trials finished").wait_for(timeout=WAIT)

    page.reload()
    _signed_in(page)
    assert page.url == asked

    second = context.new_page()  # a second tab, with a link pasted from a chat
    second.goto(f"{app_url}/run?id={run.id}")
    _signed_in(second)
    assert second.url == f"{app_url}/run?id={run.id}"  # the run's page, as pasted (its defaults stay out)
    assert second.get_by_role("button", name="Sign in").count() == 0


def test_e2e_sessions_a_table_link_opens_a_tab_that_is_signed_in(run, app_url, browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(f"{app_url}/sweeps")
    sign_in(page, "viewer", PASSWORD)
    grid = page.locator('[data-testid="stDataFrame"]').first
    grid.wait_for(timeout=WAIT)
    idle(page)
    box = grid.bounding_box()
    x, y = box["x"] + LINK_X, box["y"] + HEADER + ROW / 2  # the first row's link: the column after the tick box
    page.mouse.move(x - 1, y)
    page.mouse.move(x, y)  # the grid finds the link under the pointer as it moves, and shows a hand
    page.wait_for_function(POINTER, arg=[x, y], timeout=WAIT)
    with context.expect_page(timeout=WAIT) as opened:  # a link column opens its link in a new tab
        page.mouse.click(x, y)
    tab = opened.value
    _signed_in(tab)
    assert tab.url == f"{app_url}/sweep?id={run.sweep_id}"


def test_e2e_sessions_another_browser_must_sign_in(users, app_url, browser):
    mine = browser.new_context()
    page = mine.new_page()
    page.goto(f"{app_url}/runs")
    sign_in(page, "viewer", PASSWORD)
    again = mine.new_page()
    again.goto(f"{app_url}/runs")
    _signed_in(again)  # this browser's tabs share the session
    other = browser.new_context().new_page()  # another browser: no cookie
    other.goto(f"{app_url}/runs")
    other.get_by_role("button", name="Sign in").wait_for(timeout=WAIT)
    assert other.get_by_text("Signed in as").count() == 0


def test_e2e_sessions_sign_out_ends_every_tab(users, app_url, browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    first = context.new_page()
    first.goto(f"{app_url}/runs")
    sign_in(first, "viewer", PASSWORD)
    second = context.new_page()
    second.goto(f"{app_url}/models")
    _signed_in(second)

    first.get_by_role("button", name="Sign out").click()
    first.get_by_role("button", name="Sign in").wait_for(timeout=WAIT)
    assert [c["name"] for c in context.cookies()].count("tracking_session") == 0
    # the other tab is still on its page: its next click finds the session ended
    second.get_by_test_id("stSidebarNavItems").get_by_role("link", name="Runs").click()
    second.get_by_role("button", name="Sign in").wait_for(timeout=WAIT)
    second.get_by_text("Your session ended").wait_for(timeout=WAIT)
    second.reload()
    second.get_by_role("button", name="Sign in").wait_for(timeout=WAIT)


def test_e2e_sessions_the_cookie_is_httponly_samesite_lax_and_hidden_from_scripts(users, app_url, browser):
    context = browser.new_context()
    page = context.new_page()
    page.goto(app_url)
    sign_in(page, "viewer", PASSWORD)
    (cookie,) = [c for c in context.cookies() if c["name"] == "tracking_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    assert not cookie["secure"]  # served over plain HTTP here; over HTTPS the cookie is Secure
    assert cookie["expires"] > 0
    assert "tracking_session" not in page.evaluate("document.cookie")


def _attacker_page(context, app_url: str, action: str, fields: dict[str, str]):
    """A page on another site that posts a form to the dashboard as soon as it loads."""
    inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in fields.items())
    html = f'<form method="post" action="{app_url}{action}">{inputs}</form><script>document.forms[0].submit()</script>'
    page = context.new_page()
    page.route("http://evil.example/**", lambda route: route.fulfill(body=html, content_type="text/html"))
    return page


def test_e2e_sessions_a_cross_site_post_to_the_session_route_is_refused(users, app_url, browser):
    context = browser.new_context()
    ticket = issue_sign_in_ticket(tracking.open_store(), get_user(tracking.open_store(), "admin"))
    page = _attacker_page(context, app_url, "/auth/session", {"ticket": ticket, "next": "/users"})
    with page.expect_response(f"{app_url}/auth/session", timeout=WAIT) as answer:
        page.goto("http://evil.example/")
    assert answer.value.status == 403
    assert "tracking_session" not in [c["name"] for c in context.cookies()]  # not signed in as the attacker's account
    # the same ticket still works from the dashboard's own origin: it was refused, not used
    same_site = context.request.post(f"{app_url}/auth/session", form={"ticket": ticket, "next": "/"},
                                     headers={"Origin": app_url}, max_redirects=0)  # fmt: skip
    assert same_site.status == 303 and "tracking_session=" in same_site.headers["set-cookie"]


def test_e2e_sessions_a_cross_site_post_cannot_sign_out(users, app_url, browser):
    context = browser.new_context()
    page = context.new_page()
    page.goto(app_url)
    sign_in(page, "viewer", PASSWORD)
    attacker = _attacker_page(context, app_url, "/auth/signout", {"next": "/"})
    with attacker.expect_response(f"{app_url}/auth/signout", timeout=WAIT) as answer:
        attacker.goto("http://evil.example/")
    assert answer.value.status == 403
    page.reload()
    _signed_in(page)


def test_e2e_sessions_the_routes_redirect_only_to_this_server(users, app_url, browser):
    context, store = browser.new_context(), tracking.open_store()
    for target in (
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
        "evil.example",
    ):
        ticket = issue_sign_in_ticket(store, get_user(store, "viewer"))
        answer = context.request.post(f"{app_url}/auth/session", form={"ticket": ticket, "next": target},
                                      headers={"Origin": app_url}, max_redirects=0)  # fmt: skip
        assert (answer.status, answer.headers["location"]) == (303, "/"), target
    kept = context.request.post(f"{app_url}/auth/signout", form={"next": "/runs?sort=name"},
                                headers={"Origin": app_url}, max_redirects=0)  # fmt: skip
    assert kept.status == 303 and kept.headers["location"] == "/runs?sort=name"


def test_e2e_sessions_the_menu_offers_admin_tools_only_to_admins(run, app_url, browser):
    menu = '[data-testid="stSidebarNav"]'
    viewer = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    viewer.goto(app_url)
    sign_in(viewer, "viewer", PASSWORD)
    nav = viewer.locator(menu)
    nav.get_by_role("link", name="Audit").wait_for(timeout=WAIT)  # the trail is everyone's to read
    assert nav.get_by_role("link", name="Users").count() == 0
    assert nav.get_by_role("link", name="Webhooks").count() == 0
    viewer.goto(f"{app_url}/users")  # a pasted address still opens the page, which says why it changes nothing
    viewer.get_by_text("Only admins manage accounts.").wait_for(timeout=WAIT)

    admin = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    admin.goto(app_url)
    sign_in(admin, "admin", PASSWORD)
    nav = admin.locator(menu)
    for name in ("Audit", "Users", "Webhooks"):
        nav.get_by_role("link", name=name).wait_for(timeout=WAIT)


def test_e2e_sessions_back_from_a_page_opened_in_the_menu_leaves_it_in_one_press(run, users, app_url, browser):
    # A page that wrote its defaults into the address on arrival (the Runs page its columns, Models its first
    # model, a run its metric histories) made a second history entry: Back landed on the same page again.
    tracking.register_version(tracking.open_store(), run.id, "loan", actor=users["data_scientist"])
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    start = f"{app_url}/sweep?id={run.sweep_id}"
    page.goto(start)
    sign_in(page, "viewer", PASSWORD)
    page.get_by_text("trials finished").wait_for(timeout=WAIT)
    nav = page.locator('[data-testid="stSidebarNav"]')
    for name, shown in (("Runs", "matching"), ("Models", "Show the versions of")):
        nav.get_by_role("link", name=name).click()
        page.get_by_text(shown).first.wait_for(timeout=WAIT)
        idle(page)
        page.go_back()
        page.wait_for_url(start, timeout=WAIT)
        page.get_by_text("trials finished").wait_for(timeout=WAIT)
        idle(page)
    page.goto(f"{app_url}/run?id={run.id}")  # a run's page picks its metric histories itself
    page.get_by_text("Metric histories").first.wait_for(timeout=WAIT)
    idle(page)
    page.go_back()
    page.wait_for_url(start, timeout=WAIT)
