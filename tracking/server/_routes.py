"""The tracking server's routes: runs (start, metric batches, end, params, tags, notes, artifacts), reads, the
worker rows of remote processes, and sweep trials through Optuna's ask-and-tell.

Every route calls the same `tracking` function as a local script would, with the request's account as the
actor, so the permission checks are the library's, inside its write transactions.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from tracking._errors import IntegrityError, NotFoundError, PermissionDenied, ValidationError
from tracking.governance import Action, UserRecord, authorize, require
from tracking.remote import record_to_json
from tracking.remote._client import SHA256_HEADER
from tracking.runs import (
    ActiveRun,
    add_note,
    find_artifact,
    get_or_create_experiment,
    get_run,
    insert_run,
    json_safe,
    list_artifacts,
    list_notes,
    list_runs,
    metric_history,
    read_verified,
    set_tags,
)
from tracking.runs._liveness import heartbeat_seconds
from tracking.runs._remote_writes import beat_worker, register_worker, write_batch
from tracking.server._app import Credential, ServerState, bearer, ended_sweep, request_actor
from tracking.store import RunRecord, RunStatus, utcnow

MAX_ARTIFACT_BYTES = 1024**3  # one upload; bigger files belong in object storage
Actor = Annotated[UserRecord | None, Depends(request_actor)]
router = APIRouter(prefix="/api")


def _state(request: Request) -> ServerState:
    return request.app.state.tracking


# --- bodies ---


class WorkerIn(BaseModel):
    sweep_id: int | None = Field(None, description="the sweep this worker runs trials of; none for a script")
    host: str = Field(max_length=255)
    pid: int


class RunIn(BaseModel):
    experiment: str = "default"
    params: dict[str, Any] = {}
    name: str | None = None
    seed: int | None = None
    dataset_version_id: int | None = None
    worker_id: int = Field(description="the caller's worker row (POST /api/workers), kept alive by its heartbeat")
    code_version: str | None = None
    environment: dict[str, Any] = {}


Point = tuple[str, int, float | None, float]


class BatchIn(BaseModel):
    batch: str = Field(min_length=8, max_length=64, description="the client's id for this batch: a batch sent "
                       "again (its answer was lost) is applied once")  # fmt: skip
    points: list[Point] = Field(default=[], description="[key, step, value (null when not finite), unix time]")
    latest: dict[str, float | None] | None = Field(None, description="each metric's value at its highest step")


class EndIn(BatchIn):
    status: Literal["complete", "failed", "killed", "pruned"] = "complete"
    error: str | None = None
    values: list[float] | None = Field(None, description="a sweep trial's objective values, told to Optuna")


class ClaimIn(BaseModel):
    worker_id: int
    code_version: str | None = None
    environment: dict[str, Any] = {}


class ReportIn(BaseModel):
    step: int
    value: float


# --- who am I ---


@router.get("/health", summary="The server is up (no credential needed)")
def health() -> dict[str, Any]:
    return {"ok": True}


@router.get("/whoami", summary="The account the request's token acts as")
def whoami(request: Request, actor: Actor) -> dict[str, Any]:
    if actor is None:
        return {"account": None, "role": None, "sweep_id": None, "accounts": False}
    return {"account": actor.name, "role": actor.role, "sweep_id": actor.sweep_id, "accounts": True}


# --- worker rows (liveness of remote processes) ---


@router.post("/workers", summary="Register a remote process that logs runs; it must beat every heartbeat_seconds")
def add_worker(body: WorkerIn, request: Request, actor: Actor) -> dict[str, Any]:
    worker_id = register_worker(_state(request).store, actor, body.sweep_id, body.host, body.pid)
    return {"worker_id": worker_id, "heartbeat_seconds": heartbeat_seconds()}


@router.post("/workers/{worker_id}/beat", summary="Refresh a worker's heartbeat; says whether to stop at once")
def beat(worker_id: int, request: Request, actor: Actor) -> dict[str, Any]:
    return {"stop_now": beat_worker(_state(request).store, actor, worker_id)}


@router.post("/workers/{worker_id}/stop", summary="A worker stopped cleanly (its running runs end as killed)")
def stop_worker(worker_id: int, request: Request, actor: Actor) -> dict[str, Any]:
    beat_worker(_state(request).store, actor, worker_id, stopped=True)
    return {}


# --- runs ---


@router.post("/runs", summary="Start a run (as tracking.start_run); returns its id")
def start(body: RunIn, request: Request, actor: Actor) -> dict[str, Any]:
    store = _state(request).store
    require(store, actor, Action.run_log)  # before the experiment is created
    env = json_safe(body.environment)
    values = {
        "name": body.name or "", "experiment_id": get_or_create_experiment(store, body.experiment),
        "sweep_id": None, "trial_number": None, "worker_id": body.worker_id, "params": json_safe(body.params),
        "metrics": {}, "environment": env, "dataset_version_id": body.dataset_version_id,
        "code_version": body.code_version, "seed": body.seed, "host": str(env.get("host", "")),
        "status": RunStatus.running, "started_at": utcnow(),
    }  # fmt: skip
    with store.connect(write=True) as conn:
        values["owner"] = authorize(conn, actor, Action.run_log)
        return {"id": insert_run(conn, values)}


def _scope(actor: UserRecord | None, sweep_id: int | None, what: str) -> None:
    """A sweep's worker token reads only that sweep's runs (every other token reads every run)."""
    if actor is not None and actor.sweep_id is not None and sweep_id != actor.sweep_id:
        raise PermissionDenied(f"This access token is scoped to sweep {actor.sweep_id}: it may only read that "
                               f"sweep's runs, not {what}.")  # fmt: skip


def _readable(request: Request, actor: UserRecord | None, run_id: int) -> RunRecord:
    """The run the request reads. Raises NotFoundError, PermissionDenied (`_scope`)."""
    found = get_run(_state(request).store, run_id)
    _scope(actor, found.sweep_id, f"run {run_id}")
    return found


@router.get("/runs", summary="Runs matching the filters, newest first (as tracking.list_runs)")
def runs(
    request: Request,
    actor: Actor,
    sweep_id: int | None = None,
    experiment: str | None = None,
    filter: Annotated[str | None, Query(description="e.g. metrics.test_f1_macro > 0.9")] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    newest_first: bool = True,
    search: Annotated[str | None, Query(description="words of names, tags, notes and param values")] = None,
) -> list[dict[str, Any]]:
    if actor is not None and actor.sweep_id is not None:  # a sweep token: its sweep's runs only
        _scope(actor, actor.sweep_id if sweep_id is None else sweep_id, f"the runs of sweep {sweep_id}")
        sweep_id = actor.sweep_id
    found = list_runs(_state(request).store, sweep_id=sweep_id, experiment=experiment, filter=filter, limit=limit,
                      newest_first=newest_first, search=search)  # fmt: skip
    return [record_to_json(run) for run in found]


@router.get("/runs/{run_id}", summary="One run in full (as tracking.get_run)")
def run(run_id: int, request: Request, actor: Actor) -> dict[str, Any]:
    return record_to_json(_readable(request, actor, run_id))


@router.get("/runs/{run_id}/history", summary="Each metric's [step, value] points (as tracking.metric_history)")
def history(run_id: int, request: Request, actor: Actor, key: str | None = None) -> dict[str, list[Any]]:
    _readable(request, actor, run_id)
    found = metric_history(_state(request).store, run_id, key)
    return {name: [list(point) for point in points] for name, points in found.items()}


@router.get("/runs/{run_id}/notes", summary="A run's notes, oldest first (as tracking.list_notes)")
def run_notes(run_id: int, request: Request, actor: Actor) -> list[dict[str, Any]]:
    _readable(request, actor, run_id)
    return [{**dataclasses.asdict(note), "created_at": note.created_at.isoformat()}
            for note in list_notes(_state(request).store, run_id)]  # fmt: skip


@router.get("/runs/{run_id}/artifacts", summary="A run's artifacts and models by name, with their sha256 and size "
            "(as tracking.list_artifacts)")  # fmt: skip
def artifacts(run_id: int, request: Request, actor: Actor) -> list[dict[str, Any]]:
    _readable(request, actor, run_id)
    return [{**dataclasses.asdict(found), "created_at": found.created_at.isoformat()}
            for found in list_artifacts(_state(request).store, run_id)]  # fmt: skip


_BYTES = {"description": f"The file's bytes; header {SHA256_HEADER} carries their sha256 (check it on arrival)",
          "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}  # fmt: skip


@router.get("/runs/{run_id}/artifacts/{name:path}", summary="Download an artifact or model file, verified against "
            "its recorded sha256 first (409 if the file changed)", response_class=Response,
            responses={200: _BYTES})  # fmt: skip
def download(run_id: int, name: str, request: Request, actor: Actor) -> Response:
    store = _state(request).store
    _readable(request, actor, run_id)
    found = find_artifact(store, run_id, name)
    if found is None:
        raise NotFoundError(f"Run {run_id} has no artifact named {name!r}.")
    try:
        data = read_verified(store, found.sha256)
    except IntegrityError as err:  # said without the server's folder
        raise IntegrityError(f"Run {run_id}'s artifact {name!r} cannot be served: "
                             + str(err).replace(f" from {store.artifact_root}", " from the server")) from None  # fmt: skip
    headers = {SHA256_HEADER: found.sha256, "X-Artifact-Kind": found.kind}
    return Response(data, media_type="application/octet-stream", headers=headers)


@router.post("/runs/{run_id}/metrics", summary="A batch of metric points, applied once per batch id")
def metrics(run_id: int, body: BatchIn, request: Request, actor: Actor) -> dict[str, Any]:
    return {"applied": write_batch(_state(request).store, run_id, actor, body.batch, body.points, body.latest)}


@router.post("/runs/{run_id}/end", summary="The last batch and the run's end; a sweep trial's result goes to Optuna")
def end(run_id: int, body: EndIn, request: Request, actor: Actor) -> dict[str, Any]:
    return _state(request).trials.finish(run_id, actor, body.batch, body.points, body.latest or {},
                                         RunStatus(body.status), body.error, body.values)  # fmt: skip


@router.post("/runs/{run_id}/params", summary="Add or change params of a running run")
def params(run_id: int, body: dict[str, dict[str, Any]], request: Request, actor: Actor) -> dict[str, Any]:
    ActiveRun(_state(request).store, run_id, actor).log_params(body.get("params", {}))
    return {}


@router.post("/runs/{run_id}/tags", summary="Set tags of a run (audited)")
def tags(run_id: int, body: dict[str, dict[str, str]], request: Request, actor: Actor) -> dict[str, Any]:
    set_tags(_state(request).store, run_id, body.get("tags", {}), actor=actor)
    return {}


@router.post("/runs/{run_id}/notes", summary="Attach a markdown note to a run")
def notes(run_id: int, body: dict[str, str], request: Request, actor: Actor) -> dict[str, Any]:
    note = add_note(_state(request).store, run_id, body.get("body", ""), actor=actor)
    return {"id": note.id}


_RAW_BODY = {"requestBody": {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string",
             "format": "binary"}}}}}  # fmt: skip


@router.put("/runs/{run_id}/artifacts/{name:path}", summary="Upload an artifact or model file; its sha256 must match",
            openapi_extra=_RAW_BODY)  # fmt: skip
async def artifact(
    run_id: int,
    name: str,
    request: Request,
    actor: Actor,
    sha256: Annotated[str, Query(pattern="^[0-9a-f]{64}$", description="the file's sha256, checked on arrival")],
    kind: Annotated[Literal["file", "model"], Query()] = "file",
) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_ARTIFACT_BYTES:
        raise ValidationError(f"An artifact sent to the tracking server is at most {MAX_ARTIFACT_BYTES} bytes.")
    data = await request.body()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ValidationError(f"The artifact {name!r} arrived with sha256 {digest[:12]}…, not the {sha256[:12]}… it "
                              "was sent with; it was damaged on the way and was not stored, so send it again.")  # fmt: skip
    store = _state(request).store

    def save() -> str:
        return ActiveRun(store, run_id, actor).log_artifact(data, name=name, kind=kind)

    return {"sha256": await run_in_threadpool(save), "size": len(data)}


# --- sweeps through ask-and-tell ---


@router.post("/sweeps/{sweep_id}/join", summary="A remote worker joins a sweep: its configuration")
def join(sweep_id: int, request: Request, actor: Actor) -> dict[str, Any]:
    return _state(request).trials.join(sweep_id, actor)


def _sweep_actor(request: Request, sweep_id: int) -> tuple[UserRecord | None, bool]:
    """The request's account, or (None, True) for a worker token that ended with its sweep."""
    try:
        return request_actor(request), False
    except Credential:
        if ended_sweep(_state(request).store, bearer(request), sweep_id):
            return None, True
        raise


@router.post("/sweeps/{sweep_id}/trials", summary="Claim the next trial (Optuna ask, recorded as a run)")
def claim(sweep_id: int, body: ClaimIn, request: Request) -> dict[str, Any]:
    actor, ended = _sweep_actor(request, sweep_id)
    if ended:
        return {"run_id": None, "reason": "ended"}
    provenance = {"code_version": body.code_version, "environment": json_safe(body.environment)}
    return _state(request).trials.claim(sweep_id, body.worker_id, actor, provenance)


@router.post("/runs/{run_id}/report", summary="Report a trial's intermediate value; says whether to prune it")
def report(run_id: int, body: ReportIn, request: Request, actor: Actor) -> dict[str, Any]:
    return {"prune": _state(request).trials.report(run_id, actor, body.step, body.value)}


@router.post("/sweeps/{sweep_id}/settle", summary="A worker stopped: set the sweep's final status if it ended")
def settle(sweep_id: int, body: dict[str, bool], request: Request) -> dict[str, Any]:
    actor, ended = _sweep_actor(request, sweep_id)
    if not ended:
        _state(request).trials.settle(sweep_id, actor, bool(body.get("finished_early")))
    return {}


@router.get("/sweeps/{sweep_id}/data", summary="The sweep's CSV (checked against its recorded sha256)",
            response_class=Response)  # fmt: skip
def data(sweep_id: int, request: Request, actor: Actor) -> Response:
    return Response(_state(request).trials.csv_bytes(sweep_id, actor), media_type="text/csv")
