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
import queue
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as BodyError
from starlette.requests import ClientDisconnect

from tracking._errors import NotFoundError, TrackingError, ValidationError
from tracking.governance import start_deliverer
from tracking.production import InferenceEntry, record_labels, write_batch
from tracking.registry import get_model, production_version
from tracking.serving._input import (
    MAX_ROWS,
    BodyTooLarge,
    ServedVersion,
    as_rows,
    load_served,
    predict_request,
    read_json,
)
from tracking.store import Store, utcnow

# uvicorn is imported inside `serve`: it loads with a server, not an import.

MAX_BODY_BYTES = 32 * 1024 * 1024
FLUSH_ENTRIES = 500  # the writer writes when this many requests wait, or every flush_seconds
MAX_QUEUED = 100_000  # requests waiting for the writer; beyond, new ones are left out of the log (counted)
MAX_KEPT = 50_000  # entries kept across failed writes; beyond, the oldest are dropped (counted)
STOP_SECONDS = 30.0  # how long shutdown waits for the last write

logger = logging.getLogger("tracking.serving")

_PREDICT_BODY = {"required": True, "content": {"application/json": {"schema": {"type": "object", "properties": {
    "rows": {"type": "array", "items": {"type": "object"}, "description": "one object of column -> value per row"},
    "columns": {"type": "object", "additionalProperties": {"type": "array"}, "description": "or one list per column"},
}}}}}  # fmt: skip
_FEEDBACK_EXAMPLE = 'send a JSON object with "request_id" and "labels" (a list, one label per row)'


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
    entries are written at shutdown. It also starts the store's webhook deliverer (`tracking.governance`).

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
        start_deliverer(store)  # webhook deliveries queued by the CLI and scripts go out while the server runs
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
            given, answer = await run_in_threadpool(predict_request, served, await _read_body(request))
        except Exception as err:
            status, detail = _refusal(err, request_id)
            if status == 500:  # a bug: the checks should have refused what the model cannot score
                logger.exception("%s failed to score request %s", served.version.label, request_id)
            serving.log(InferenceEntry(**entry, latency_ms=(time.perf_counter() - started) * 1000, n_rows=0,
                                       inputs=None, outputs=None, sampled=False, error=True))  # fmt: skip
            return JSONResponse({"detail": detail}, status_code=status)
        sampled = random.random() < serving.sample_rate
        serving.log(InferenceEntry(**entry, latency_ms=(time.perf_counter() - started) * 1000,
                                   n_rows=len(answer["predictions"]), inputs=as_rows(given) if sampled else None,
                                   outputs=answer if sampled else None, sampled=sampled))  # fmt: skip
        return JSONResponse({"request_id": request_id, "model": served.version.model,
                             "version": served.version.version, "version_id": served.version.id, **answer})  # fmt: skip

    @app.post("/feedback", dependencies=[Depends(authorized)],
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                  "schema": FeedbackBody.model_json_schema()}}}})  # fmt: skip
    async def feedback(request: Request) -> JSONResponse:
        # read here rather than by FastAPI, whose parser answers a number of 5,000 digits with a bare 400
        try:
            raw = await _read_body(request)
            if not raw.strip():
                raise ValidationError(f"The request body is not a JSON object; {_FEEDBACK_EXAMPLE}.")
            body = FeedbackBody.model_validate(read_json(raw, _FEEDBACK_EXAMPLE))
        except (ValidationError, ClientDisconnect) as err:
            status, detail = _refusal(err, "")
            return JSONResponse({"detail": detail}, status_code=status)
        except BodyError as err:
            return JSONResponse({"detail": _validation_sentence(list(err.errors()))}, status_code=422)
        return await run_in_threadpool(_feedback, body)

    def _feedback(body: FeedbackBody) -> JSONResponse:
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
