"""The tracking server's application: the credential of each request, the refusals, `/docs`, and `serve`.

Every call but `/openapi.json`, `/docs` and `/api/health` names its credential in `Authorization: Bearer
<access token>`: the request acts as the token's account and is checked by the same `tracking` functions
as a local call (a viewer reads, a data scientist logs, a sweep's worker token logs only that sweep's
runs). On a store without accounts no token is needed, and the server says so in a warning at start.
A refusal is JSON `{"detail": sentence, "error": kind}` with a status that matches it (401 no or bad
credential, 403 not allowed, 404 not found, 409 closed or conflicting, 422 bad input, 503 store trouble).
"""

from __future__ import annotations

import hashlib
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import select

from tracking._errors import IntegrityError, NotFoundError, PermissionDenied, StoreError, TrackingError, ValidationError
from tracking.governance import UserRecord, has_accounts, verify_token
from tracking.server._docs import docs_html
from tracking.store import AccessToken, Store, Sweep, SweepStatus
from tracking.sweeps import TrialService

# uvicorn is imported inside `serve`: it loads with a server, not an import.

logger = logging.getLogger("tracking.server")

_STATUS: tuple[tuple[type[TrackingError], int], ...] = (
    (PermissionDenied, 403),
    (NotFoundError, 404),
    (IntegrityError, 409),
    (StoreError, 503),
    (ValidationError, 422),
)


class Credential(Exception):
    """A request without a usable credential (answered 401)."""


class ServerState:
    """What every request of one server shares: the store and the sweeps' studies."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.trials = TrialService(store)
        self._accounts = False  # once a store has accounts it keeps them (accounts are disabled, never deleted)

    def has_accounts(self) -> bool:
        """Whether the store has accounts (asked until it has: no query per request after that)."""
        if not self._accounts:
            self._accounts = has_accounts(self.store)
        return self._accounts


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else ""


def request_actor(request: Request) -> UserRecord | None:
    """FastAPI dependency: the account of the request's token (None on a store without accounts)."""
    state = request.app.state.tracking
    store, token = state.store, bearer(request)
    if not state.has_accounts():
        return None
    if not token:
        raise Credential("This tracking server's store has accounts: send Authorization: Bearer <access token> "
                         "(`python -m tracking tokens create`).")  # fmt: skip
    try:
        return verify_token(store, token)
    except PermissionDenied as err:
        raise Credential(str(err)) from None


def ended_sweep(store: Store, token: str, sweep_id: int) -> bool:
    """Whether `token` is a worker token of `sweep_id` that stopped working because the sweep ended (its workers'
    last calls, which then only learn that the sweep is over)."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    with store.connect() as conn:
        row = conn.execute(
            select(AccessToken.revoked_at, Sweep.status)
            .join(Sweep, Sweep.id == AccessToken.sweep_id)
            .where(AccessToken.token_sha256 == digest, AccessToken.sweep_id == sweep_id)
        ).first()
    return row is not None and row.status in (SweepStatus.complete, SweepStatus.cancelled) and row.revoked_at is None


def _error(status: int, err: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(err), "error": type(err).__name__}, status_code=status)


def create_app(store: Store) -> FastAPI:
    """The tracking server's FastAPI application for `store`."""
    from tracking.server._routes import router

    app = FastAPI(
        title="Tracking server",
        version="1",
        description="Runs, metrics, artifacts, models and sweep trials of one tracking store, over HTTP with an "
        "access token.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.tracking = ServerState(store)
    app.include_router(router)

    @app.exception_handler(Credential)
    async def _credential(request: Request, err: Credential) -> JSONResponse:
        return _error(401, PermissionDenied(str(err)))

    @app.exception_handler(TrackingError)
    async def _refused(request: Request, err: TrackingError) -> JSONResponse:
        status = next((code for kind, code in _STATUS if isinstance(err, kind)), 400)
        if type(err).__name__ == "RunClosed":
            status = 409
        return _error(status, err)

    @app.exception_handler(RequestValidationError)
    async def _bad_body(request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return _error(
            422, ValidationError(f"The request is not valid at {where or 'its body'}: {first.get('msg', '')}.")
        )

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(docs_html(app.openapi()))

    return app


def serve(store: Store, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Run the tracking server with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(store), host=host, port=port, log_level="info")
