"""Artifacts and datasets in object storage: the blob storage contract on every backend (a local folder, fsspec's
`file://` and `memory://`, S3), and the store on a real S3 API (moto's server mode, tests/s3.py): models logged
and loaded back verified, tampered objects refused, keys kept inside the prefix, a sweep's CSV read by its hash,
garbage collection and purge deleting from S3, and one clear sentence for a bucket that is missing."""

from __future__ import annotations

import hashlib
import re
import shutil
import socket
import uuid

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import tracking
from tracking.runs import read_verified, save_upload
from tracking.runs._runs import start_run
from tracking.store import LocalBlobs, open_blobs
from tracking.store._db import open_store
from tracking.sweeps import SweepSpec, create_sweep
from tracking.sweeps._worker import run_worker

PREFIX = "artifacts"
CSV = ("x1,x2,y\n" + "".join(f"{i},{(i * 7) % 11},{int(i % 3 == 0)}\n" for i in range(40))).encode()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _bucket(url: str) -> str:
    return url.removeprefix("s3://").split("/", 1)[0]


@pytest.fixture(params=["local", "file", "memory", "s3"])
def blobs(request, tmp_path):
    """A blob storage on each backend."""
    if request.param == "local":
        return LocalBlobs(tmp_path / "artifacts")
    if request.param == "file":
        return open_blobs(f"file://{tmp_path}/artifacts", None)
    if request.param == "memory":
        return open_blobs(f"memory://tracking-{uuid.uuid4().hex[:8]}/{PREFIX}", None)
    return open_blobs(request.getfixturevalue("s3_artifacts"), None)


# -- the contract, on every backend ------------------------------------------------------------------------


def test_blobs_put_get_exists_delete_round_trip(blobs):
    sha = _sha(b"hello")
    assert blobs.get(sha) is None and not blobs.exists(sha) and blobs.stat(sha) is None
    blobs.put(sha, b"hello")
    blobs.put(sha, b"hello")  # idempotent
    assert blobs.get(sha) == b"hello" and blobs.exists(sha)
    assert blobs.stat(sha)[0] == 5
    assert [(e.sha256, e.size) for e in blobs.entries()] == [(sha, 5)]
    assert blobs.delete(sha) and not blobs.exists(sha) and not blobs.delete(sha)
    assert list(blobs.entries()) == []


def test_blobs_refuse_anything_but_a_sha256_as_a_key(blobs):
    for bad in ("../" + "a" * 61, "A" * 64, "a" * 63, "/etc/passwd", "aa/../../" + "a" * 55):
        with pytest.raises(tracking.IntegrityError, match="is not a sha256 digest"):
            blobs.get(bad)
        with pytest.raises(tracking.IntegrityError, match="is not a sha256 digest"):
            blobs.put(bad, b"x")


def test_blobs_refuse_content_that_no_longer_matches_its_hash(blobs):
    sha = _sha(b"original")
    blobs.put(sha, b"changed")  # as if the object were replaced behind the store's back
    with pytest.raises(tracking.IntegrityError, match="no longer matches its recorded sha256"):
        blobs.get(sha)


# -- the store on S3 -----------------------------------------------------------------------------------------


def test_s3_model_logged_is_in_the_bucket_and_loads_back_verified(s3_store, s3_server, s3_artifacts):
    X = np.arange(40, dtype=float).reshape(20, 2)
    y = np.arange(20) % 2
    model = LogisticRegression().fit(X, y)
    with start_run("e", store=s3_store) as run:
        sha = run.log_model(model)
    assert s3_server.keys(_bucket(s3_artifacts)) == [f"{PREFIX}/{sha[:2]}/{sha}"]
    assert not s3_store.artifact_root.exists()  # nothing went to the local folder
    loaded = tracking.load_model(s3_store, run.id)
    assert (loaded.predict(X) == model.predict(X)).all()
    assert _sha(read_verified(s3_store, sha)) == sha


def test_s3_tampered_object_is_refused_on_load(s3_store, s3_server, s3_artifacts):
    with start_run("e", store=s3_store) as run:
        sha = run.log_model(LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1]))
    s3_server.client().put_object(Bucket=_bucket(s3_artifacts), Key=f"{PREFIX}/{sha[:2]}/{sha}", Body=b"evil")
    with pytest.raises(tracking.IntegrityError, match="no longer matches its recorded sha256"):
        tracking.load_model(s3_store, run.id)


def test_s3_names_with_dotdot_are_refused_and_keys_never_leave_the_prefix(s3_store, s3_server, s3_artifacts):
    with start_run("e", store=s3_store) as run:
        for bad in ("../escape.txt", "a/../../b", "/abs", "x\\..\\y"):
            with pytest.raises(tracking.ValidationError, match="is not allowed"):
                run.log_artifact(b"x", name=bad)
        shas = [run.log_artifact(f"{i}".encode(), name=name) for i, name in enumerate(["plots/roc.png", "a b.txt"])]
    keys = s3_server.keys(_bucket(s3_artifacts))
    assert keys == sorted(f"{PREFIX}/{sha[:2]}/{sha}" for sha in shas)
    assert all(re.fullmatch(rf"{PREFIX}/[0-9a-f]{{2}}/[0-9a-f]{{64}}", key) for key in keys)
    with pytest.raises(tracking.IntegrityError, match="is not a sha256 digest"):
        read_verified(s3_store, "../" + shas[0][3:])


def test_s3_run_detail_sees_whether_the_object_is_there(s3_store, s3_server, s3_artifacts):
    with start_run("e", store=s3_store) as run:
        sha = run.log_artifact(b"content", name="f.txt")
    assert tracking.runs.artifact_exists(s3_store, sha)
    s3_server.client().delete_object(Bucket=_bucket(s3_artifacts), Key=f"{PREFIX}/{sha[:2]}/{sha}")
    assert not tracking.runs.artifact_exists(s3_store, sha)
    with pytest.raises(tracking.IntegrityError, match=f"missing from {re.escape(s3_artifacts)}"):
        read_verified(s3_store, sha)


@pytest.mark.slow
def test_s3_sweep_worker_with_an_empty_home_reads_the_uploaded_csv_by_its_hash(
    s3_store, s3_server, s3_artifacts, tmp_path
):
    path = save_upload(s3_store, CSV, "loans.csv")
    sha = _sha(CSV)
    assert f"{PREFIX}/{sha[:2]}/{sha}" in s3_server.keys(_bucket(s3_artifacts))
    space = {"C": {"type": "float", "low": 0.1, "high": 10, "log": True}}
    spec = SweepSpec(model="logistic_regression", csv=str(path), target="y", space=space, sampler="random",
                     n_trials=2, folds=2)  # fmt: skip
    sweep = create_sweep(s3_store, spec)
    shutil.rmtree(s3_store.home / "uploads")  # the file is gone from every disk: only S3 has it
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    worker_store = open_store(s3_store.url, home=elsewhere)  # another machine: same database, an empty home
    assert run_worker(worker_store, sweep.id) == 2
    runs = tracking.list_runs(s3_store, sweep_id=sweep.id)
    assert sorted(r.status for r in runs) == ["complete", "complete"]
    assert {r.dataset["hash"] for r in runs} == {sha}
    assert list(elsewhere.iterdir()) == []


def test_s3_sweep_worker_refuses_a_tampered_csv(s3_store, s3_server, s3_artifacts):
    path = save_upload(s3_store, CSV, "loans.csv")
    sha = _sha(CSV)
    space = {"C": {"type": "float", "low": 0.1, "high": 10, "log": True}}
    sweep = create_sweep(s3_store, SweepSpec(model="logistic_regression", csv=str(path), target="y", space=space,
                                             sampler="random", n_trials=1, folds=2))  # fmt: skip
    s3_server.client().put_object(Bucket=_bucket(s3_artifacts), Key=f"{PREFIX}/{sha[:2]}/{sha}", Body=CSV + b"1,1,1\n")
    with pytest.raises(tracking.IntegrityError, match="no longer matches its recorded sha256"):
        run_worker(s3_store, sweep.id)


def test_s3_purge_deletes_the_run_objects_no_other_run_uses(s3_store, s3_server, s3_artifacts):
    with start_run("e", store=s3_store) as doomed:
        gone = doomed.log_artifact(b"only mine", name="a.txt")
        shared = doomed.log_artifact(b"shared", name="b.txt")
    with start_run("e", store=s3_store) as kept:
        kept.log_artifact(b"shared", name="b.txt")
    tracking.trash_run(s3_store, doomed.id)
    report = tracking.purge_run(s3_store, doomed.id)
    assert report.files == 1
    assert s3_server.keys(_bucket(s3_artifacts)) == [f"{PREFIX}/{shared[:2]}/{shared}"]
    assert gone not in str(s3_server.keys(_bucket(s3_artifacts)))


def test_s3_garbage_collection_deletes_unreferenced_objects_only(s3_store, s3_server, s3_artifacts):
    with start_run("e", store=s3_store) as run:
        used = run.log_artifact(b"used", name="u.txt")
    orphan = tracking.runs.put_bytes(s3_store, b"nobody refers to me")
    dry = tracking.collect_garbage(s3_store, dry_run=True, grace_hours=0)
    assert [(str(g.path), g.kind) for g in dry.files] == [(f"s3://{_bucket(s3_artifacts)}/{PREFIX}/{orphan[:2]}/{orphan}",
                                                           "artifact")]  # fmt: skip
    assert len(s3_server.keys(_bucket(s3_artifacts))) == 2
    report = tracking.collect_garbage(s3_store, dry_run=False, grace_hours=0)
    assert len(report.files) == 1
    assert s3_server.keys(_bucket(s3_artifacts)) == [f"{PREFIX}/{used[:2]}/{used}"]
    assert tracking.collect_garbage(s3_store, dry_run=True, grace_hours=0).files == ()


def test_s3_garbage_collection_keeps_the_csv_a_sweep_uses(s3_store, s3_server, s3_artifacts):
    path = save_upload(s3_store, CSV, "loans.csv")
    space = {"C": {"type": "float", "low": 0.1, "high": 10, "log": True}}
    create_sweep(s3_store, SweepSpec(model="logistic_regression", csv=str(path), target="y", space=space, n_trials=1,
                                     folds=2))  # fmt: skip
    assert tracking.collect_garbage(s3_store, dry_run=True, grace_hours=0).files == ()


def test_s3_missing_bucket_is_one_sentence_naming_the_url(s3_server, monkeypatch, tmp_path):
    url = f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/{PREFIX}"
    for name, value in s3_server.environ(url).items():
        monkeypatch.setenv(name, value)
    store = tracking.open_store()
    with start_run("e", store=store) as run, pytest.raises(tracking.StoreError) as err:
        run.log_artifact(b"x", name="x.txt")
    assert str(err.value) == (f"The artifact storage {url} cannot be used: its bucket does not exist; create it or "
                              "fix TRACKING_ARTIFACTS_URL.")  # fmt: skip


def test_s3_unreachable_endpoint_is_one_sentence_naming_the_url(monkeypatch, s3_server):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    url = f"s3://bucket/{PREFIX}"
    for name, value in s3_server.environ(url).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TRACKING_S3_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(tracking.StoreError, match=rf"^The artifact storage {re.escape(url)} cannot be reached \("):
        open_blobs(url, None).put(_sha(b"x"), b"x")


def test_local_default_is_the_home_artifacts_folder(store):
    sha = tracking.runs.put_bytes(store, b"local")
    assert (store.home / "artifacts" / sha[:2] / sha).read_bytes() == b"local"
    assert isinstance(store.blobs, LocalBlobs)


def test_artifacts_url_folder_keeps_the_local_protections(monkeypatch, tmp_path):
    folder = tmp_path / "elsewhere"
    monkeypatch.setenv("TRACKING_ARTIFACTS_URL", str(folder))
    store = tracking.open_store()
    sha = tracking.runs.put_bytes(store, b"there")
    assert (folder / sha[:2] / sha).read_bytes() == b"there"
    outside = tmp_path / "outside"
    outside.mkdir()
    (folder / "ab").symlink_to(outside)
    with pytest.raises(tracking.IntegrityError, match="outside the artifact root"):
        store.blobs.get("ab" + "0" * 62)


@pytest.mark.slow
@pytest.mark.parametrize("worker_has_s3", [True, False], ids=["from-s3", "through-the-server"])
def test_s3_remote_worker_loads_the_csv_by_its_hash(s3_store, monkeypatch, worker_has_s3):
    from tests.e2e import tracking_server
    from tracking.remote import connect_server
    from tracking.store import Store
    from tracking.sweeps import run_remote_worker

    path = save_upload(s3_store, CSV, "loans.csv")
    space = {"C": {"type": "float", "low": 0.1, "high": 10, "log": True}}
    sweep = create_sweep(s3_store, SweepSpec(model="logistic_regression", csv=str(path), target="y", space=space,
                                             sampler="random", n_trials=1, folds=2))  # fmt: skip
    shutil.rmtree(s3_store.home / "uploads")  # neither the server's disk nor the worker's has the file
    if worker_has_s3:  # the server's own artifact folder is empty, so only S3 can give the worker the CSV
        server_store = Store(s3_store.url, s3_store.home / "server-artifacts", "")
    else:  # the worker knows no object storage: the server reads the CSV from S3 by its hash and sends it
        server_store = s3_store
        monkeypatch.delenv("TRACKING_ARTIFACTS_URL")
    try:
        with tracking_server(server_store) as url:
            assert run_remote_worker(connect_server(url, None), sweep.id) == 1
    finally:
        if server_store is not s3_store:
            server_store.dispose()
    (run,) = tracking.list_runs(s3_store, sweep_id=sweep.id)
    assert run.status == "complete" and run.dataset["hash"] == _sha(CSV)


def test_sweep_made_before_csvs_were_kept_by_hash_still_reads_its_upload_by_path(file_store):
    path = save_upload(file_store, CSV, "loans.csv")
    space = {"C": {"type": "float", "low": 0.1, "high": 10, "log": True}}
    sweep = create_sweep(file_store, SweepSpec(model="logistic_regression", csv=str(path), target="y", space=space,
                                               sampler="random", n_trials=1, folds=2))  # fmt: skip
    assert file_store.blobs.delete(_sha(CSV))  # as an older sweep: its CSV only at its upload path
    assert run_worker(file_store, sweep.id) == 1
    (run,) = tracking.list_runs(file_store, sweep_id=sweep.id)
    assert run.status == "complete" and run.dataset["hash"] == _sha(CSV)
