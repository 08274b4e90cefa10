"""A team's whole setup, end to end: the store on PostgreSQL, artifacts and datasets in S3 (moto's server), a
tracking server in front of both, and a Dask cluster of three worker processes that each have only an empty home
of their own, the server's URL and a sweep token; a sweep of the shipped loan CSV runs there, the dashboard (in
Chromium) shows it and downloads the best model byte for byte, and that model is registered, approved and served
from object storage."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sqlalchemy import select

import tracking
from tests.conftest import PG_URL, ROOT, _drop_pg_database
from tests.e2e import asgi_server, open_app, sign_in, streamlit_server, tracking_server
from tests.governance import PASSWORD, make_accounts
from tests.polling import wait_until
from tests.s3 import CREDENTIALS
from tracking.registry import approve_promotion, register_version, request_promotion
from tracking.runs import find_artifact, save_upload
from tracking.serving import create_app
from tracking.store import Run, Worker, open_store
from tracking.sweeps import SweepSpec, create_sweep, get_sweep, launch_dask_workers, load_study

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not PG_URL, reason="needs TRACKING_TEST_POSTGRES_URL (a PostgreSQL server)"),
]
LOANS = ROOT / "tracking" / "data" / "loan_approval.csv"
TRIALS = 20
# Nothing of the store reaches the Dask workers: no database, no artifact storage, no S3 credentials.
BLANK = ("TRACKING_STORE_URL", "TRACKING_STORE_ANCHOR", "TRACKING_TOKEN", "TRACKING_SERVER_URL", "TRACKING_USER",
         "TRACKING_PASSWORD", "TRACKING_DASK_SCHEDULER", "TRACKING_AUDIT_KEY", "TRACKING_AUDIT_KEY_FILE",
         "TRACKING_ARTIFACTS_URL", "TRACKING_S3_ENDPOINT_URL", *CREDENTIALS)  # fmt: skip


@pytest.fixture
def team_store(tmp_path: Path, migrated_pg, s3_artifacts: str, monkeypatch) -> Iterator[tracking.Store]:
    """A PostgreSQL store with accounts (its own database, anchor and home) whose artifacts live in S3
    (`s3_artifacts`, set before the store opens), as the server and the dashboard open it."""
    url = migrated_pg.take()
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


def test_e2e_team_sweep_on_postgresql_through_the_server_on_a_dask_cluster(
    team_store, three_workers, s3_server, s3_artifacts, browser, tmp_path
):
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
    assert {r.status for r in runs} == {"complete"}, [(r.trial_number, r.status, r.error) for r in runs if r.error]
    assert {r.owner for r in runs} == {"data_scientist"}
    assert {r.dataset["hash"] for r in runs} == {hashlib.sha256(LOANS.read_bytes()).hexdigest()}
    assert sorted(t.state.name for t in load_study(store, sweep.id).trials) == ["COMPLETE"] * TRIALS
    assert all(list(home.iterdir()) == [] for home in homes)  # no worker opened a store or kept a file
    best = get_sweep(store, sweep.id).best_run_id
    model = find_artifact(store, best, "model")
    assert model is not None
    bucket = s3_artifacts.removeprefix("s3://").split("/")[0]
    assert f"artifacts/{model.sha256[:2]}/{model.sha256}" in s3_server.keys(bucket)  # uploaded through the server
    assert not (store.home / "artifacts").exists()  # nothing landed on the server's own disk either

    # The dashboard on the same store shows the sweep and hands out the best model, checked against its sha256.
    with streamlit_server({"TRACKING_STORE_URL": store.url, "TRACKING_HOME": str(store.home)}) as app:
        page = open_app(browser, f"{app}/sweep?id={sweep.id}", accept_downloads=True)
        sign_in(page, "data_scientist", PASSWORD)
        page.get_by_text(f"{TRIALS} / {TRIALS} trials finished").wait_for()
        page.goto(f"{app}/run?id={best}")
        page.get_by_role("tab", name="Artifacts").click()
        page.get_by_text(f"sha256 {model.sha256}").wait_for()
        with page.expect_download() as download:
            page.get_by_role("button", name="Download").first.click()
        saved = tmp_path / "model.skops"
        download.value.save_as(saved)
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == model.sha256

    # Registered, approved by a second person, and served: the model server loads it from S3 and verifies it.
    version = register_version(store, best, "loans", actor=scientist)
    request = request_promotion(store, version.id, "best of the team's sweep", actor=scientist)
    approve_promotion(store, request.id, "reviewed", actor=users["product_owner"])
    rows = json.loads(pd.read_csv(LOANS).drop(columns=["approved", "gender"]).head(3).to_json(orient="records"))
    with asgi_server(create_app(store, "loans")) as url:
        answer = httpx.post(f"{url}/predict", json={"rows": rows}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == tracking.load_model(store, best).predict(pd.DataFrame(rows)).tolist()
