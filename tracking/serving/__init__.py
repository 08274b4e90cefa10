"""The model server: a registered model's production version over HTTP (FastAPI, run by uvicorn).

Not imported by `tracking`: FastAPI is only needed by `tracking serve`.
"""

from __future__ import annotations

from tracking.serving._app import create_app, serve
from tracking.serving._input import MAX_ROWS

__all__ = [
    "MAX_ROWS",
    "create_app",
    "serve",
]
