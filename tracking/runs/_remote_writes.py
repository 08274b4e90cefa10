"""What the tracking server writes for its clients: worker rows that beat over HTTP, and metric batches
applied exactly once.

A client sends its buffered points as a batch with an id of its own making. The id is recorded in the
transaction that inserts the points, so a batch sent again (its answer was lost to a dropped connection)
is recognised and not applied twice; a run's final batch carries its end, so a repeated end is harmless too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import insert, select, update

from tracking._errors import NotFoundError
from tracking.governance import Action, UserRecord, authorize
from tracking.runs._index import write_values
from tracking.runs._runs import _SET_METRICS, check_open, insert_points
from tracking.runs._writes import _FINISH
from tracking.store import MetricBatch, Run, RunStatus, Store, Sweep, Worker, bump_change_counter, utcnow

MAX_BATCH_ID = 64


def write_batch(
    store: Store,
    run_id: int,
    actor: UserRecord | None,
    batch_id: str,
    points: Sequence[tuple[str, int, float | None, float]],
    latest: Mapping[str, Any] | None,
    end: tuple[RunStatus, str | None] | None = None,
) -> bool:
    """Apply a client's batch of points `(key, step, value, timestamp)` once, with the run's latest values and,
    for its last batch, its end `(status, error)`. Returns False when this batch was applied before.

    Raises:
        NotFoundError, RunClosed, PermissionDenied: as `check_open`.
    """
    with store.connect(write=True) as conn:
        seen = conn.execute(
            select(MetricBatch.id).where(MetricBatch.run_id == run_id, MetricBatch.batch_id == batch_id)
        ).first()
        if seen is not None:
            sweep_id = conn.execute(select(Run.sweep_id).where(Run.id == run_id)).scalar_one()
            authorize(conn, actor, Action.run_log, sweep_id=sweep_id)  # a repeat is answered only to whom may log
            return False
        check_open(conn, run_id, actor)
        conn.execute(insert(MetricBatch), {"run_id": run_id, "batch_id": batch_id, "created_at": utcnow()})
        if points:
            insert_points(conn, [(run_id, key, int(step), value, float(at)) for key, step, value, at in points])
        if end is not None:
            status, error = end
            conn.execute(_FINISH.statement, {"b_id": run_id, "b_status": status, "b_error": error, "b_finished": utcnow(),
                                   "b_metrics": dict(latest or {})})  # fmt: skip
        elif latest is not None:
            conn.execute(_SET_METRICS, {"b_id": run_id, "b_metrics": dict(latest)})
        if end is not None or latest is not None:  # the filters' rows of the run's latest values, as a local run's
            write_values(conn, run_id, metrics=dict(latest or {}))
        bump_change_counter(conn)
    return True


def register_worker(store: Store, actor: UserRecord | None, sweep_id: int | None, host: str, pid: int) -> int:
    """A worker row for a client process on another machine (it beats with `beat_worker`); its id.

    Raises:
        PermissionDenied: the actor may not log runs (of that sweep).
    """
    with store.connect(write=True) as conn:
        authorize(conn, actor, Action.run_log, sweep_id=sweep_id)
        return int(
            conn.execute(
                insert(Worker).returning(Worker.id),
                {"sweep_id": sweep_id, "host": host[:255], "pid": int(pid), "started_at": utcnow(),
                 "last_seen": utcnow()},
            ).scalar_one()
        )  # fmt: skip


def beat_worker(store: Store, actor: UserRecord | None, worker_id: int, stopped: bool = False) -> bool:
    """Refresh a client worker's heartbeat (or mark it stopped); whether its sweep asks to stop at once.

    Raises:
        PermissionDenied: the actor may not log runs of the worker's sweep.
    """
    with store.connect(write=True) as conn:
        sweep_id = conn.execute(select(Worker.sweep_id).where(Worker.id == worker_id)).first()
        if sweep_id is None:
            raise NotFoundError(f"There is no worker {worker_id}.")
        authorize(conn, actor, Action.run_log, sweep_id=sweep_id[0])
        values = {"stopped_at": utcnow()} if stopped else {"last_seen": utcnow()}
        conn.execute(update(Worker).where(Worker.id == worker_id, Worker.stopped_at.is_(None)).values(**values))
        if stopped:
            conn.execute(
                update(Run)
                .where(Run.worker_id == worker_id, Run.status == RunStatus.running)
                .values(
                    status=RunStatus.killed, finished_at=utcnow(), error="The worker stopped before this run ended."
                )
            )
            bump_change_counter(conn)
        if sweep_id[0] is None:
            return False
        return bool(conn.execute(select(Sweep.stop_now).where(Sweep.id == sweep_id[0])).scalar_one())
