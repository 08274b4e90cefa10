"""A team's whole setup, end to end: the store on PostgreSQL, a tracking server in front of it, and a Dask
cluster of three worker processes that each have only an empty home of their own; a sweep of the shipped loan
CSV runs there and its best model comes back byte for byte.

`artifacts` is the one place where the server's artifact store is chosen (its settings applied before the store
opens): today the store's own folder; an object store is added by returning its settings there."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

import tracking
from tests.conftest import PG_URL, ROOT, _drop_pg_database, _pg_database
from tests.e2e import tracking_server
from tests.governance import make_accounts
from tests.polling import wait_until
from tracking.runs import find_artifact, save_upload
from tracking.runs._artifacts import read_verified
from tracking.store import Run, Worker, open_store
from tracking.sweeps import SweepSpec, create_sweep, get_sweep, launch_dask_workers, load_study

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not PG_URL, reason="needs TRACKING_TEST_POSTGRES_URL (a PostgreSQL server)"),
]
LOANS = ROOT / "tracking" / "data" / "loan_approval.csv"
TRIALS = 20
BLANK = ("TRACKING_STORE_URL", "TRACKING_STORE_ANCHOR", "TRACKING_TOKEN", "TRACKING_SERVER_URL", "TRACKING_USER",
         "TRACKING_PASSWORD", "TRACKING_DASK_SCHEDULER", "TRACKING_AUDIT_KEY", "TRACKING_AUDIT_KEY_FILE")  # fmt: skip


@pytest.fixture
def artifacts() -> dict[str, str]:
    """Settings of the server's artifact store, set before it opens (none: the store's own folder)."""
    return {}


@pytest.fixture
def team_store(tmp_path: Path, migrated_pg: str, artifacts: dict[str, str], monkeypatch) -> Iterator[tracking.Store]:
    """A PostgreSQL store with accounts (its own database, anchor and home), as the server opens it."""
    for name, value in artifacts.items():
        monkeypatch.setenv(name, value)
    url = _pg_database(template=migrated_pg)
    monkeypatch.setenv("TRACKING_STORE_ANCHOR", str(tmp_path / "postgresql.anchor"))
    store = open_store(url, home=tmp_path / "server-home")
    try:
        yield store
    finally:
        store.dispose()
        _drop_pg_database(url)


@pytest.fixture
def three_workers(tmp_path: Path) -> Iterator[tuple[str, list[Path]]]:
    """A Dask cluster of three worker processes (nannies), one thread each, each with an empty home of its own
    and no store setting: (scheduler address, their homes)."""
    import distributed

    homes = [tmp_path / f"dask-home-{k}" for k in range(3)]
    workers = {}
    for k, home in enumerate(homes):
        home.mkdir()
        env = {name: "" for name in BLANK} | {"TRACKING_HOME": str(home), "OMP_NUM_THREADS": "1"}
        workers[f"w{k}"] = {"cls": distributed.Nanny, "options": {"nthreads": 1, "env": env}}
    scheduler = {"cls": distributed.Scheduler, "options": {"dashboard_address": None}}
    with distributed.SpecCluster(workers=workers, scheduler=scheduler) as cluster:
        with distributed.Client(cluster, set_as_default=False) as client:
            client.wait_for_workers(3, timeout=120)
        yield cluster.scheduler_address, homes


def test_e2e_team_sweep_on_postgresql_through_the_server_on_a_dask_cluster(team_store, three_workers):
    import distributed

    store = team_store
    scheduler, homes = three_workers
    users = make_accounts(store)
    scientist = users["data_scientist"]
    csv = save_upload(store, LOANS.read_bytes(), LOANS.name)  # as the dashboard's upload keeps it, on the server
    spec = SweepSpec(model="logistic_regression", csv=str(csv), target="approved", sensitive="gender",
                     n_trials=TRIALS, sampler="tpe", pruner="none", folds=2, experiment="loans")  # fmt: skip
    sweep = create_sweep(store, spec, actor=scientist)
    with tracking_server(store) as url:
        launch = launch_dask_workers(store, sweep.id, 3, scheduler, url, actor=scientist)
        assert len(launch.keys) == 3 and launch.client is None  # fire and forget: nothing held here
        wait_until(lambda: get_sweep(store, sweep.id).status == "complete", timeout=600, what="the 20 trials")
        with distributed.Client(scheduler, set_as_default=False) as client:
            dask_pids = set(client.run(os.getpid).values())
    with store.connect() as conn:
        pids = set(
            conn.execute(
                select(Worker.pid).join(Run, Run.worker_id == Worker.id).where(Run.sweep_id == sweep.id)
            ).scalars()
        )
    assert pids and pids <= dask_pids  # every trial ran in a Dask worker process
    runs = tracking.list_runs(store, sweep_id=sweep.id)
    assert len(runs) == TRIALS and sorted(r.trial_number for r in runs) == list(range(TRIALS))
    assert {r.status for r in runs} == {"complete"} and {r.owner for r in runs} == {"data_scientist"}
    assert {r.dataset["hash"] for r in runs} == {hashlib.sha256(LOANS.read_bytes()).hexdigest()}
    assert sorted(t.state.name for t in load_study(store, sweep.id).trials) == ["COMPLETE"] * TRIALS
    assert all(list(home.iterdir()) == [] for home in homes)  # no worker opened a store or kept a file
    best = get_sweep(store, sweep.id).best_run_id
    model = find_artifact(store, best, "model")
    assert model is not None
    data = read_verified(store, model.sha256)  # the download: the bytes the store holds, checked on the way out
    assert hashlib.sha256(data).hexdigest() == model.sha256 and len(data) == model.size
    fitted = tracking.load_model(store, best)
    assert hasattr(fitted, "predict")
