"""Where the store lives: `TRACKING_HOME` and `TRACKING_STORE_URL`."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = Path.home() / ".tracking"


def tracking_home() -> Path:
    """The folder of the embedded store and the artifacts (`TRACKING_HOME`, default ~/.tracking)."""
    return Path(os.environ.get("TRACKING_HOME") or DEFAULT_HOME).expanduser().resolve()


def store_url(home: Path | None = None) -> str:
    """The store's SQLAlchemy URL: `TRACKING_STORE_URL`, else a SQLite file under the home folder."""
    url = os.environ.get("TRACKING_STORE_URL")
    if url:
        return url
    home = home or tracking_home()
    return f"sqlite:///{home / 'tracking.db'}"
