"""Run the dashboard under Streamlit's AppTest as a signed-in account."""

from __future__ import annotations

import html
import re
from functools import cache

from streamlit.testing.v1 import AppTest

import tracking
from tests.conftest import ROOT
from tests.governance import PASSWORD, make_accounts
from tracking.governance._access import has_accounts
from tracking.governance._sessions import sign_in


def sign_in_as(at: AppTest, role: str = "data_scientist") -> AppTest:
    """Sign `at` in as the account named after `role` (accounts of every role are made on first use)."""
    store = tracking.open_store()
    if not has_accounts(store):
        make_accounts(store)
    token, _user = sign_in(store, role, PASSWORD)
    at.session_state["session_token"] = token
    return at


def signed_in_app(role: str = "data_scientist", timeout: float = 60) -> AppTest:
    """The app (through app.py, as users reach it), signed in as `role`, after its first run."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    return sign_in_as(at, role).run()


def open_page(role: str, path: str, **query: object) -> AppTest:
    """A page (through app.py) signed in as `role`, with these query parameters, run and checked."""
    at = signed_in_app(role)
    at.switch_page(path)
    at.query_params.update({k: str(v) for k, v in query.items()})
    return no_exception(at.run())


def no_exception(at: AppTest) -> AppTest:
    """`at`, after checking its run raised nothing."""
    assert not at.exception, at.exception[0].value if at.exception else ""
    return at


@cache
def _markdown_renderer():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def rendered(markdown: str) -> str:
    """A page's markdown as HTML (markdown-it, CommonMark with tables, as the browser renders it)."""
    return _markdown_renderer().render(markdown)


def shown_text(markdown: str) -> str:
    """What a reader sees of a page's markdown: the rendered text, without tags, word joiners or entities."""
    return html.unescape(re.sub(r"<[^>]+>", "", rendered(markdown))).replace("\u2060", "").strip()


def button(at: AppTest, label: str):
    """The button with this label."""
    return next(b for b in at.button if b.label == label)


def tiny_sweep_form(at: AppTest, workers: int) -> AppTest:
    """The launch form filled for a sweep that ends in seconds: knn on its default dataset with 3 to 7
    neighbours only, 3 trials, 2 CV folds and `workers` workers (not launched yet)."""
    at.selectbox(key="family_classification").set_value("knn").run()
    at.session_state["space_editor_knn_classification"] = {
        "edited_rows": {0: {"low": 3.0, "high": 7.0}}, "added_rows": [], "deleted_rows": [1, 2],
    }  # fmt: skip
    at.run()
    inputs = {n.label: n for n in at.number_input}
    inputs["Trials"].set_value(3)
    inputs["Workers"].set_value(workers)
    inputs["CV folds"].set_value(2)
    return at
