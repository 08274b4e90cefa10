"""Metric histories (`tracking.explore._histories`): which keys charts open on, smoothing, the figure."""

from __future__ import annotations

import math

import pytest

from tests import vega
from tracking.explore._compare import CompareView, compare_runs, complete_view, histories, history_keys
from tracking.explore._histories import (
    curves_figure,
    default_history_keys,
    history_figure,
    order_history_keys,
    parse_smoothing,
    smooth,
)
from tracking.explore._vega import curves_chart, history_chart, trials_chart
from tracking.runs._runs import start_run

# A built-in trial's keys: final metrics as one-point histories beside its learning curve and fold scores.
TRIAL = {"cv_accuracy": 1, "cv_f1_macro": 1, "fit_seconds": 1, "fold_f1_macro": 5, "test_f1_macro": 1,
         "train_loss": 40, "val_f1_macro": 120, "loss": 40}  # fmt: skip


def test_histories_order_puts_learning_curves_first_and_one_point_keys_last():
    assert order_history_keys(TRIAL) == [
        "val_f1_macro", "train_loss", "loss", "fold_f1_macro", "cv_accuracy", "cv_f1_macro", "fit_seconds",
        "test_f1_macro",
    ]  # fmt: skip
    assert default_history_keys(TRIAL) == ["val_f1_macro", "train_loss", "loss", "fold_f1_macro"]
    assert default_history_keys(TRIAL, limit=1) == ["val_f1_macro"]
    assert default_history_keys({"test_accuracy": 1, "cv_accuracy": 1}) == ["cv_accuracy"]
    assert default_history_keys({}) == []


def test_histories_smoothing_is_a_debiased_moving_average():
    assert smooth([1.0, 5.0, 3.0], 0.0) == [1.0, 5.0, 3.0]
    smoothed = smooth([2.0, 4.0, None, math.nan, 4.0], 0.5)
    assert smoothed[0] == 2.0  # debiased: the first point is not pulled towards zero
    assert smoothed[1] == pytest.approx((0.25 * 2 + 0.5 * 4) / 0.75)
    assert (
        smoothed[2] is None
        and smoothed[3] is None
        and smoothed[4] == pytest.approx((0.125 * 2 + 0.25 * 4 + 0.5 * 4) / 0.875)
    )
    assert smooth([3.0] * 5, 0.99) == pytest.approx([3.0] * 5)
    with pytest.raises(ValueError, match="from 0 up to 1"):
        smooth([1.0], 1.0)
    assert [parse_smoothing(t) for t in ("0.6", "2", "-1", "x", None, "nan", "0.333")] == [0.6, 0.99, 0, 0, 0, 0, 0.33]


def test_histories_figure_overlays_smoothed_runs_on_a_log_axis():
    fig = curves_figure([("<b>a</b>", [(0, 4.0), (1, 2.0)]), ("b", [(0, 1.0), (1, 3.0)]), ("empty", [])], "loss",
                        smoothing=0.5, log_y=True)  # fmt: skip
    assert fig.layout.yaxis.type == "log"
    raw, smoothed = fig.data[0], fig.data[1]
    assert raw.name == smoothed.name == "&lt;b&gt;a&lt;/b&gt;" and raw.showlegend is False and raw.opacity == 0.3
    assert list(raw.y) == [4.0, 2.0] and list(smoothed.y) == pytest.approx([4.0, (0.25 * 4 + 0.5 * 2) / 0.75])
    assert raw.line.color == smoothed.line.color != fig.data[2].line.color
    assert len(fig.data) == 4  # two runs, raw and smoothed each; the run without points draws nothing
    plain = curves_figure([("a", [(0, 4.0), (1, 2.0)])], "loss")
    assert len(plain.data) == 1 and plain.layout.yaxis.type == "linear"


def test_histories_compare_opens_on_the_learning_curve_of_up_to_50_runs(file_store):
    store = file_store
    ids = []
    for i in range(50):
        with start_run("exp", params={"i": i}, store=store, name=f"t{i}") as run:
            for step in range(3):
                run.log_metric("val_f1_macro", 0.5 + i / 100 + step / 10, step=step)
            run.log_metrics({"cv_f1_macro": 0.8, "test_f1_macro": 0.7})
        ids.append(run.id)
    keys = history_keys(store, ids)
    assert keys == ["val_f1_macro", "cv_f1_macro", "test_f1_macro"]
    comparison = compare_runs(store, ids)
    view = complete_view(comparison, CompareView(runs=tuple(ids)), keys)
    assert view.history == "val_f1_macro"
    fig = history_figure(comparison, histories(store, ids, view.history), view.history, smoothing=0.3)
    assert len(fig.data) == 100 and len({trace.line.color for trace in fig.data}) == 48
    chart = history_chart(comparison, histories(store, ids, view.history), view.history, smoothing=0.3).to_dict()
    assert vega.lines(chart) == comparison.labels and len(vega.rows(chart)) == 150  # 50 runs of 3 steps
    colour = chart["layer"][1]["encoding"]["color"]["scale"]
    assert colour["domain"] == comparison.labels and len(set(colour["range"])) == 48


def test_histories_chart_overlays_smoothed_runs_on_a_log_axis():
    chart = curves_chart([("<b>a</b>", [(0, 4.0), (1, 2.0)]), ("b", [(0, 1.0), (1, 3.0)]), ("empty", [])], "loss",
                         smoothing=0.5, log_y=True).to_dict()  # fmt: skip
    assert vega.y_scale(chart) == "log" and chart["title"] == "History of loss"
    raw, smoothed = chart["layer"]
    assert raw["mark"]["opacity"] == 0.3 and raw["encoding"]["y"]["field"] == "raw"
    assert smoothed["encoding"]["y"]["field"] == "value" and smoothed["mark"]["point"] is True  # few steps: dots
    assert vega.lines(chart) == ["<b>a</b>", "b"]  # the full name as it is: Vega-Lite draws text, never HTML
    a = [row for row in vega.rows(chart) if row["run"] == "<b>a</b>"]
    assert [r["raw"] for r in a] == [4.0, 2.0] and [r["value"] for r in a] == pytest.approx(
        [4.0, (0.25 * 4 + 0.5 * 2) / 0.75]
    )
    assert {"field": "run", "title": "run", "type": "nominal"} in smoothed["encoding"]["tooltip"]
    assert smoothed["encoding"]["x"]["axis"] == {"format": "d", "tickMinStep": 1}  # whole steps only
    plain = curves_chart([("a", [(0, 4.0), (1, 2.0), (2, None), (3, float("nan"))])], "loss").to_dict()
    assert len(plain["layer"]) == 1 and vega.y_scale(plain) == "linear" and len(vega.rows(plain)) == 2
    log = curves_chart([("a", [(0, 0.0), (1, 2.0)])], "loss", log_y=True).to_dict()
    assert [row["step"] for row in vega.rows(log)] == [1]  # zero has no place on a log axis


def test_histories_sweep_chart_colours_trials_by_state_with_the_best_so_far():
    trials = [{"trial": 2, "value": 0.3, "state": "complete", "run": 12, "name": "t2"},
              {"trial": 0, "value": 0.5, "state": "complete", "run": 10, "name": "t0"},
              {"trial": 1, "value": 0.1, "state": "pruned", "run": 11, "name": "t1"},
              {"trial": 3, "value": None, "state": "pruned", "run": 13, "name": "t3"},
              {"trial": 4, "value": 0.4, "state": "complete", "run": 14, "name": "t4"}]  # fmt: skip
    chart = trials_chart(trials, "loss", "minimize").to_dict()
    assert [(r["trial"], r["state"], r["run"]) for r in vega.rows(chart, 0)] == [
        (0, "complete", 10), (1, "pruned", 11), (2, "complete", 12), (4, "complete", 14)
    ]  # fmt: skip
    assert [(r["trial"], r["best"]) for r in vega.rows(chart, 1)] == [(0, 0.5), (2, 0.3), (4, 0.3)]  # pruned: not best
    tooltip = {t["field"] for t in chart["layer"][0]["encoding"]["tooltip"]}
    assert {"trial", "value", "state", "name", "run"} <= tooltip
    best = trials_chart(trials, "acc", "maximize").to_dict()
    assert [r["best"] for r in vega.rows(best, 1)] == [0.5, 0.5, 0.5]
    assert chart["layer"][0]["encoding"]["color"]["scale"]["domain"] == ["complete", "pruned", "best so far"]
    unvalued = [t | {"value": None} if t["state"] == "pruned" else t for t in trials]  # pruned before reporting
    legend = trials_chart(unvalued, "loss", "minimize").to_dict()["layer"][0]["encoding"]["color"]["scale"]
    assert legend["domain"] == ["complete", "best so far"] and len(legend["range"]) == 2  # no entry without a dot
