"""What people add to a run after the fact: tags (key -> text) and markdown notes.

Each change is one short write transaction, checked (`authorize`) and audited under the verified actor,
and bumps the store's change marker, so every open view shows it on its next rerun. Tags and notes stay
editable after a run finished; its params, metrics and status do not (see `_runs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from tracking._errors import NotFoundError, ValidationError
from tracking.governance import Action, UserRecord, authorize, record
from tracking.remote import ServerClient
from tracking.runs._index import refresh_words
from tracking.store import Note, NoteRecord, Run, RunTag, Store, bump_change_counter, utcnow

MAX_NOTE = 50_000
MAX_TAG_KEY = 250
MAX_TAG_VALUE = 5_000


def list_notes(store: Store | ServerClient, run_id: int) -> list[NoteRecord]:
    """A run's notes, oldest first."""
    if isinstance(store, ServerClient):  # a tracking server's client: the same question over HTTP
        return store.list_notes(run_id)
    with store.connect() as conn:
        rows = conn.execute(
            select(Note.id, Note.run_id, Note.author, Note.body, Note.created_at)
            .where(Note.run_id == run_id)
            .order_by(Note.created_at, Note.id)
        )
        return [NoteRecord(*row) for row in rows]


def add_note(store: Store, run_id: int, body: str, actor: UserRecord | None = None) -> NoteRecord:
    """Attach a markdown note to a run, written by `actor` (on a store without accounts, the operating-system user).

    Raises:
        NotFoundError: there is no such run.
        ValidationError: the note is empty or longer than `MAX_NOTE` characters.
        PermissionDenied: the actor may not annotate runs (or no credential on a store with accounts).
    """
    body = _note_body(body)
    with store.connect(write=True) as conn:
        who = authorize(conn, actor, Action.run_annotate, sweep_id=_require_run(conn, run_id))
        return insert_note(conn, run_id, body, who)


def insert_note(conn: Connection, run_id: int, body: str, author: str) -> NoteRecord:
    """Write a note inside an open write transaction, audited (the caller checked who may)."""
    body = _note_body(body)
    _require_run(conn, run_id)
    now = utcnow()
    note_id = conn.execute(
        insert(Note).returning(Note.id), {"run_id": run_id, "author": author, "body": body, "created_at": now}
    ).scalar_one()
    record(conn, author, "run.note", "run", run_id, None, {"note": int(note_id), "body": body})
    refresh_words(conn, [run_id])
    bump_change_counter(conn)
    return NoteRecord(int(note_id), run_id, author, body, now)


def update_note(store: Store, note_id: int, body: str, actor: UserRecord | None = None) -> None:
    """Replace a note's text. Raises NotFoundError, ValidationError, PermissionDenied."""
    body = _note_body(body)
    with store.connect(write=True) as conn:
        old = _note(conn, note_id)
        who = authorize(conn, actor, Action.run_annotate, sweep_id=_require_run(conn, old.run_id))
        conn.execute(update(Note).where(Note.id == note_id).values(body=body))
        record(conn, who, "run.note_edit", "run", old.run_id, {"note": note_id, "body": old.body},
               {"note": note_id, "body": body})  # fmt: skip
        refresh_words(conn, [old.run_id])
        bump_change_counter(conn)


def delete_note(store: Store, note_id: int, actor: UserRecord | None = None) -> None:
    """Delete a note. Raises NotFoundError, PermissionDenied."""
    with store.connect(write=True) as conn:
        old = _note(conn, note_id)
        who = authorize(conn, actor, Action.run_annotate, sweep_id=_require_run(conn, old.run_id))
        conn.execute(delete(Note).where(Note.id == note_id))
        record(conn, who, "run.note_delete", "run", old.run_id, {"note": note_id, "body": old.body}, None)
        refresh_words(conn, [old.run_id])
        bump_change_counter(conn)


def replace_tags(store: Store, run_id: int, tags: Mapping[str, Any], actor: UserRecord | None = None) -> dict[str, str]:
    """Make a run's tags exactly `tags`: new keys are added, changed values updated, missing keys removed.

    Returns:
        The run's tags after the change.

    Raises:
        NotFoundError: there is no such run.
        ValidationError: an empty or too long key, or a too long value (nothing is changed).
        PermissionDenied: the actor may not annotate runs.
    """
    wanted = _clean_tags(tags)
    with store.connect(write=True) as conn:
        who = authorize(conn, actor, Action.run_annotate, sweep_id=_require_run(conn, run_id))
        rows = conn.execute(select(RunTag.key, RunTag.value).where(RunTag.run_id == run_id))
        current = {key: value for key, value in rows}
        gone = [key for key in current if key not in wanted]
        if gone:
            conn.execute(delete(RunTag).where(RunTag.run_id == run_id, RunTag.key.in_(gone)))
        for key, value in wanted.items():
            if key not in current:
                conn.execute(insert(RunTag).values(run_id=run_id, key=key, value=value))
            elif current[key] != value:
                conn.execute(update(RunTag).where(RunTag.run_id == run_id, RunTag.key == key).values(value=value))
        if gone or wanted != current:
            record(conn, who, "run.tags", "run", run_id, current, wanted)
            refresh_words(conn, [run_id])
            bump_change_counter(conn)
    return wanted


def set_tags(store: Store, run_id: int, tags: Mapping[str, Any], actor: UserRecord | None = None) -> None:
    """Set some tags of a run (string values; an existing key is overwritten, other keys stay), audited.

    Raises:
        NotFoundError, ValidationError (as `replace_tags`), PermissionDenied (the actor may not annotate runs).
    """
    wanted = _clean_tags(tags)
    with store.connect(write=True) as conn:
        who = authorize(conn, actor, Action.run_annotate, sweep_id=_require_run(conn, run_id))
        rows = conn.execute(select(RunTag.key, RunTag.value).where(RunTag.run_id == run_id, RunTag.key.in_(wanted)))
        current = {key: value for key, value in rows}
        changed = {key: value for key, value in wanted.items() if current.get(key) != value}
        for key, value in changed.items():
            if key in current:
                conn.execute(update(RunTag).where(RunTag.run_id == run_id, RunTag.key == key).values(value=value))
            else:
                conn.execute(insert(RunTag).values(run_id=run_id, key=key, value=value))
        if changed:
            record(conn, who, "run.tags", "run", run_id, {key: current[key] for key in changed if key in current},
                   changed)  # fmt: skip
            refresh_words(conn, [run_id])
            bump_change_counter(conn)


def _clean_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    wanted: dict[str, str] = {}
    for raw_key, raw_value in tags.items():
        key = str(raw_key if raw_key is not None else "").strip()
        value = "" if raw_value is None else str(raw_value)
        if not key:
            raise ValidationError("A tag key must not be empty.")
        if len(key) > MAX_TAG_KEY or len(value) > MAX_TAG_VALUE:
            raise ValidationError(
                f"Tag {key[:40]!r} is too long: keys hold {MAX_TAG_KEY} characters, values {MAX_TAG_VALUE:,}."
            )
        wanted[key] = value
    return wanted


def _note(conn: Connection, note_id: int) -> Any:
    old = conn.execute(select(Note.run_id, Note.body).where(Note.id == note_id)).first()
    if old is None:
        raise NotFoundError(f"There is no note {note_id}.")
    return old


def _note_body(body: str) -> str:
    if not (body or "").strip():
        raise ValidationError("A note must not be empty.")
    if len(body) > MAX_NOTE:
        raise ValidationError(f"A note holds at most {MAX_NOTE:,} characters.")
    return body


def _require_run(conn: Connection, run_id: int) -> int | None:
    """Raise NotFoundError unless the run exists; its sweep (None for a run of its own)."""
    row = conn.execute(select(Run.sweep_id).where(Run.id == run_id)).first()
    if row is None:
        raise NotFoundError(f"There is no run {run_id}.")
    return row.sweep_id
