"""A store knows it is itself: its anchor outside the database refuses an emptied, replaced or rolled-back
database (never re-creating it), and a damaged or unusable file gets one sentence, not a traceback."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

import tracking
from tests.conftest import ROOT
from tests.governance import PASSWORD, first_admin
from tests.pages import no_exception
from tracking.governance._access import create_user
from tracking.governance._audit import record, verify_chain
from tracking.store._db import _stores, open_store


def _close(store: tracking.Store) -> None:
    """Forget and close the store in this process (SQLite: its WAL is folded into the file)."""
    for key in [k for k, s in _stores.items() if s is store]:
        _stores.pop(key)
    store.dispose()


def _reopen(store: tracking.Store) -> tracking.Store:
    _close(store)
    return open_store(store.url, home=store.home)


def _sqlite_store(home: Path, events: int = 2) -> tracking.Store:
    """A new SQLite store in `home` with `events` audited changes (accounts)."""
    store = open_store(f"sqlite:///{home / 'tracking.db'}", home=home)
    admin = first_admin(store)
    for i in range(events - 1):
        create_user(store, admin, f"user{i}", "viewer", PASSWORD)
    return store


def _cli(home: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRACKING_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "tracking", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def _one_sentence(err: str) -> bool:
    lines = err.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err


# ---- the five ways a SQLite file goes wrong, each given as (make it so, what the sentence says) -------------


def _emptied(home: Path) -> None:
    (home / "tracking.db").write_bytes(b"")


def _deleted(home: Path) -> None:
    (home / "tracking.db").unlink()


def _replaced(home: Path) -> None:
    other = home.parent / "other"
    _close(_sqlite_store(other, events=1))
    shutil.copyfile(other / "tracking.db", home / "tracking.db")


def _rolled_back(home: Path) -> None:
    shutil.copyfile(home.parent / "older.db", home / "tracking.db")


def _corrupt(home: Path) -> None:
    (home / "tracking.db").write_bytes(os.urandom(8192))


def _a_folder(home: Path) -> None:
    (home / "tracking.db").unlink()
    (home / "tracking.db").mkdir()  # unreadable as a database even to root (the tests run as root)


CASES = {
    "emptied": (_emptied, "is empty, but its anchor .* knows it as store"),
    "deleted": (_deleted, "is empty, but its anchor .* knows it as store"),
    "replaced": (_replaced, "was replaced by another store's"),
    "rolled back": (_rolled_back, "ends its audit trail at event 2, but its anchor .* recorded event 3"),
    "corrupt": (_corrupt, "is not a SQLite database or is damaged"),
    "a folder": (_a_folder, "is not a regular file"),
}


def _home_with_an_older_copy(tmp_path: Path, events: int) -> Path:
    """A store home whose database was copied aside (`older.db` beside it) before one more audited change."""
    home = tmp_path / "home"
    _close(_sqlite_store(home, events=events))
    shutil.copyfile(home / "tracking.db", tmp_path / "older.db")
    store = open_store(f"sqlite:///{home / 'tracking.db'}", home=home)
    create_user(store, tracking.authenticate(store, "root", PASSWORD), "late", "viewer", PASSWORD)
    _close(store)
    return home


@pytest.fixture
def broken(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    """A store home (3 audit events, an older copy with 2 kept aside) broken in the way the test names."""
    make, found = CASES[request.param]
    home = _home_with_an_older_copy(tmp_path, events=2)
    for leftover in ("tracking.db-wal", "tracking.db-shm"):
        (home / leftover).unlink(missing_ok=True)
    make(home)
    return home, found


@pytest.mark.parametrize("broken", list(CASES), indirect=True)
def test_anchor_broken_store_is_refused_by_the_library_with_one_sentence(broken):
    home, found = broken
    size = os.path.getsize(home / "tracking.db") if (home / "tracking.db").is_file() else None
    with pytest.raises(tracking.StoreError, match=found) as refused:
        open_store(f"sqlite:///{home / 'tracking.db'}", home=home)
    assert "\n" not in str(refused.value)
    if size is not None:  # left as it was found: nothing re-created over it
        assert os.path.getsize(home / "tracking.db") == size
    else:
        assert not (home / "tracking.db").is_file()


@pytest.mark.parametrize("broken", list(CASES), indirect=True)
def test_anchor_broken_store_is_refused_by_the_cli_with_exit_2_and_one_line(broken):
    home, found = broken
    done = _cli(home, "runs")
    assert done.returncode == 2, done.stdout + done.stderr
    assert _one_sentence(done.stderr) and re.search(found, done.stderr), done.stderr
    assert done.stdout == ""  # no "(none)": an empty store is not shown as a new one


def test_anchor_new_store_is_created_and_adopted_by_its_anchor(tmp_path):
    home = tmp_path / "home"
    store = _sqlite_store(home, events=1)
    lines = [json.loads(line) for line in (home / "tracking.db.anchor").read_text().splitlines()]
    with store.connect() as conn:
        store_id = conn.execute(text("SELECT store_id FROM store_identity")).scalar_one()
    assert lines[0]["kind"] == "store" and {line["store"] for line in lines} == {store_id}
    assert lines[-1]["seq"] == 1  # the head after the first event, appended once it committed
    assert _reopen(store).anchor == home / "tracking.db.anchor"  # and it opens again


def test_anchor_rolled_back_transaction_writes_no_head(file_store):
    class Abort(Exception):
        pass

    with pytest.raises(Abort), file_store.connect(write=True) as conn:
        record(conn, "root", "test.event", "thing", 1)
        raise Abort
    anchor = file_store.anchor.read_text().splitlines()
    assert [json.loads(line)["seq"] for line in anchor] == [0]  # the identity line only
    _reopen(file_store)  # the anchor is not ahead of the database


def test_anchor_moved_aside_accepts_an_older_copy_on_purpose(tmp_path):
    home = _home_with_an_older_copy(tmp_path, events=1)
    shutil.copyfile(tmp_path / "older.db", home / "tracking.db")
    with pytest.raises(tracking.StoreError, match="rolled back"):
        open_store(f"sqlite:///{home / 'tracking.db'}", home=home)
    (home / "tracking.db.anchor").rename(tmp_path / "anchor.old")  # what the sentence says to do
    assert verify_chain(open_store(f"sqlite:///{home / 'tracking.db'}", home=home)).ok


def test_anchor_damaged_anchor_file_is_one_sentence(tmp_path):
    home = tmp_path / "home"
    _close(_sqlite_store(home, events=1))
    (home / "tracking.db.anchor").write_text("this is not json\n")
    with pytest.raises(tracking.StoreError, match=r"anchor file .* is damaged \(line 1"):
        open_store(f"sqlite:///{home / 'tracking.db'}", home=home)


def test_anchor_in_memory_store_has_none_and_opens_as_before():
    store = open_store("sqlite://")
    assert store.anchor is None
    create_user(store, None, "root", "admin", PASSWORD)
    assert verify_chain(store).ok


def test_anchor_concurrent_writer_processes_append_whole_lines(file_store):
    code = (
        "import sys; from tracking.store import open_store; from tracking.governance import record\n"
        "store = open_store(sys.argv[1])\n"
        "for i in range(25):\n"
        "    with store.connect(write=True) as conn:\n"
        "        record(conn, sys.argv[2], 'test.event', 'thing', i)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, file_store.url, f"writer{n}"], cwd=ROOT) for n in (1, 2, 3)]
    assert [proc.wait(timeout=120) for proc in procs] == [0, 0, 0]
    lines = [json.loads(line) for line in file_store.anchor.read_text().splitlines()]  # each line whole JSON
    assert sorted(line["seq"] for line in lines[1:]) == list(range(1, 76))
    report = verify_chain(_reopen(file_store))
    assert report.ok and report.checked == 75 and report.anchored == 75, report.problems


# ---- PostgreSQL (and SQLite) emptied in place: tables dropped or truncated ---------------------------------


def _empty_database(store: tracking.Store, how: str) -> None:
    """Drop or truncate every table of the store's database, as a careless (or hostile) operator would."""
    opened = open_store(store.url, home=store.home)
    with opened.connect(write=True) as conn:
        if not store.is_sqlite and how == "dropped":
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        else:
            tables = [row[0] for row in conn.execute(text(
                "SELECT name FROM sqlite_master WHERE type = 'table'" if store.is_sqlite
                else "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            ))]  # fmt: skip
            if store.is_sqlite:
                conn.execute(text("PRAGMA foreign_keys=OFF"))
            for table in tables:
                conn.execute(text(f'{"DROP TABLE" if how == "dropped" else "DELETE FROM"} "{table}"'))
    _close(opened)


@pytest.mark.file_backends
@pytest.mark.parametrize("how", ["dropped", "truncated"])
def test_anchor_database_emptied_in_place_is_refused(store, how):
    create_user(store, None, "root", "admin", PASSWORD)
    _close(store)
    _empty_database(store, how)
    with pytest.raises(tracking.StoreError, match="emptied") as refused:
        _reopen(store)
    assert str(store.anchor) in str(refused.value)


@pytest.mark.file_backends
def test_anchor_new_store_made_in_its_place_is_refused(store, tmp_path):
    create_user(store, None, "root", "admin", PASSWORD)
    _close(store)
    _empty_database(store, "dropped")
    store.anchor.rename(tmp_path / "kept.anchor")
    _close(open_store(store.url, home=store.home))  # a new store where the old one was, with an anchor of its own
    (tmp_path / "kept.anchor").replace(store.anchor)
    with pytest.raises(tracking.StoreError, match="replaced by another store's"):
        _reopen(store)


@pytest.mark.parametrize("broken", ["emptied", "corrupt"], indirect=True)
def test_anchor_dashboard_shows_the_sentence_instead_of_a_new_store(broken):
    from streamlit.testing.v1 import AppTest

    _home, found = broken  # the test's TRACKING_HOME: the dashboard opens this store
    at = no_exception(AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run())
    assert [e.value for e in at.error if re.search(found, e.value)], [e.value for e in at.error]
    assert "Create the first admin" not in [s.value for s in at.subheader]
    assert not at.text_input  # neither the first-admin form nor the sign-in form
