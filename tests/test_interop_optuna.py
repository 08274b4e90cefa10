"""Optuna's own tools on a sweep: `optuna_storage` / `load_study`, Optuna's storage contract suite run over the
storages sweeps use, and optuna-dashboard serving a real sweep's study."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.testing.pytest_storages import StorageTestCase

import tracking
from tests.conftest import ROOT
from tests.e2e import free_port
from tests.polling import wait_until
from tracking.cli import main
from tracking.store import journal_storage
from tracking.sweeps import study_storage

X_SPACE = {"x": {"type": "float", "low": -5.0, "high": 5.0}}


def _sweep(store, n_trials: int = 4):
    spec = tracking.SweepSpec(objective="tests.objectives:quadratic", space=X_SPACE, metrics=["value:min"],
                              n_trials=n_trials, sampler="random", name="interop")  # fmt: skip
    sweep = tracking.create_sweep(store, spec)
    tracking.run_worker(store, sweep.id)
    return tracking.get_sweep(store, sweep.id)


@pytest.fixture(scope="module")
def _rdb_storage(tmp_path_factory) -> Iterator[optuna.storages.RDBStorage]:
    """The RDB storage of a PostgreSQL store, made once per module (its tables take a second to create)."""
    from tests.conftest import _drop_pg_database, _pg_database

    url = _pg_database()
    store = tracking.open_store(url, home=tmp_path_factory.mktemp("rdb"))
    rdb = study_storage(store, "rdb", "")  # what a sweep on PostgreSQL gets
    yield rdb
    rdb.engine.dispose()
    _drop_pg_database(url)


@pytest.fixture
def storage(backend: str, request: pytest.FixtureRequest) -> optuna.storages.BaseStorage:
    """An empty Optuna storage of the kind a sweep on this backend uses: its journal in the SQLite store, or
    Optuna's RDB storage in the PostgreSQL store's database (emptied for each test)."""
    if backend == "sqlite":
        return journal_storage(request.getfixturevalue("store"), f"contract-{uuid.uuid4().hex}")
    rdb = request.getfixturevalue("_rdb_storage")
    for study in rdb.get_all_studies():
        rdb.delete_study(study._study_id)
    return rdb


@pytest.mark.slow  # about a minute on PostgreSQL: the suite's 59 tests make many round trips
@pytest.mark.file_backends
class TestSweepStorageContract(StorageTestCase):
    """Optuna 5.0's own storage test suite (`optuna.testing.pytest_storages`), over the sweeps' storages."""


@pytest.mark.file_backends
def test_load_study_by_id_or_record_holds_every_trial(store):
    sweep = _sweep(store)
    study = tracking.load_study(store, sweep.id)
    assert study.study_name == sweep.study_name
    assert len(tracking.load_study(store, sweep).trials) == len(study.trials) == 4
    runs = tracking.list_runs(store, sweep_id=sweep.id)
    assert sorted(t.number for t in study.trials) == sorted(r.trial_number for r in runs)
    assert study.best_value == pytest.approx(sweep.best_value)
    assert study.best_trial.params == tracking.get_run(store, sweep.best_run_id).params


def test_optuna_storage_of_an_unknown_sweep_is_not_found(store):
    with pytest.raises(tracking.NotFoundError, match="no sweep 42"):
        tracking.optuna_storage(store, 42)


@pytest.mark.file_backends
def test_optuna_storage_pickles_into_another_process(store):
    sweep = _sweep(store, n_trials=3)
    blob = pickle.dumps(tracking.optuna_storage(store, sweep.id))
    script = (
        "import pickle, sys, optuna; storage = pickle.loads(sys.stdin.buffer.read()); "
        "print(len(optuna.load_study(study_name=sys.argv[1], storage=storage).trials))"
    )
    out = subprocess.run([sys.executable, "-c", script, sweep.study_name], input=blob, capture_output=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120, cwd=ROOT)  # fmt: skip
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.decode().split() == ["3"]


def _get_json(url: str) -> object:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except OSError:  # not listening yet
        return None


def _dashboard_shows(command: list[str], port: int, sweep, tmp_path) -> None:
    """Start optuna-dashboard with `command`, and read the sweep's study and trials from its API."""
    log = open(tmp_path / f"dashboard-{port}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        listing = wait_until(lambda: _get_json(f"{base}/api/studies"), timeout=90, what="optuna-dashboard's API")
        studies = {s["study_name"]: s for s in listing["study_summaries"]}
        assert sweep.study_name in studies
        detail = _get_json(f"{base}/api/studies/{studies[sweep.study_name]['study_id']}")
        assert len(detail["trials"]) == sweep.n_trials
        assert {t["state"] for t in detail["trials"]} == {"Complete"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.mark.slow
@pytest.mark.file_backends
def test_optuna_dashboard_command_serves_a_sweeps_study(store, tmp_path):
    sweep = _sweep(store, n_trials=3)
    port = free_port()
    command = [sys.executable, "-m", "tracking", "optuna-dashboard", str(sweep.id), "--port", str(port),
               "--store", store.url]  # fmt: skip
    _dashboard_shows(command, port, sweep, tmp_path)


@pytest.mark.slow
@pytest.mark.postgres_only  # Optuna's RDB storage holds the studies of sweeps on PostgreSQL only
def test_optuna_dashboard_opens_a_postgresql_store_by_its_url(store, tmp_path):
    sweep = _sweep(store, n_trials=3)
    port = free_port()
    board = str(Path(sys.executable).parent / "optuna-dashboard")  # the command pip installs
    _dashboard_shows([board, store.url, "--port", str(port), "--host", "127.0.0.1"], port, sweep, tmp_path)


def test_optuna_dashboard_unknown_sweep_is_one_line(capsys):
    assert main(["optuna-dashboard", "7"]) == 2
    assert capsys.readouterr().err == "error: There is no sweep 7.\n"
