"""The tracking server: scripts and workers log over HTTP with a token, and read back what a local script would."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import tracking
from tracking.governance._tokens import create_sweep_token, create_token
from tracking.remote import ServerClient, connect_server
from tracking.runs import list_artifacts, metric_history
from tracking.sweeps import SweepSpec, create_sweep, get_sweep, load_study, run_remote_worker

ROOT = Path(__file__).resolve().parents[1]
IRIS = SweepSpec(model="knn", task="iris", n_trials=4, sampler="random", pruner="none", folds=2)


def _token(store, user) -> str:
    return create_token(store, user, "server test")[0]


def test_server_script_logs_through_it_and_reads_back_identically(served_team, monkeypatch):
    store, users, url = served_team
    monkeypatch.setenv("TRACKING_SERVER_URL", url)  # no store given: start_run goes to the server
    monkeypatch.setenv("TRACKING_TOKEN", _token(store, users["data_scientist"]))
    with tracking.start_run("remote", params={"C": 0.5, "kernel": "rbf"}, tags={"team": "risk"}) as run:
        for step in range(30):
            run.log_metrics({"loss": 1 / (step + 1), "acc": step / 30}, step=step)
        run.log_metric("nan", float("nan"))
        run.log_params({"gamma": 2})
        run.add_note("through **the server**")
        digest = run.log_artifact(b"a,b\n1,2\n", name="table.csv")
    client = connect_server()
    local, remote = tracking.get_run(store, run.id), tracking.get_run(client, run.id)
    assert remote == local
    assert (local.status, local.owner, local.params, local.tags) == (
        "complete", "data_scientist", {"C": 0.5, "kernel": "rbf", "gamma": 2}, {"team": "risk"}
    )  # fmt: skip
    assert local.metrics == {"loss": 1 / 30, "acc": 29 / 30, "nan": None}
    assert metric_history(client, run.id) == metric_history(store, run.id)
    assert len(metric_history(store, run.id)["loss"]) == 30
    assert tracking.list_runs(client, experiment="remote") == tracking.list_runs(store, experiment="remote")
    assert [(a.name, a.sha256) for a in list_artifacts(store, run.id)] == [("table.csv", digest)]
    assert [note.body for note in tracking.list_notes(store, run.id)] == ["through **the server**"]


class _DropFirstAnswer(httpx.HTTPTransport):
    """A real transport that loses the server's answer to the first metric batch, after the server applied it
    (and, when told, fails to connect for the next ones)."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped = 0
        self.refuse = 0  # this many metric batches fail to connect at all

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/metrics") and self.refuse:
            self.refuse -= 1
            raise httpx.ConnectError("connection refused", request=request)
        response = super().handle_request(request)
        if request.url.path.endswith("/metrics") and not self.dropped:
            self.dropped += 1
            response.close()
            raise httpx.ReadError("connection dropped before the answer arrived", request=request)
        return response


def test_server_retried_batch_after_a_dropped_connection_is_neither_lost_nor_doubled(served_team):
    store, users, url = served_team
    client = ServerClient(url, _token(store, users["data_scientist"]))
    transport = _DropFirstAnswer()
    client._http = httpx.Client(base_url=url, headers=dict(client._http.headers), transport=transport)
    with tracking.start_run("retry", store=client) as run:
        run.log_metrics({"loss": 0.5}, step=0)
        run.log_metrics({"loss": 0.4}, step=1)
        run.flush()  # the first batch: applied, its answer lost, sent again under the same id
        run.log_metrics({"loss": 0.3}, step=2)
        transport.refuse = 1  # the server unreachable for longer than the retries: the batch waits in the client
        client.retry_seconds = 0.0
        run.log_metrics({"loss": 0.2}, step=3)
        with pytest.raises(tracking.StoreError, match="cannot be reached"):
            run.flush()
        run.log_metrics({"loss": 0.1}, step=4)
    assert (transport.dropped, transport.refuse) == (1, 0)
    assert metric_history(store, run.id) == {"loss": [(0, 0.5), (1, 0.4), (2, 0.3), (3, 0.2), (4, 0.1)]}
    assert tracking.get_run(store, run.id).metrics == {"loss": 0.1}


def test_server_viewer_token_reads_but_cannot_write(served_team):
    store, users, url = served_team
    with tracking.start_run("seen", store=connect_server(url, _token(store, users["data_scientist"]))) as run:
        run.log_metric("loss", 1.0)
    viewer = connect_server(url, _token(store, users["viewer"]))
    assert tracking.get_run(viewer, run.id).status == "complete"
    with pytest.raises(tracking.PermissionDenied, match="viewer"):
        tracking.start_run("not mine", store=viewer).__enter__()
    with pytest.raises(tracking.PermissionDenied):
        viewer.call("POST", f"/api/runs/{run.id}/tags", json={"tags": {"x": "y"}})
    with pytest.raises(tracking.PermissionDenied, match="needs an access token: set TRACKING_TOKEN"):
        connect_server(url, "").get_run(run.id)
    with pytest.raises(tracking.PermissionDenied, match="not valid"):
        connect_server(url, "trk_not-a-token").get_run(run.id)
    assert tracking.get_run(store, run.id).tags == {}


@pytest.mark.file_backends  # sweeps need a store that workers can share
def test_server_worker_token_cannot_touch_another_sweep(served_team):
    store, users, url = served_team
    ds = users["data_scientist"]
    mine, other = create_sweep(store, IRIS, actor=ds), create_sweep(store, IRIS, actor=ds)
    worker = connect_server(url, create_sweep_token(store, ds, mine.id))
    for call in (
        lambda: worker.call("POST", f"/api/sweeps/{other.id}/join"),
        lambda: worker.call("POST", "/api/workers", json={"sweep_id": other.id, "host": "h", "pid": 1}),
        lambda: tracking.start_run("script", store=worker).__enter__(),
    ):
        with pytest.raises(tracking.PermissionDenied, match=f"scoped to sweep {mine.id}"):
            call()
    joined = worker.call("POST", f"/api/sweeps/{mine.id}/join")
    assert joined["n_trials"] == IRIS.n_trials
    assert tracking.list_runs(store, sweep_id=other.id) == []


def test_server_artifact_hash_is_verified_and_a_bad_hash_refused(served_team):
    store, users, url = served_team
    client = connect_server(url, _token(store, users["data_scientist"]))
    with tracking.start_run("files", store=client) as run:
        digest = run.log_artifact(b"model bytes", name="weights.bin")
        with pytest.raises(tracking.ValidationError, match="damaged on the way"):
            client.call("PUT", f"/api/runs/{run.id}/artifacts/evil.bin", params={"sha256": digest},
                        content=b"other bytes")  # fmt: skip
    assert [(a.name, a.sha256) for a in list_artifacts(store, run.id)] == [("weights.bin", digest)]


def test_server_serves_its_openapi_schema_and_offline_docs(served_team):
    _, _, url = served_team
    schema = httpx.get(f"{url}/openapi.json", timeout=60).json()  # built on first ask: slow on a busy machine
    assert {"/api/runs", "/api/runs/{run_id}/metrics", "/api/sweeps/{sweep_id}/trials"} <= set(schema["paths"])
    docs = httpx.get(f"{url}/docs", timeout=60)
    assert docs.status_code == 200 and "/api/runs/{run_id}/end" in docs.text
    assert "<script" not in docs.text and "cdn" not in docs.text.lower()


@pytest.mark.slow
@pytest.mark.file_backends
def test_server_remote_worker_processes_finish_exactly_n_trials_without_a_store(served_team, tmp_path):
    store, users, url = served_team
    sweep = create_sweep(store, IRIS, actor=users["engineer"])
    empty_home = tmp_path / "worker-home"
    empty_home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("TRACKING_STORE_URL", "TRACKING_STORE_ANCHOR")}
    env |= {"TRACKING_HOME": str(empty_home), "TRACKING_TOKEN": create_sweep_token(store, users["engineer"], sweep.id),
            "PYTHONPATH": str(ROOT)}  # fmt: skip
    command = [sys.executable, "-m", "tracking", "worker", "--sweep", str(sweep.id)]
    procs = [  # one names the server on its command line, the other finds it in TRACKING_SERVER_URL
        subprocess.Popen([*command, "--server", url], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE),
        subprocess.Popen(
            command, env=env | {"TRACKING_SERVER_URL": url}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        ),
    ]
    outputs = [proc.communicate(timeout=180) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    runs = tracking.list_runs(store, sweep_id=sweep.id)
    assert sorted(r.status for r in runs) == ["complete"] * IRIS.n_trials
    assert all(r.metrics.get("cv_f1_macro") is not None and r.owner == "engineer" for r in runs)
    study = load_study(store, sweep.id)
    assert sorted(t.state.name for t in study.trials) == ["COMPLETE"] * IRIS.n_trials
    assert get_sweep(store, sweep.id).status == "complete"
    assert list(empty_home.iterdir()) == []  # the workers opened no store of their own
    assert sum(int(out.split()[3]) for out, _ in outputs) == IRIS.n_trials  # "worker finished: ran N trial(s)"
    assert len({r.trial_number for r in runs}) == IRIS.n_trials


@pytest.mark.slow  # trains a model in this process (the first import of scikit-learn and skops, if no test did)
@pytest.mark.file_backends
def test_server_a_dead_remote_workers_trial_is_recovered_and_the_sweep_still_ends_at_n(served_team):
    store, users, url = served_team
    sweep = create_sweep(store, dataclasses.replace(IRIS, n_trials=2), actor=users["engineer"])
    client = connect_server(url, create_sweep_token(store, users["engineer"], sweep.id))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a worker on this machine whose process has ended: dead at once, without waiting for beats
    client.call("POST", f"/api/sweeps/{sweep.id}/join")
    dead = client.call("POST", "/api/workers", json={"sweep_id": sweep.id, "host": socket.gethostname(),
                                                     "pid": gone.pid})["worker_id"]  # fmt: skip
    claimed = client.call("POST", f"/api/sweeps/{sweep.id}/trials", json={"worker_id": dead})
    assert claimed["number"] == 0
    assert run_remote_worker(client, sweep.id) == 1
    runs = {r.trial_number: r.status for r in tracking.list_runs(store, sweep_id=sweep.id)}
    assert runs == {0: "killed", 1: "complete"}
    assert [t.state.name for t in load_study(store, sweep.id).trials] == ["FAIL", "COMPLETE"]
    assert get_sweep(store, sweep.id).status == "complete"
