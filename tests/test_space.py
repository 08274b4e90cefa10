"""Search spaces: validation that names the parameter, space files, Optuna distributions and grids."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

import tracking
from tracking.ml._families import FAMILIES
from tracking.ml._space import GRID_POINTS, load_space_file, parse_space, to_distributions, to_grid

SPACE = {
    "C": {"type": "float", "low": 0.001, "high": 100, "log": True},
    "n_estimators": {"type": "int", "low": 10, "high": 300, "step": 10},
    "subsample": {"type": "float", "low": 0.5, "high": 1.0, "step": 0.25},
    "kernel": {"type": "categorical", "choices": ["rbf", "linear", None]},
}


@pytest.mark.parametrize(
    ("entry", "word"),
    [
        pytest.param({"type": "float", "low": 2.0, "high": 1.0}, "greater than", id="low-above-high"),
        pytest.param({"type": "categorical", "choices": []}, "non-empty list", id="empty-choices"),
        pytest.param({"type": "categorical"}, "non-empty list", id="no-choices"),
        pytest.param({"type": "float", "low": 0.0, "high": 1.0, "log": True}, "low > 0", id="log-zero-low"),
        pytest.param({"type": "int", "low": -3, "high": 5, "log": True}, "low > 0", id="log-negative-int"),
        pytest.param(
            {"type": "float", "low": 0.1, "high": 1.0, "log": True, "step": 0.1},
            "cannot be combined with log",
            id="step-with-log",
        ),
        pytest.param({"type": "float", "low": 0.0, "high": 1.0, "step": 0}, "positive", id="zero-step"),
        pytest.param({"type": "int", "low": 0, "high": 10, "step": -2}, "positive", id="negative-step"),
        pytest.param({"type": "bool", "low": 0, "high": 1}, "type must be one of", id="unknown-type"),
        pytest.param({"low": 0, "high": 1}, "type must be one of", id="missing-type"),
        pytest.param({"type": "int", "high": 3}, "low must be a finite number", id="missing-low"),
        pytest.param({"type": "float", "low": 0.1}, "high must be a finite number", id="missing-high"),
        pytest.param({"type": "float", "low": "0.1", "high": 1.0}, "low must be a finite number", id="string-bound"),
        pytest.param(
            {"type": "float", "low": 0.0, "high": float("inf")}, "high must be a finite number", id="infinite-bound"
        ),
        pytest.param({"type": "int", "low": True, "high": 3}, "low must be a finite number", id="bool-bound"),
        pytest.param({"type": "int", "low": 1, "high": 3, "lo": 1}, "unknown keys", id="unknown-key"),
        pytest.param({"type": "categorical", "choices": ["a", "b", "a"]}, "must not repeat", id="repeated-choices"),
        pytest.param(
            {"type": "categorical", "choices": [["nested"]]}, "numbers, strings, booleans or null", id="nested-choice"
        ),
        pytest.param({"type": "int", "low": 1.5, "high": 3}, "whole number", id="fractional-int-bound"),
        pytest.param({"type": "int", "low": 1, "high": 9, "step": 1.5}, "whole number", id="fractional-int-step"),
        pytest.param({"type": "float", "low": 0.1, "high": 1.0, "log": "yes"}, "true or false", id="non-bool-log"),
        pytest.param("0.1..1.0", "give a mapping", id="not-a-mapping"),
    ],
)
def test_parse_space_rejects_bad_entry_naming_the_parameter(entry, word):
    with pytest.raises(tracking.ValidationError, match="'lr'") as caught:
        parse_space({"lr": entry})
    assert word in str(caught.value)


@pytest.mark.parametrize("spec", [{}, [], "C: 1", None])
def test_parse_space_rejects_empty_or_non_mapping(spec):
    with pytest.raises(tracking.ValidationError, match="non-empty mapping"):
        parse_space(spec)


def test_parse_space_rejects_parameter_the_model_lacks():
    spec = {"C": SPACE["C"], "gamma": {"type": "float", "low": 0.1, "high": 1.0}}
    with pytest.raises(tracking.ValidationError, match=r"'gamma'.*no such parameter.*accepts: C, kernel"):
        parse_space(spec, allowed=["kernel", "C"])


def test_parse_space_rejects_misspelt_parameter_of_real_family():
    allowed = FAMILIES["random_forest"].accepted_params("classification")
    with pytest.raises(tracking.ValidationError, match=r"'n_estimator'.*n_estimators"):
        parse_space({"n_estimator": {"type": "int", "low": 10, "high": 100}}, allowed=allowed)


def test_parse_space_returns_canonical_entries():
    space = parse_space({"depth": {"type": "int", "low": 2.0, "high": 8, "step": 2.0}, "alpha": SPACE["C"]})
    assert space["depth"] == {"type": "int", "low": 2, "high": 8, "log": False, "step": 2}
    assert all(isinstance(space["depth"][key], int) for key in ("low", "high", "step"))
    assert space["alpha"] == {"type": "float", "low": 0.001, "high": 100.0, "log": True}
    assert isinstance(space["alpha"]["high"], float)


@pytest.mark.parametrize(
    ("family", "task_type"),
    [(name, task) for name, family in FAMILIES.items() for task in family.tasks],
)
def test_parse_space_accepts_every_family_default_space(family, task_type):
    default = FAMILIES[family].space
    space = parse_space(default, allowed=FAMILIES[family].accepted_params(task_type))
    assert set(space) == set(default)


@pytest.mark.parametrize(("suffix", "dump"), [(".yaml", yaml.safe_dump), (".json", json.dumps)])
def test_load_space_file_reads_yaml_and_json(tmp_path, suffix, dump):
    path = tmp_path / f"space{suffix}"
    path.write_text(dump(SPACE), encoding="utf-8")
    assert load_space_file(path) == SPACE


@pytest.mark.parametrize(
    ("name", "text", "word"),
    [
        pytest.param("absent.yaml", None, "does not exist", id="absent-yaml"),
        pytest.param("broken.yaml", "C: {type: float, low: [1, 2\n", "not valid YAML/JSON", id="broken-yaml"),
        pytest.param("broken.json", '{"C": {"type": "float",', "not valid YAML/JSON", id="broken-json"),
        pytest.param("list.yaml", "- C\n- gamma\n", "must hold a mapping", id="list-yaml"),
        pytest.param("scalar.yaml", "42\n", "must hold a mapping", id="scalar-yaml"),
        pytest.param("list.json", '[{"type": "int"}]', "must hold a mapping", id="list-json"),
        pytest.param("empty.yaml", "", "must hold a mapping", id="empty-yaml"),
    ],
)
def test_load_space_file_rejects_bad_file(tmp_path, name, text, word):
    path = tmp_path / name
    if text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(tracking.ValidationError, match=name) as caught:
        load_space_file(path)
    assert word in str(caught.value)


def test_to_distributions_keeps_bounds_log_step_and_choices():
    space = parse_space(SPACE)
    dists = to_distributions(space)
    assert dists["C"] == FloatDistribution(0.001, 100.0, log=True)
    assert isinstance(dists["n_estimators"], IntDistribution)
    n = dists["n_estimators"]
    assert (n.low, n.high, n.step, n.log) == (10, 300, 10, False)
    sub = dists["subsample"]
    assert isinstance(sub, FloatDistribution) and (sub.low, sub.high, sub.step, sub.log) == (0.5, 1.0, 0.25, False)
    assert dists["kernel"] == CategoricalDistribution(["rbf", "linear", None])


def test_to_distributions_unstepped_int_has_step_one():
    dist = to_distributions(parse_space({"k": {"type": "int", "low": 1, "high": 30}}))["k"]
    assert (dist.low, dist.high, dist.step) == (1, 30, 1)


def test_to_grid_keeps_categorical_choices():
    assert to_grid(parse_space({"kernel": SPACE["kernel"]})) == {"kernel": ["rbf", "linear", None]}


def test_to_grid_enumerates_stepped_ranges():
    grid = to_grid(parse_space({key: SPACE[key] for key in ("n_estimators", "subsample")}))
    assert grid["n_estimators"] == list(range(10, 301, 10))
    assert grid["subsample"] == pytest.approx([0.5, 0.75, 1.0])


def test_to_grid_enumerates_small_int_range():
    assert to_grid(parse_space({"p": {"type": "int", "low": 1, "high": 3}})) == {"p": [1, 2, 3]}


def test_to_grid_samples_unstepped_float_at_evenly_spaced_points():
    values = to_grid(parse_space({"x": {"type": "float", "low": 0.0, "high": 1.0}}))["x"]
    assert len(values) == GRID_POINTS
    assert values[0] == 0.0 and values[-1] == 1.0
    assert np.diff(values) == pytest.approx([values[1] - values[0]] * (GRID_POINTS - 1))


def test_to_grid_samples_log_float_at_log_spaced_points():
    values = to_grid(parse_space({"C": SPACE["C"]}))["C"]
    assert len(values) == GRID_POINTS
    assert values[0] == pytest.approx(0.001) and values[-1] == pytest.approx(100.0)
    ratios = np.array(values[1:]) / np.array(values[:-1])
    assert ratios == pytest.approx([ratios[0]] * (GRID_POINTS - 1))
    assert ratios[0] > 1.5  # geometric steps, not the near-equal ratios of a linear range


def test_to_grid_refuses_too_many_points():
    wide = {"type": "int", "low": 0, "high": 999, "step": 1}
    with pytest.raises(tracking.ValidationError, match="more than 100000 points"):
        to_grid(parse_space({"a": wide, "b": wide}))
