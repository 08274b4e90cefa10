"""The store handle: one engine per store, one context manager that owns transactions, migrations.

SQLite runs in WAL mode with a busy timeout and foreign keys on. Python's sqlite3 driver opens
transactions lazily, so a transaction that reads and then writes could fail with "database is locked"
when another process wrote in between; write transactions therefore start with `BEGIN IMMEDIATE`,
which waits (busy_timeout) for the write lock up front. Reads use a plain `BEGIN` and never block.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

from tracking._errors import StoreError
from tracking._settings import setting, store_url, tracking_home
from tracking.store._anchor import ANCHOR_SUFFIX, append_head, open_checked
from tracking.store._blobs import Blobs, open_blobs

# Alembic is imported inside the functions that use it: `import tracking` stays light.

VERSION_TABLE = "tracking_alembic_version"  # never Optuna's own `alembic_version`
MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_MS = 60_000
_WRITE = "tracking_write"
# Kept in the DBAPI connection's `info` (it follows the connection through the pool, so both are reset at
# every checkout): the store the connection belongs to, and the audit head a transaction recorded, which is
# appended to the store's anchor once the transaction has committed.
_STORE_REF = "tracking_store"
_AUDIT_HEAD = "tracking_audit_head"


def normalize_url(url: str) -> str:
    """Use psycopg (v3) for a bare `postgresql://` URL: it is the driver the project installs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Store:
    """A tracking store: the database engine and the artifact folder.

    Open one with `open_store()`; it is safe to share between threads of one process.
    """

    def __init__(self, url: str, artifact_root: Path, artifacts_url: str | None = None) -> None:
        self.url = normalize_url(url)
        self.artifact_root = artifact_root
        # Where artifact and dataset content lives: TRACKING_ARTIFACTS_URL (a folder or an fsspec URL such as
        # s3://bucket/prefix), else the local folder `artifact_root`. Opened on first use (see `blobs`).
        self.artifacts_url = (setting("TRACKING_ARTIFACTS_URL") or "") if artifacts_url is None else artifacts_url
        self._blobs: Blobs | None = None
        try:
            parsed = make_url(self.url)
        except exc.ArgumentError as err:
            raise StoreError(f"The store URL {url!r} is not a valid SQLAlchemy URL.") from err
        self.dialect = parsed.get_backend_name()
        # Per-store caches of this process (kept here, not in module dicts keyed by id(store), which a
        # later store could reuse): experiment ids by name, and this process's worker heartbeat.
        self.experiment_ids: dict[str, int] = {}
        self.process_heartbeat: object | None = None
        # Per-process state of the audit trail's signing (key, store id), filled by `governance`.
        self.audit_cache: dict[str, object] = {}
        self.webhook_deliverer: object | None = None  # this process's webhook delivery thread, once started
        # An in-memory SQLite database is one connection shared by every thread: one transaction at a time.
        in_memory = self.dialect == "sqlite" and parsed.database in (None, "", ":memory:")
        self.sqlite_path = Path(parsed.database).resolve() if self.dialect == "sqlite" and not in_memory else None
        anchor = setting("TRACKING_STORE_ANCHOR")
        if self.sqlite_path is not None:
            self.anchor: Path | None = self.sqlite_path.with_name(self.sqlite_path.name + ANCHOR_SUFFIX)
        else:
            self.anchor = Path(anchor).expanduser().resolve() if anchor and not in_memory else None
        self._ref = weakref.ref(self)
        self._serial = threading.RLock() if in_memory else contextlib.nullcontext()
        # The transaction each thread has open: a nested `connect` joins it instead of waiting for the
        # write lock that its own outer transaction holds (Optuna's journal is written that way).
        self._active = threading.local()
        try:
            self.engine = _make_engine(self.url, parsed.database)
        except (exc.NoSuchModuleError, ImportError) as err:
            raise StoreError(
                f"The store URL {self.display_url!r} needs a database driver that is not installed ({err}); "
                "use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB."
            ) from err

    @property
    def blobs(self) -> Blobs:
        """The content-addressed storage of artifacts and uploaded datasets (see `tracking.store._blobs`)."""
        if self._blobs is None:
            self._blobs = open_blobs(self.artifacts_url, self.artifact_root)
        return self._blobs

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def display_url(self) -> str:
        """The URL with any password hidden, for messages and the worker command."""
        return make_url(self.url).render_as_string(hide_password=True)

    @property
    def home(self) -> Path:
        """The store's home folder (TRACKING_HOME unless given): artifacts, and the audit key by default."""
        return self.artifact_root.parent

    @property
    def location(self) -> str:
        """The SQLite file, else the URL with any password hidden: how messages name the store."""
        return str(self.sqlite_path) if self.sqlite_path is not None else self.display_url

    @contextmanager
    def connect(self, write: bool = False) -> Iterator[Connection]:
        """A Core connection inside one transaction, committed on success and rolled back on error."""
        outer = getattr(self._active, "conn", None)
        if outer is not None and (outer[1] or not write):
            yield outer[0]  # nested in this thread's open transaction: join it (it commits or rolls back)
            return
        with self._serial, _mapped_errors(self), self.engine.connect() as conn:
            conn.info[_STORE_REF] = self._ref
            conn.info.pop(_AUDIT_HEAD, None)  # left by a transaction that rolled back
            if write:
                conn.execution_options(**{_WRITE: True})
            with conn.begin():
                self._active.conn = (conn, write)
                try:
                    yield conn
                finally:
                    self._active.conn = outer
            head = conn.info.pop(_AUDIT_HEAD, None)
        if head is not None and self.anchor is not None:
            append_head(self.anchor, *head)

    @contextmanager
    def session_scope(self, write: bool = False) -> Iterator[Session]:
        """An ORM session inside one transaction; rows must not escape the `with` block."""
        with (
            self.connect(write=write) as conn,
            Session(bind=conn, expire_on_commit=False) as session,
        ):
            yield session
            session.flush()

    def dispose(self) -> None:
        """Stop this process's heartbeat for the store and close its connections."""
        beat, self.process_heartbeat = self.process_heartbeat, None
        if beat is not None:
            with contextlib.suppress(StoreError):  # the database is already gone: nothing to mark
                beat.stop()
        deliverer, self.webhook_deliverer = self.webhook_deliverer, None
        if deliverer is not None:
            deliverer.stop()
        self.engine.dispose()


# The change marker. A single counter row that every write updates would make every writer of every process
# wait for the one before it to commit (PostgreSQL locks an updated row until commit). Each PostgreSQL
# connection therefore claims a slot of its own when it connects, held by a session advisory lock (so two live
# connections never share one while there are free slots), and adds to its own row of `store_state`; SQLite
# writers are serialized by the database anyway and all use slot 1. The marker is the sum of the rows: every
# committed write adds one, so it grows with each of them, and a reader sees a committed state.
CHANGE_SLOTS = 256
_SLOT_LOCKS = 727320  # the first key of the slots' advisory locks (two-key form: (_SLOT_LOCKS, slot))
_SLOT = "tracking_change_slot"  # in the DBAPI connection's `info`: the slot its connect claimed
_BUMP_SQLITE = "UPDATE store_state SET change_counter = change_counter + 1 WHERE id = 1"
_BUMP_SLOT = (
    "INSERT INTO store_state (id, change_counter) VALUES (%s, 1)"
    " ON CONFLICT (id) DO UPDATE SET change_counter = store_state.change_counter + 1"
)
_MARKER = "SELECT coalesce(sum(change_counter), 0) FROM store_state"


def bump_change_counter(conn: Connection | Session) -> None:
    """Mark the store as changed (in the caller's write transaction), so cached views re-read it."""
    if isinstance(conn, Session):
        conn = conn.connection()
    conn.exec_driver_sql(*change_counter_bump(conn))


def change_counter_bump(conn: Connection) -> tuple[str, tuple]:
    """The driver SQL (format paramstyle on PostgreSQL) and parameters of `bump_change_counter`, for writes that
    run on the DBAPI cursor."""
    if conn.dialect.name == "sqlite":
        return _BUMP_SQLITE, ()
    return _BUMP_SLOT, (conn.info.get(_SLOT, 1),)


# Each PostgreSQL connection's own table to COPY metric points into before they are upserted (COPY cannot
# resolve a conflict); made when the connection opens, so a flush does not spend a round trip on it.
POINTS_STAGING = "metric_points_staging"


def _claim_change_slot(dbapi_conn: object, record: object) -> None:
    """On a new PostgreSQL connection: hold the first free change slot from one derived from its backend pid,
    and make the connection's staging table for metric points."""
    start = dbapi_conn.info.backend_pid  # type: ignore[attr-defined]
    slot = 2 + start % CHANGE_SLOTS  # every slot taken (more connections than slots): share this one
    with dbapi_conn.cursor() as cursor:  # type: ignore[attr-defined]
        for i in range(CHANGE_SLOTS):
            candidate = 2 + (start + i) % CHANGE_SLOTS
            if cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", (_SLOT_LOCKS, candidate)).fetchone()[0]:
                slot = candidate
                break
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {POINTS_STAGING}"
            " (run_id integer, key text, step integer, value double precision, timestamp double precision)"
            " ON COMMIT DELETE ROWS"  # emptied in place at commit: no catalog change, no dead rows left behind
        )
    dbapi_conn.commit()  # type: ignore[attr-defined]  # (a session advisory lock is held whatever the outcome)
    record.info[_SLOT] = slot  # type: ignore[attr-defined]


def connection_store(conn: Connection | Session) -> Store:
    """The store whose transaction `conn` (a Connection or Session from `connect`/`session_scope`) belongs to."""
    if isinstance(conn, Session):
        conn = conn.connection()
    ref = conn.info.get(_STORE_REF)
    store = ref() if ref is not None else None
    if store is None:
        raise RuntimeError("not a connection opened by Store.connect")  # a bug, not a user's mistake
    return store


def note_audit_head(conn: Connection | Session, store_id: str, seq: int, digest: str) -> None:
    """Remember the audit head this transaction reached: the store's anchor gets it after the commit."""
    if isinstance(conn, Session):
        conn = conn.connection()
    conn.info[_AUDIT_HEAD] = (store_id, int(seq), digest)


def change_marker(store: Store) -> int:
    """A number that grows with every committed write that changes what views show: the key for cached views."""
    with store.connect() as conn:
        return int(conn.exec_driver_sql(_MARKER).scalar_one())


@contextmanager
def _mapped_errors(store: Store) -> Iterator[None]:
    try:
        yield
    except exc.OperationalError as err:
        text = str(err.orig) if err.orig is not None else str(err)
        if "locked" in text:
            raise StoreError(f"The store {store.display_url} stayed locked by another writer: {text}") from err
        if store.sqlite_path is not None and "unable to open" in text:
            raise StoreError(
                f"Could not open the store file {store.sqlite_path} ({text.strip()}): check that it and its folder "
                "exist and can be read and written by this user."
            ) from err
        if "connect" in text or "unable to open" in text or "Connection refused" in text:
            raise StoreError(f"Could not open the store {store.display_url}: {text.strip()}") from err
        raise
    except exc.DatabaseError as err:
        text = str(err.orig) if err.orig is not None else str(err)
        if store.sqlite_path is not None and ("not a database" in text or "malformed" in text):
            raise StoreError(
                f"The store file {store.sqlite_path} is not a SQLite database or is damaged ({text.strip()}): "
                "restore it from a backup, or move it (and its .anchor) aside to start a new store."
            ) from err
        raise


def _make_engine(url: str, database: str | None) -> Engine:
    if not url.startswith("sqlite"):
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
        if engine.dialect.name == "postgresql":
            event.listen(engine, "connect", _claim_change_slot)
        return engine
    in_memory = not database or database == ":memory:"
    if in_memory:
        engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
    else:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_MS / 1000},
        )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # transactions are begun by the "begin" hook below
        cursor = dbapi_conn.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # On the driver: SQLAlchemy's execution layer costs more than the BEGIN (every write of a run opens one).
        statement = "BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN"
        try:
            conn.connection.driver_connection.execute(statement)
        except sqlite3.Error as err:  # raised as SQLAlchemy's, as exec_driver_sql raises it ("database is locked")
            raise exc.DBAPIError.instance(statement, (), err, sqlite3.Error) from err

    return engine


_stores: dict[tuple[str, str], Store] = {}
_stores_lock = threading.Lock()


def open_store(url: str | None = None, home: Path | str | None = None) -> Store:
    """Open (and create or migrate, on first use) the store, checked against its anchor.

    A store whose anchor (see `_anchor`) knows a different database than the one found (emptied, replaced,
    rolled back) is refused, never re-created.

    Args:
        url: a SQLAlchemy URL; default `TRACKING_STORE_URL`, else `TRACKING_HOME/tracking.db`.
        home: the folder for artifacts (and the SQLite file); default `TRACKING_HOME`.

    Raises:
        StoreError: the URL is invalid, the database cannot be reached or is damaged, or it is not the
            database its anchor knows.
    """
    home_path = Path(home).expanduser().resolve() if home else tracking_home()
    resolved = normalize_url(url or store_url(home_path))
    artifacts_url = setting("TRACKING_ARTIFACTS_URL") or ""
    key = (resolved, str(home_path), artifacts_url)
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = Store(resolved, home_path / "artifacts", artifacts_url)
            try:
                open_checked(store, migrate, VERSION_TABLE)
            except BaseException:
                store.engine.dispose()
                raise
            _stores[key] = store
        return store


def migrate(store: Store) -> None:
    """Bring the schema to the newest migration; concurrent first openers wait for each other."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    with store.connect(write=True) as conn:
        if store.dialect == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(727318)")
        current = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
        if current == head:
            return
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
