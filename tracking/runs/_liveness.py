"""Liveness of the processes that log runs, so that no run stays `running` after its process died.

Every process that opens a run registers a worker row and refreshes its `last_seen` from a daemon
thread. A run whose worker is gone (its heartbeat is older than the grace period, or its process has
vanished from this host) is ended as `killed` by `fail_stale_runs`, which sweeps call before they
hand out trials and the CLI calls before it lists runs. Optuna's journal storage has no heartbeat of
its own, so this is the one mechanism for both backends.
"""

from __future__ import annotations

import _thread
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from tracking._settings import number_setting
from tracking.store import Run, RunStatus, Store, Worker, bump_change_counter, utcnow


def heartbeat_seconds() -> float:
    """How often a worker refreshes its heartbeat (`TRACKING_HEARTBEAT_SECONDS`, default 10)."""
    return number_setting("TRACKING_HEARTBEAT_SECONDS")


def grace_seconds() -> float:
    """How long a silent worker counts as alive: three missed heartbeats."""
    return 3 * heartbeat_seconds()


def interruptible_main() -> Callable[[], None]:
    """`_thread.interrupt_main`, made to work in this process: call it from the main thread.

    `interrupt_main` raises KeyboardInterrupt only while Python handles SIGINT; it does nothing when SIGINT is
    ignored, as it is in any process a non-interactive shell started in the background (`streamlit run app.py &`
    in a script) and in every worker such a dashboard launches (they inherit it). A worker's "stop now" relies
    on it, so the worker takes Python's own handler back.
    """
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) in (
        signal.SIG_IGN,
        signal.SIG_DFL,
    ):
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return _thread.interrupt_main


class Heartbeat:
    """A registered worker row plus the daemon thread that keeps it fresh.

    `adopt` takes over a row that `launch_workers` registered for this process before it started, so
    a sweep counts its workers as alive from the moment they are launched.

    `interrupt_when`, if given, is asked every second; when it answers True the main thread gets a
    KeyboardInterrupt once (how a sweep cancelled "at once" reaches workers on any machine).
    """

    def __init__(
        self,
        store: Store,
        sweep_id: int | None = None,
        interrupt_when: Callable[[], bool] | None = None,
        adopt: int | None = None,
    ) -> None:
        self.store = store
        self.interrupted = False
        self._interrupt_when = interrupt_when
        self._interrupt_main = interruptible_main() if interrupt_when is not None else _thread.interrupt_main
        with store.session_scope(write=True) as session:
            row = session.get(Worker, adopt) if adopt is not None else None
            if row is None or row.sweep_id != sweep_id or row.stopped_at is not None:
                row = Worker(sweep_id=sweep_id)
            row.host, row.pid, row.last_seen = socket.gethostname(), os.getpid(), utcnow()
            session.add(row)
            session.flush()
            self.worker_id = int(row.id)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"tracking-heartbeat-{self.worker_id}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        interval = heartbeat_seconds()
        last = time.monotonic()
        while not self._stop.wait(min(1.0, interval)):
            try:
                if self._interrupt_when is not None and not self.interrupted and self._interrupt_when():
                    self.interrupted = True
                    self._interrupt_main()
                if time.monotonic() - last >= interval:
                    with self.store.connect(write=True) as conn:
                        conn.execute(update(Worker).where(Worker.id == self.worker_id).values(last_seen=utcnow()))
                    last = time.monotonic()
            except Exception:  # a missed beat is retried; the reaper tolerates three
                continue

    def stop(self) -> None:
        """Stop beating and mark the worker as cleanly stopped."""
        self._stop.set()
        self._thread.join(timeout=5)
        with self.store.connect(write=True) as conn:
            conn.execute(update(Worker).where(Worker.id == self.worker_id).values(stopped_at=utcnow()))


_process_lock = threading.Lock()


def process_worker_id(store: Store) -> int:
    """The worker row of this process for `store`, registered (and beating) on first use."""
    with _process_lock:
        beat = store.process_heartbeat
        if not isinstance(beat, Heartbeat):
            store.process_heartbeat = beat = Heartbeat(store)
        return beat.worker_id


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a killed child that nobody has waited for yet is a zombie: gone all the same
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


# A worker launched on this machine beats only once it has imported its libraries, which on a busy machine
# can take longer than the grace period: while its process is there, it counts as alive this long.
STARTUP_SECONDS = 120.0


def live_workers(conn: Any, sweep_ids: list[int]) -> dict[int, int]:
    """How many workers of each sweep are alive: not stopped, heartbeat fresh, process present (a worker of this
    machine whose process is present counts for `STARTUP_SECONDS` without a beat: it may be starting)."""
    now = utcnow()
    cutoff = now - timedelta(seconds=grace_seconds())
    local_cutoff = now - timedelta(seconds=max(grace_seconds(), STARTUP_SECONDS))
    here = socket.gethostname()
    counts: dict[int, int] = {}
    rows = conn.execute(
        select(Worker.sweep_id, Worker.host, Worker.pid, (Worker.last_seen >= cutoff).label("fresh")).where(
            Worker.sweep_id.in_(sweep_ids), Worker.stopped_at.is_(None), Worker.last_seen >= local_cutoff
        )
    )
    for sweep_id, host, pid, fresh in rows:
        if (host == here and not _pid_gone(pid)) or (host != here and fresh):
            counts[sweep_id] = counts.get(sweep_id, 0) + 1
    return counts


@dataclass(frozen=True)
class StaleRun:
    run_id: int
    sweep_id: int | None
    trial_number: int | None


def fail_stale_runs(store: Store, sweep_id: int | None = None) -> list[StaleRun]:
    """End as `killed` every running run whose process is dead; returns the runs it ended."""
    now = utcnow()
    cutoff = now - timedelta(seconds=grace_seconds())
    here = socket.gethostname()
    query = (
        select(
            Run.id,
            Run.sweep_id,
            Run.trial_number,
            Worker.host,
            Worker.pid,
            Worker.last_seen,
            Worker.stopped_at,
        )
        .join(Worker, Run.worker_id == Worker.id)
        .where(Run.status == RunStatus.running)
    )
    if sweep_id is not None:
        query = query.where(Run.sweep_id == sweep_id)
    with store.connect() as conn:
        candidates = conn.execute(query).all()
    stale = []
    for run_id, run_sweep, trial, host, pid, last_seen, stopped_at in candidates:
        mine = host == here and pid == os.getpid()
        dead = stopped_at is not None or last_seen < cutoff or (host == here and _pid_gone(pid))
        if dead and not mine:
            stale.append(StaleRun(run_id, run_sweep, trial))
    if not stale:
        return []
    with store.connect(write=True) as conn:
        for run in stale:
            conn.execute(
                update(Run)
                .where(Run.id == run.run_id, Run.status == RunStatus.running)
                .values(
                    status=RunStatus.killed,
                    finished_at=now,
                    error="The process running this run stopped without finishing it "
                    "(it was killed, crashed or lost its connection to the store).",
                )
            )
        bump_change_counter(conn)
    return stale
