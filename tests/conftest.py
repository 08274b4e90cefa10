"""Shared fixtures: stores on every backend (SQLite file, SQLite in memory, PostgreSQL when
`TRACKING_TEST_POSTGRES_URL` is set), each test on its own fresh database; accounts; a store with a
model in production; the dashboard in a real server and a browser; a real S3 API (moto's server mode).

Every fixture used by more than one module lives here, once; helper functions live in the helper modules
(`governance`, `traffic`, `pages`, `e2e`, `polling`, `s3`)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

# Two test processes (and the workers they start) on two cores: scikit-learn's OpenMP loops with a thread per core
# each would oversubscribe them many times over (gradient boosting ran 10x slower under that contention). Set before
# anything loads OpenMP, which reads it once.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import tracking
from tests.governance import fixed_c, make_accounts, trained_runs
from tests.s3 import S3Server
from tests.traffic import Template, copy_template, production_template
from tracking.governance._access import UserRecord
from tracking.store._db import Store, _stores, normalize_url, open_store
from tracking.store._records import RunRecord

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("TRACKING_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "memory"] + (["postgresql"] if PG_URL else [])
FILE_BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than a few seconds (still run in CI)")
    config.addinivalue_line("markers", "file_backends: needs a store that several processes can share")
    config.addinivalue_line("markers", "postgres_only: tests what only PostgreSQL does (row locks between writers)")
    # Cheap argon2 for the whole session, in this process and in every process it starts (CLI, workers, the
    # Streamlit servers): hashing at full cost is tested once, in test_access.py, and is not the point elsewhere.
    os.environ["TRACKING_TEST_FAST_HASHES"] = "1"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test: its own TRACKING_HOME, no inherited store or artifact storage URL, 1 s heartbeats; the stores it
    opened closed after."""
    monkeypatch.setenv("TRACKING_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TRACKING_STORE_URL", raising=False)
    for name in ("TRACKING_ARTIFACTS_URL", "TRACKING_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRACKING_HEARTBEAT_SECONDS", "1")
    yield
    for key in list(_stores):
        _stores.pop(key).dispose()


# ---- stores ------------------------------------------------------------------------------------------


def _pg_database(template: str | None = None) -> str:
    """The URL of a new PostgreSQL database: empty, or a copy of the database named `template`."""
    server = normalize_url(PG_URL)
    name = f"tracking_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    admin.dispose()
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def _drop_pg_database(url: str) -> None:
    for key in [k for k in _stores if k[0] == url]:
        _stores.pop(key).dispose()
    _drop_database(url)


def _drop_database(url: str) -> None:
    """DROP the database, ending any connection to it (what a store of it left open is the caller's)."""
    name = make_url(url).database
    admin = create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _migrate_and_close(url: str, home: Path) -> None:
    store = open_store(url, home=home)
    for key in [k for k, s in _stores.items() if s is store]:
        _stores.pop(key)
    store.dispose()  # no connection left: the database can be copied (SQLite: the WAL is folded in)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to the newest schema once per session (per xdist worker), to copy for each test."""
    home = tmp_path_factory.mktemp("migrated-sqlite")
    _migrate_and_close(f"sqlite:///{home / 'tracking.db'}", home)
    return home / "tracking.db"


class _PgCopies:
    """Copies of the migrated database, each made while the test before it runs (a copy takes ~0.3 s, most of a
    short test's time), and test databases dropped in the background; all finished when the session ends."""

    def __init__(self, template: str) -> None:
        self.template = template
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-copies")
        self._next: Future[str] = self._pool.submit(_pg_database, template)

    def take(self) -> str:
        url = self._next.result()
        self._next = self._pool.submit(_pg_database, self.template)
        return url

    def drop(self, url: str) -> None:
        """Drop a test's database in the background (the test has closed its stores: `_stores` is not touched
        from this thread)."""
        self._pool.submit(_drop_database, url)

    def close(self) -> None:
        self._pool.submit(lambda: _drop_database(self._next.result()))
        self._pool.shutdown(wait=True)


@pytest.fixture(scope="session")
def migrated_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_PgCopies]:
    """A PostgreSQL database migrated once per session (per xdist worker), and the copies of it tests take."""
    url = _pg_database()
    _migrate_and_close(url, tmp_path_factory.mktemp("migrated-pg"))
    copies = _PgCopies(make_url(url).database)
    yield copies
    copies.close()
    _drop_pg_database(url)


def _sqlite_copy(migrated: Path, home: Path) -> str:
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(migrated, home / "tracking.db")
    # The anchor beside the file (the store's identity) goes with it: the copy is that store, and is checked so.
    shutil.copyfile(migrated.with_name("tracking.db.anchor"), home / "tracking.db.anchor")
    return f"sqlite:///{home / 'tracking.db'}"


@pytest.fixture
def backend_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL on the parametrized backend (for tests of the migrations themselves)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'home' / 'tracking.db'}"
    elif backend == "memory":
        yield "sqlite://"
    else:
        url = _pg_database()
        yield url
        _drop_pg_database(url)


@pytest.fixture
def store(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Store]:
    """An open store on the parametrized backend, at the newest schema: its own copy of a migrated database
    (on PostgreSQL with an anchor file of its own, as an operator would configure it)."""
    # Copying a migrated database costs a few milliseconds; migrating each test's database cost ~0.3 s on
    # PostgreSQL. The migrations themselves are tested from empty databases (`backend_url`).
    home = tmp_path / "home"
    if backend == "postgresql":
        copies = request.getfixturevalue("migrated_pg")
        url = copies.take()
        monkeypatch.setenv("TRACKING_STORE_ANCHOR", str(tmp_path / "postgresql.anchor"))
    elif backend == "sqlite":
        url = _sqlite_copy(request.getfixturevalue("migrated_sqlite"), home)
    else:
        url = "sqlite://"
    s = open_store(url, home=home)
    yield s
    for key in [k for k in _stores if k[0] == s.url]:
        _stores.pop(key)
    s.dispose()
    if backend == "postgresql":
        copies.drop(url)


@pytest.fixture
def file_store(tmp_path: Path, migrated_sqlite: Path) -> Store:
    """A store on a SQLite file in this test's TRACKING_HOME: quick, and child processes can share it."""
    return open_store(_sqlite_copy(migrated_sqlite, tmp_path / "home"), home=tmp_path / "home")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`store`/`backend_url` run on every backend; tests marked `file_backends` skip the in-memory one, and those
    marked `postgres_only` run on PostgreSQL alone."""
    if "backend" in metafunc.fixturenames:
        backends = FILE_BACKENDS if metafunc.definition.get_closest_marker("file_backends") else BACKENDS
        if metafunc.definition.get_closest_marker("postgres_only"):
            backends = [backend for backend in backends if backend == "postgresql"]
        metafunc.parametrize("backend", backends)


# ---- accounts and a model in production ----------------------------------------------------------------


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """A store built once per session (per worker) with accounts and `loan` v1 in production; tests copy it."""
    return production_template(tmp_path_factory)


@pytest.fixture
def served(template: Template, tmp_path: Path) -> Store:
    """This test's own copy of the template store (SQLite), in its TRACKING_HOME."""
    return copy_template(template, tmp_path / "home")


@pytest.fixture
def users(request: pytest.FixtureRequest) -> dict[str, UserRecord]:
    """Accounts of every role, named after it: the template's on a `served` copy, else made in this test's store."""
    # Made before `app_url` starts a dashboard server, which depends on this fixture.
    if "served" in request.fixturenames:
        return request.getfixturevalue("template").users
    return make_accounts(tracking.open_store())


@pytest.fixture
def run(users: dict[str, UserRecord]) -> RunRecord:
    """A one-trial sweep's complete run by the data scientist: a logistic regression (C=10) that fits loans well."""
    return trained_runs(tracking.open_store(), 1, actor=users["data_scientist"], space=fixed_c(10.0))[0]


@pytest.fixture
def receiver() -> Iterator[object]:
    """A real HTTP server on a free port that accepts every correctly signed webhook delivery."""
    from tests.webhooks import Receiver

    r = Receiver()
    yield r
    r.close()


# ---- object storage: a real S3 API (moto's server mode) --------------------------------------------------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on a free local port, once per session (per xdist worker); see tests/s3.py."""
    with S3Server() as server:
        yield server


@pytest.fixture
def s3_artifacts(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket, with TRACKING_ARTIFACTS_URL=s3://<bucket>/artifacts, its endpoint and credentials set (for
    the processes a test starts too); the URL. Request it before any store fixture: a store reads it when opened."""
    url = f"s3://{s3_server.create_bucket()}/artifacts"
    for name, value in s3_server.environ(url).items():
        monkeypatch.setenv(name, value)
    return url


@pytest.fixture
def s3_store(s3_artifacts: str, tmp_path: Path, migrated_sqlite: Path) -> Store:
    """A SQLite store in this test's TRACKING_HOME whose artifacts and datasets live in S3 (`s3_artifacts`)."""
    return open_store(_sqlite_copy(migrated_sqlite, tmp_path / "home"), home=tmp_path / "home")


@pytest.fixture
def served_team(store: Store) -> Iterator[tuple[Store, dict[str, UserRecord], str]]:
    """A store with accounts of every role, served by a tracking server: (store, users, url)."""
    from tests.e2e import tracking_server

    users = make_accounts(store)
    with tracking_server(store) as url:
        yield store, users, url


# ---- the dashboard in a browser ------------------------------------------------------------------------


@pytest.fixture
def app_url(users: dict[str, UserRecord]) -> Iterator[str]:
    """The dashboard as users start it (`streamlit run app.py`, on a free port) on this test's TRACKING_HOME."""
    from tests.e2e import streamlit_server

    with streamlit_server({"TRACKING_HOME": os.environ["TRACKING_HOME"]}) as url:
        yield url


@pytest.fixture
def browser() -> Iterator[object]:
    """Headless Debian Chromium, driven by Playwright (for the end-to-end tests)."""
    from tests.e2e import chromium

    with chromium() as b:
        yield b
