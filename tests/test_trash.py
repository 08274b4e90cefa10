"""The trash: runs, sweeps and experiments hidden, restored exactly, purged for good; retention of the inference
log; garbage collection of unreferenced files; roles, audit events and the CLI."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from datetime import timedelta

import numpy as np
import optuna
import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy import func, select

import tracking
from tests.governance import make_accounts
from tracking.cli import main
from tracking.production import InferenceEntry, apply_retention, recent_inferences, write_batch
from tracking.registry import register_blockers
from tracking.runs import artifact_file, find_trash, put_bytes, save_upload
from tracking.store import MetricPoint, OptunaJournalEntry, utcnow
from tracking.sweeps import SweepSpec, create_sweep, get_sweep, list_sweeps, run_worker

SPEC = dict(objective="tests.objectives:quadratic", space={"x": {"type": "float", "low": -1, "high": 1}},
            metrics=["value:min"], n_trials=2)  # fmt: skip
OLD = time.time() - 3 * 3600  # older than garbage collection's grace period


def _run(store, experiment="e", data=b"", actor=None, **params):
    """A finished run with a metric, a tag and (given bytes) an artifact; its id."""
    with tracking.start_run(experiment, params=params, store=store, actor=actor) as run:
        run.log_metric("loss", 0.5, step=0)
        run.set_tags({"kind": "test"})
        if data:
            run.log_artifact(data, name="file.bin")
    return run.id


def _sweep(store, experiment="e", actor=None):
    sweep = create_sweep(store, SweepSpec(**SPEC, experiment=experiment), actor=actor)
    run_worker(store, sweep.id, actor=actor)
    return sweep


def _registered(store, actor=None):
    """A run with a tiny fitted model, registered as `m` v1; (run id, version)."""
    with tracking.start_run("models", store=store, actor=actor) as run:
        run.log_model(LogisticRegression().fit(np.array([[0.0], [1.0]]), [0, 1]))
    return run.id, tracking.register_version(store, run.id, "m", actor=actor)


def _views(store):
    """Everything that lists or counts runs."""
    page = tracking.runs_page(store, filter="params.a >= 0")
    return {
        "list": [r.id for r in tracking.list_runs(store)],
        "filter": page.ids,
        "total": page.total,
        "sorted": tracking.runs_page(store, sort="metrics.loss").ids,  # read from the metric's index alone
        "sorted by param": tracking.runs_page(store, sort="params.a", descending=False).ids,
        "search": tracking.runs_page(store, search="test").ids,  # the tag's word
        "frame": sorted(tracking.runs_frame(store, "params.a >= 0").index),
        "experiments": {e.name: e.n_runs for e in tracking.list_experiments(store)},
        "overview": tracking.overview(store).runs,
    }


def test_trash_run_hides_it_everywhere_and_restore_brings_it_back_exactly(store):
    ids = [_run(store, a=i) for i in range(3)]
    before, records = _views(store), tracking.list_runs(store)
    entry = tracking.trash_run(store, ids[1])
    after = _views(store)
    assert ids[1] not in after["list"] and ids[1] not in after["filter"] and ids[1] not in after["frame"]
    assert after["sorted"] == [ids[2], ids[0]] or after["sorted"] == [ids[0], ids[2]]  # equal losses: either order
    assert after["sorted by param"] == [ids[0], ids[2]] and after["search"] == [ids[2], ids[0]]
    assert after["total"] == after["overview"] == after["experiments"]["e"] == 2
    assert tracking.compare_runs(store, ids).missing == (ids[1],)
    assert tracking.get_run(store, ids[1]).id == ids[1]  # its page still opens, offering to restore it
    assert find_trash(store, "run", ids[1]) == entry and [e.id for e in tracking.list_trash(store)] == [entry.id]
    tracking.restore_run(store, ids[1])
    assert _views(store) == before and tracking.list_runs(store) == records
    assert tracking.list_trash(store) == []


@pytest.mark.file_backends  # sweeps need a store that workers can share
def test_trash_sweep_cascades_and_restores_only_what_went_with_it(store):
    sweep = _sweep(store)
    first, second = sorted(r.id for r in tracking.list_runs(store, sweep_id=sweep.id))
    own = tracking.trash_run(store, first)
    entry = tracking.trash_sweep(store, sweep.id)
    assert entry.runs == 1 and list_sweeps(store) == [] and tracking.list_runs(store) == []
    assert get_sweep(store, sweep.id).counts == {"complete": 1}  # its page shows what went with it
    with pytest.raises(tracking.ValidationError, match="restore that first"):
        tracking.restore_run(store, first)  # its sweep is in the trash
    tracking.restore_trashed(store, entry.id)
    assert [r.id for r in tracking.list_runs(store)] == [second]  # the run trashed on its own stays there
    assert [e.id for e in tracking.list_trash(store)] == [own.id]


@pytest.mark.file_backends  # sweeps need a store that workers can share
def test_trash_experiment_cascades_to_its_sweeps_and_runs(store):
    sweep = _sweep(store, experiment="gone")
    loose = _run(store, experiment="gone", a=1)
    kept = _run(store, experiment="kept", a=2)
    entry = tracking.trash_experiment(store, "gone")
    assert entry.runs == 3 and find_trash(store, "sweep", sweep.id) == entry
    assert [e.name for e in tracking.list_experiments(store)] == ["kept"]
    assert [r.id for r in tracking.list_runs(store)] == [kept]
    report = tracking.purge_trashed(store, entry.id)
    assert (report.runs, report.sweeps, report.experiments) == (3, 1, 1)
    assert tracking.find_run(store, loose) is None and [e.name for e in tracking.list_experiments(store)] == ["kept"]
    assert _run(store, experiment="gone", a=3)  # the name is free again, even for this process's cache


@pytest.mark.file_backends  # sweeps need a store that workers can share
def test_trash_purge_removes_rows_files_and_optuna_trials(store):
    sweep = _sweep(store)
    study = optuna.load_study(study_name=sweep.study_name, storage=tracking.optuna_storage(store, sweep.id))
    assert len(study.trials) == 2
    unique, shared = f"only {uuid.uuid4()}".encode(), b"shared content"
    doomed, other = _run(store, data=unique, a=1), _run(store, data=shared, a=2)
    tracking.trash_run(store, doomed)
    _run(store, data=shared, a=3)  # the same content, logged by a run that stays
    tracking.trash_run(store, other)
    tracking.purge_run(store, doomed)
    report = tracking.purge_run(store, other)
    assert report.files == 0 and artifact_file(store, put_bytes(store, shared)).exists()  # still referenced
    assert not artifact_file(store, hashlib.sha256(unique).hexdigest()).exists()
    entry = tracking.trash_sweep(store, sweep.id)
    runs = [r.id for r in tracking.list_runs(store, sweep_id=sweep.id)] + [doomed, other]
    assert tracking.purge_trashed(store, entry.id).runs == 2
    with store.connect() as conn:
        points = conn.execute(select(func.count()).select_from(MetricPoint).where(MetricPoint.run_id.in_(runs)))
        assert points.scalar_one() == 0
        journal = select(func.count()).where(OptunaJournalEntry.journal == sweep.study_name)
        assert conn.execute(journal).scalar_one() == 0
    if not store.is_sqlite:  # Optuna's RDB storage in the same database
        names = optuna.get_all_study_names(optuna.storages.RDBStorage(store.url))
        assert sweep.study_name not in names
    with pytest.raises(tracking.NotFoundError):
        get_sweep(store, sweep.id)
    assert tracking.list_trash(store) == []


def test_trash_refuses_a_run_behind_a_registered_version(store):
    run_id, _ = _registered(store)
    with pytest.raises(tracking.ValidationError, match=r"registered model version m v1"):
        tracking.trash_run(store, run_id)
    with pytest.raises(tracking.ValidationError, match=r"registered model version m v1"):
        tracking.trash_experiment(store, "models")
    assert [r.id for r in tracking.list_runs(store)] == [run_id] and tracking.list_trash(store) == []
    with tracking.start_run("models", store=store) as late:
        late.log_model(LogisticRegression().fit(np.array([[0.0], [1.0]]), [0, 1]))
    tracking.trash_run(store, late.id)
    with pytest.raises(tracking.ValidationError, match=rf"Run {late.id} is in the trash; restore it"):
        tracking.register_version(store, late.id, "m")
    assert f"Run {late.id} is in the trash; restore it before registering its model." in register_blockers(
        store, None, late.id
    )
    tracking.restore_run(store, late.id)
    assert tracking.register_version(store, late.id, "m").version == 2


def test_trash_roles_and_audit_events(store):
    users = make_accounts(store)
    run_id = _run(store, actor=users["data_scientist"], a=1)
    with pytest.raises(tracking.PermissionDenied, match="may not move runs"):
        tracking.trash_run(store, run_id, actor=users["viewer"])
    entry = tracking.trash_run(store, run_id, actor=users["data_scientist"])
    with pytest.raises(tracking.PermissionDenied, match="only admins"):
        tracking.purge_trashed(store, entry.id, actor=users["engineer"])
    tracking.restore_trashed(store, entry.id, actor=users["engineer"])
    tracking.trash_run(store, run_id, actor=users["engineer"])
    tracking.empty_trash(store, actor=users["admin"])
    events = [(e.actor, e.action) for e in reversed(tracking.list_events(store, object_type="run"))]
    assert events[-4:] == [("data_scientist", "run.trash"), ("engineer", "run.restore"), ("engineer", "run.trash"),
                           ("admin", "run.purge")]  # fmt: skip


def test_retention_keeps_the_newest_rows_within_the_age(store):
    _, version = _registered(store)
    now = utcnow()
    ages = [0, 1, 2, 3, 40, 100]  # days
    write_batch(store, [
        InferenceEntry(f"r{age}", version.model_id, version.id, now - timedelta(days=age, minutes=1), 1.0, 1,
                       [{"x": age}], {"predictions": [0]}, sampled=True)
        for age in ages
    ])  # fmt: skip
    assert apply_retention(store, days=30, rows=3).deleted == 3
    kept = recent_inferences(store, version.model_id)
    assert [r.request_id for r in kept] == ["r0", "r1", "r2"]
    assert apply_retention(store).deleted == 0  # the settings' defaults: 90 days, 100,000 rows


def test_gc_removes_only_unreferenced_files_inside_the_root(store, tmp_path):
    kept = artifact_file(store, put_bytes(store, b"kept"))
    _run(store, data=b"kept", a=1)
    orphan = artifact_file(store, put_bytes(store, b"orphan"))  # content no row refers to
    fresh = artifact_file(store, put_bytes(store, b"fresh"))  # just written: maybe a run not committed yet
    upload = save_upload(store, b"a,b\n1,2\n", "loose.csv")
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"not ours")
    link = orphan.parent / ("f" * 64)
    link.symlink_to(outside)
    for path in (kept, orphan, upload, outside):
        os.utime(path, (OLD, OLD))
    dry = tracking.collect_garbage(store, dry_run=True)
    assert sorted(g.path for g in dry.files) == sorted([orphan, upload]) and orphan.exists()
    done = tracking.collect_garbage(store, dry_run=False)
    assert {g.kind for g in done.files} == {"artifact", "upload"} and done.bytes == len(b"orphan") + 8
    assert not orphan.exists() and not upload.exists()
    assert kept.exists() and fresh.exists() and outside.exists() and link.is_symlink()
    assert tracking.list_events(store, action="artifacts.collect")[0].after["files"] == 2


def test_cli_trash_commands(file_store, capsys):
    store = file_store
    run_id = _run(store, a=1)
    url = ["--store", store.url]
    assert main(["runs", *url, "trash", str(run_id)]) == 0
    assert main(["runs", *url, "--format", "json"]) == 0
    assert f'"id": {run_id}' not in capsys.readouterr().out
    assert main(["trash", "list", *url]) == 0
    assert f"run-{run_id}" in capsys.readouterr().out
    assert main(["runs", *url, "trash", str(run_id)]) == 2
    assert capsys.readouterr().err == f"error: Run {run_id} is already in the trash.\n"
    assert main(["trash", "empty", *url]) == 0
    assert "1 run(s)" in capsys.readouterr().out
    assert main(["artifacts", "gc", *url, "--dry-run"]) == 0
    assert main(["retention", "run", *url]) == 0
    assert "0 request(s) dropped" in capsys.readouterr().out
