"""A run logged through a tracking server: the `ActiveRun` API and its buffering, sent over HTTP.

Points are buffered exactly as for a local run; a flush sends them as one batch with a fresh id. A batch
the server does not acknowledge (the network failed after the retries) is kept and sent first at the next
flush, under the same id, so the server applies it once: nothing logged is lost, nothing is doubled.
The process keeps a worker row on the server alive with a heartbeat thread, so a script that dies leaves a
run the server ends as `killed`, as for a local one.
"""

from __future__ import annotations

import _thread
import hashlib
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tracking._settings import setting
from tracking.remote import ServerClient, connect_server, server_configured
from tracking.runs._liveness import interruptible_main
from tracking.runs._provenance import code_version, environment, script_path
from tracking.runs._runs import ActiveRun, artifact_source, json_safe
from tracking.store import RunStatus


class RemoteHeartbeat:
    """A worker row on the tracking server plus the daemon thread that keeps it fresh.

    With `interrupt`, `on_stop_now` is called once when the server answers that the worker's sweep was cancelled
    "at once" (by default the main thread gets a KeyboardInterrupt, as with a local worker; a worker that runs in
    another thread, such as a Dask task, interrupts that thread instead).
    """

    def __init__(
        self,
        client: ServerClient,
        sweep_id: int | None = None,
        interrupt: bool = False,
        on_stop_now: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.interrupted = False
        self._interrupt = interrupt
        self._on_stop_now = on_stop_now or (interruptible_main() if interrupt else _thread.interrupt_main)
        answer = client.call("POST", "/api/workers", json={"sweep_id": sweep_id, "host": socket.gethostname(),
                                                             "pid": os.getpid()})  # fmt: skip
        self.worker_id = int(answer["worker_id"])
        self.interval = float(answer["heartbeat_seconds"])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"tracking-remote-heartbeat-{self.worker_id}",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                answer = self.client.call("POST", f"/api/workers/{self.worker_id}/beat")
            except Exception:  # a missed beat is retried; the server tolerates three
                continue
            if self._interrupt and answer.get("stop_now") and not self.interrupted:
                self.interrupted = True
                self._on_stop_now()

    def stop(self) -> None:
        """Stop beating and tell the server the worker stopped cleanly."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.client.call("POST", f"/api/workers/{self.worker_id}/stop", repeatable=True)


def process_worker_id(client: ServerClient) -> int:
    """This process's worker row on the server, registered (and beating) on first use."""
    with client._lock:
        if client.process_heartbeat is None:
            client.process_heartbeat = RemoteHeartbeat(client)
        return client.process_heartbeat.worker_id


class RemoteRun(ActiveRun):
    """A run being logged through a tracking server; the same methods as `ActiveRun`."""

    def __init__(self, client: ServerClient, run_id: int) -> None:
        super().__init__(client, run_id, None, _checked=True)  # type: ignore[arg-type]  # the server checks
        self.client = client
        self._send_lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []  # batches sent but not acknowledged, oldest first

    def _write(self, points: list[tuple], summary: dict[str, Any] | None, fresh: bool = False) -> None:
        """Send a batch; the server upserts it (whether it is `fresh` is the server's concern)."""
        self._send({"batch": uuid.uuid4().hex, "points": _wire(points), "latest": summary})

    def _send(self, batch: dict[str, Any], path: str = "metrics") -> Any:
        with self._send_lock:
            self._pending.append({**batch, "_path": path})
            answer = None
            while self._pending:
                body = dict(self._pending[0])
                answer = self.client.call("POST", f"/api/runs/{self.id}/{body.pop('_path')}", json=body,
                                          repeatable=True)  # fmt: skip
                self._pending.pop(0)
            return answer

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Add or change params of the run."""
        self.client.call("POST", f"/api/runs/{self.id}/params", json={"params": json_safe(params)}, repeatable=True)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags (string values); an existing key is overwritten."""
        clean = {str(key): value if isinstance(value, str) else str(value) for key, value in tags.items()}
        self.client.call("POST", f"/api/runs/{self.id}/tags", json={"tags": clean}, repeatable=True)

    def add_note(self, body: str) -> None:
        """Attach a markdown note to the run."""
        self.client.call("POST", f"/api/runs/{self.id}/notes", json={"body": body})

    def log_artifact(self, source: str | Path | bytes, name: str | None = None, kind: str = "file") -> str:
        """Upload a file (a path or bytes) under a name; the server checks its sha256. Returns the sha256."""
        data, label = artifact_source(source, name)
        digest = hashlib.sha256(data).hexdigest()
        self.client.call("PUT", f"/api/runs/{self.id}/artifacts/{quote(label, safe='')}",
                         params={"kind": kind, "sha256": digest}, content=data, repeatable=True)  # fmt: skip
        return digest

    def end(
        self, status: RunStatus = RunStatus.complete, error: str | None = None, values: list[float] | None = None
    ) -> Any:
        """Send the last points and close the run with a final status; for a sweep's trial, `values` are the
        objective's, and the server tells Optuna. Returns the server's answer.

        Raises:
            StoreError: the server cannot be reached; the final batch is kept and sent again by a later `end`.
        """
        with self._lock:
            points, self._buffer = self._buffer, []
            summary = dict(self._latest)
        batch = {"batch": uuid.uuid4().hex, "points": _wire(points), "latest": summary,
                 "status": RunStatus(status).value, "error": error, "values": values}  # fmt: skip
        return self._send(batch, "end")


def _wire(points: list[tuple]) -> list[list[Any]]:
    return [[key, step, value, at] for _, key, step, value, at in points]


def start_remote_run(
    client: ServerClient | None,
    experiment: str,
    params: Mapping[str, Any] | None,
    *,
    name: str | None,
    seed: int | None,
    dataset_version_id: int | None,
) -> RemoteRun:
    """Open a run on the tracking server (the client's default from `TRACKING_SERVER_URL`); its provenance
    (code version, environment) is this process's."""
    client = client or _default_client()
    body = {
        "experiment": experiment,
        "params": json_safe(params or {}),
        "name": name,
        "seed": seed,
        "dataset_version_id": dataset_version_id,
        "worker_id": process_worker_id(client),
        "code_version": code_version(script_path()),
        "environment": environment(),
    }
    return RemoteRun(client, int(client.call("POST", "/api/runs", json=body)["id"]))


_clients: dict[tuple[str | None, str | None], ServerClient] = {}
_clients_lock = threading.Lock()


def _default_client() -> ServerClient:
    """One client per process for `TRACKING_SERVER_URL` and `TRACKING_TOKEN` (its worker row beats once)."""
    key = (setting("TRACKING_SERVER_URL"), setting("TRACKING_TOKEN"))
    with _clients_lock:
        if key not in _clients:
            _clients[key] = connect_server()
        return _clients[key]


def is_remote(store: Any) -> bool:
    """Whether calls given `store` go to a tracking server: a `ServerClient`, or no store while
    `TRACKING_SERVER_URL` is set."""
    return isinstance(store, ServerClient) or (store is None and server_configured())
