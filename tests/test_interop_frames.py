"""pandas DataFrames of runs (`runs_frame`) and of metric histories (`history_frame`): columns, types, filters,
and one query however many runs."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from sqlalchemy import event

import tracking
from tests.conftest import ROOT


def _runs(store, n: int = 3) -> list[int]:
    """`n` runs with typed params, metrics with histories, and a tag on the even ones."""
    ids = []
    for i in range(n):
        params = {"alpha": 0.1 * (i + 1), "n_estimators": 10 * (i + 1), "solver": "lbfgs", "warm": i % 2 == 0,
                  "max_features": "sqrt" if i else 0.5}  # fmt: skip
        if i < 2:
            params["depth"] = i + 3  # missing on the later runs: an integer column with missing values
        with tracking.start_run("frames", params=params, tags={"stage": "dev"} if i % 2 == 0 else None,
                                store=store) as run:  # fmt: skip
            for step in range(4):
                run.log_metrics({"loss": 1 / (step + 1 + i), "test_f1_macro": 0.5 + 0.1 * i}, step=step)
        ids.append(run.id)
    return ids


def test_runs_frame_has_params_and_metrics_columns_with_their_types(store):
    ids = _runs(store)
    df = tracking.runs_frame(store)
    assert list(df.index) == ids and df.index.name == "id"
    assert df["params.alpha"].dtype == "float64" and df["params.n_estimators"].dtype == "Int64"
    assert df["params.warm"].dtype == "boolean" and df["metrics.test_f1_macro"].dtype == "float64"
    assert df["params.depth"].tolist()[:2] == [3, 4] and df["params.depth"].isna().tolist() == [False, False, True]
    assert df["params.solver"].tolist() == ["lbfgs"] * 3
    assert df["params.max_features"].tolist() == [0.5, "sqrt", "sqrt"]  # mixed kinds: kept as they are
    assert df.loc[ids[2], "metrics.test_f1_macro"] == pytest.approx(0.7)
    assert isinstance(df["started_at"].dtype, pd.DatetimeTZDtype) and (df["duration_s"] >= 0).all()
    assert df["experiment"].tolist() == ["frames"] * 3 and df["status"].tolist() == ["complete"] * 3


def test_runs_frame_filters_and_picks_columns_in_order(store):
    ids = _runs(store, 4)
    df = tracking.runs_frame(store, "params.alpha > 0.15 and metrics.test_f1_macro < 0.75",
                             ["metrics.test_f1_macro", "name", "tags.stage", "params.*"])  # fmt: skip
    assert list(df.index) == ids[1:3]
    assert list(df.columns[:3]) == ["metrics.test_f1_macro", "name", "tags.stage"]
    assert df["tags.stage"].isna().tolist() == [True, False] and df["tags.stage"].iloc[1] == "dev"
    assert {c for c in df.columns if c.startswith("params.")} == {
        "params.alpha", "params.n_estimators", "params.solver", "params.warm", "params.max_features", "params.depth"
    }  # fmt: skip


def test_runs_frame_limit_and_experiment_apply_to_the_tags_too(store):
    ids = _runs(store, 4)
    with tracking.start_run("other", store=store):
        pass
    df = tracking.runs_frame(store, columns=["tags.stage", "experiment"], experiment="frames", limit=3)
    assert list(df.index) == ids[:3] and df["tags.stage"].isna().tolist() == [False, True, False]
    assert list(tracking.runs_frame(store, columns=["name"], experiment="other").columns) == ["name"]


def test_runs_frame_a_key_no_run_has_is_a_column_of_missing_values(store):
    _runs(store, 2)
    df = tracking.runs_frame(store, columns=["metrics.nothing", "tags.*"])
    assert df["metrics.nothing"].isna().all() and "tags.stage" in df.columns


def test_runs_frame_of_no_runs_is_empty(store):
    assert tracking.runs_frame(store).empty


def test_runs_frame_unknown_column_is_one_sentence(store):
    with pytest.raises(tracking.ValidationError, match="Unknown column 'colour'"):
        tracking.runs_frame(store, columns=["colour"])


def _selects(store):
    """The SELECT statements the store's engine runs, recorded while the returned list is alive."""
    seen: list[str] = []

    def listen(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", listen)
    return seen, lambda: event.remove(store.engine, "before_cursor_execute", listen)


def test_runs_frame_and_history_frame_are_one_query_for_many_runs(store):
    ids = _runs(store, 30)
    seen, stop = _selects(store)
    try:
        frame = tracking.runs_frame(store, columns=["params.*", "metrics.*", "tags.*"])
        assert len(seen) == 2  # the runs, and the tags of the same runs
        seen.clear()
        hist = tracking.history_frame(store, frame)
        assert len(seen) == 1
    finally:
        stop()
    assert len(frame) == 30 and len(hist) == 30 * 2 * 4 and hist["run_id"].unique().tolist() == ids


def test_history_frame_is_long_form_in_run_key_step_order(store):
    ids = _runs(store, 2)
    hist = tracking.history_frame(store, ids, keys="loss")
    assert list(hist.columns) == ["run_id", "key", "step", "value", "timestamp"]
    assert hist["run_id"].tolist() == [ids[0]] * 4 + [ids[1]] * 4 and set(hist["key"]) == {"loss"}
    assert hist["step"].tolist() == [0, 1, 2, 3] * 2 and hist["value"].iloc[1] == pytest.approx(0.5)
    assert str(hist["step"].dtype) == "int64" and isinstance(hist["timestamp"].dtype, pd.DatetimeTZDtype)
    pivot = hist.pivot_table(index="step", columns="run_id", values="value")
    assert pivot.shape == (4, 2)


def test_history_frame_takes_records_or_a_filter(store):
    ids = _runs(store, 3)
    records = tracking.list_runs(store, filter="params.warm = true")
    by_records = tracking.history_frame(store, records, keys=["test_f1_macro"])
    by_filter = tracking.history_frame(store, "params.warm = true", keys=["test_f1_macro"])
    assert by_records.equals(by_filter) and sorted(by_filter["run_id"].unique()) == [ids[0], ids[2]]
    assert tracking.history_frame(store, []).empty


def test_readme_pandas_example_runs(store, monkeypatch):
    """The README's notebook example, run as written (on this test's runs instead of sweep 3)."""
    for i in range(4):
        params = {"learning_rate": 0.05 * (i + 1), "max_depth": 2 + i % 2}
        with tracking.start_run("readme", params=params, store=store) as run:
            for step in range(5):
                run.log_metric("val_f1_macro", 0.6 + 0.05 * step + 0.01 * i, step=step)
            run.log_metrics({"cv_f1_macro": 0.8 + 0.01 * i, "test_f1_macro": 0.79 + 0.01 * i})
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### pandas in a notebook", 1)[1].split("\n### ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "sweep = 3" in code
    monkeypatch.setattr(tracking, "open_store", lambda *args, **kwargs: store)
    namespace: dict = {}
    code = code.replace("sweep = 3", 'experiment = "readme"')
    exec(compile(code, "README.md", "exec"), namespace)  # the README's own example
    assert len(namespace["runs"]) == 4 and len(namespace["curves"]) == 20
    assert "params.learning_rate" in namespace["curves"].columns
