"""Optuna's own tools on a sweep: `optuna_storage` / `load_study`, Optuna's storage contract suite run over the
storages sweeps use, and optuna-dashboard serving a real sweep's study."""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator

import optuna
import pytest
from optuna.testing.pytest_storages import StorageTestCase

import tracking
from tests.conftest import ROOT
from tests.polling import wait_until
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


@pytest.mark.file_backends
class TestSweepStorageContract(StorageTestCase):
    """Optuna 5.0's own storage test suite (`optuna.testing.pytest_storages`), over the sweeps' storages."""
