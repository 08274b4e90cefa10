"""Credentials for every write: access tokens (personal and sweep-scoped), actors issued only by credential
checks, and closed runs (a finished run's params, metrics and status cannot be rewritten)."""

from __future__ import annotations

import dataclasses
import os
from datetime import timedelta

import pytest
from sqlalchemy import select, update

import tracking
from tests.governance import PASSWORD, make_accounts
from tests.polling import wait_until
from tracking.cli._main import main
from tracking.governance._access import UserRecord, get_user
from tracking.governance._audit import list_events
from tracking.governance._tokens import create_sweep_token, create_token, list_tokens, revoke_token, verify_token
from tracking.registry._models import register_version
from tracking.runs._annotations import add_note, replace_tags, set_tags
from tracking.runs._datasets import load_task, register_dataset
from tracking.runs._liveness import process_worker_id
from tracking.runs._queries import get_run, list_runs, metric_history
from tracking.runs._runs import ActiveRun, get_or_create_experiment, insert_run, run_row, run_scope, start_run
from tracking.store._tables import AccessToken, RunStatus, utcnow
from tracking.sweeps._sweeps import SweepSpec, create_sweep, get_sweep, launch_workers
from tracking.sweeps._worker import run_worker

IRIS = SweepSpec(model="knn", task="iris", n_trials=2, sampler="random", pruner="none", folds=2)


def _finished_run(store, actor=None) -> int:
    with start_run("closed", params={"C": 1.0}, store=store, actor=actor) as run:
        run.log_metrics({"test_f1_macro": 0.61})
    return run.id


# --- a finished run is closed ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rewrite",
    [
        lambda run: (run.log_metrics({"test_f1_macro": 0.99}), run.flush()),
        lambda run: (run.log_metric("test_f1_macro", 0.99, step=0), run.flush()),
        lambda run: run.log_params({"C": 100.0}),
        lambda run: run.log_artifact(b"other bytes", name="model", kind="model"),
        lambda run: run.end(RunStatus.complete),
        lambda run: run.end(RunStatus.failed, error="rewritten"),
    ],
    ids=["log_metrics", "log_metric", "log_params", "log_artifact", "end", "end_failed"],
)
def test_closed_run_the_held_run_object_cannot_rewrite_it(store, rewrite):
    with start_run("closed", params={"C": 1.0}, store=store) as run:
        run.log_metrics({"test_f1_macro": 0.61})
    with pytest.raises(tracking.ValidationError, match=f"Run {run.id} is complete, and a finished run is closed"):
        rewrite(run)
    after = get_run(store, run.id)
    assert (after.status, after.params, after.metrics, after.error) == (
        "complete",
        {"C": 1.0},
        {"test_f1_macro": 0.61},
        None,
    )
    assert metric_history(store, run.id, "test_f1_macro") == {"test_f1_macro": [(0, 0.61)]}
    assert tracking.list_artifacts(store, run.id) == []


def test_closed_run_reopening_it_by_id_is_refused(store):
    run_id = _finished_run(store)
    with pytest.raises(tracking.ValidationError, match="finished run is closed"):
        ActiveRun(store, run_id)
    with pytest.raises(tracking.ValidationError, match="finished run is closed"), run_scope(ActiveRun(store, run_id)):
        pass
    with pytest.raises(TypeError):  # start_run makes a new run; it takes no id of an old one
        start_run("closed", store=store, run_id=run_id).__enter__()  # type: ignore[call-arg]
    assert get_run(store, run_id).metrics == {"test_f1_macro": 0.61}


def test_closed_run_keeps_tags_and_notes_editable_and_audited(store):
    run_id = _finished_run(store)
    set_tags(store, run_id, {"review": "done"})
    replace_tags(store, run_id, {"review": "again"})
    add_note(store, run_id, "checked after the fact")
    assert get_run(store, run_id).tags == {"review": "again"}
    actions = [e.action for e in reversed(list_events(store, object_type="run", object_id=str(run_id)))]
    assert actions == ["run.tags", "run.tags", "run.note"]


# --- credentials on a store with accounts -----------------------------------------------------------------


@pytest.fixture
def team(store):
    """A store with accounts of every role, signed in."""
    return store, make_accounts(store)


def test_token_write_without_a_credential_is_refused(team, monkeypatch):
    store, users = team
    with pytest.raises(tracking.PermissionDenied, match=r"set TRACKING_TOKEN .*tokens create"):
        start_run("team", store=store).__enter__()
    monkeypatch.setenv("TRACKING_TOKEN", "trk_not-a-token")
    with pytest.raises(tracking.PermissionDenied, match="access token is not valid"):
        start_run("team", store=store).__enter__()
    assert list_runs(store) == []
    monkeypatch.delenv("TRACKING_TOKEN")
    running = _running_run(store, users["data_scientist"])
    for write in (
        lambda: ActiveRun(store, running.id),
        lambda: set_tags(store, running.id, {"a": "b"}),
        lambda: add_note(store, running.id, "anonymous"),
        lambda: register_dataset(store, load_task("iris")),
    ):
        with pytest.raises(tracking.PermissionDenied, match="this store has accounts"):
            write()


def _running_run(store, actor, sweep_id: int | None = None) -> ActiveRun:
    """A run in progress, logged by `actor` (of a sweep, or of its own)."""
    values = run_row(experiment_id=get_or_create_experiment(store, "team"), worker_id=process_worker_id(store),
                     sweep_id=sweep_id, trial_number=99 if sweep_id else None, owner=actor.name)  # fmt: skip
    with store.connect(write=True) as conn:
        run_id = insert_run(conn, values)
    return ActiveRun(store, run_id, actor) if sweep_id is None else run_id


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    """`python -m tracking ARGS` in this process: (exit status, stdout, stderr)."""
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_token_logs_a_run_whose_tags_and_notes_name_its_account(team, monkeypatch):
    store, users = team
    token, made = create_token(store, users["data_scientist"], "laptop scripts")
    assert token.startswith("trk_") and made.state == "active" and made.last_used_at is None
    monkeypatch.setenv("TRACKING_TOKEN", token)
    with start_run("team", store=store) as run:
        run.set_tags({"team": "risk"})
        run.add_note("from a script")
        run.log_metrics({"loss": 0.1})
    other = _finished_run(store, users["engineer"])
    set_tags(store, other, {"seen": "yes"}, actor=verify_token(store, token))
    events = [(e.actor, e.action) for e in reversed(list_events(store)) if e.action in ("run.tags", "run.note")]
    assert events == [("data_scientist", "run.tags"), ("data_scientist", "run.note"), ("data_scientist", "run.tags")]
    assert get_run(store, run.id).owner == "data_scientist"
    (listed,) = list_tokens(store, users["data_scientist"])
    assert listed.name == "laptop scripts" and listed.last_used_at is not None
    with store.connect() as conn:  # only the hash is kept
        assert token not in {row.token_sha256 for row in conn.execute(select(AccessToken.token_sha256))}


def test_token_revoked_or_expired_is_refused_even_for_a_run_in_progress(team):
    store, users = team
    ds = users["data_scientist"]
    token, made = create_token(store, ds, "soon revoked")
    run = _running_run(store, verify_token(store, token))
    run.log_metrics({"loss": 0.5})
    revoke_token(store, ds, made.id)
    with pytest.raises(tracking.PermissionDenied, match="was revoked"):
        run.flush()
    with pytest.raises(tracking.PermissionDenied, match="was revoked"):
        verify_token(store, token)
    expiring, made = create_token(store, ds, "expiring")
    actor = verify_token(store, expiring)
    with store.connect(write=True) as conn:
        conn.execute(update(AccessToken).where(AccessToken.id == made.id).values(expires_at=utcnow() - timedelta(1)))
    for use in (lambda: verify_token(store, expiring), lambda: add_note(store, run.id, "late", actor=actor)):
        with pytest.raises(tracking.PermissionDenied, match="expired on"):
            use()
    assert [t.state for t in list_tokens(store, ds)] == ["expired", "revoked"]


def test_token_management_rules(team):
    store, users = team
    ds, admin = users["data_scientist"], users["admin"]
    token, made = create_token(store, ds, "mine")
    with pytest.raises(tracking.PermissionDenied, match="signed in with your password"):
        create_token(store, verify_token(store, token), "made by a token")
    with pytest.raises(tracking.PermissionDenied, match="only admins"):
        revoke_token(store, users["engineer"], made.id)
    with pytest.raises(tracking.PermissionDenied, match="only admins"):
        list_tokens(store, ds, everyone=True)
    assert [t.user for t in list_tokens(store, admin, everyone=True)] == ["data_scientist"]
    assert revoke_token(store, admin, made.id).state == "revoked"
    with pytest.raises(tracking.ValidationError, match="365 days"):
        create_token(store, ds, "forever", days=10_000)
    assert [e.action for e in reversed(list_events(store, object_type="access_token"))] == [
        "token.create", "token.revoke",
    ]  # fmt: skip


# --- actors come from credential checks only ---------------------------------------------------------------


def test_hand_built_user_record_is_refused(team):
    store, users = team
    admin = users["admin"]
    run_id = _finished_run(store, users["data_scientist"])
    forged = [
        UserRecord(admin.id, "admin", "admin", False, admin.created_at),
        get_user(store, "admin"),  # read, not signed in
        dataclasses.replace(users["viewer"], id=admin.id, name="admin", role="admin"),
    ]
    writes = [
        lambda actor: add_note(store, run_id, "as someone else", actor=actor),
        lambda actor: replace_tags(store, run_id, {}, actor=actor),
        lambda actor: tracking.set_role(store, actor, "viewer", "admin"),
        lambda actor: tracking.reset_password(store, actor, "admin", "taken-over-pw"),
        lambda actor: start_run("team", store=store, actor=actor).__enter__(),
    ]
    for actor in forged:
        for write in writes:
            with pytest.raises(tracking.PermissionDenied, match="not issued by a sign-in or an access token"):
                write(actor)
    assert get_user(store, "viewer").role == "viewer"
    assert tracking.authenticate(store, "admin", PASSWORD).name == "admin"


# --- sweep tokens ----------------------------------------------------------------------------------------------


@pytest.mark.file_backends
def test_sweep_token_writes_only_its_own_sweep(team):
    store, users = team
    ds = users["data_scientist"]
    mine, other = create_sweep(store, IRIS, actor=ds), create_sweep(store, IRIS, actor=ds)
    scoped = verify_token(store, create_sweep_token(store, ds, mine.id))
    assert scoped.sweep_id == mine.id
    elsewhere = _running_run(store, ds, sweep_id=other.id)
    standalone = _running_run(store, ds)
    (sweep_token,) = list_tokens(store, ds)
    refused = [
        lambda: run_worker(store, other.id, actor=scoped),
        lambda: ActiveRun(store, elsewhere, scoped),
        lambda: ActiveRun(store, standalone.id, scoped),
        lambda: start_run("team", store=store, actor=scoped).__enter__(),
        lambda: tracking.cancel_sweep(store, other.id, actor=scoped),
        lambda: create_sweep_token(store, scoped, mine.id),
        lambda: revoke_token(store, scoped, sweep_token.id),
    ]
    for write in refused:
        with pytest.raises(tracking.PermissionDenied, match=f"scoped to sweep {mine.id}"):
            write()
    assert run_worker(store, mine.id, actor=scoped, max_trials=1) == 1
    (trial,) = list_runs(store, sweep_id=mine.id)
    with pytest.raises(tracking.PermissionDenied, match=f"scoped to sweep {mine.id}"):
        register_version(store, trial.id, "iris", actor=scoped)
    set_tags(store, trial.id, {"seen": "by its worker"}, actor=scoped)  # its own sweep's runs: yes
    assert run_worker(store, mine.id, actor=scoped) == 1
    assert get_sweep(store, mine.id).status == "complete"
    with pytest.raises(tracking.PermissionDenied, match="expired on"):  # the token ended with its sweep
        add_note(store, trial.id, "after the end", actor=scoped)


@pytest.mark.slow
@pytest.mark.file_backends
def test_sweep_launched_on_a_team_store_runs_its_workers_with_a_sweep_token(team, monkeypatch):
    store, users = team
    monkeypatch.setenv("TRACKING_USER", "admin")  # the launcher's own credentials never reach the workers
    monkeypatch.setenv("TRACKING_PASSWORD", PASSWORD)
    sweep = create_sweep(store, dataclasses.replace(IRIS, n_trials=3), actor=users["engineer"])
    procs = launch_workers(store, sweep.id, 2, actor=users["engineer"])
    assert all(not any(arg.startswith("trk_") for arg in proc.args) for proc in procs)  # not on the command line
    wait_until(lambda: get_sweep(store, sweep.id).status == "complete", timeout=180, what="the sweep to finish")
    assert [proc.wait(timeout=60) for proc in procs] == [0, 0]  # no worker met an ended token
    runs = list_runs(store, sweep_id=sweep.id)
    assert sorted(r.status for r in runs) == ["complete"] * 3 and {r.owner for r in runs} == {"engineer"}
    (token,) = list_tokens(store, users["engineer"])
    assert (token.sweep_id, token.state, token.last_used_at is not None) == (sweep.id, "expired", True)


# --- the CLI ------------------------------------------------------------------------------------------------


def test_cli_tokens_create_list_revoke(file_store, capsys, monkeypatch):
    make_accounts(file_store)
    monkeypatch.setenv("TRACKING_USER", "engineer")
    monkeypatch.setenv("TRACKING_PASSWORD", PASSWORD)
    code, out, err = _cli(capsys, "tokens", "create", "ci job", "--days", "2")
    token = out.strip()
    assert code == 0 and token.startswith("trk_") and "shown once" in err
    monkeypatch.delenv("TRACKING_USER")
    monkeypatch.delenv("TRACKING_PASSWORD")
    monkeypatch.setenv("TRACKING_TOKEN", token)
    code, out, err = _cli(capsys, "tokens", "create", "from a token")
    assert code == 2 and "signed in with your password" in err
    code, out, _ = _cli(capsys, "tokens", "list", "--format", "json")
    assert code == 0 and token not in out and '"name": "ci job"' in out
    token_id = list_tokens(file_store, verify_token(file_store, token))[0].id
    assert _cli(capsys, "tokens", "revoke", str(token_id))[0] == 0
    code, _, err = _cli(capsys, "tokens", "list")
    assert code == 2 and "was revoked" in err
    monkeypatch.delenv("TRACKING_TOKEN")
    code, _, err = _cli(capsys, "tokens", "list")
    assert code == 2 and "TRACKING_TOKEN" in err and os.linesep not in err.rstrip()
