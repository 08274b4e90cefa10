"""Comparing runs (`tracking.explore._compare`, `tracking.explore._compare_charts`) with runs logged by `start_run` and a
real two-trial sweep."""

from __future__ import annotations

import pytest

import tracking
from tracking.explore._compare import (
    CompareView,
    champion_challenger,
    compare_runs,
    complete_view,
    guess_direction,
    histories,
    history_keys,
    params_changed,
    side_by_side,
)
from tracking.explore._compare_charts import bar_figure, history_figure, parallel_figure, scatter_figure, view_figures
from tracking.runs._runs import start_run


def _log(store, name, params, metrics, steps=0, tags=None):
    with start_run("exp", params=params, store=store, name=name, tags=tags) as run:
        for step in range(steps):
            run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        run.log_metrics(metrics)
    return run.id


@pytest.fixture
def trio(store):
    """Three runs: a baseline and two challengers, one better and one worse on test_accuracy."""
    return [
        _log(store, "base", {"lr": 0.1, "depth": 3, "kind": "rf"}, {"test_accuracy": 0.80, "log_loss": 0.5}, 4),
        _log(store, "good", {"lr": 0.2, "depth": 3, "kind": "rf"}, {"test_accuracy": 0.90, "log_loss": 0.4}, 4),
        _log(store, "bad", {"lr": 0.1, "depth": 5}, {"test_accuracy": 0.70, "log_loss": 0.0}, 2, {"note": "x"}),
    ]


def test_compare_side_by_side_marks_differences_and_missing_values(store, trio):
    comparison = compare_runs(store, trio)
    assert comparison.ids == trio and comparison.labels == [f"base #{trio[0]}", f"good #{trio[1]}", f"bad #{trio[2]}"]
    assert comparison.row("params.lr").values == (0.1, 0.2, 0.1) and comparison.row("params.lr").differs
    assert comparison.row("params.kind").values == ("rf", "rf", None) and comparison.row("params.kind").differs
    assert not comparison.row("experiment").differs and not comparison.row("status").differs
    assert comparison.row("tags.note").values == (None, None, "x")
    only = [row["field"] for row in side_by_side(comparison, only_differences=True)]
    assert "params.lr" in only and "experiment" not in only and "params.depth" in only


def test_compare_best_value_follows_each_metrics_direction(store, trio):
    comparison = compare_runs(store, trio)
    accuracy, loss = comparison.row("metrics.test_accuracy"), comparison.row("metrics.log_loss")
    assert (accuracy.direction, accuracy.best) == ("maximize", (1,))
    assert (loss.direction, loss.best) == ("minimize", (2,))  # 0.0 is a real value, not a missing one


def test_compare_ties_share_the_best_mark_and_equal_values_get_none(store):
    ids = [
        _log(store, n, {}, {"cv_accuracy": 0.9, "test_accuracy": v}) for n, v in (("a", 0.8), ("b", 0.8), ("c", 0.7))
    ]
    comparison = compare_runs(store, ids)
    assert comparison.row("metrics.test_accuracy").best == (0, 1)
    assert comparison.row("metrics.cv_accuracy").best == ()  # nothing to choose between


@pytest.mark.parametrize(
    ("key", "direction"),
    [
        ("cv_f1_macro", "maximize"),
        ("test_rmse", "minimize"),
        ("cv_log_loss", "minimize"),
        ("fit_seconds", "minimize"),
        ("val_loss", "minimize"),
        ("train_error", "minimize"),
        ("val_auc", "maximize"),
        ("mean_reward", "maximize"),
        ("widgets", None),
    ],
)
def test_compare_guesses_directions_from_rules_then_names(key, direction):
    assert guess_direction(key) == direction


@pytest.mark.file_backends
def test_compare_a_sweeps_declared_direction_beats_the_name(store):
    space = {"x": {"type": "float", "low": -3.0, "high": 3.0}}
    spec = tracking.SweepSpec(objective="tests.objectives:quadratic", space=space, metrics=["score:min"], n_trials=2)
    sweep = tracking.create_sweep(store, spec)
    tracking.run_worker(store, sweep.id)
    runs = tracking.list_runs(store, sweep_id=sweep.id)
    comparison = compare_runs(store, [r.id for r in runs])
    assert guess_direction("score") == "maximize"
    assert comparison.directions["score"] == "minimize" and comparison.objectives == ("score",)
    scores = comparison.values("metrics.score")
    assert comparison.row("metrics.score").best == (scores.index(min(scores)),)
    assert complete_view(comparison, CompareView()).metric == "metrics.score"


def test_compare_champion_challenger_deltas(store, trio):
    comparison = compare_runs(store, trio)
    deltas = {(d.run_id, d.key): d for d in champion_challenger(comparison, trio[0])}
    good = deltas[(trio[1], "metrics.test_accuracy")]
    assert good.delta == pytest.approx(0.1) and good.relative == pytest.approx(0.125) and good.verdict == "better"
    assert deltas[(trio[2], "metrics.test_accuracy")].verdict == "worse"
    assert deltas[(trio[2], "metrics.log_loss")].verdict == "better"
    assert (trio[0], "metrics.test_accuracy") not in deltas
    zero_base = {d.run_id: d for d in champion_challenger(comparison, trio[2]) if d.key == "metrics.log_loss"}
    assert zero_base[trio[0]].relative is None and zero_base[trio[0]].verdict == "worse"
    assert params_changed(comparison, trio[0]) == {trio[1]: ["lr"], trio[2]: ["depth", "kind"]}
    with pytest.raises(tracking.ValidationError, match="not one of the compared runs"):
        champion_challenger(comparison, 999)


def test_compare_missing_runs_are_reported_and_limits_enforced(store, trio):
    comparison = compare_runs(store, [*trio, 9999])
    assert comparison.ids == trio and comparison.missing == (9999,)
    with pytest.raises(tracking.ValidationError, match="2 to 50"):
        compare_runs(store, list(range(1, 52)))


def test_compare_histories_in_step_order_and_thinned(store, trio):
    assert history_keys(store, trio) == ["loss", "log_loss", "test_accuracy"]  # the curve first
    points = histories(store, trio, "loss")
    assert points[trio[0]] == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3)), (3, 0.25)]
    assert len(points[trio[2]]) == 2
    with start_run("exp", store=store) as run:
        for step in range(1000):
            run.log_metric("long", float(step), step=step)
    thin = histories(store, [run.id], "long", max_points=100)[run.id]
    assert len(thin) <= 101 and thin[0] == (0, 0.0) and thin[-1] == (999, 999.0)
    assert [s for s, _ in thin] == sorted(s for s, _ in thin)


def test_compare_view_round_trips_and_completes_with_defaults(store, trio):
    view = CompareView(
        runs=(3, 1), baseline=1, metric="metrics.a", history="loss", x="params.lr", y="metrics.a",
        params=("params.lr", "params.depth"), only_differences=True, filter='name like "%,x"', smoothing=0.6,
        log_y=True,
    )  # fmt: skip
    assert CompareView.from_query(view.to_query()) == view
    assert CompareView.from_dict(view.to_dict()) == view
    assert CompareView.from_query({"runs": "4, x, 4,-1,7", "baseline": "z"}) == CompareView(runs=(4, 7))
    comparison = compare_runs(store, trio)
    filled = complete_view(comparison, CompareView(runs=tuple(trio), metric="metrics.gone"), ["loss", "test_accuracy"])
    assert filled.baseline == trio[0] and filled.metric == "metrics.test_accuracy" and filled.history == "loss"
    assert filled.params == ("params.depth", "params.kind", "params.lr") and filled.x == "params.depth"


def test_compare_figures_escape_user_text(store):
    ids = [
        _log(store, "<b onmouseover=alert(1)>x</b>", {"kind": "<i>rf</i>", "lr": 0.1}, {"test_accuracy": 0.8}, 2),
        _log(store, "plain", {"kind": "svm", "lr": 0.2}, {"test_accuracy": 0.9}, 2),
    ]
    comparison = compare_runs(store, ids)
    history = history_figure(comparison, histories(store, ids, "loss"), "loss")
    assert history.data[0].name == f"&lt;b onmouseover=alert(1)&gt;x&lt;/b&gt; #{ids[0]}"
    bar = bar_figure(comparison, "metrics.test_accuracy", baseline=ids[0])
    assert list(bar.data[0].marker.color) == ["#7f7f7f", "#1a9850"]  # the baseline grey, the best green
    parallel = parallel_figure(comparison, ["params.kind", "params.lr"], "metrics.test_accuracy")
    assert list(parallel.data[0].dimensions[0].ticktext) == ["&lt;i&gt;rf&lt;/i&gt;", "svm"]
    scatter = scatter_figure(comparison, "params.lr", "metrics.test_accuracy")
    assert list(scatter.data[0].x) == [0.1, 0.2] and "<b" not in "".join(scatter.data[0].text)
    figures = view_figures(comparison, complete_view(comparison, CompareView(runs=tuple(ids)), ["loss"]), {})
    assert list(figures) == ["history", "parallel", "bar", "delta", "scatter"]


def test_compare_numbers_read_as_numbers():
    from tracking.explore._compare import number_text

    assert [number_text(v) for v in (1525560.0, 0.8031234567, 12345.678, 3, 0.0, None, "sqrt")] == [
        "1,525,560", "0.803123", "12,345.68", "3", "0", "", "sqrt"
    ]  # fmt: skip


def test_compare_bar_axis_leaves_0_only_when_bars_from_0_would_look_alike(store):
    close = [_log(store, f"r{i}", {}, {"test_accuracy": v}) for i, v in enumerate((0.78, 0.80))]
    apart = [_log(store, f"s{i}", {}, {"test_accuracy": v}) for i, v in enumerate((0.2, 0.8))]
    low, high = bar_figure(compare_runs(store, close), "metrics.test_accuracy").layout.yaxis.range
    assert 0 < low < 0.78 and 0.80 < high < 0.9  # 0.78 and 0.80 no longer look equal
    assert bar_figure(compare_runs(store, apart), "metrics.test_accuracy").layout.yaxis.range is None


def test_compare_long_names_are_cut_on_axes_and_whole_on_hover(store):
    name = "gradient-boosting-with-a-very-long-descriptive-name"
    ids = [_log(store, name, {}, {"fit_seconds": 1_525_560.0}), _log(store, "short", {}, {"fit_seconds": 2.0})]
    comparison = compare_runs(store, ids)
    bar = bar_figure(comparison, "metrics.fit_seconds").data[0]
    assert bar.x[0] == f"{name[:23]}… #{ids[0]}" and bar.x[1] == f"short #{ids[1]}"
    assert list(bar.customdata[0]) == [f"{name} #{ids[0]}", "1,525,560"]


def test_compare_names_the_data_versions_of_the_runs(store):
    iris = tracking.register_dataset(store, tracking.load_task("iris"))
    wine = tracking.register_dataset(store, tracking.load_task("wine"))
    ids = []
    for version in (iris, wine, iris, None):
        with start_run("exp", store=store, dataset_version_id=version) as run:
            run.log_metrics({"test_accuracy": 0.9})
        ids.append(run.id)
    datasets = compare_runs(store, ids).datasets
    assert [d.split("@")[0] for d in datasets] == ["iris", "wine"]
    assert len(compare_runs(store, [ids[0], ids[2], ids[3]]).datasets) == 1
