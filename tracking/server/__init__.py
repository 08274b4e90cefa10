"""The tracking server: the store's API over HTTP, so scripts and workers need a token, not database credentials.

Start it with `python -m tracking server --host HOST --port PORT`; its OpenAPI schema is at `/openapi.json`
and readable at `/docs`. It needs FastAPI and uvicorn; `import tracking` never loads them.
"""

from __future__ import annotations

from tracking.server._app import create_app, serve

__all__ = ["create_app", "serve"]
