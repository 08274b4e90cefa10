"""What the model server takes in: the served version's input columns, a request body checked against them
(rows or columns, one sentence per mistake), and the model's answer for it."""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from typing import Any

from tracking._errors import ValidationError
from tracking.registry import VersionRecord, lineage, load_version_model
from tracking.store import Store

# NumPy and pandas are imported inside the functions that use them: they load with a server, not an import.

MAX_ROWS = 10_000
_NUMERIC_DTYPES = ("int", "uint", "float", "Int", "UInt", "Float")
_WANTED = {"number": ("numeric", "a number"), "boolean": ("true/false", "true, false"), "text": ("text", "a string")}
_EXAMPLE = 'send a JSON object with "rows" (a list of objects) or "columns" (an object of lists)'


@dataclass(frozen=True)
class Feature:
    """One input column of the model: its name, its training dtype, and the kind of values it takes."""

    name: str
    dtype: str
    kind: str  # "number", "boolean" or "text"


@dataclass(frozen=True)
class ServedVersion:
    """A model version loaded (its file verified), with the schema its requests must follow."""

    version: VersionRecord
    model: Any
    features: tuple[Feature, ...]
    target: str | None
    sensitive: str | None
    task_type: str
    classes: tuple[Any, ...] | None
    dataset: dict[str, Any]  # id, name, sha256

    def describe(self) -> dict[str, Any]:
        """What `GET /model` shows."""
        v = self.version
        return {"name": v.model, "version": v.version, "version_id": v.id, "sha256": v.artifact_sha256,
                "run_id": v.run_id, "dataset": self.dataset, "task_type": self.task_type, "target": self.target,
                "features": {f.name: f.dtype for f in self.features},
                "classes": list(self.classes) if self.classes is not None else None, "max_rows": MAX_ROWS}  # fmt: skip


def _kind(dtype: str) -> str:
    if dtype.startswith(_NUMERIC_DTYPES):
        return "number"
    return "boolean" if dtype in ("bool", "boolean") else "text"


def load_served(store: Store, version: VersionRecord) -> ServedVersion:
    """Load a version for serving: its model (only after its sha256 verifies) and its training schema.

    Raises:
        IntegrityError: the model file is missing, changed, or asks for untrusted types.
        ValidationError: the version's run recorded no dataset schema, or the model's columns differ from it.
    """
    model = load_version_model(store, version)
    dataset = lineage(store, version.id)["dataset"]
    if dataset is None or not (dataset.get("schema") or {}).get("columns"):
        raise ValidationError(
            f"{version.label} was trained without a recorded dataset schema, so requests could not be checked "
            "against it; serve a version trained by a sweep or on a registered dataset."
        )
    schema = dataset["schema"]
    target, sensitive = schema.get("target"), schema.get("sensitive")
    dtypes = {str(c): str(t) for c, t in schema["columns"].items() if c not in (target, sensitive)}
    names = [str(c) for c in getattr(model, "feature_names_in_", dtypes)]  # the order the model was fitted in
    if sorted(names) != sorted(dtypes):
        raise ValidationError(
            f"The model of {version.label} takes the columns {names}, which differ from its dataset's feature "
            f"columns {sorted(dtypes)}, so it cannot be served with a checked schema."
        )
    task_type = schema.get("task_type", "classification")
    classes = getattr(model, "classes_", None) if task_type == "classification" else None
    return ServedVersion(
        version, model, tuple(Feature(n, dtypes[n], _kind(dtypes[n])) for n in names), target, sensitive, task_type,
        tuple(classes.tolist()) if classes is not None else None,
        {"id": dataset["id"], "name": dataset["name"], "sha256": dataset["sha256"]},
    )  # fmt: skip


# --- reading a request ---


class BodyTooLarge(ValidationError):
    """The request body is over MAX_BODY_BYTES (answered with HTTP 413)."""


class _Unfit(Exception):
    """A value that does not fit its column; the message says why, the caller adds where it is."""


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {json.dumps(value if len(value) <= 40 else value[:40] + '…', ensure_ascii=False)}"
    return {dict: "an object", list: "a list", type(None): "null"}.get(type(value), "a value")


def _value(value: Any, feature: Feature) -> Any:
    """The value as the model's frame holds it: a float, a string, or None for missing. Raises _Unfit."""
    if value is None:
        return None
    if feature.kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):
            if math.isfinite(number := float(value)):
                return number
        raise _Unfit(f"is {_describe(value)}, which is too large: send a finite number or null.")
    if feature.kind == "boolean" and isinstance(value, bool):
        return float(value)
    if feature.kind == "text" and isinstance(value, str):
        return value
    what, wanted = _WANTED[feature.kind]
    raise _Unfit(f"is {_describe(value)}, but {feature.name} is a {what} column ({feature.dtype}): send {wanted} or null.")  # fmt: skip


def _check_names(served: ServedVersion, given: dict[str, Any], where: str) -> None:
    names = [f.name for f in served.features]
    unknown = next((key for key in given if key not in names), None)
    if unknown is not None:
        role = {served.target: "the target the model predicts", served.sensitive: "the sensitive attribute"}.get(
            unknown
        )
        detail = f", {role}; leave it out" if role else "; send only the feature columns (GET /model lists them)"
        raise ValidationError(f"{where} has the {'' if role else 'unknown '}column {json.dumps(unknown)}{detail}.")
    missing = [json.dumps(name) for name in names if name not in given]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise ValidationError(f"{where} lacks the column(s) {', '.join(missing[:5])}{more}; a request needs all "
                              f"{len(names)} feature columns (null where a value is missing).")  # fmt: skip


def _count(n_rows: int) -> None:
    if n_rows == 0:
        raise ValidationError("The request holds no rows; send at least one.")
    if n_rows > MAX_ROWS:
        raise ValidationError(f"The request has {n_rows:,} rows; send at most {MAX_ROWS:,} per request.")


def _no_constant(name: str) -> None:
    raise ValidationError(f"The request body is not valid JSON: {name} is not a number; send null for a missing value.")  # fmt: skip


def read_json(body: bytes, example: str) -> Any:
    """A request body's JSON; NaN, Infinity and numbers of thousands of digits are refused like malformed JSON.

    Raises:
        ValidationError: one sentence; `example` says what to send instead.
    """
    try:
        return json.loads(body, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        raise ValidationError(f"The request body is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}.") from None  # fmt: skip
    except (UnicodeDecodeError, RecursionError) as err:
        reason = "is not UTF-8 text" if isinstance(err, UnicodeDecodeError) else "nests too deeply"
        raise ValidationError(f"The request body {reason}; {example}.") from None
    except ValueError:  # Python reads no integer of more than 4,300 digits (sys.get_int_max_str_digits)
        raise ValidationError(
            "The request body holds a number with thousands of digits; send numbers a float can hold."
        ) from None


def parse_body(served: ServedVersion, body: bytes) -> tuple[dict[str, list[Any]], Any]:
    """Check a `/predict` body against the served version's schema.

    Returns:
        The checked values by column (one per row), and the rows or columns as given.

    Raises:
        ValidationError: one sentence naming the first problem (its row and column where it has them).
    """
    if not body.strip():
        raise ValidationError(f"The request body is empty; {_EXAMPLE}.")
    payload = read_json(body, _EXAMPLE)
    if not isinstance(payload, dict) or not payload:
        raise ValidationError(f"The request body is {'{}' if payload == {} else _describe(payload)}; {_EXAMPLE}.")
    unknown = next((key for key in payload if key not in ("rows", "columns")), None)
    if unknown is not None:
        raise ValidationError(f"The request body has the unknown field {json.dumps(unknown)}; {_EXAMPLE}.")
    if len(payload) == 2:
        raise ValidationError('The request body has both "rows" and "columns"; send one of them.')
    if "rows" in payload:
        return _from_rows(served, payload["rows"]), payload["rows"]
    return _from_columns(served, payload["columns"]), payload["columns"]


def _from_rows(served: ServedVersion, rows: Any) -> dict[str, list[Any]]:
    if not isinstance(rows, list):
        raise ValidationError(f'"rows" is {_describe(rows)}, but it must be a list of objects, one per row.')
    _count(len(rows))
    values: dict[str, list[Any]] = {f.name: [] for f in served.features}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValidationError(f"rows[{i}] is {_describe(row)}, but each row must be an object of column -> value.")
        if len(row) != len(values) or not all(name in row for name in values):
            _check_names(served, row, f"rows[{i}]")
        for feature in served.features:
            try:
                values[feature.name].append(_value(row[feature.name], feature))
            except _Unfit as err:
                raise ValidationError(f"rows[{i}][{json.dumps(feature.name)}] {err}") from None
    return values


def _from_columns(served: ServedVersion, columns: Any) -> dict[str, list[Any]]:
    if not isinstance(columns, dict):
        raise ValidationError(f'"columns" is {_describe(columns)}, but it must be an object of column -> list of values.')  # fmt: skip
    _check_names(served, columns, '"columns"')
    first = served.features[0].name
    for name in (f.name for f in served.features):
        if not isinstance(columns[name], list):
            raise ValidationError(f"columns[{json.dumps(name)}] is {_describe(columns[name])}, but it must be a list.")
        if len(columns[name]) != len(columns[first]):
            raise ValidationError(f"columns[{json.dumps(first)}] has {len(columns[first])} value(s) but "
                                  f"columns[{json.dumps(name)}] has {len(columns[name])}; send one value per row in every column.")  # fmt: skip
    _count(len(columns[first]))
    values: dict[str, list[Any]] = {}
    for feature in served.features:
        column = values[feature.name] = []
        for i, value in enumerate(columns[feature.name]):
            try:
                column.append(_value(value, feature))
            except _Unfit as err:
                raise ValidationError(f"columns[{json.dumps(feature.name)}][{i}] {err}") from None
    return values


def predict_values(served: ServedVersion, values: dict[str, list[Any]]) -> dict[str, Any]:
    """Predictions (and for a classifier, probabilities by class) of checked values; the pipeline's steps run once."""
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({
        f.name: np.array([np.nan if v is None else v for v in values[f.name]], dtype=object if f.kind == "text" else float)
        for f in served.features
    })  # fmt: skip
    model, steps = served.model, getattr(served.model, "steps", None)
    features, final = (model[:-1].transform(frame), steps[-1][1]) if steps and len(steps) > 1 else (frame, model)
    answer: dict[str, Any] = {"predictions": final.predict(features).tolist()}
    if served.classes is not None and hasattr(final, "predict_proba"):
        keys = [str(c) for c in served.classes]
        answer["probabilities"] = [dict(zip(keys, row, strict=True)) for row in final.predict_proba(features).tolist()]
        answer["classes"] = list(served.classes)
    return answer


def predict_request(served: ServedVersion, body: bytes) -> tuple[Any, dict[str, Any]]:
    """The request's inputs as given, and the model's predictions for them."""
    values, given = parse_body(served, body)
    return given, predict_values(served, values)


def as_rows(given: Any) -> list[dict[str, Any]]:
    """A request's inputs as one object per row (how the inference log keeps them)."""
    if isinstance(given, list):
        return given
    return [dict(zip(given, values, strict=True)) for values in zip(*given.values(), strict=True)]
