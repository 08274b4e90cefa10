"""User text in markdown (`tracking.explore._markdown`): names escaped to their literal text, notes without
images or links to other hosts, and ids from an address checked (`parse_id`)."""

from __future__ import annotations

import html
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tracking
from tests.pages import rendered, shown_text
from tracking.explore import MAX_ID, escape_markdown, is_local_address, local_markdown, parse_id, parse_ids

MARKS = [*"ab1 .-+#>|=*_`[]()!<>&;:$~\\/@wh\n\t", "http://", "www.", "![x](", "](http://e)", "&amp;", "1.", "---", "```", "    ", ":smile:", ":material/home:", ":red[", "$x$"]  # fmt: skip
ELEMENTS = re.compile(r"<(?!/?p>)[a-z]")  # any element but the paragraph around the text


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(MARKS), max_size=14).map("".join))
def test_escape_markdown_shows_exactly_the_text_and_makes_nothing_of_it(text):
    escaped = escape_markdown(text)
    page = rendered(escaped)
    assert not ELEMENTS.search(page.replace("<br />", "")), (text, page)  # no link, image, emphasis, list, code
    assert re.sub(r"\s+", " ", shown_text(escaped)) == re.sub(r"\s+", " ", text).strip()
    with_joiners = html.unescape(re.sub(r"<[^>]+>", "", page))  # what GFM's autolinker and emoji codes read
    assert not re.search(r"https?://|www\.|:\w+:|:material/", with_joiners)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("![x](http://evil.example/x.png)", "![x](http://evil.example/x.png)"),
        ("[x](http://evil.example)", "[x](http://evil.example)"),
        (":red[alarm] :material/home: $x^2$", ":red[alarm] :material/home: $x^2$"),
        ("built-in model v1.2 (beta)", "built-in model v1.2 (beta)"),
    ],
)
def test_escape_markdown_examples(text, shown):
    escaped = escape_markdown(text)
    assert "<a " not in rendered(escaped) and "<img" not in rendered(escaped)
    assert shown_text(escaped) == shown
    assert escape_markdown(None) == ""


NOTES = [
    ("Hello **world** ![x](http://evil.example/x.png)", "![x](http://evil.example/x.png)", "<strong>world</strong>"),
    ("[docs](https://evil.example/p) and [run](/run?id=3)", "[docs](https://evil.example/p)", '<a href="/run?id=3">run</a>'),
    ("> quote [l](http://e.example)\n> more ![y](//e.example/y.png)", "![y](//e.example/y.png)", "<blockquote>"),
    ("| a | b ![x](http://e.example/x.png) |\n|---|---|\n| `http://code` | c |", "![x](http://e.example/x.png)", "<code>http://code</code>"),
    ("# Title ![z](http://e.example/z.png)", "![z](http://e.example/z.png)", "<h1>"),
    ("see http://evil.example/page and www.evil.example", "http://evil.example/page", "see"),
    ("[![img](http://evil.example/i.png)](/local)", "![img](http://evil.example/i.png)", '<a href="/local">'),
    ("![ref][r]\n\n[r]: http://evil.example/x.png", "![ref][r]", "<p>"),
    ("<http://evil.example> and a@evil.example", "<http://evil.example>", "and"),
    ("- item ![x](http://e.example/x.png)\n  [a](javascript:alert(1))", "[a](javascript:alert(1))", "<li>"),
    ("```\n![x](http://e.example/x.png)\n```", "![x](http://e.example/x.png)", "<pre><code>"),
]  # fmt: skip


@pytest.mark.parametrize(("note", "literal", "kept"), NOTES)
def test_local_markdown_shows_outside_images_and_links_as_text(note, literal, kept):
    page = rendered(local_markdown(note))
    assert "<img" not in page and not re.search(r'<a href="(?!/)', page), page
    assert literal in shown_text(local_markdown(note))
    assert kept in page  # the rest is still markdown


def test_local_markdown_keeps_links_to_its_own_host():
    note = "[run 3](http://dash.example:8501/run?id=3) ![x](http://dash.example:8501/x.png)"
    assert local_markdown(note, own_hosts=["dash.example:8501"]) == note
    assert "<a " not in rendered(local_markdown(note))


def test_local_markdown_falls_back_to_plain_text_when_an_address_hides_in_an_entity():
    note = "**see** http&#58;//evil.example"
    assert local_markdown(note) == escape_markdown(note)
    assert "<a " not in rendered(local_markdown(note))


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("/run?id=3", True), ("run?id=3", True), ("#notes", True), ("?page=2", True),
        ("http://evil.example", False), ("//evil.example/x.png", False), ("\\\\evil.example\\x.png", False),
        ("/\\evil.example/x.png", False), ("/\t/evil.example", False), ("javascript:alert(1)", False),
        ("data:image/png;base64,AAAA", False), ("HTTPS://dash:8501/x", True),
    ],
)  # fmt: skip
def test_is_local_address(url, local):
    assert is_local_address(url, own_hosts={"dash:8501"}) is local


@pytest.mark.parametrize(
    "text", ["abc", "0", "-3", "1e9", "3.0", "٣", "99999999999999999999999", "9" * 5000, str(MAX_ID + 1), ""]
)
def test_parse_id_refuses_anything_but_an_id_in_one_sentence(text):
    with pytest.raises(tracking.ValidationError) as err:
        parse_id(text, "run")
    assert str(err.value).count(". ") == 0 and str(err.value).endswith(f"from 1 to {MAX_ID:,}.")


def test_parse_ids_skips_what_is_not_an_id():
    assert parse_id(" 42 ", "run") == 42 and parse_id(str(MAX_ID), "run") == MAX_ID
    assert parse_ids(f"3, x, 0, {MAX_ID + 1}, {'9' * 5000},7") == [3, 7]
