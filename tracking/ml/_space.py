"""Search spaces: one entry per hyperparameter, validated, and turned into Optuna distributions.

File format (YAML or JSON), a mapping of parameter name to its range:

    C:            {type: float, low: 0.001, high: 100, log: true}
    n_estimators: {type: int, low: 10, high: 300, step: 10}
    kernel:       {type: categorical, choices: [rbf, linear]}
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from tracking._errors import ValidationError

# Optuna and NumPy are imported inside the functions that use them: `import tracking` stays light.

TYPES = ("int", "float", "categorical")
_KEYS = {"type", "low", "high", "log", "step", "choices"}


def parse_space(spec: Mapping[str, Any], allowed: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """Validate a search space and return it in canonical form.

    Args:
        spec: parameter name -> {type, low, high, log, step} or {type: categorical, choices}.
        allowed: the parameter names the model accepts; None accepts any name (own objectives).

    Raises:
        ValidationError: naming the parameter and what is wrong with it.
    """
    if not isinstance(spec, Mapping) or not spec:
        raise ValidationError("The search space must be a non-empty mapping of parameter names to ranges.")
    allowed_names = set(allowed) if allowed is not None else None
    return {str(name): _parse_entry(str(name), entry, allowed_names) for name, entry in spec.items()}


def _parse_entry(name: str, entry: Any, allowed: set[str] | None) -> dict[str, Any]:
    def bad(why: str) -> ValidationError:
        return ValidationError(f"Search space parameter {name!r}: {why}")

    if allowed is not None and name not in allowed:
        raise bad(f"the model has no such parameter; it accepts: {', '.join(sorted(allowed))}.")
    if not isinstance(entry, Mapping):
        raise bad("give a mapping like {type: float, low: 0.1, high: 1.0}.")
    unknown = set(entry) - _KEYS
    if unknown:
        raise bad(f"unknown keys {sorted(unknown)}; allowed keys are {sorted(_KEYS)}.")
    kind = entry.get("type")
    if kind not in TYPES:
        raise bad(f"type must be one of {', '.join(TYPES)}, not {kind!r}.")
    if kind == "categorical":
        choices = entry.get("choices")
        if not isinstance(choices, list) or not choices:
            raise bad("a categorical parameter needs a non-empty list of choices.")
        if any(not (c is None or isinstance(c, bool | int | float | str)) for c in choices):
            raise bad("choices must be numbers, strings, booleans or null.")
        if len({json.dumps(c) for c in choices}) != len(choices):
            raise bad("choices must not repeat.")
        return {"type": kind, "choices": list(choices)}
    number = int if kind == "int" else float
    parsed: dict[str, Any] = {"type": kind}
    for key in ("low", "high"):
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise bad(f"{key} must be a finite number.")
        if kind == "int" and float(value) != int(value):
            raise bad(f"{key} must be a whole number for an int parameter.")
        parsed[key] = number(value)
    if parsed["low"] > parsed["high"]:
        raise bad(f"low ({parsed['low']}) is greater than high ({parsed['high']}).")
    log = entry.get("log", False)
    if not isinstance(log, bool):
        raise bad("log must be true or false.")
    if log and parsed["low"] <= 0:
        raise bad("a log-scale range needs low > 0.")
    parsed["log"] = log
    step = entry.get("step")
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, int | float) or not step > 0:
            raise bad("step must be a positive number.")
        if log:
            raise bad("step cannot be combined with log scale.")
        if kind == "int" and float(step) != int(step):
            raise bad("step must be a whole number for an int parameter.")
        parsed["step"] = number(step)
    return parsed


def load_space_file(path: str | Path) -> dict[str, Any]:
    """Read a search-space file (YAML or JSON) without validating it yet.

    Raises:
        ValidationError: the file is missing, unreadable or not a YAML/JSON mapping.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise ValidationError(f"The search-space file {str(file)!r} does not exist.")
    try:
        text = file.read_text(encoding="utf-8")
        spec = json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValidationError(f"The search-space file {str(file)!r} is not valid YAML/JSON: {first}") from err
    if not isinstance(spec, dict) or not spec:
        raise ValidationError(f"The search-space file {str(file)!r} must hold a mapping of parameter names to ranges.")
    return spec


def to_distributions(space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Optuna distributions for a validated space."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    dists: dict[str, Any] = {}
    for name, entry in space.items():
        if entry["type"] == "categorical":
            dists[name] = CategoricalDistribution(entry["choices"])
        elif entry["type"] == "int":
            dists[name] = IntDistribution(entry["low"], entry["high"], log=entry["log"], step=entry.get("step", 1))
        else:
            dists[name] = FloatDistribution(entry["low"], entry["high"], log=entry["log"], step=entry.get("step"))
    return dists


GRID_POINTS = 5  # a float range without a step is sampled at this many points by the grid sampler


def to_grid(space: Mapping[str, Mapping[str, Any]], max_points: int = 100_000) -> dict[str, list[Any]]:
    """The grid sampler's values: choices, stepped ranges, or 5 (log-)spaced points of a float range."""
    import numpy as np

    grid: dict[str, list[Any]] = {}
    for name, entry in space.items():
        if entry["type"] == "categorical":
            values = list(entry["choices"])
        elif entry.get("step") is not None:
            count = math.floor((entry["high"] - entry["low"]) / entry["step"] + 1e-9) + 1
            values = [entry["low"] + i * entry["step"] for i in range(count)]
        elif entry["type"] == "int" and entry["high"] - entry["low"] < GRID_POINTS:
            values = list(range(entry["low"], entry["high"] + 1))
        else:
            space_fn = np.geomspace if entry["log"] else np.linspace
            values = [float(v) for v in space_fn(entry["low"], entry["high"], GRID_POINTS)]
            if entry["type"] == "int":
                values = sorted({round(v) for v in values})
        grid[name] = list(dict.fromkeys(values))  # a range with low == high is one point, not five
    if math.prod(len(v) for v in grid.values()) > max_points:
        raise ValidationError(f"The grid has more than {max_points} points; give steps or fewer choices.")
    return grid


def space_rows(space: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A space as editor rows: parameter, type, low, high, log, step, choices (comma-separated text)."""
    rows = []
    for name, entry in space.items():
        choices = entry.get("choices")
        rows.append(
            {
                "parameter": name,
                "type": entry["type"],
                "low": entry.get("low"),
                "high": entry.get("high"),
                "log": bool(entry.get("log", False)),
                "step": entry.get("step"),
                "choices": ", ".join(json.dumps(c) if not isinstance(c, str) else c for c in choices)
                if choices
                else "",
            }
        )
    return rows


def _choice(text: str) -> Any:
    text = text.strip()
    lowered = text.lower()
    if lowered in ("null", "none"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        number = float(text)
    except ValueError:
        return text.strip("\"'")
    return int(number) if number.is_integer() and "." not in text and "e" not in lowered else number


def _blank(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def space_from_rows(
    rows: Iterable[Mapping[str, Any]], allowed: Iterable[str] | None = None
) -> tuple[dict[str, dict[str, Any]], dict[int, str]]:
    """Validate editor rows one by one.

    Returns:
        The validated space, and a message per wrong row (0-based row index -> sentence); the space
        is only usable when there are no messages.
    """
    allowed_names = set(allowed) if allowed is not None else None
    space: dict[str, dict[str, Any]] = {}
    errors: dict[int, str] = {}
    for index, row in enumerate(rows):
        name = "" if _blank(row.get("parameter")) else str(row["parameter"]).strip()
        if not name:
            errors[index] = f"Row {index + 1}: give the parameter a name."
            continue
        if name in space:
            errors[index] = f"Row {index + 1} ({name}): this parameter appears twice."
            continue
        kind = row.get("type")
        entry: dict[str, Any] = {"type": kind}
        if kind == "categorical":
            text = "" if _blank(row.get("choices")) else str(row["choices"])
            entry["choices"] = [_choice(part) for part in text.split(",") if part.strip()]
        else:
            for key in ("low", "high", "step"):
                if not _blank(row.get(key)):
                    entry[key] = float(row[key]) if kind == "float" else row[key]
            if kind == "int":
                entry.update({k: int(v) if float(v).is_integer() else v for k, v in entry.items() if k != "type"})
            entry["log"] = bool(row.get("log")) if not _blank(row.get("log")) else False
        try:
            space[name] = _parse_entry(name, entry, allowed_names)
        except ValidationError as err:
            errors[index] = f"Row {index + 1}: {err}"
    if not space and not errors:
        errors[0] = "Add at least one parameter to search over."
    return space, errors
