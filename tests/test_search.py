"""Params and metrics an index can find (run_values), keyset pages, the counted total, and the search box's
words (run_words), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

import tracking
from tests.migrations import legacy_run, store_at_revision
from tracking.explore import _order, count_runs, runs_page
from tracking.explore._table import iter_runs_table
from tracking.runs import add_note, bulk_log_runs, get_run, index_runs, list_runs, set_tags, start_run
from tracking.runs._index import SHORT_TEXT, value_rows, words
from tracking.runs._runs import get_or_create_experiment
from tracking.store import Run, RunValue, RunWord, Sweep, migrate

LONG = "x" * (SHORT_TEXT + 10) + "-tail"


def _index(store, run_id):
    with store.connect() as conn:
        rows = conn.execute(
            select(RunValue.kind, RunValue.key, RunValue.number, RunValue.text).where(RunValue.run_id == run_id)
        )
        return sorted(tuple(row) for row in rows)


def _expected(store, run_id):
    run = get_run(store, run_id)
    rows = value_rows(run_id, "params", run.params) + value_rows(run_id, "metrics", run.metrics)
    return sorted((r["kind"], r["key"], r["number"], r["text"]) for r in rows)


def _words(store, run_id):
    with store.connect() as conn:
        return set(conn.execute(select(RunWord.word).where(RunWord.run_id == run_id)).scalars())


def test_search_index_rows_follow_the_json_through_logging_and_updates(store):
    params = {"lr": 0.1, "model": "RF", "deep": True, "note": LONG, "gone": None, "big": 10**400}
    with start_run("exp", params=params, store=store, name="a") as run:
        assert _index(store, run.id) == _expected(store, run.id)
        run.log_params({"lr": 0.2, "model": 3})  # a key changing type
        run.log_metrics({"acc": 0.5})
        run.flush()
        assert _index(store, run.id) == _expected(store, run.id)
        run.log_metrics({"acc": 0.75, "loss": float("nan")})
    assert _index(store, run.id) == _expected(store, run.id)
    kinds = {(kind, key) for kind, key, *_ in _index(store, run.id)}
    assert {("p", "lr"), ("p", "model"), ("pb", "deep"), ("pl", "note"), ("m", "acc")} <= kinds
    assert ("p", "gone") not in kinds and ("m", "loss") not in kinds  # JSON nulls have no row


def test_search_filters_find_long_texts_booleans_and_huge_numbers_as_the_json_holds_them(store):
    with start_run("exp", params={"note": LONG, "flag": True, "big": 10**400, "n": 1}, store=store, name="a"):
        pass
    with start_run("exp", params={"note": "short", "flag": False, "n": True}, store=store, name="b"):
        pass

    def names(text):
        return {run.name for run in list_runs(store, filter=text)}

    assert names(f'params.note = "{LONG}"') == {"a"}
    assert names('params.note like "%-TAIL"') == {"a"} and names('params.note != "short"') == {"a"}
    assert names("params.flag = true") == {"a"} and names("params.n = 1") == {"a"}  # true is no number
    assert names("params.big is not null") == {"a"} and names("params.note is null") == set()
    order = [row["name"] for row in runs_page(store, sort="params.n", descending=False).rows]
    assert order == ["a", "b"]  # true sorts as 1, ties break on the run id


def test_search_keyset_pages_cover_every_run_once_in_order_with_ties(store):
    values = [0.5, 0.5, None, 0.2, 0.5, "high", 0.9, None, 0.2, "low", 0.5]
    for i, value in enumerate(values):
        with start_run("exp", params={} if value is None else {"v": value}, store=store, name=f"r{i}"):
            pass
    expected_desc = ["r9", "r5", "r6", "r10", "r4", "r1", "r0", "r8", "r3", "r7", "r2"]
    for descending, expected in ((True, expected_desc), (False, None)):
        seen, after = [], None
        while True:
            page = runs_page(store, sort="params.v", descending=descending, limit=3, after=after)
            seen += [row["name"] for row in page.rows]
            if page.next_after is None:
                break
            after = page.next_after
        by_offset = [
            row["name"]
            for offset in range(0, 12, 4)
            for row in runs_page(store, sort="params.v", descending=descending, offset=offset, limit=4).rows
        ]
        assert seen == by_offset and sorted(seen) == sorted(f"r{i}" for i in range(11))
        if expected:
            assert seen == expected
        else:  # ascending: numbers up (ties by id), then texts, then runs without the key
            assert seen == ["r3", "r8", "r0", "r1", "r4", "r10", "r6", "r5", "r9", "r2", "r7"]
    exported = [row["name"] for row in iter_runs_table(store, sort="started_at", descending=False)]
    assert exported == [f"r{i}" for i in range(11)]
    with pytest.raises(tracking.ValidationError, match="cursor"):
        runs_page(store, after='["nowhere", 1, 2]')


def test_search_count_is_remembered_until_the_store_changes(store):
    with start_run("exp", params={"x": 1}, store=store):
        pass
    assert count_runs(store, filter="params.x = 1") == 1
    with start_run("exp", params={"x": 1}, store=store):
        pass
    assert count_runs(store, filter="params.x = 1") == 2 == runs_page(store, filter="params.x = 1").total


def test_search_finds_each_field_case_insensitively_and_combines_with_the_filter(store):
    experiment_id = get_or_create_experiment(store, "Churn-Model")
    with store.session_scope(write=True) as session:
        sweep = Sweep(name="Nightly-Loans", experiment_id=experiment_id, config={}, study_name="s",
                      optuna_storage="", n_trials=1)  # fmt: skip
        session.add(sweep)
        session.flush()
        sweep_id = sweep.id
    with start_run("Churn-Model", params={"model": "GradientBoost", "lr": 0.05}, store=store, name="Baseline"):
        pass
    with start_run("other", params={"model": "rf"}, store=store, name="second") as b:
        pass
    with store.connect(write=True) as conn:  # attach the run to the sweep the way the worker's insert does
        conn.execute(update(Run).where(Run.id == b.id).values(sweep_id=sweep_id))
        index_runs(conn, [b.id])
    set_tags(store, b.id, {"Stage": "Prod"})
    add_note(store, b.id, "Diverged after **Warmup**")

    def found(text, filter=""):
        return {row["name"] for row in runs_page(store, search=text, filter=filter).rows}

    assert found("baseline") == {"Baseline"} and found("CHURN") == {"Baseline"}  # name, experiment
    assert found("gradient") == {"Baseline"} and found("0.05") == {"Baseline"}  # param values
    assert found("loans") == {"second"} and found("PROD") == {"second"}  # sweep, tags
    assert found("warm") == {"second"} and found("nightly diverged") == {"second"}  # notes; every word
    assert found("rf", filter="params.model = 'rf'") == {"second"} and found("rf", filter="name = 'x'") == set()
    assert found("") == {"Baseline", "second"} and found("nothing-like-it") == set()
    set_tags(store, b.id, {"Stage": "staging"})
    assert found("prod") == set() and "staging" in _words(store, b.id)
    assert {run.name for run in list_runs(store, search="baseline")} == {"Baseline"}


def test_search_for_a_piece_of_several_words_finds_that_piece_not_each_word(store):
    for name in ("trial-1", "trial-10", "trial-2", "other"):
        with start_run("sweepish", params={"note": f"({name})", "depth": 1}, store=store, name=name):
            pass

    def found(text):
        return {row["name"] for row in runs_page(store, search=text).rows}

    assert found("trial-1") == {"trial-1", "trial-10"}  # not trial-2, though it holds the words trial and 1
    assert found("TRIAL") == {"trial-1", "trial-10", "trial-2"} and found("trial 2") == {"trial-2"}
    assert found("'trial-2'") == {"trial-2"}  # quotes around a piece are not part of it


def test_search_bulk_runs_are_found_by_filter_sort_and_search(store):
    runs = [{"experiment": "bulk", "name": f"b{i}", "params": {"p": i, "kind": "Gini"}, "metrics": {"m": i / 10},
             "tags": {"batch": "first"}} for i in range(7)]  # fmt: skip
    ids = bulk_log_runs(store, runs, batch=3)
    assert len(ids) == 7 and ids == sorted(ids)
    assert _index(store, ids[3]) == _expected(store, ids[3])
    assert "gini" in _words(store, ids[0]) and "first" in _words(store, ids[0])
    page = runs_page(store, filter="metrics.m >= 0.3", sort="params.p", search="GINI first")
    assert [row["name"] for row in page.rows] == ["b6", "b5", "b4", "b3"] and page.total == 4
    with pytest.raises(tracking.ValidationError, match="finished"):
        bulk_log_runs(store, [{"experiment": "bulk", "status": "running"}])


def test_search_migration_fills_the_index_of_existing_runs(backend_url, tmp_path):
    old = store_at_revision(backend_url, tmp_path, "0011")
    run_id = legacy_run(old, "Legacy", "kept", {"model": "SVM", "deep": False, "lr": 0.5}, {"m": 1.0})
    migrate(old)
    assert _index(old, run_id) == _expected(old, run_id)
    assert words("kept Legacy SVM 0.5") <= _words(old, run_id)
    old.dispose()


def test_search_frequent_conditions_checked_run_by_run_give_the_same_runs(store, monkeypatch):
    for i in range(6):
        with start_run("exp", params={"p": i % 3, "kind": "gini" if i % 2 else "entropy"}, store=store, name=f"r{i}"):
            pass
    queries = [{"filter": "params.p >= 1 and params.kind = 'gini'"}, {"filter": "not params.p = 1", "search": "r gini"},
               {"filter": "params.missing is null", "search": "entropy", "sort": "params.p"}]  # fmt: skip
    looked_up = [[row["name"] for row in runs_page(store, **query).rows] for query in queries]
    monkeypatch.setattr(_order, "FREQUENT", 1)  # every condition counts as frequent: EXISTS per run
    checked = [[row["name"] for row in runs_page(store, **query).rows] for query in queries]
    assert checked == looked_up and looked_up[0] == ["r5", "r1"] and looked_up[2] == ["r2", "r4", "r0"]
