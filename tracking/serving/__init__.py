"""The model server: a registered model's production version over HTTP (FastAPI, run by uvicorn).

Not imported by `tracking`: FastAPI is only needed by `tracking serve`.
"""

from __future__ import annotations

from tracking.serving._app import (
    MAX_ROWS,
    create_app,
    serve,
)

__all__ = [
    "MAX_ROWS",
    "create_app",
    "serve",
]
