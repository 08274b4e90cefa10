"""Where a run came from: code version (git), Python and package versions, host."""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

KEY_PACKAGES = (
    "optuna",
    "scikit-learn",
    "numpy",
    "pandas",
    "scipy",
    "skops",
    "SQLAlchemy",
    "sqlmodel",
)


@functools.cache
def git_state(path: str) -> dict[str, Any] | None:
    """The git commit and dirty flag of the work tree holding `path`, or None outside git."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args],
            cwd=path,
            capture_output=True,
            text=True,
            check=True,
            timeout=20,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        root = git("rev-parse", "--show-toplevel")
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty, "root": root}


def code_version(path: str | Path) -> str | None:
    """`<commit>` or `<commit>+dirty` for the git work tree holding `path`; None outside git."""
    state = git_state(str(Path(path).resolve()))
    if state is None:
        return None
    return state["commit"] + ("+dirty" if state["dirty"] else "")


@functools.cache
def environment() -> dict[str, Any]:
    """Python, platform, host and the versions of the packages that shape results."""
    versions = {}
    for name in KEY_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "packages": versions,
    }


def script_path() -> Path:
    """The folder of the running script (its code version is the run's), else the working folder."""
    main = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if main is not None and main.is_file():
        return main.resolve().parent
    return Path.cwd()
