"""The HTTP client of the tracking server: scripts and workers that hold a token, not database credentials.

`connect_server()` (or `TRACKING_SERVER_URL` with `TRACKING_TOKEN`) gives a `ServerClient`; pass it where a
store goes (`start_run(store=...)`, `list_runs(...)`, `get_run(...)`, `metric_history(...)`,
`list_artifacts(...)`, `load_model(...)`, `list_notes(...)`), or set the variable and call `start_run()` with no
store. Artifact bytes are checked against their sha256 on arrival (`ServerClient.download_artifact`).
"""

from __future__ import annotations

from tracking.remote._client import (
    ServerClient,
    connect_server,
    record_from_json,
    record_to_json,
    server_configured,
)

__all__ = [
    "ServerClient",
    "connect_server",
    "record_from_json",
    "record_to_json",
    "server_configured",
]
