"""The runs table (`tracking.explore._table`): pages, columns, sorting, counts, exports and the key catalogue,
on every backend under test, with runs logged through `tracking.start_run`."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest

import tracking
from tracking.explore._table import (
    BASE_COLUMNS,
    RunKeys,
    RunsView,
    default_columns,
    list_keys,
    runs_page,
    runs_table_csv,
    runs_table_json,
)
from tracking.governance._access import local_actor
from tracking.runs._annotations import add_note, delete_note, list_notes, replace_tags, update_note
from tracking.runs._runs import start_run

FEATURES = {"a": 0.3, "b": 0.9, "c": "sqrt", "d": "auto", "e": None}  # run name -> params.max_features


def _log(store, name, params=None, metrics=None, tags=None, experiment="exp"):
    with start_run(experiment, params=params or {}, store=store, name=name, tags=tags) as run:
        if metrics:
            run.log_metrics(metrics)
    return run.id


@pytest.fixture
def mixed(store):
    """Five runs whose `max_features` is a number, a word or missing; metrics and a tag on some."""
    ids = {}
    for i, (name, value) in enumerate(FEATURES.items()):
        params = {"n": i} if value is None else {"n": i, "max_features": value}
        ids[name] = _log(store, name, params, {"acc": 0.5 + i / 10}, {"team": "x"} if i % 2 else None)
    return ids


def test_explore_page_has_base_and_chosen_columns_with_typed_values(store, mixed):
    page = runs_page(store, columns=["params.max_features", "metrics.acc", "tags.team"], sort="id", descending=False)
    assert page.columns == (*BASE_COLUMNS, "params.max_features", "metrics.acc", "tags.team")
    rows = {row["name"]: row for row in page.rows}
    assert rows["a"]["params.max_features"] == 0.3 and rows["c"]["params.max_features"] == "sqrt"
    assert rows["e"]["params.max_features"] is None
    assert rows["b"]["metrics.acc"] == pytest.approx(0.6) and rows["b"]["tags.team"] == "x"
    assert rows["a"]["tags.team"] is None
    assert rows["a"]["experiment"] == "exp" and rows["a"]["status"] == "complete"
    assert rows["a"]["duration"] >= 0 and rows["a"]["started_at"].tzinfo is not None
    assert "params" not in rows["a"] and "environment" not in rows["a"]  # only the chosen keys travel


def test_explore_sort_by_a_json_key_orders_numbers_then_text_and_missing_last(store, mixed):
    down = runs_page(store, columns=["params.max_features"], sort="params.max_features", descending=True)
    up = runs_page(store, columns=["params.max_features"], sort="params.max_features", descending=False)
    assert [row["name"] for row in down.rows] == ["c", "d", "b", "a", "e"]  # reversed, but missing still last
    assert [row["name"] for row in up.rows] == ["a", "b", "d", "c", "e"]


def test_explore_sort_counts_booleans_as_zero_and_one(store):
    for name, value in (("yes", True), ("half", 0.5), ("no", False), ("two", 2)):
        _log(store, name, {"flag": value})
    page = runs_page(store, columns=["params.flag"], sort="params.flag", descending=False)
    shown = [(r["name"], r["params.flag"]) for r in page.rows]
    assert shown == [("no", False), ("half", 0.5), ("yes", True), ("two", 2)]


def test_explore_sort_by_a_key_that_is_not_shown(store, mixed):
    page = runs_page(store, sort="metrics.acc", descending=True)
    assert [row["name"] for row in page.rows] == ["e", "d", "c", "b", "a"]
    assert "metrics.acc" not in page.columns


def test_explore_sort_by_base_columns(store, mixed):
    assert [r["name"] for r in runs_page(store, sort="name", descending=False).rows] == list(FEATURES)
    assert [r["id"] for r in runs_page(store, sort="id").rows] == sorted(mixed.values(), reverse=True)
    by_tag = runs_page(store, sort="tags.team", descending=False).rows
    assert [r["name"] for r in by_tag][:2] == ["b", "d"]  # tagged runs first, untagged last


def test_explore_sort_by_duration_puts_running_runs_last(store):
    for name, seconds in (("short", 0.0), ("long", 0.06), ("middle", 0.03)):
        with start_run("exp", store=store, name=name):
            time.sleep(seconds)  # the behaviour under test: runs that take different times (to the millisecond)
    with start_run("exp", store=store, name="running"):
        rows = runs_page(store, sort="duration").rows
    # ordered by the durations recorded (a loaded machine can stretch any run, so not by the sleeps)
    finished = [row for row in rows if row["name"] != "running"]
    assert rows[-1]["name"] == "running" and len(finished) == 3
    assert [row["duration"] for row in finished] == sorted((row["duration"] for row in finished), reverse=True)
    assert len({row["duration"] for row in finished}) == 3


def test_explore_pages_cover_every_match_once_and_count_them(store):
    for i in range(23):
        _log(store, f"r{i}", {"i": i}, {"m": i / 23})
    pages = [runs_page(store, filter="params.i >= 3", sort="params.i", offset=o, limit=5) for o in range(0, 25, 5)]
    assert {page.total for page in pages} == {20}
    seen = [row["name"] for page in pages for row in page.rows]
    assert seen == [f"r{i}" for i in range(22, 2, -1)]


def test_explore_page_beyond_the_end_is_empty_but_counted(store, mixed):
    filtered = runs_page(store, filter="metrics.acc > 0.75", offset=100, limit=10)
    assert filtered.rows == () and filtered.total == 2
    everything = runs_page(store, offset=100, limit=10)
    assert everything.rows == () and everything.total == 5


def test_explore_filters_on_experiment_dataset_and_tags_join_what_they_need(store):
    _log(store, "in-a", {"x": 1}, experiment="alpha")
    _log(store, "in-b", {"x": 2}, {"m": 1.0}, {"stage": "prod"}, experiment="beta")
    assert [r["name"] for r in runs_page(store, filter='experiment = "beta"').rows] == ["in-b"]
    assert [r["name"] for r in runs_page(store, filter='tags.stage = "prod"').rows] == ["in-b"]
    assert runs_page(store, filter="dataset is null").total == 2
    assert [r["name"] for r in runs_page(store, sort="experiment", descending=False).rows] == ["in-a", "in-b"]


def test_explore_quotes_and_sql_in_a_filter_change_nothing(store, mixed):
    before = runs_page(store).total
    page = runs_page(store, filter="name = \"x'; DELETE FROM runs; --\" or params.max_features = 'sqrt'")
    assert [r["name"] for r in page.rows] == ["c"]
    assert runs_page(store).total == before


def test_explore_bad_filter_column_and_page_are_clear_errors(store, mixed):
    with pytest.raises(tracking.FilterError, match="column"):
        runs_page(store, filter="metrics.acc >")
    with pytest.raises(tracking.ValidationError, match="Unknown column"):
        runs_page(store, sort="colour")
    with pytest.raises(tracking.ValidationError, match="double quotes"):
        runs_page(store, columns=['params.a"b'])
    with pytest.raises(tracking.ValidationError, match="always shown"):
        runs_page(store, columns=["host"])
    with pytest.raises(tracking.ValidationError, match="1 to 1000 rows"):
        runs_page(store, limit=0)


def test_explore_key_catalogue_follows_new_running_and_finished_runs(store):
    _log(store, "first", {"lr": 0.1}, {"loss": 1.0}, {"team": "a"})
    assert list_keys(store) == RunKeys(("lr",), ("loss",), ("team",))
    with start_run("exp", params={"depth": 3}, store=store) as run:
        run.log_metrics({"auc": 0.7})
        run.flush()
        assert "depth" in list_keys(store).params  # seen while it runs
        run.log_params({"late_param": 1})
        run.log_metrics({"late_metric": 2.0})
    keys = list_keys(store)  # after it finished: what it logged late is there too
    assert keys.params == ("depth", "late_param", "lr") and keys.metrics == ("auc", "late_metric", "loss")
    assert keys.columns()[:2] == ["params.depth", "params.late_param"]


def test_explore_default_columns_prefer_held_out_metrics():
    keys = RunKeys(("a", "b"), ("fit_seconds", "cv_acc", "test_acc"), ("t",))
    assert default_columns(keys, metrics=2, params=1) == ("metrics.test_acc", "metrics.cv_acc", "params.a")


def test_explore_csv_and_json_hold_every_matching_row_in_order(store, mixed):
    view = {"filter": "params.n >= 1", "columns": ("params.max_features", "tags.team"), "sort": "params.n"}
    rows = list(csv.DictReader(io.StringIO(runs_table_csv(store, **view))))
    assert [r["name"] for r in rows] == ["e", "d", "c", "b"]
    assert rows[3]["params.max_features"] == "0.9" and rows[3]["tags.team"] == "x"
    data = json.loads(runs_table_json(store, **view))
    assert [r["name"] for r in data] == ["e", "d", "c", "b"] and data[0]["started_at"].endswith("Z")
    empty = runs_table_csv(store, filter="params.n > 99", columns=("params.n",))
    assert empty.strip() == ",".join([*BASE_COLUMNS, "params.n"])


def test_explore_runs_view_round_trips_through_the_url():
    view = RunsView('metrics.a > 1 and name = "x,y"', ("params.lr", "tags.t"), "metrics.a", False, 3, 50, (4, 9))
    query = view.to_query()
    assert RunsView.from_query(query) == view
    assert RunsView().to_query() == {}
    sloppy = RunsView.from_query(
        {"page": "-2", "size": "99999", "sel": "3,x,0,3", "sort": "nope", "cols": "host,params.a"}
    )
    assert (sloppy.page, sloppy.page_size, sloppy.selected, sloppy.sort) == (1, 1000, (3,), "started_at")
    assert sloppy.columns == ("params.a",)


def test_annotations_replace_tags_adds_changes_and_removes(store, mixed):
    run_id = mixed["b"]  # tagged team=x
    before = tracking.change_marker(store)
    assert replace_tags(store, run_id, {"team": "y", " stage ": "prod"}) == {"team": "y", "stage": "prod"}
    assert tracking.get_run(store, run_id).tags == {"team": "y", "stage": "prod"}
    assert tracking.change_marker(store) > before
    replace_tags(store, run_id, {"stage": "prod"})
    assert tracking.get_run(store, run_id).tags == {"stage": "prod"}
    with pytest.raises(tracking.ValidationError, match="must not be empty"):
        replace_tags(store, run_id, {"  ": "v"})
    with pytest.raises(tracking.NotFoundError, match="no run 999"):
        replace_tags(store, 999, {"a": "b"})
    assert tracking.get_run(store, run_id).tags == {"stage": "prod"}  # a refused change changes nothing


def test_annotations_notes_are_added_listed_edited_and_deleted(store, mixed):
    first = add_note(store, mixed["a"], "**First** note")
    second = add_note(store, mixed["a"], "second")
    notes = [(n.body, n.author) for n in list_notes(store, mixed["a"])]
    assert notes == [("**First** note", local_actor()), ("second", local_actor())]  # no accounts: the OS user
    update_note(store, second.id, "second, edited")
    delete_note(store, first.id)
    assert [n.body for n in list_notes(store, mixed["a"])] == ["second, edited"]
    assert list_notes(store, mixed["b"]) == []
    with pytest.raises(tracking.ValidationError, match="must not be empty"):
        add_note(store, mixed["a"], "  ")
    with pytest.raises(tracking.NotFoundError):
        add_note(store, 999, "x")
    with pytest.raises(tracking.NotFoundError):
        delete_note(store, first.id)
