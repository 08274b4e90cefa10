"""The audit key: a secret kept outside the database that authenticates every audit event (HMAC-SHA256).

Whoever can write to the database can recompute the events' hash chain, but not their MACs without this key.
The key is `TRACKING_AUDIT_KEY` when set, else the file `TRACKING_AUDIT_KEY_FILE` (default `audit.key` in the
store's home, i.e. TRACKING_HOME), created on first use with permissions 0600. The store records the key's id
(a MAC of a fixed text, not the key) with its first signed event: a process holding another key is refused,
so a machine without the right key file cannot add events nobody could verify.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tracking._errors import StoreError
from tracking._settings import setting

if TYPE_CHECKING:
    from tracking.store import Store

KEY_FILE_NAME = "audit.key"
MIN_KEY_CHARS = 32


@dataclass(frozen=True)
class AuditKey:
    """The key's secret, its id (recorded in the store) and where it came from (for messages)."""

    secret: bytes
    id: str
    source: str

    def mac(self, store_id: str, seq: int, digest: str) -> str:
        """The MAC of one event: its store, its place in the trail and its hash (which covers its fields)."""
        return hmac.new(self.secret, json.dumps([store_id, int(seq), digest]).encode(), hashlib.sha256).hexdigest()


def _make(secret: bytes, source: str) -> AuditKey:
    key_id = hmac.new(secret, b"tracking audit key id", hashlib.sha256).hexdigest()[:16]
    return AuditKey(secret, key_id, source)


def key_file(store: Store) -> Path:
    """Where the audit key file is (whether or not it exists yet)."""
    configured = setting("TRACKING_AUDIT_KEY_FILE")
    return Path(configured).expanduser().resolve() if configured else store.home / KEY_FILE_NAME


def key_source(store: Store) -> str:
    """The key's origin as messages name it: the variable, or the file's path."""
    return "TRACKING_AUDIT_KEY" if setting("TRACKING_AUDIT_KEY") else str(key_file(store))


def load_key(store: Store, create: bool = False) -> AuditKey | None:
    """The audit key; None when there is none (and `create` is false).

    Raises:
        StoreError: the key is too short, or its file cannot be read or created.
    """
    text = setting("TRACKING_AUDIT_KEY")
    if text:
        if len(text) < MIN_KEY_CHARS:
            raise StoreError(f"TRACKING_AUDIT_KEY must hold at least {MIN_KEY_CHARS} characters (a random secret).")
        return _make(text.encode(), "TRACKING_AUDIT_KEY")
    path = key_file(store)
    try:
        return _make(_read_key(path), str(path))
    except FileNotFoundError:
        if not create:
            return None
    except OSError as err:
        raise StoreError(
            f"The audit key file {path} cannot be read ({err.strerror or err}): make it readable by this user "
            "(and by nobody else)."
        ) from err
    try:
        return _make(_create_key(path), str(path))
    except OSError as err:
        raise StoreError(
            f"The audit key file {path} could not be created ({err.strerror or err}): make its folder writable, "
            "or set TRACKING_AUDIT_KEY_FILE to a file this user may create."
        ) from err


def _read_key(path: Path) -> bytes:
    text = path.read_text(encoding="utf-8").strip()
    if len(text) < MIN_KEY_CHARS:
        raise StoreError(f"The audit key file {path} holds fewer than {MIN_KEY_CHARS} characters: it is not a key.")
    return text.encode()


def _create_key(path: Path) -> bytes:
    """A new random key in `path` (0600); when another process made one first, that one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = secrets.token_hex(32)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (text + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(draft, path)  # atomic, and fails when the file exists: two first writers agree on one key
    except FileExistsError:
        return _read_key(path)
    finally:
        draft.unlink()
    return text.encode()
