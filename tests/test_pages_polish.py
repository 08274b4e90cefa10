"""Pages under AppTest: an account that may not launch sees why before any form (Sweeps, an empty Home); the
ids that Home and a run's page show are links to those objects' pages."""

from __future__ import annotations

import json

import tracking
from tests.pages import open_page, shown_text

REASON = "Your role (viewer) may not launch sweeps"


def _links(table) -> dict[str, str]:
    """The link columns of a table: name -> the pattern of the text shown for each link."""
    config = {c.get("label", name): c for name, c in json.loads(table.proto.columns).items()}
    return {
        name: c["type_config"]["display_text"]
        for name, c in config.items()
        if c.get("type_config", {}).get("type") == "link"
    }


def test_pages_polish_a_viewer_sees_why_instead_of_the_launch_form(users):
    at = open_page("viewer", "pages/sweeps.py")
    assert [shown_text(i.value) for i in at.info][-1].startswith(REASON)
    assert at.info[-1].icon == ":material/visibility:"
    assert not at.selectbox and not at.number_input and not at.data_editor  # no form to fill in for nothing
    assert not [b for b in at.button if b.key == "launch"]


def test_pages_polish_a_viewer_on_an_empty_store_sees_why_instead_of_the_demo_button(users):
    at = open_page("viewer", "pages/home.py")
    assert any(shown_text(i.value).startswith(REASON) for i in at.info)
    assert "Run a demo sweep" not in [b.label for b in at.button]


def test_pages_polish_home_runs_link_to_their_run_and_sweep(served, users):
    runs = tracking.list_runs(served)  # newest first, as Home shows them
    at = open_page("viewer", "pages/home.py")
    table = next(d for d in at.dataframe if "run" in d.value.columns and "name" in d.value.columns)
    assert list(table.value["run"]) == [f"run?id={r.id}" for r in runs]
    assert list(table.value["sweep"]) == [f"sweep?id={r.sweep_id}" for r in runs]
    assert _links(table) == {"run": r"run\?id=(\d+)", "sweep": r"sweep\?id=(\d+)"}


def test_pages_polish_a_run_links_to_its_sweep(served, users):
    run = tracking.list_runs(served)[0]
    at = open_page("viewer", "pages/run.py", id=run.id)
    assert any(f"[sweep {run.sweep_id}](sweep?id={run.sweep_id})" in c.value for c in at.caption)


def test_pages_polish_audit_events_link_to_their_objects_page(served, users):
    at = open_page("admin", "pages/audit.py")
    table = at.dataframe[0].value
    requests = table[table["object type"] == "promotion_request"]
    assert len(requests) and all(requests["open"] == "request?id=" + requests["object id"].astype(str))
    assert table[table["object type"] == "user"]["open"].isna().all()  # an account has no page of its own
    assert _links(at.dataframe[0]) == {"open": "Open"}
