"""Garbage collection of files no run refers to: artifact content and uploaded CSVs.

Artifact files are content-addressed (`<artifact root>/<sha256[:2]>/<sha256>`, in the local folder or the
object storage of `TRACKING_ARTIFACTS_URL`) and shared between runs, so a file goes only when no artifact
row, no model version and no dataset a run or sweep uses names its sha256. An uploaded CSV
(`<home>/uploads/<sha256[:16]>/<name>.csv`) goes when no dataset version that a run or sweep uses points
at it and no sweep's configuration names it. Only names the store itself writes are considered:
anything else under those folders, and every symbolic link, is left alone, and no path outside them is
ever touched. Files younger than the grace period (an hour by default) are kept, because a run may be
writing one whose row is not committed yet (`put_bytes` freshens the time of content it reuses).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import or_, select

from tracking._errors import ValidationError
from tracking.governance import Action, UserRecord, authorize, record
from tracking.runs._trash import referenced_shas
from tracking.store import BlobEntry, DatasetVersion, Run, Store, Sweep, bump_change_counter

_UPLOAD_FOLDER = re.compile(r"[0-9a-f]{16}")
GRACE_HOURS = 1.0


@dataclass(frozen=True)
class Garbage:
    """A file nothing refers to: where it is, its size, and what it was."""

    path: Path | str  # a local file, or the URL of an object in TRACKING_ARTIFACTS_URL
    size: int
    kind: str  # "artifact", "upload" or "partial" (an interrupted write)


@dataclass(frozen=True)
class CollectReport:
    """What garbage collection found (and, unless `dry_run`, deleted)."""

    files: tuple[Garbage, ...]
    dry_run: bool

    @property
    def bytes(self) -> int:
        return sum(g.size for g in self.files)


def collect_garbage(
    store: Store, actor: UserRecord | None = None, *, dry_run: bool = True, grace_hours: float = GRACE_HOURS
) -> CollectReport:
    """Find the artifact files and uploaded CSVs no run refers to, and delete them unless `dry_run`.

    Args:
        dry_run: only list what would go.
        grace_hours: keep files changed more recently than this (a write in progress).

    Raises:
        ValidationError: a negative grace period. PermissionDenied: only admins may collect.
    """
    if grace_hours < 0:
        raise ValidationError("The grace period cannot be negative.")
    with store.connect() as conn:
        authorize(conn, actor, Action.trash_purge)
    cutoff = time.time() - grace_hours * 3600
    stored = _artifacts(store, cutoff)
    uploads = _uploads(store, cutoff)
    found = [garbage for garbage, _ in stored] + uploads
    if dry_run:
        return CollectReport(tuple(found), True)
    gone = [garbage for garbage, entry in stored if store.blobs.remove(entry)]
    for garbage in uploads:
        try:
            Path(garbage.path).unlink()
        except FileNotFoundError:
            continue
        gone.append(garbage)
        _remove_if_empty(Path(garbage.path).parent)
    report = CollectReport(tuple(gone), False)
    with store.connect(write=True) as conn:
        who = authorize(conn, actor, Action.trash_purge)
        record(conn, who, "artifacts.collect", "artifact_root", store.blobs.location, None,
               {"files": len(gone), "bytes": report.bytes})  # fmt: skip
        bump_change_counter(conn)
    return report


def _artifacts(store: Store, cutoff: float) -> list[tuple[Garbage, BlobEntry]]:
    old = [entry for entry in store.blobs.entries() if entry.mtime < cutoff]
    used = referenced_shas(store, sorted({entry.sha256 for entry in old if entry.sha256}))
    return [
        (Garbage(entry.where, entry.size, "artifact" if entry.sha256 else "partial"), entry)
        for entry in sorted(old, key=lambda e: (e.sha256 or "", str(e.where)))
        if entry.sha256 not in used
    ]


def _uploads(store: Store, cutoff: float) -> list[Garbage]:
    uploads = (store.home / "uploads").resolve()
    files = [
        (Path(entry.path), size)
        for folder in _folders(uploads, _UPLOAD_FOLDER)
        for entry in os.scandir(folder)
        if (size := _old_file(entry, cutoff)) is not None
    ]
    if not files:
        return []
    with store.connect() as conn:
        used_ids = select(Run.dataset_version_id).where(Run.dataset_version_id.is_not(None))
        used_by_sweeps = select(Sweep.dataset_version_id).where(Sweep.dataset_version_id.is_not(None))
        paths = set(conn.execute(select(DatasetVersion.path).where(
            or_(DatasetVersion.id.in_(used_ids), DatasetVersion.id.in_(used_by_sweeps)))).scalars())  # fmt: skip
        for (config,) in conn.execute(select(Sweep.config)):
            paths.add(((config or {}).get("data") or {}).get("csv"))
    kept = {str(Path(p).resolve()) for p in paths if p}
    return [
        Garbage(path, size, "partial" if path.name.endswith(".tmp") else "upload")
        for path, size in files
        if str(path) not in kept and path.resolve().is_relative_to(uploads)
    ]


def _folders(root: Path, name: re.Pattern[str]) -> list[Path]:
    """The sub-folders of `root` the store names this way (not through symbolic links)."""
    if not root.is_dir() or root.is_symlink():
        return []
    return sorted(
        Path(entry.path)
        for entry in os.scandir(root)
        if name.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False)
    )


def _old_file(entry: os.DirEntry, cutoff: float) -> int | None:
    """The size of a regular file (never a link) last changed before `cutoff`, else None."""
    if not entry.is_file(follow_symlinks=False):
        return None
    info = entry.stat(follow_symlinks=False)
    return info.st_size if info.st_mtime < cutoff else None


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not empty (or already gone)
        folder.rmdir()
