"""The model server: a registered model's production version over HTTP (FastAPI, run by uvicorn).

`POST /predict` takes `{"rows": [{column: value, ...}, ...]}` or `{"columns": {column: [value, ...]}}`
and checks every value against the training dataset's schema before the model sees it: a request the
model cannot score gets HTTP 422 with one sentence naming the row and column (`rows[2]["income"]`,
`columns["income"][2]`, counting from 0), never a 500. null is allowed: the pipeline imputes it.

A watcher thread polls the registry every `poll_seconds`. When another version reaches production it
is loaded in full (its file's sha256 verified) and then one reference is swapped: a request runs on
the version it started with, and none fails during the switch. A version whose file does not verify
is not switched to: the server keeps the old one, logs a warning and tries again at the next poll.

Every answered or refused request (not a 401) is counted in the inference log per version and minute,
and a `sample_rate` fraction is kept whole with its inputs and outputs. A writer thread writes them in
batches, off the requests' path; a batch the store refuses is kept (up to `MAX_KEPT` entries) for the
next try, and requests go on.
"""

from __future__ import annotations

import contextlib
import copy
import hmac
import json
import logging
import math
import queue
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.requests import ClientDisconnect

from tracking._errors import NotFoundError, TrackingError, ValidationError
from tracking.production import InferenceEntry, record_labels, write_batch
from tracking.registry import VersionRecord, get_model, lineage, load_version_model, production_version
from tracking.store import Store, utcnow

# NumPy, pandas and uvicorn are imported inside the functions that use them: they load with a server, not an import.

MAX_ROWS = 10_000
MAX_BODY_BYTES = 32 * 1024 * 1024
FLUSH_ENTRIES = 500  # the writer writes when this many requests wait, or every flush_seconds
MAX_QUEUED = 100_000  # requests waiting for the writer; beyond, new ones are left out of the log (counted)
MAX_KEPT = 50_000  # entries kept across failed writes; beyond, the oldest are dropped (counted)
STOP_SECONDS = 30.0  # how long shutdown waits for the last write

logger = logging.getLogger("tracking.serving")

_NUMERIC_DTYPES = ("int", "uint", "float", "Int", "UInt", "Float")
_WANTED = {"number": ("numeric", "a number"), "boolean": ("true/false", "true, false"), "text": ("text", "a string")}
_EXAMPLE = 'send a JSON object with "rows" (a list of objects) or "columns" (an object of lists)'
_PREDICT_BODY = {"required": True, "content": {"application/json": {"schema": {"type": "object", "properties": {
    "rows": {"type": "array", "items": {"type": "object"}, "description": "one object of column -> value per row"},
    "columns": {"type": "object", "additionalProperties": {"type": "array"}, "description": "or one list per column"},
}}}}}  # fmt: skip


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


def parse_body(served: ServedVersion, body: bytes) -> tuple[dict[str, list[Any]], Any]:
    """Check a `/predict` body against the served version's schema.

    Returns:
        The checked values by column (one per row), and the rows or columns as given.

    Raises:
        ValidationError: one sentence naming the first problem (its row and column where it has them).
    """
    if not body.strip():
        raise ValidationError(f"The request body is empty; {_EXAMPLE}.")
    try:
        payload = json.loads(body, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        raise ValidationError(f"The request body is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}.") from None  # fmt: skip
    except (UnicodeDecodeError, RecursionError) as err:
        reason = "is not UTF-8 text" if isinstance(err, UnicodeDecodeError) else "nests too deeply"
        raise ValidationError(f"The request body {reason}; {_EXAMPLE}.") from None
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


def _answer(served: ServedVersion, body: bytes) -> tuple[Any, dict[str, Any]]:
    values, given = parse_body(served, body)
    return given, predict_values(served, values)


def _as_rows(given: Any) -> list[dict[str, Any]]:
    """A request's inputs as one object per row (how the inference log keeps them)."""
    if isinstance(given, list):
        return given
    return [dict(zip(given, values, strict=True)) for values in zip(*given.values(), strict=True)]


# --- the running server ---


class _Serving:
    """The server's moving parts: the version it answers with, the registry watcher and the log writer."""

    def __init__(self, store: Store, model: str, served: ServedVersion, sample_rate: float, poll_seconds: float,
                 flush_seconds: float) -> None:  # fmt: skip
        self.store, self.model, self.sample_rate = store, model, sample_rate
        self.current = served  # swapped whole by the watcher; a request reads it once
        self.poll_seconds, self.flush_seconds = poll_seconds, flush_seconds
        self.entries: queue.Queue[InferenceEntry | threading.Event | None] = queue.Queue(MAX_QUEUED)
        self.dropped = 0  # requests left out of the log (queue full, or kept too long through failed writes)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._warned: set[Any] = set()
        self._write_warned: float | None = None  # when a failed write was last reported (None: the last one worked)

    def start(self) -> None:
        version = self.current.version
        logger.info("serving %s (sha256 %s…), sampling %g of requests into the inference log", version.label,
                    version.artifact_sha256[:12], self.sample_rate)  # fmt: skip
        self._stop.clear()
        self._threads = [threading.Thread(target=self._watch, name="tracking-serve-watch", daemon=True),
                         threading.Thread(target=self._write, name="tracking-serve-log", daemon=True)]  # fmt: skip
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self.entries.put_nowait(None)  # wakes the writer, which writes what is queued and ends
        for thread in self._threads:
            thread.join(STOP_SECONDS)

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.refresh()

    def _warn_once(self, key: Any, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message, *args)

    def refresh(self) -> bool:
        """Switch to the registry's production version if it changed and its file verifies; whether it switched."""
        current, version = self.current, None
        try:
            version = production_version(self.store, self.model)
            if version is None:
                self._warn_once("none", "%s has no version in production any more; still serving %s", self.model,
                                current.version.label)  # fmt: skip
                return False
            if version.id == current.version.id:
                return False
            served = load_served(self.store, version)
        except TrackingError as err:
            self._warn_once((version and version.id, str(err)), "not switching from %s: %s (trying again every %gs)",
                            current.version.label, err, self.poll_seconds)  # fmt: skip
            return False
        except Exception:  # a bug or a lost database: keep serving, and say so
            logger.exception("checking the production version of %s failed; trying again", self.model)
            return False
        self.current = served
        self._warned.clear()
        logger.info("switched from %s to %s (sha256 %s…)", current.version.label, version.label,
                    version.artifact_sha256[:12])  # fmt: skip
        return True

    def log(self, entry: InferenceEntry) -> None:
        try:
            self.entries.put_nowait(entry)
        except queue.Full:
            self.dropped += 1
            if self.dropped % 10_000 == 1:
                logger.warning("the inference log writer is behind: %d request(s) left out of the log", self.dropped)

    def flush_now(self, timeout: float) -> None:
        """Have the writer write what it holds at once, and wait for that (at most `timeout` seconds)."""
        written = threading.Event()
        try:
            self.entries.put(written, timeout=timeout)  # a marker: the writer sets it once it has written
        except queue.Full:
            return
        written.wait(timeout)

    def _write(self) -> None:
        batch: list[InferenceEntry] = []
        stopping = False
        while not stopping:
            deadline, fresh, waiting = time.monotonic() + self.flush_seconds, 0, []
            while fresh < FLUSH_ENTRIES and (left := deadline - time.monotonic()) > 0:
                try:
                    entry = self.entries.get(timeout=left)
                except queue.Empty:
                    break
                if entry is None:
                    break
                if isinstance(entry, threading.Event):  # someone waits for what came before it
                    waiting.append(entry)
                    break
                batch.append(entry)
                fresh += 1
            stopping = self._stop.is_set()
            if stopping:
                batch += self._drain()
            batch = self._flush(batch)
            for event in waiting:
                event.set()
        if batch:
            logger.warning("%d inference log entries could not be written before shutdown", len(batch))

    def _drain(self) -> list[InferenceEntry]:
        drained = []
        while True:
            try:
                entry = self.entries.get_nowait()
            except queue.Empty:
                return drained
            if isinstance(entry, threading.Event):
                entry.set()
            elif entry is not None:
                drained.append(entry)

    def _flush(self, batch: list[InferenceEntry]) -> list[InferenceEntry]:
        """Write a batch; what is kept for the next try (nothing, or the newest MAX_KEPT after a failed write)."""
        if not batch:
            return batch
        try:
            write_batch(self.store, batch)
        except Exception as err:  # the log never fails a request: keep the batch and try again later
            kept = batch[-MAX_KEPT:]
            self.dropped += len(batch) - len(kept)
            if self._write_warned is None or time.monotonic() - self._write_warned > 60:  # once a minute at most
                self._write_warned = time.monotonic()
                logger.warning("writing %d inference log entries failed (%s); keeping them for the next try",
                               len(batch), (str(err).strip() or type(err).__name__).splitlines()[0])  # fmt: skip
            return kept
        if self._write_warned is not None:
            self._write_warned = None
            logger.warning("the inference log is written again (%d entries caught up)", len(batch))
        return []


# --- the app ---


class FeedbackBody(BaseModel):
    """`POST /feedback`: the ground truth of a logged request, one label per row."""

    model_config = ConfigDict(extra="forbid")
    request_id: str
    labels: list[Any]


def _validation_sentence(errors: list[dict[str, Any]]) -> str:
    """One sentence for the first of FastAPI's own request validation errors."""
    error = errors[0] if errors else {}
    kind, field = error.get("type", ""), ".".join(str(p) for p in error.get("loc", ()) if p != "body")
    if kind == "json_invalid":
        return f"The request body is not valid JSON: {(error.get('ctx') or {}).get('error', 'it cannot be parsed')}."
    if not field and kind in ("missing", "model_attributes_type", "dict_type"):
        return "The request body is not a JSON object; send one with the fields this endpoint takes."
    if kind == "missing":
        return f"The request body lacks the field {json.dumps(field)}."
    if kind == "extra_forbidden":
        return f"The request body has the unknown field {json.dumps(field)}."
    message = str(error.get("msg", "is not valid")).rstrip(".")
    return f"The field {json.dumps(field)} is not valid: {message}." if field else f"The request body is not valid: {message}."  # fmt: skip


async def _read_body(request: Request) -> bytes:
    too_large = BodyTooLarge(f"The request body is over {MAX_BODY_BYTES // 2**20} MB; send at most {MAX_ROWS:,} rows.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _refusal(err: Exception, request_id: str) -> tuple[int, str]:
    """The HTTP status and sentence of a request that got no predictions."""
    if isinstance(err, ValidationError):
        return 413 if isinstance(err, BodyTooLarge) else 422, str(err)
    if isinstance(err, ClientDisconnect):
        return 400, "The client disconnected before the whole request body arrived."
    return 500, f"The model failed on request {request_id}; see the server log."


def create_app(
    store: Store,
    model: str,
    *,
    token: str | None = None,
    sample_rate: float = 1.0,
    poll_seconds: float = 2.0,
    flush_seconds: float = 1.0,
) -> FastAPI:
    """A FastAPI app serving the production version of a registered model (loaded and verified now).

    Its threads (registry watcher, log writer) run while the app runs (FastAPI lifespan); the last log
    entries are written at shutdown.

    Args:
        store: the tracking store.
        model: the registered model's name.
        token: when set, `/predict`, `/feedback` and `/model` need `Authorization: Bearer <token>`.
        sample_rate: the fraction of requests kept whole (inputs and outputs) in the inference log.
        poll_seconds: how often the registry is checked for a new production version.
        flush_seconds: how often the inference log is written.

    Raises:
        NotFoundError: there is no registered model of that name.
        ValidationError: it has no version in production, its schema is unknown, or an argument is out of range.
        IntegrityError: the production version's model file does not verify.
    """
    if token is not None and not token.strip():
        raise ValidationError("The access token is empty; set a real token or none at all.")
    if not 0.0 <= sample_rate <= 1.0:
        raise ValidationError(f"The sample rate must be between 0 and 1, not {sample_rate}.")
    if not (poll_seconds > 0 and flush_seconds > 0):
        raise ValidationError("The poll and flush intervals must be greater than 0 seconds.")
    version = production_version(store, model)
    if version is None:
        get_model(store, model)  # NotFoundError when there is no such model
        raise ValidationError(f"The registered model {model!r} has no version in production; approve a promotion first.")  # fmt: skip
    serving = _Serving(store, model, load_served(store, version), sample_rate, poll_seconds, flush_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        serving.start()
        try:
            yield
        finally:
            await run_in_threadpool(serving.stop)

    app = FastAPI(title=f"{model} model server", lifespan=lifespan)
    app.state.serving = serving
    expected = token.encode() if token is not None else None

    def authorized(request: Request) -> None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if expected is not None and not (scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)):  # fmt: skip
            raise HTTPException(401, "Send the server's access token as 'Authorization: Bearer <token>'.",
                                headers={"WWW-Authenticate": "Bearer"})  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def refused(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_sentence(list(exc.errors()))}, status_code=422)

    @app.post("/predict", dependencies=[Depends(authorized)], openapi_extra={"requestBody": _PREDICT_BODY})
    async def predict(request: Request) -> JSONResponse:
        started, served, request_id = time.perf_counter(), serving.current, uuid.uuid4().hex
        entry = {"request_id": request_id, "model_id": served.version.model_id, "version_id": served.version.id,
                 "received_at": utcnow()}  # fmt: skip
        try:
            given, answer = await run_in_threadpool(_answer, served, await _read_body(request))
        except Exception as err:
            status, detail = _refusal(err, request_id)
            if status == 500:  # a bug: the checks should have refused what the model cannot score
                logger.exception("%s failed to score request %s", served.version.label, request_id)
            serving.log(InferenceEntry(**entry, latency_ms=(time.perf_counter() - started) * 1000, n_rows=0,
                                       inputs=None, outputs=None, sampled=False, error=True))  # fmt: skip
            return JSONResponse({"detail": detail}, status_code=status)
        sampled = random.random() < serving.sample_rate
        serving.log(InferenceEntry(**entry, latency_ms=(time.perf_counter() - started) * 1000,
                                   n_rows=len(answer["predictions"]), inputs=_as_rows(given) if sampled else None,
                                   outputs=answer if sampled else None, sampled=sampled))  # fmt: skip
        return JSONResponse({"request_id": request_id, "model": served.version.model,
                             "version": served.version.version, "version_id": served.version.id, **answer})  # fmt: skip

    @app.post("/feedback", dependencies=[Depends(authorized)])
    def feedback(body: FeedbackBody) -> JSONResponse:
        for attempt in range(2):
            try:
                found = record_labels(store, body.request_id, body.labels)
                break
            except NotFoundError as err:
                if attempt:
                    return JSONResponse({"detail": str(err)}, status_code=404)
                # A request answered a moment ago may still wait in the writer's queue: have it written now.
                serving.flush_now(timeout=5.0)
            except ValidationError as err:
                return JSONResponse({"detail": str(err)}, status_code=422)
        return JSONResponse({"request_id": found.request_id, "labels": len(found.labels or [])})

    @app.get("/model", dependencies=[Depends(authorized)])
    def describe() -> dict[str, Any]:
        return serving.current.describe()

    @app.get("/health")
    def health() -> dict[str, Any]:
        version = serving.current.version
        return {"status": "ok", "model": version.model, "version": version.version, "version_id": version.id,
                "log_queued": serving.entries.qsize(), "log_dropped": serving.dropped}  # fmt: skip

    return app


def serve(store: Store, model: str, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
          sample_rate: float = 1.0) -> None:  # fmt: skip
    """Serve a registered model's production version with uvicorn until interrupted (raises as `create_app`)."""
    import uvicorn

    app = create_app(store, model, token=token, sample_rate=sample_rate)
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["loggers"]["tracking"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    uvicorn.run(app, host=host, port=port, log_config=log_config)
