"""Reports (`tracking.explore._reports`): the offline HTML export and its escaping, saved reports on every backend,
the markdown subset, and migration 0003."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest
from sqlalchemy import inspect

import tracking
from tests.e2e import chromium
from tests.migrations import legacy_run, store_at_revision
from tracking.explore._compare import CompareView, compare_runs
from tracking.explore._reports import (
    comparison_csv,
    comparison_json,
    delete_report,
    get_report,
    list_reports,
    markdown_html,
    report_html,
    save_report,
    update_report,
)
from tracking.explore._table import list_keys
from tracking.runs._runs import start_run

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
PAYLOADS = (SCRIPT, IMG, "<img src=x onerror=alert(1)>", "javascript:alert(1)")


class _Collector(HTMLParser):
    """Every element's tag and attributes, and the text of each <script>."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag):
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


@pytest.fixture
def hostile(store):
    """Three runs whose name, tag value, param and experiment carry script payloads."""
    return _hostile_runs(store)


def _hostile_runs(store) -> list[int]:
    ids = []
    for i, name in enumerate((SCRIPT, IMG, "plain")):
        with start_run(SCRIPT, params={"kind": IMG, "lr": 0.1 * (i + 1)}, store=store, name=name) as run:
            for step in range(3):
                run.log_metrics({"test_accuracy": 0.7 + i / 10 - step / 100, "loss": 1 / (step + 1 + i)}, step=step)
            run.set_tags({"owner": IMG, SCRIPT: "key too"})
        ids.append(run.id)
    return ids


def _export(store, ids, **extra):
    view = CompareView(runs=tuple(ids), filter=f'name != "{SCRIPT}"', only_differences=False, **extra)
    notes = f"# Findings\n{SCRIPT} and {IMG}\n\n- **bold** [x](javascript:alert(1)) [ok](https://example.org/a_b)"
    return report_html(store, view, title=f"Report {SCRIPT}{IMG}", notes=notes, live_url="javascript:alert(1)")


def test_report_html_holds_no_executable_user_text(store, hostile):
    page = _export(store, hostile)
    parser = _Collector()
    parser.feed(page)
    for payload in PAYLOADS[:3]:
        assert payload not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown as text, in the title and tables
    assert all(not name.startswith("on") for _, attrs in parser.elements for name in attrs)
    hrefs = [attrs.get("href") for tag, attrs in parser.elements if tag == "a"]
    assert hrefs == ["https://example.org/a_b"]  # the javascript: link and live URL stay text
    scripts = [attrs for tag, attrs in parser.elements if tag == "script"]
    assert all("src" not in attrs for attrs in scripts)
    # Plotly once (its config line and the library), then one per chart: history, parallel, bar, delta, scatter
    assert len(parser.scripts) == 7 and parser.scripts[0].startswith("window.PlotlyConfig")
    assert "plotly.js v" in parser.scripts[1][:200] and all("Plotly.newPlot" in s for s in parser.scripts[2:])
    assert all(SCRIPT not in s and "<img" not in s for s in parser.scripts[2:])  # chart data: escaped JSON
    assert all("</script" not in s for s in parser.scripts)


def test_report_html_allows_only_its_own_scripts_and_no_network(store, hostile):
    page = _export(store, hostile)
    parser = _Collector()
    parser.feed(page)
    (policy,) = [
        a["content"] for t, a in parser.elements if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
    ]
    hashes = set(re.findall(r"'sha256-([^']+)'", policy))
    assert hashes == {base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() for s in parser.scripts}
    assert "default-src 'none'" in policy and "connect-src 'none'" in policy and "unsafe-eval" not in policy
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=\"?https?://", page)


def test_report_html_has_the_tables_filter_notes_and_marks(store, hostile):
    page = _export(store, hostile, baseline=hostile[2])
    assert page.startswith("<!DOCTYPE html>") and page.count("plotly.js v") == 1
    assert "filter used: <code>name != &quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;</code>" in page
    assert "<h3>Findings</h3>" in page and "<strong>bold</strong>" in page
    assert "Champion / challenger" in page and "Baseline: plain #" in page
    assert '<td class="best num">0.88 ★</td>' in page  # the best final test_accuracy (plain's), marked
    assert 'class="num worse"' in page and '<tr class="diff">' in page and "<tr><th>experiment</th>" in page
    for chart in ("history", "parallel", "scatter", "bar", "delta"):
        assert f'data-chart="{chart}"' in page


def test_report_html_only_differences_leaves_equal_rows_out(store, hostile):
    page = report_html(store, CompareView(runs=tuple(hostile), only_differences=True), title="t")
    assert '<tr class="diff"><th>params.lr</th>' in page and "<tr><th>experiment</th>" not in page
    assert "Showing only the fields that differ" in page


LONG_URL = "https://example.org/" + "a-very-long-path-segment-" * 40


@pytest.mark.slow
def test_report_file_opens_offline_and_draws_every_chart_without_running_user_text(file_store, tmp_path):
    # One backend is enough: the browser reads a file (the tests above build the HTML on every backend).
    store, hostile = file_store, _hostile_runs(file_store)
    path = tmp_path / "report.html"
    view = CompareView(runs=tuple(hostile), filter=LONG_URL, baseline=hostile[0])
    notes = f"See {LONG_URL} and [the run]({LONG_URL}).\n\n{SCRIPT}{IMG}"
    page_html = report_html(store, view, title=f"Report {SCRIPT}{IMG}{'x' * 400}", notes=notes, live_url=LONG_URL)
    path.write_text(page_html, encoding="utf-8")
    with chromium() as browser:
        context = browser.new_context(offline=True, viewport={"width": 1024, "height": 768})
        fetched = []
        context.route(  # the report fetches nothing: any request but the file itself is recorded and refused
            "**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else (
                fetched.append(route.request.url), route.abort())
        )  # fmt: skip
        page = context.new_page()
        dialogs, errors = [], []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.goto(path.as_uri())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 5", timeout=30_000)
        charts = page.locator(".chart")
        assert charts.count() == 5
        for i in range(5):  # each chart drew its SVG, and none fell back to a message
            assert charts.nth(i).locator(".js-plotly-plot .main-svg").count() >= 1
        assert page.get_by_text("WebGL is not supported").count() == 0 and page.locator("canvas").count() == 0
        # parallel coordinates: one line per run across its three axes (kind, lr, test_accuracy)
        parallel = page.locator('[data-chart="parallel"] .scatterlayer .trace.scatter')
        assert parallel.count() >= len(hostile)
        assert page.locator('[data-chart="parallel"] .scatterlayer .js-line').count() == len(hostile)
        assert page.locator("h1").inner_text() == f"Report {SCRIPT}{IMG}{'x' * 400}"
        # long text wraps: the page is exactly as wide as the window
        assert page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]") == [1024, 1024]
        # The page has loaded (images failed, scripts ran) and drawn: a payload run would have shown by now.
        assert page.locator("img[src=x]").count() == 0
        assert dialogs == [] and errors == [] and fetched == []


def test_report_html_draws_parallel_coordinates_without_webgl(store, hostile):
    parser = _Collector()
    parser.feed(_export(store, hostile))
    # each chart's traces: the array before its layout (the library and the layout's template name every type)
    traces = [
        json.loads(re.search(r'newPlot\(\s*"[^"]+",\s*(\[.*?\]),\s*\{"template"', s).group(1))
        for s in parser.scripts[2:]
    ]
    kinds = [{trace["type"] for trace in chart} for chart in traces]
    assert kinds == [{"scatter"}, {"scatter"}, {"bar"}, {"bar"}, {"scatter"}] and len(traces[1]) == len(hostile) + 1


def test_reports_are_saved_listed_updated_and_deleted(store, hostile):
    view = CompareView(runs=tuple(hostile), baseline=hostile[1], metric="metrics.test_accuracy", filter="x")
    first = save_report(store, title="  Q3 model  ", notes="**why**", view=view, owner="ann")
    second = save_report(store, title="Other", view=CompareView(runs=(hostile[0],)))
    assert first.title == "Q3 model" and first.view == view and first.owner == "ann"
    assert [r.id for r in list_reports(store)] == [second.id, first.id]
    before = tracking.change_marker(store)
    changed = update_report(store, first.id, notes="new notes", view=CompareView(runs=tuple(hostile[:2])))
    assert tracking.change_marker(store) > before
    assert changed.title == "Q3 model" and changed.notes == "new notes" and changed.view.runs == tuple(hostile[:2])
    assert changed.updated_at >= changed.created_at and list_reports(store)[0].id == first.id
    assert get_report(store, first.id) == changed
    delete_report(store, second.id)
    assert [r.id for r in list_reports(store)] == [first.id]
    with pytest.raises(tracking.NotFoundError, match=f"no report {second.id}"):
        get_report(store, second.id)
    with pytest.raises(tracking.NotFoundError):
        delete_report(store, second.id)


def test_reports_refuse_bad_titles_notes_and_run_lists(store, hostile):
    view = CompareView(runs=tuple(hostile))
    with pytest.raises(tracking.ValidationError, match="needs a title"):
        save_report(store, title="   ", view=view)
    with pytest.raises(tracking.ValidationError, match="at most 200"):
        save_report(store, title="x" * 201, view=view)
    with pytest.raises(tracking.ValidationError, match="notes hold at most"):
        save_report(store, title="t", notes="x" * 50_001, view=view)
    with pytest.raises(tracking.ValidationError, match="1 to 50 runs"):
        save_report(store, title="t", view=CompareView())
    assert list_reports(store) == []


def test_comparison_csv_and_json_downloads(store, hostile):
    comparison = compare_runs(store, hostile)
    rows = list(csv.DictReader(io.StringIO(comparison_csv(comparison, only_differences=True))))
    assert rows[0].keys() == {"field", *comparison.labels, "best"}
    accuracy = next(r for r in rows if r["field"] == "metrics.test_accuracy")
    assert accuracy["best"] == comparison.labels[2]
    data = json.loads(comparison_json(comparison))
    assert [r["id"] for r in data["runs"]] == hostile and data["runs"][0]["name"] == SCRIPT
    assert data["best"]["metrics.test_accuracy"] == [hostile[2]] and data["directions"]["metrics.loss"] == "minimize"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("**a** and *b* and `<c>`", "<p><strong>a</strong> and <em>b</em> and <code>&lt;c&gt;</code></p>"),
        ("# T\n- one\n- two\n\n1. x", "<h3>T</h3>\n<ul><li>one</li><li>two</li></ul>\n<ol><li>x</li></ol>"),
        (
            "[a](https://x.org/a_b?c=1&d=2)",
            '<p><a href="https://x.org/a_b?c=1&amp;d=2" rel="noopener noreferrer">a</a></p>',
        ),
        ("[a](javascript:alert(1))", "<p>[a](javascript:alert(1))</p>"),
        ('<img src=x onerror="alert(1)">', "<p>&lt;img src=x onerror=&quot;alert(1)&quot;&gt;</p>"),
        ("```\n<b>code</b>\n```", "<pre><code>&lt;b&gt;code&lt;/b&gt;</code></pre>"),
        (
            '[x](https://a.org/"onmouseover="alert(1))',
            '<p><a href="https://a.org/&quot;onmouseover=&quot;alert(1" rel="noopener noreferrer">x</a>)</p>',
        ),
    ],
)
def test_report_markdown_subset_is_escaped_first(text, expected):
    assert markdown_html(text) == expected


def test_report_migration_0003_upgrades_a_0002_store_and_reads_its_runs(backend_url, tmp_path):
    from tracking.store._db import migrate

    old = store_at_revision(backend_url, tmp_path, "0002")
    assert "reports" not in inspect(old.engine).get_table_names()
    run_id = legacy_run(old, "legacy", "kept", {"old_param": 1}, {"old_metric": 1.0})
    migrate(old)
    assert {"reports", "run_keys", "run_key_scans"} <= set(inspect(old.engine).get_table_names())
    keys = list_keys(old)  # the catalogue's first refresh reads the runs from before the migration
    assert keys.params == ("old_param",) and keys.metrics == ("old_metric",)
    saved = save_report(old, title="after upgrade", view=CompareView(runs=(run_id,)))
    assert get_report(old, saved.id).view.runs == (run_id,)
    assert tracking.get_run(old, run_id).name == "kept"
    old.dispose()


def test_report_time_stamp_is_the_one_given(store, hostile):
    when = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
    page = report_html(store, CompareView(runs=tuple(hostile[:2])), title="t", generated_at=when)
    assert "Generated 2026-11-01T09:30:00.000000Z" in page


def test_report_html_shows_markdown_like_names_as_text_and_draws_no_outside_image(store):
    image = "![x](http://evil.example/x.png)"
    with start_run(image, params={image: 1}, store=store, name=image) as first:
        first.log_metrics({"loss": 0.5})
    with start_run(image, params={image: 2}, store=store, name="[y](http://evil.example)") as second:
        second.log_metrics({"loss": 0.4})
    page = report_html(store, CompareView(runs=(first.id, second.id)), title=image, notes=f"See {image}.")
    parser = _Collector()
    parser.feed(page)
    assert not [attrs for tag, attrs in parser.elements if tag in ("img", "image", "iframe", "source")]
    assert f"<h1>{image}</h1>" in page and f"<td>{image}</td>" in page  # the names, as the text they are
    assert "img-src data: blob:" in page  # and the browser would fetch no image from a host anyway
