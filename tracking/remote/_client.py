"""`ServerClient`: JSON over HTTP to the tracking server, with the token, retries and the server's errors.

Calls that are safe to repeat (reads, heartbeats, metric batches carrying their batch id, a run's end,
artifact uploads carrying their sha256) are retried on a network error for up to `RETRY_SECONDS`; a call
that would do its work twice if repeated (starting a run, claiming a trial) is sent once and a network
error is reported. A refusal by the server becomes the library's own exception with the server's sentence.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from datetime import datetime
from typing import Any

from tracking._errors import IntegrityError, NotFoundError, PermissionDenied, StoreError, TrackingError, ValidationError
from tracking._settings import setting
from tracking.store import ArtifactRecord, NoteRecord, RunRecord

# httpx is imported when a client is made: `import tracking` stays light.

RETRY_SECONDS = 60.0  # how long a repeatable call keeps trying through network errors
TIMEOUT_SECONDS = 60.0
_ERRORS: dict[int, type[TrackingError]] = {
    401: PermissionDenied,
    403: PermissionDenied,
    404: NotFoundError,
    409: ValidationError,  # e.g. a finished run is closed
    413: ValidationError,
    422: ValidationError,
    503: StoreError,
}
_INTEGRITY = "IntegrityError"
SHA256_HEADER = "X-Artifact-Sha256"  # the sha256 the server declares for the artifact bytes it sends


def server_configured() -> bool:
    """Whether `TRACKING_SERVER_URL` points scripts and workers at a tracking server."""
    return bool(setting("TRACKING_SERVER_URL"))


def connect_server(url: str | None = None, token: str | None = None) -> ServerClient:
    """A client of the tracking server at `url` (default `TRACKING_SERVER_URL`) acting with `token`
    (default `TRACKING_TOKEN`).

    Raises:
        ValidationError: no URL given and `TRACKING_SERVER_URL` unset, or the URL is not http(s).
    """
    url = url or setting("TRACKING_SERVER_URL")
    if not url:
        raise ValidationError("Set TRACKING_SERVER_URL (or pass url=) to the tracking server's address.")
    return ServerClient(url, token if token is not None else setting("TRACKING_TOKEN"))


class ServerClient:
    """A connection to a tracking server; safe to share between the threads of one process."""

    def __init__(self, url: str, token: str | None = None, timeout: float = TIMEOUT_SECONDS) -> None:
        import httpx

        if not url.startswith(("http://", "https://")):
            raise ValidationError(f"The tracking server URL must start with http:// or https://, not {url!r}.")
        self.url = url.rstrip("/")
        self.has_token = bool(token)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self._lock = threading.Lock()
        self.process_heartbeat: Any = None  # this process's worker row on the server, once a run needs one
        self.retry_seconds = RETRY_SECONDS

    def __repr__(self) -> str:
        return f"ServerClient({self.url!r})"

    def close(self) -> None:
        self._http.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        content: bytes | None = None,
        repeatable: bool = False,
        raw: bool = False,
        whole: bool = False,
    ) -> Any:
        """Send one request and return its JSON answer (its bytes with `raw`, the response itself with `whole`).

        Raises:
            StoreError: the server cannot be reached (after retries, for a repeatable call).
            TrackingError: the server refused the request (the subclass matches its reason).
        """
        import httpx

        deadline = time.monotonic() + (self.retry_seconds if repeatable else 0.0)
        wait = 0.1
        while True:
            try:
                response = self._http.request(method, path, json=json, params=params, content=content)
                break
            except httpx.TransportError as err:
                if time.monotonic() + wait > deadline:
                    raise StoreError(f"The tracking server at {self.url} cannot be reached: {err}.") from err
                time.sleep(wait)  # backing off between attempts, not waiting for a condition
                wait = min(wait * 2, 5.0)
        if response.status_code == 401 and not self.has_token:
            raise PermissionDenied(f"The tracking server at {self.url} needs an access token: set TRACKING_TOKEN "
                                   "(from `python -m tracking tokens create`).")  # fmt: skip
        if response.status_code >= 400:
            raise _refusal(response)
        if whole:
            return response
        if raw:
            return response.content
        return response.json() if response.content else None

    # --- reads, the same names and answers as the store's ---

    def list_runs(
        self,
        *,
        sweep_id: int | None = None,
        experiment: str | None = None,
        filter: str | None = None,
        limit: int | None = None,
        newest_first: bool = True,
        search: str | None = None,
    ) -> list[RunRecord]:
        """Runs matching the filters, as `tracking.list_runs` gives them."""
        query = {"sweep_id": sweep_id, "experiment": experiment, "filter": filter, "limit": limit,
                 "newest_first": newest_first, "search": search}  # fmt: skip
        rows = self.call("GET", "/api/runs", params={k: v for k, v in query.items() if v is not None}, repeatable=True)
        return [record_from_json(row) for row in rows]

    def find_run(self, run_id: int) -> RunRecord | None:
        """One run, or None."""
        try:
            return self.get_run(run_id)
        except NotFoundError:
            return None

    def get_run(self, run_id: int) -> RunRecord:
        """One run. Raises NotFoundError."""
        return record_from_json(self.call("GET", f"/api/runs/{int(run_id)}", repeatable=True))

    def metric_history(self, run_id: int, key: str | None = None) -> dict[str, list[tuple[int, float | None]]]:
        """Each metric's (step, value) points of a run, in step order."""
        params = {"key": key} if key is not None else None
        found = self.call("GET", f"/api/runs/{int(run_id)}/history", params=params, repeatable=True)
        return {name: [(int(step), value) for step, value in points] for name, points in found.items()}

    def list_artifacts(self, run_id: int) -> list[ArtifactRecord]:
        """All artifacts and models of a run, by name (name, kind, sha256, size, created_at)."""
        rows = self.call("GET", f"/api/runs/{int(run_id)}/artifacts", repeatable=True)
        return [ArtifactRecord(**{**row, "created_at": datetime.fromisoformat(row["created_at"])}) for row in rows]

    def download_artifact(self, run_id: int, name: str, sha256: str | None = None) -> bytes:
        """The bytes of a run's artifact, after checking they hash to `sha256` (by default the sha256 the server
        declares for it, which it checked against the store's record before sending).

        Raises:
            NotFoundError: the run has no such artifact.
            IntegrityError: the server's file changed since it was written (the server refuses it), or the
                bytes that arrived do not hash to the expected sha256.
        """
        from urllib.parse import quote

        response = self.call("GET", f"/api/runs/{int(run_id)}/artifacts/{quote(name, safe='')}", repeatable=True,
                             whole=True)  # fmt: skip
        declared = response.headers.get(SHA256_HEADER, "")
        expected = sha256 or declared
        digest = hashlib.sha256(response.content).hexdigest()
        if digest != expected or (declared and declared != expected):
            raise IntegrityError(
                f"The artifact {name!r} of run {int(run_id)} arrived with sha256 {digest[:12]}…, not the "
                f"{(expected or '(none declared)')[:12]}… recorded for it: it was damaged or changed on the way, "
                "so it was not used."
            )
        return response.content

    def list_notes(self, run_id: int) -> list[NoteRecord]:
        """A run's notes, oldest first."""
        rows = self.call("GET", f"/api/runs/{int(run_id)}/notes", repeatable=True)
        return [NoteRecord(**{**row, "created_at": datetime.fromisoformat(row["created_at"])}) for row in rows]


def _refusal(response: Any) -> TrackingError:
    try:
        body = response.json()
        detail, kind = str(body.get("detail")), body.get("error")
    except ValueError:
        detail, kind = response.text.strip()[:500] or response.reason_phrase, None
    if kind == _INTEGRITY:
        return IntegrityError(detail)
    error = _ERRORS.get(response.status_code)
    if error is None:
        return StoreError(f"The tracking server answered {response.status_code}: {detail}")
    return error(detail)


_DATES = ("started_at", "finished_at")


def record_to_json(record: RunRecord) -> dict[str, Any]:
    """A run record as JSON, every field kept (datetimes in ISO 8601 with their offset)."""
    data = dataclasses.asdict(record)
    for name in _DATES:
        data[name] = data[name].isoformat() if data[name] else None
    return data


def record_from_json(data: dict[str, Any]) -> RunRecord:
    """The run record `record_to_json` wrote."""
    values = dict(data)
    for name in _DATES:
        values[name] = datetime.fromisoformat(values[name]) if values.get(name) else None
    return RunRecord(**values)
