"""The store's anchor: a file outside the database that knows which store it belongs to and how far the
store's audit trail had reached, so an emptied, replaced or rolled-back database is refused, never re-created.

The anchor is JSON lines, appended only (`O_APPEND`, under an exclusive `flock`, so the writer processes of
one machine never interleave): the first line names the store (its random id from `store_identity`, and how
many events predate the audit key), every later line is the audit head (seq, hash) after a committed write
that recorded events. Lines are written after the commit, never before, so the anchor can lag the database
(a crash in between) but is never ahead of it unless the database went back.

A SQLite store's anchor is `<file>.anchor` beside it; a store given by URL has one where
`TRACKING_STORE_ANCHOR` says (none otherwise). An in-memory store has none.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, select

from tracking._errors import StoreError
from tracking.store._tables import AuditChain, AuditEvent, StoreIdentity

try:  # POSIX; elsewhere the appends stay atomic (O_APPEND) but first openers are not serialized
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from tracking.store._db import Store

ANCHOR_SUFFIX = ".anchor"
GENESIS = "0" * 64
_TAIL = 64 * 1024  # the newest head is among the last lines: concurrent appends land close together


@dataclass(frozen=True)
class AnchorHead:
    """An audit head as the anchor recorded it."""

    seq: int
    hash: str
    at: str


@dataclass(frozen=True)
class _AnchorState:
    """What an anchor file says: the store it belongs to and the newest audit head it recorded."""

    path: Path
    store_id: str | None  # None: an empty anchor (a new store, not yet adopted)
    legacy_events: int = 0
    head: AnchorHead | None = None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def anchor_line(store_id: str, seq: int, digest: str, **extra: Any) -> str:
    """One anchor line (also what `audit anchor` prints for an outside record)."""
    return json.dumps({"store": store_id, "seq": int(seq), "hash": digest, "at": _now(), **extra}) + "\n"


def _damaged(path: Path, number: int) -> StoreError:
    return StoreError(
        f"The store's anchor file {path} is damaged (line {number} is not an anchor record): restore it from a "
        "backup, or move it aside to have the store adopted anew."
    )


def _parse(text: str, path: Path, number: int) -> dict[str, Any]:
    try:
        line = json.loads(text)
    except ValueError:
        raise _damaged(path, number) from None
    if not isinstance(line, dict) or not isinstance(line.get("seq"), int) or not isinstance(line.get("hash"), str):
        raise _damaged(path, number)
    return line


def _file_error(path: Path, err: OSError, what: str = "anchor file") -> StoreError:
    return StoreError(
        f"The store's {what} {path} cannot be used ({err.strerror or err}): make it a file this user can read "
        "and write, or move it aside."
    )


def _state(f: Any, path: Path) -> _AnchorState:
    first = f.readline()
    if not first.strip():
        return _AnchorState(path, None)
    identity = _parse(first.decode(errors="replace"), path, 1)
    store_id = identity.get("store")
    if identity.get("kind") != "store" or not isinstance(store_id, str):
        raise _damaged(path, 1)
    best = AnchorHead(identity["seq"], identity["hash"], str(identity.get("at", "")))
    size = f.seek(0, os.SEEK_END)
    start = max(len(first), size - _TAIL)
    f.seek(start)
    lines = f.read().decode(errors="replace").splitlines()
    if start > len(first) and lines:
        lines = lines[1:]  # the tail starts inside a line
    for text in lines:
        try:
            line = json.loads(text)
        except ValueError:
            continue  # a line torn by a crash mid-append: the lines before it still count
        ours = isinstance(line, dict) and line.get("store") == store_id and isinstance(line.get("seq"), int)
        if ours and line["seq"] > best.seq:
            best = AnchorHead(line["seq"], str(line.get("hash")), str(line.get("at", "")))
    return _AnchorState(path, store_id, int(identity.get("legacy_events") or 0), best)


def anchor_records(path: Path) -> Iterator[dict[str, Any]]:
    """Every line of an anchor file (or of a file of saved `audit anchor` lines), oldest first.

    Raises:
        StoreError: the file cannot be read, or a line other than a last one torn by a crash is not a record.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [(number, text) for number, text in enumerate(f, start=1) if text.strip()]
    except OSError as err:
        raise _file_error(path, err) from err
    for number, text in lines:
        try:
            yield _parse(text, path, number)
        except StoreError:
            if number != lines[-1][0] or text.endswith("\n"):
                raise
            return  # the last append was cut short by a crash: the lines before it still count


def _open_locked(path: Path, create: bool) -> int:
    """The anchor opened for appending, under this machine's exclusive lock (released when it is closed)."""
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | (os.O_CREAT if create else 0), 0o644)
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def append_head(path: Path, store_id: str, seq: int, digest: str) -> None:
    """Append the audit head after a commit; nothing when the store has no anchor file yet (not adopted)."""
    try:
        fd = _open_locked(path, create=False)
        try:
            os.write(fd, anchor_line(store_id, seq, digest).encode())
        finally:
            os.close(fd)
    except FileNotFoundError:
        return
    except OSError as err:
        raise StoreError(
            f"The change was saved, but the store's anchor file {path} could not be appended to "
            f"({err.strerror or err}): make it writable for this user, or later audit events cannot be vouched for."
        ) from err


def check_file(store: Store) -> None:
    """A SQLite path that is not a usable file gets one sentence (which file, what to do) before SQLite says less."""
    path = store.sqlite_path
    for where, what in ((path, "file"), (store.anchor, "anchor file")):
        if where is None or not os.path.lexists(where):
            continue
        if not where.is_file():
            raise StoreError(
                f"The store's {what} {where} is not a regular file (a folder or something else is in its place): "
                "move it aside, or point TRACKING_HOME or --store at the right place."
            )
        if not os.access(where, os.R_OK | os.W_OK):
            raise StoreError(
                f"The store's {what} {where} cannot be read and written by this user: fix its permissions "
                "(or run as its owner)."
            )


def _blank(store: Store, version_table: str) -> bool:
    """No store here at all: no SQLite file, an empty one, or a database without our schema version."""
    from alembic.runtime.migration import MigrationContext

    path = store.sqlite_path
    if path is not None and (not path.exists() or path.stat().st_size == 0):
        return True
    with store.connect() as conn:
        if not inspect(conn).has_table(version_table):
            return True
        context = MigrationContext.configure(conn, opts={"version_table": version_table})
        return context.get_current_revision() is None  # the version table was emptied with the rest


def open_checked(store: Store, migrate: Callable[[Store], None], version_table: str) -> None:
    """Migrate the store and check it against its anchor; a new store (no database, empty anchor) is created.

    Raises:
        StoreError: the database is not the one the anchor knows (emptied, replaced, rolled back), or a
            file is unusable.
    """
    path = store.anchor
    if path is None:
        migrate(store)
        return
    check_file(store)
    try:
        fd = _open_locked(path, create=True)
    except OSError as err:
        raise _file_error(path, err) from err
    try:
        with os.fdopen(os.dup(fd), "rb") as f:
            state = _state(f, path)
        if state.store_id is not None and _blank(store, version_table):
            raise StoreError(
                f"The store {store.location} is empty, but its anchor {path} knows it as store {state.store_id} "
                f"with {state.head.seq if state.head else 0} audit events: the database was emptied or deleted; "
                f"restore it from a backup (or, to start a new store on purpose, move {path} aside)."
            )
        migrate(store)
        with store.connect() as conn:
            identity = conn.execute(select(StoreIdentity.store_id, StoreIdentity.legacy_events)).first()
            chain = conn.execute(select(AuditChain.seq, AuditChain.head)).first()
            seq, head = (int(chain.seq), chain.head) if chain else (0, GENESIS)
            anchored = None
            if state.head is not None and 0 < state.head.seq <= seq:
                anchored = conn.execute(select(AuditEvent.hash).where(AuditEvent.seq == state.head.seq)).scalar()
        if identity is None:
            raise StoreError(
                f"The store {store.location} has lost its identity row (table store_identity): it was emptied or "
                "damaged; restore it from a backup."
            )
        if state.store_id is None:  # a new store, or one first opened since anchors exist: adopt it
            os.write(fd, anchor_line(identity.store_id, seq, head, kind="store",
                                     legacy_events=int(identity.legacy_events)).encode())  # fmt: skip
            return
        _compare(store, state, identity.store_id, seq, anchored)
    finally:
        os.close(fd)


def _compare(store: Store, state: _AnchorState, store_id: str, seq: int, anchored: str | None) -> None:
    path = state.path
    if store_id != state.store_id:
        raise StoreError(
            f"The store {store.location} is store {store_id}, but its anchor {path} belongs to store "
            f"{state.store_id}: the database was replaced by another store's; put the right one back (or, if "
            f"this one is meant, move {path} aside)."
        )
    head = state.head
    if head is None or head.seq == 0:
        return
    if head.seq > seq:
        raise StoreError(
            f"The store {store.location} ends its audit trail at event {seq}, but its anchor {path} recorded "
            f"event {head.seq} at {head.at}: the database was rolled back to an older copy or its events removed; "
            f"restore the newest copy (or, if the older one is meant, move {path} aside)."
        )
    if anchored != head.hash:
        raise StoreError(
            f"The store {store.location} holds a different audit event {head.seq} than its anchor {path} "
            f"recorded at {head.at}: the trail was rewritten or the database replaced; restore it from a backup "
            "and run `python -m tracking audit verify`."
        )
