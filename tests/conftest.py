"""Shared fixtures: stores on every backend (SQLite file, SQLite in memory, PostgreSQL when
`TRACKING_TEST_POSTGRES_URL` is set), each test on its own fresh database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.traffic import served, template  # noqa: F401  (shared fixtures: a store with a served model)
from tracking.store._db import Store, _stores, normalize_url, open_store

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("TRACKING_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "memory"] + (["postgresql"] if PG_URL else [])
FILE_BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test gets its own TRACKING_HOME and no inherited store URL; heartbeats are fast; the
    stores a test opened are closed (and their heartbeat threads stopped) after it."""
    monkeypatch.setenv("TRACKING_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TRACKING_STORE_URL", raising=False)
    monkeypatch.setenv("TRACKING_HEARTBEAT_SECONDS", "1")
    yield
    for key in list(_stores):
        _stores.pop(key).dispose()


def _fresh_pg_database() -> str:
    server = normalize_url(PG_URL)
    name = f"tracking_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def _drop_pg_database(url: str) -> None:
    name = make_url(url).database
    admin = create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL for the backend named by the test's `backend` parameter."""
    backend = request.param
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'home' / 'tracking.db'}"
    elif backend == "memory":
        yield "sqlite://"
    else:
        url = _fresh_pg_database()
        yield url
        for key in [k for k in _stores if k[0] == url]:
            _stores.pop(key).dispose()
        _drop_pg_database(url)


def _open(url: str, tmp_path: Path) -> Store:
    store = open_store(url, home=tmp_path / "home")
    return store


@pytest.fixture
def store(backend_url: str, tmp_path: Path) -> Iterator[Store]:
    """An open, migrated store on the parametrized backend."""
    s = _open(backend_url, tmp_path)
    yield s
    for key in [k for k in _stores if k[0] == s.url]:
        _stores.pop(key)
    s.dispose()


def store_at_revision(url: str, tmp_path: Path, revision: str) -> Store:
    """A store whose schema stops at an older migration (to test upgrades); not registered or cached."""
    from alembic import command
    from alembic.config import Config

    from tracking.store._db import MIGRATIONS

    old = Store(url, tmp_path / "artifacts")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with old.connect(write=True) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    return old


@pytest.fixture
def file_store(tmp_path: Path) -> Store:
    """A store on a SQLite file in this test's TRACKING_HOME: child processes can share it, and it is
    quick where the backend is beside the point (closed after the test like every store)."""
    return open_store(f"sqlite:///{tmp_path / 'home' / 'tracking.db'}", home=tmp_path / "home")


@pytest.fixture
def browser() -> Iterator[object]:
    """Headless Debian Chromium, driven by Playwright (for the end-to-end tests)."""
    from tests.e2e import chromium

    with chromium() as b:
        yield b


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`store`/`backend_url` run on every backend; tests marked `file_backends` skip the in-memory one."""
    if "backend_url" in metafunc.fixturenames:
        backends = FILE_BACKENDS if metafunc.definition.get_closest_marker("file_backends") else BACKENDS
        metafunc.parametrize("backend_url", backends, indirect=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than a few seconds (still run in CI)")
    config.addinivalue_line("markers", "file_backends: needs a store that several processes can share")
    # Cheap argon2 for the whole session, in this process and in every process it starts (CLI, workers, the
    # Streamlit servers): hashing at full cost is tested once, in test_access.py, and is not the point elsewhere.
    os.environ["TRACKING_TEST_FAST_HASHES"] = "1"
