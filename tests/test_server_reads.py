"""Reads through the tracking server: artifacts and models (verified by the server, and again on arrival) and
notes, with the same public functions as on a store; a sweep's token reads only its sweep's runs."""

from __future__ import annotations

import httpx
import pytest

import tracking
from tracking.governance._tokens import create_sweep_token, create_token
from tracking.remote import ServerClient, connect_server
from tracking.runs import artifact_file, find_artifact, list_artifacts, load_model
from tracking.sweeps import SweepSpec, create_sweep

IRIS = SweepSpec(model="knn", task="iris", n_trials=4, sampler="random", pruner="none", folds=2)


def _client(store, url, user) -> ServerClient:
    return connect_server(url, create_token(store, user, "server reads test")[0])


@pytest.mark.slow  # fits a model (the first import of scikit-learn and skops, if no test did)
def test_server_model_uploaded_then_listed_downloaded_and_loaded_through_it_predicts_as_the_original(served_team):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    store, users, url = served_team
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    with tracking.start_run("models", store=_client(store, url, users["data_scientist"])) as run:
        model_sha = run.log_model(model)
        plot_sha = run.log_artifact(b"\x89PNG not really", name="plots/roc.png")
    viewer = _client(store, url, users["viewer"])  # a viewer reads what a data scientist logged
    listed = tracking.list_artifacts(viewer, run.id)
    assert listed == list_artifacts(store, run.id)
    assert [(a.name, a.kind, a.sha256) for a in listed] == [("model", "model", model_sha),
                                                            ("plots/roc.png", "file", plot_sha)]  # fmt: skip
    assert viewer.download_artifact(run.id, "plots/roc.png") == b"\x89PNG not really"
    loaded = tracking.load_model(viewer, run.id)
    assert type(loaded) is LogisticRegression
    assert (loaded.predict(x) == model.predict(x)).all()
    assert (loaded.predict_proba(x) == model.predict_proba(x)).all()
    with pytest.raises(tracking.NotFoundError, match=r"no model artifact named 'plots/roc\.png'"):
        load_model(viewer, run.id, "plots/roc.png")  # a plain file is not loaded as a model
    with pytest.raises(tracking.NotFoundError, match=r"no artifact named 'nothing\.bin'"):
        viewer.download_artifact(run.id, "nothing.bin")


def test_server_refuses_to_serve_an_artifact_file_changed_or_lost_on_its_disk(served_team):
    store, users, url = served_team
    client = _client(store, url, users["data_scientist"])
    with tracking.start_run("tampered", store=client) as run:
        digest = run.log_artifact(b"weights v1", name="weights.bin")
        kept = run.log_artifact(b"kept as written", name="kept.bin")
    artifact_file(store, digest).write_bytes(b"weights v2, swapped in on the server")
    with pytest.raises(
        tracking.IntegrityError, match=r"'weights\.bin' cannot be served: .*changed after it was written"
    ):
        client.download_artifact(run.id, "weights.bin")
    raw = httpx.get(f"{url}/api/runs/{run.id}/artifacts/weights.bin", headers=dict(client._http.headers))
    assert (raw.status_code, raw.json()["error"]) == (409, "IntegrityError")
    assert b"swapped" not in raw.content
    artifact_file(store, digest).unlink()
    with pytest.raises(tracking.IntegrityError, match="is missing from the server") as missing:
        client.download_artifact(run.id, "weights.bin")
    assert str(store.artifact_root) not in str(missing.value)  # the server's folders are not told
    assert client.download_artifact(run.id, "kept.bin") == b"kept as written"
    assert find_artifact(store, run.id, "kept.bin").sha256 == kept


class _DamageArtifacts(httpx.HTTPTransport):
    """A real transport whose downloaded artifact bodies arrive with their last byte changed (damage on the way)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if "/artifacts/" not in request.url.path or response.status_code != 200:
            return response
        body = response.read()
        damaged = body[:-1] + bytes([body[-1] ^ 1])
        return httpx.Response(response.status_code, headers=response.headers, content=damaged)


def test_server_client_refuses_artifact_bytes_that_do_not_match_their_sha256(served_team):
    store, users, url = served_team
    client = _client(store, url, users["data_scientist"])
    with tracking.start_run("damaged", store=client) as run:
        digest = run.log_artifact(b"exact bytes", name="data.bin")
        other = run.log_artifact(b"other bytes", name="other.bin")
    with pytest.raises(tracking.IntegrityError, match=r"'data\.bin' of run \d+ arrived .* not the .* recorded"):
        client.download_artifact(run.id, "data.bin", sha256=other)  # not the content the caller expects
    assert client.download_artifact(run.id, "data.bin", sha256=digest) == b"exact bytes"
    damaging = ServerClient(url)
    damaging._http = httpx.Client(base_url=url, headers=dict(client._http.headers), transport=_DamageArtifacts())
    with pytest.raises(tracking.IntegrityError, match="damaged or changed on the way, so it was not used"):
        damaging.download_artifact(run.id, "data.bin")
    assert [a.name for a in tracking.list_artifacts(damaging, run.id)] == ["data.bin", "other.bin"]


def test_server_notes_round_trip_through_it(served_team):
    store, users, url = served_team
    client = _client(store, url, users["data_scientist"])
    with tracking.start_run("noted", store=client) as run:
        run.add_note("first, **through the server**")
    tracking.add_note(store, run.id, "second, on the store", actor=users["engineer"])
    viewer = _client(store, url, users["viewer"])
    notes = tracking.list_notes(viewer, run.id)
    assert notes == tracking.list_notes(store, run.id)
    assert [(n.author, n.body) for n in notes] == [("data_scientist", "first, **through the server**"),
                                                   ("engineer", "second, on the store")]  # fmt: skip
    with pytest.raises(tracking.NotFoundError, match="no run 999999"):
        tracking.list_notes(viewer, 999_999)
    with pytest.raises(tracking.PermissionDenied, match="needs an access token"):
        tracking.list_notes(connect_server(url, ""), run.id)


@pytest.mark.file_backends  # sweeps need a store that workers can share
def test_server_sweep_token_reads_only_its_sweeps_runs(served_team):
    store, users, url = served_team
    ds = users["data_scientist"]
    with tracking.start_run("script", store=_client(store, url, ds)) as script:
        script.log_artifact(b"private", name="secret.bin")
        script.add_note("not for workers")
    mine, other = create_sweep(store, IRIS, actor=ds), create_sweep(store, IRIS, actor=ds)
    worker = connect_server(url, create_sweep_token(store, ds, mine.id))
    worker.call("POST", f"/api/sweeps/{mine.id}/join")
    worker_id = worker.call("POST", "/api/workers", json={"sweep_id": mine.id, "host": "h", "pid": 1})["worker_id"]
    trial = worker.call("POST", f"/api/sweeps/{mine.id}/trials", json={"worker_id": worker_id})["run_id"]
    assert tracking.get_run(worker, trial).sweep_id == mine.id
    assert tracking.list_artifacts(worker, trial) == [] and tracking.list_notes(worker, trial) == []
    assert [r.id for r in tracking.list_runs(worker)] == [trial]  # not the script's run
    for call in (
        lambda: tracking.get_run(worker, script.id),
        lambda: tracking.metric_history(worker, script.id),
        lambda: tracking.list_artifacts(worker, script.id),
        lambda: worker.download_artifact(script.id, "secret.bin"),
        lambda: tracking.list_notes(worker, script.id),
        lambda: tracking.list_runs(worker, sweep_id=other.id),
    ):
        with pytest.raises(tracking.PermissionDenied, match=f"scoped to sweep {mine.id}: it may only read"):
            call()


def test_server_openapi_schema_documents_the_reads(served_team):
    _, _, url = served_team
    paths = httpx.get(f"{url}/openapi.json").json()["paths"]
    for path in ("/api/runs/{run_id}/artifacts", "/api/runs/{run_id}/artifacts/{name}", "/api/runs/{run_id}/notes"):
        assert paths[path]["get"]["summary"], path
    assert (
        "application/octet-stream" in paths["/api/runs/{run_id}/artifacts/{name}"]["get"]["responses"]["200"]["content"]
    )
    assert "/api/runs/{run_id}/notes" in httpx.get(f"{url}/docs").text


def test_server_logged_metrics_are_found_by_filters_as_a_local_runs_are(served_team):
    store, users, url = served_team
    client = _client(store, url, users["data_scientist"])
    with tracking.start_run("filtered", params={"C": 0.5}, store=client) as remote:
        remote.log_metrics({"loss": 0.2, "acc": 0.9}, step=0)
        remote.flush()  # a batch's latest values are searchable while the run is open
        assert [r.id for r in tracking.list_runs(store, filter="metrics.loss < 0.5")] == [remote.id]
        remote.log_metrics({"loss": 0.1}, step=1)
    with tracking.start_run("filtered", params={"C": 2.0}, store=store, actor=users["data_scientist"]) as local:
        local.log_metrics({"loss": 0.7, "acc": 0.5}, step=0)
    for text, expected in [("metrics.loss < 0.15", [remote.id]), ("metrics.acc > 0.6", [remote.id]),
                           ("metrics.loss > 0.5", [local.id]), ("params.C < 1", [remote.id])]:  # fmt: skip
        assert [r.id for r in tracking.list_runs(client, filter=text)] == expected, text
        assert [r.id for r in tracking.list_runs(store, filter=text)] == expected, text
