"""User text is text: names, keys and comments that look like markdown show as the literal text they are on
every page that shows them, notes keep their markdown but show outside images and links as text, and a bad
address gets one sentence (AppTest through `app.py`, on a real store holding such names)."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import tracking
from tests.governance import fixed_c, make_accounts, trained_runs
from tests.pages import open_page, rendered, shown_text
from tracking.explore import CompareView, save_report
from tracking.registry import register_version, request_promotion
from tracking.runs import add_note
from tracking.store import open_store
from tracking.sweeps import SweepSpec

IMAGE = "![x](http://evil.example/x.png)"
LINK = "[x](http://evil.example)"
NOTE = "Trained **well**. ![chart](http://evil.example/chart.png) See [the docs](https://evil.example/docs)."


@dataclass(frozen=True)
class World:
    home: Path
    sweep: int
    run: int  # a run named IMAGE in the experiment LINK, with a note NOTE
    version: int  # the model IMAGE, described by NOTE
    request: int  # its promotion request, justified by LINK
    report: int  # titled IMAGE, with the notes NOTE, comparing `run` and `other`
    other: int  # a run of the sweep


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """A store built once for the module with a sweep, runs, a model, a request and a report named like markdown."""
    home = tmp_path_factory.mktemp("plaintext") / "home"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TRACKING_HOME", str(home))
        store = open_store()
        users = make_accounts(store)
        ds = users["data_scientist"]
        sweep = tracking.create_sweep(store, SweepSpec(
            objective="tests.objectives:sum_of_params", space={IMAGE: {"type": "float", "low": 0.0, "high": 1.0}},
            metrics=["value:min"], n_trials=2, name=IMAGE, experiment=LINK,
        ), actor=ds)  # fmt: skip
        tracking.run_worker(store, sweep.id, actor=ds)
        with tracking.start_run(LINK, name=IMAGE, params={LINK: 1}, store=store, actor=ds) as run:
            run.log_metrics({"value": 0.5})
            run.set_tags({IMAGE: LINK})
        add_note(store, run.id, NOTE, actor=ds)
        trained = trained_runs(store, 1, actor=ds, space=fixed_c(10.0))[0]
        version = register_version(store, trained.id, IMAGE, NOTE, actor=ds)
        request = request_promotion(store, version.id, LINK, actor=ds)
        other = tracking.list_runs(store, sweep_id=sweep.id)[0].id
        report = save_report(store, title=IMAGE, notes=NOTE, view=CompareView(runs=(run.id, other)), actor=ds)
        store.dispose()
    return World(home, sweep.id, run.id, version.id, request.id, report.id, other)


@pytest.fixture
def home(world: World, tmp_path: Path) -> World:
    """This test's own copy of the world, in its TRACKING_HOME."""
    shutil.copytree(world.home, tmp_path / "home")
    return world


def _texts(at: AppTest) -> list[str]:
    """Every markdown the page sent: bodies, labels and tooltips of all its elements."""
    found, todo = [], [at._tree]
    while todo:
        node = todo.pop()
        todo += list(getattr(node, "children", {}).values())
        proto = getattr(node, "proto", None)
        for field in ("body", "label", "help"):
            value = getattr(proto, field, None) if proto is not None else None
            if isinstance(value, str) and value:
                found.append(value)
    return found


def _cells(at: AppTest) -> str:
    return "\n".join(frame.value.to_csv() for frame in at.dataframe)


def _check_plain(at: AppTest) -> str:
    """Nothing on the page renders as an image or a link to another host (the page's own links to runs aside: their
    labels are checked like any text); all that is shown, as one text."""
    texts = _texts(at)
    for text in texts:
        page = re.sub(r'<a href="run\?id=\d+">', "", rendered(text))
        assert "<img" not in page and "<a " not in page, text
        assert not re.search(r"https?://|www\.", re.sub(r"<[^>]+>", "", page)), text  # GFM would link it
    return "\n".join(shown_text(text) for text in texts) + "\n" + _cells(at)


PAGES = [
    ("pages/home.py", {}, [IMAGE, LINK]),
    ("pages/sweeps.py", {}, [IMAGE, LINK]),
    ("pages/sweep.py", {"id": "sweep"}, [f"Sweep {{sweep}}: {IMAGE}", LINK, f"{IMAGE}=0."]),
    ("pages/runs.py", {}, [IMAGE, LINK]),
    ("pages/run.py", {"id": "run"}, [f"{IMAGE} #{{run}}", f"Experiment {LINK}"]),
    ("pages/compare.py", {"report": "report", "runs": "compare"}, [IMAGE]),
    ("pages/models.py", {"model": IMAGE}, [IMAGE, f"{IMAGE} v1"]),
    ("pages/version.py", {"id": "version"}, [f"{IMAGE} v1", f"All versions of {IMAGE}"]),
    ("pages/request.py", {"id": "request"}, [f"Promotion request {{request}}: {IMAGE} v1", LINK]),
    ("pages/audit.py", {}, [IMAGE, LINK]),
]


@pytest.mark.parametrize(("path", "query", "literal"), PAGES, ids=[p[0].split("/")[1][:-3] for p in PAGES])
def test_pages_show_user_text_as_text(home, path, query, literal):
    ids = {"sweep": home.sweep, "run": home.run, "version": home.version, "request": home.request,
           "report": home.report, "compare": f"{home.run},{home.other}"}  # fmt: skip
    at = open_page("data_scientist", path, **{k: ids.get(v, v) for k, v in query.items()})
    shown = _check_plain(at)
    for text in literal:
        assert text.format(**ids) in shown, (text, shown)


@pytest.mark.parametrize(("path", "query"), [("pages/run.py", {"id": "run"}), ("pages/compare.py", {"report": "report"}),
                                             ("pages/version.py", {"id": "version"})])  # fmt: skip
def test_pages_notes_keep_markdown_but_show_outside_images_and_links_as_text(home, path, query):
    ids = {"run": home.run, "report": home.report, "version": home.version}
    at = open_page("viewer", path, **{k: ids.get(v, v) for k, v in query.items()})
    notes = [m.value for m in at.markdown if "chart" in m.value]
    assert notes, [m.value for m in at.markdown]
    for note in notes:
        page = rendered(note)
        assert "<strong>well</strong>" in page  # the note is still markdown
        assert "<img" not in page and "<a " not in page
        assert "![chart](http://evil.example/chart.png)" in shown_text(note)
        assert "[the docs](https://evil.example/docs)" in shown_text(note)


BAD_ADDRESSES = [
    ("pages/run.py", {"id": "99999999999999999999999"}, "is not a run id"),
    ("pages/run.py", {"id": "9" * 5000}, "'id' value is too long"),
    ("pages/run.py", {"id": "abc"}, "'abc' is not a run id"),
    ("pages/sweep.py", {"id": "[x](http://evil.example)"}, "'[x](http://evil.example)' is not a sweep id"),
    ("pages/version.py", {"id": "-3"}, "is not a model version id"),
    ("pages/request.py", {"id": "1e9"}, "is not a promotion request id"),
    ("pages/runs.py", {"sort": "params.a\x00b"}, "'sort' value holds a control character"),
    ("pages/runs.py", {"page": "9" * 5000}, None),
    ("pages/compare.py", {"runs": "1,99999999999999999999999," + "9" * 5000}, None),
    ("pages/audit.py", {"actor": "ann\x00"}, "'actor' value holds a control character"),
]


@pytest.mark.parametrize(
    ("path", "query", "sentence"), BAD_ADDRESSES, ids=[f"{p}-{q}"[6:40] for p, q, _ in BAD_ADDRESSES]
)
def test_pages_a_bad_address_gets_one_sentence(home, path, query, sentence):
    at = open_page("data_scientist", path, **query)  # no exception: checked by open_page
    shown = _check_plain(at)
    if sentence:
        warnings = [shown_text(w.value) for w in at.warning]
        assert any(sentence in w and w.count(".") >= 1 and "\n" not in w.strip() for w in warnings), warnings
    assert "Traceback" not in shown
