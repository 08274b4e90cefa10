"""Sweeps on a Dask cluster: a real `distributed.LocalCluster` whose worker processes know only what the tasks
carry (the tracking server's address and a sweep token): no store URL, no credentials, an empty home."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

import tracking
from tests.e2e import free_port, tracking_server
from tests.governance import PASSWORD, make_accounts
from tests.pages import button, shown_text, signed_in_app, tiny_sweep_form
from tests.polling import wait_until
from tracking.cli._main import main
from tracking.governance._access import authenticate
from tracking.store import Run, Worker
from tracking.sweeps import (
    SweepSpec,
    cancel_sweep,
    create_sweep,
    get_sweep,
    launch_dask_workers,
    load_study,
    start_workers,
)

X_SPACE = {"x": {"type": "float", "low": -5.0, "high": 5.0}}
IRIS = ["--task", "iris", "--model", "knn", "--sampler", "random", "--pruner", "none", "--folds", "2"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """A LocalCluster of two worker processes (one thread each) with an empty home and no store settings:
    (scheduler address, their home, the flag file that holds a slow trial)."""
    import distributed

    folder = tmp_path_factory.mktemp("dask")
    home, flag = folder / "worker-home", folder / "slow.flag"
    home.mkdir()
    blank = ("TRACKING_STORE_URL", "TRACKING_STORE_ANCHOR", "TRACKING_TOKEN", "TRACKING_SERVER_URL", "TRACKING_USER",
             "TRACKING_PASSWORD", "TRACKING_DASK_SCHEDULER")  # fmt: skip
    env = {name: "" for name in blank} | {"TRACKING_HOME": str(home), "SLOW_FLAG": str(flag), "OMP_NUM_THREADS": "1"}
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, env=env,
                                  dashboard_address=None) as local:  # fmt: skip
        yield local.scheduler_address, home, flag


@pytest.fixture
def team(file_store, cluster, monkeypatch):
    """A store with accounts behind a tracking server, and the cluster: (store, users, server URL, scheduler)."""
    users = make_accounts(file_store)
    monkeypatch.setenv("TRACKING_USER", "engineer")
    monkeypatch.setenv("TRACKING_PASSWORD", PASSWORD)
    with tracking_server(file_store) as url:
        yield file_store, users, url, cluster[0]
    cluster[2].unlink(missing_ok=True)


def _runs(store, sweep_id):
    return tracking.list_runs(store, sweep_id=sweep_id)


def _running(store, sweep_id, n):
    return wait_until(lambda: len([r for r in _runs(store, sweep_id) if r.status == "running"]) >= n,
                      timeout=120, what=f"{n} trial(s) running on the Dask workers")  # fmt: skip


def _settled(store, sweep_id, status):
    wait_until(lambda: get_sweep(store, sweep_id).status == status, timeout=180, what=f"the sweep to end {status}")
    return sorted(r.status for r in _runs(store, sweep_id))


def _slow_sweep(store, users, n):
    spec = SweepSpec(objective="tests.objectives:slow_while_flag", space=X_SPACE, metrics=["value:min"], n_trials=n)
    return create_sweep(store, spec, actor=users["engineer"])


@pytest.mark.slow
def test_dask_sweep_from_the_cli_finishes_exactly_n_trials_without_a_store(team, cluster, capsys):
    store, _, url, scheduler = team
    code = main(["sweep", *IRIS, "--trials", "6", "--workers", "2", "--store", store.url,
                 "--executor", "dask", "--scheduler", scheduler, "--server", url])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "2 worker task(s) submitted to the Dask cluster" in out and "complete: 6/6 trials finished" in out
    sweep = tracking.list_sweeps(store)[0]
    runs = _runs(store, sweep.id)
    assert sorted(r.status for r in runs) == ["complete"] * 6
    assert sorted(r.trial_number for r in runs) == list(range(6))
    assert all(r.owner == "engineer" and r.metrics.get("cv_f1_macro") is not None for r in runs)
    assert sorted(t.state.name for t in load_study(store, sweep.id).trials) == ["COMPLETE"] * 6
    assert get_sweep(store, sweep.id).status == "complete"
    # where they ran, for the sweep page to offer again
    assert get_sweep(store, sweep.id).workers_at == {"executor": "dask", "scheduler": scheduler, "server_url": url}
    assert list(cluster[1].iterdir()) == []  # the workers opened no store of their own and left nothing
    assert _worker_pids(store, sweep.id) <= _dask_pids(cluster[0])  # every trial ran in a Dask worker process


@pytest.mark.slow
def test_dask_cancel_stops_after_the_current_trial_and_resume_starts_new_tasks(team, cluster, capsys):
    store, users, url, scheduler = team
    flag = cluster[2]
    flag.touch()
    sweep = _slow_sweep(store, users, 5)
    launch_dask_workers(store, sweep.id, 2, scheduler, url, actor=users["engineer"])
    _running(store, sweep.id, 2)
    cancel_sweep(store, sweep.id, actor=users["engineer"])
    flag.unlink()  # the two trials under way finish; no worker starts another
    assert _settled(store, sweep.id, "cancelled") == ["complete", "complete"]
    code = main(["resume", str(sweep.id), "--workers", "2", "--store", store.url, "--executor", "dask",
                 "--scheduler", scheduler, "--server", url])  # fmt: skip
    assert code == 0, capsys.readouterr()
    assert _settled(store, sweep.id, "complete") == ["complete"] * 5
    assert sorted(r.trial_number for r in _runs(store, sweep.id)) == list(range(5))


@pytest.mark.slow
def test_dask_stop_now_interrupts_the_running_trials_and_the_workers_live_on(team, cluster):
    store, users, url, scheduler = team
    cluster[2].touch()
    sweep = _slow_sweep(store, users, 4)
    start_workers(store, sweep.id, 2, actor=users["engineer"], executor="dask", scheduler=scheduler, server_url=url)
    _running(store, sweep.id, 2)
    cancel_sweep(store, sweep.id, now=True, actor=users["engineer"])
    assert _settled(store, sweep.id, "cancelled") == ["killed", "killed"]  # the flag is still there
    # interrupted in the task's own thread by the heartbeat's answer, not ended later for missed beats
    assert all("interrupted during this trial" in (r.error or "") for r in _runs(store, sweep.id))
    assert sorted(t.state.name for t in load_study(store, sweep.id).trials) == ["FAIL", "FAIL"]
    import distributed

    with distributed.Client(scheduler, set_as_default=False) as client:
        assert len(client.scheduler_info()["workers"]) == 2  # the Dask worker processes were not interrupted
        assert sorted(client.run(lambda: 1 + 1).values()) == [2, 2]


@pytest.mark.slow
def test_dask_a_killed_worker_process_trial_is_recovered_and_the_sweep_ends_at_n(team, cluster):
    store, users, url, scheduler = team
    cluster[2].touch()
    sweep = _slow_sweep(store, users, 4)
    launch_dask_workers(store, sweep.id, 2, scheduler, url, actor=users["engineer"])
    _running(store, sweep.id, 2)
    victim = next(r for r in _runs(store, sweep.id) if r.status == "running")
    with store.connect() as conn:
        pid = conn.execute(select(Worker.pid).join(Run, Run.worker_id == Worker.id).where(Run.id == victim.id)).scalar()
    os.kill(pid, signal.SIGKILL)  # the Dask worker process running that trial dies; its nanny starts another
    cluster[2].unlink()
    statuses = _settled(store, sweep.id, "complete")
    assert len(statuses) == 4 and statuses.count("killed") == 1 and statuses.count("complete") == 3
    assert {r.id: r.status for r in _runs(store, sweep.id)}[victim.id] == "killed"
    assert sorted(t.state.name for t in load_study(store, sweep.id).trials) == ["COMPLETE"] * 3 + ["FAIL"]


def test_dask_unreachable_scheduler_is_one_clear_sentence(team, capsys):
    store, users, url, _ = team
    sweep = create_sweep(store, SweepSpec(model="knn", task="iris", n_trials=2), actor=users["engineer"])
    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(tracking.ValidationError, match=r"^Could not reach the Dask scheduler at 'tcp://127\.0\.0\.1:"):
        launch_dask_workers(store, sweep.id, 1, address, url, actor=users["engineer"], connect_seconds=1)
    assert _runs(store, sweep.id) == [] and get_sweep(store, sweep.id).status == "pending"
    code = main(["resume", str(sweep.id), "--store", store.url, "--executor", "dask", "--scheduler", "nonsense://x",
                 "--server", url])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: Could not reach the Dask scheduler at 'nonsense://x'"), err
    assert len(err.splitlines()) == 1


def test_dask_scheduler_without_the_package_is_one_clear_sentence_not_a_silent_wait(team, tmp_path):
    """A scheduler started where this package is not importable drops the tasks it cannot unpickle, saying so only
    in its own log: the launch says it, and the sweep waits to be resumed."""
    store, users, url, _ = team
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # run from tmp_path: `tracking` not importable
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--no-dashboard"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        sweep = create_sweep(store, SweepSpec(model="knn", task="iris", n_trials=2), actor=users["engineer"])
        with pytest.raises(tracking.ValidationError, match=r"could not unpickle the sweep's worker tasks: the sched"):
            launch_dask_workers(store, sweep.id, 1, f"tcp://127.0.0.1:{port}", url, actor=users["engineer"],
                                connect_seconds=60, accept_seconds=60)  # fmt: skip
        assert _runs(store, sweep.id) == [] and get_sweep(store, sweep.id).status == "pending"
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=30)


def test_dask_missing_server_url_or_scheduler_is_one_clear_sentence(team, capsys, monkeypatch):
    store, users, _, scheduler = team
    monkeypatch.delenv("TRACKING_SERVER_URL", raising=False)
    code = main(["sweep", *IRIS, "--trials", "2", "--store", store.url, "--executor", "dask", "--scheduler", scheduler])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == (
        "error: Workers on a Dask cluster log through a tracking server: give its address (--server, or set "
        "TRACKING_SERVER_URL), e.g. http://tracking.internal:8765."
    )
    assert tracking.list_sweeps(store) == []  # refused before the sweep was made
    sweep = create_sweep(store, SweepSpec(model="knn", task="iris", n_trials=2), actor=users["engineer"])
    with pytest.raises(tracking.ValidationError, match=r"^Give the Dask scheduler's address"):
        start_workers(store, sweep.id, 1, actor=users["engineer"], executor="dask", server_url="http://x:1")
    with pytest.raises(tracking.ValidationError, match=r"^Run workers as local or dask, not 'ray'"):
        start_workers(store, sweep.id, 1, actor=users["engineer"], executor="ray")
    with pytest.raises(tracking.PermissionDenied):
        start_workers(store, sweep.id, 1, actor=users["viewer"], executor="dask", scheduler=scheduler,
                      server_url="http://x:1")  # fmt: skip
    assert _runs(store, sweep.id) == []


def _dask_pids(scheduler: str) -> set[int]:
    import distributed

    with distributed.Client(scheduler, set_as_default=False) as client:
        return set(client.run(os.getpid).values())


def _worker_pids(store, sweep_id) -> set[int]:
    with store.connect() as conn:
        return set(
            conn.execute(
                select(Worker.pid).join(Run, Run.worker_id == Worker.id).where(Run.sweep_id == sweep_id)
            ).scalars()
        )


def _form(at):
    return tiny_sweep_form(at, workers=2).run()


@pytest.mark.slow
def test_dask_pages_launch_form_runs_the_workers_on_the_cluster(cluster, monkeypatch):
    at = signed_in_app(timeout=90).switch_page("pages/sweeps.py").run()
    assert at.radio(key="executor").value == "local"  # the default: local processes, no address asked
    assert not [t for t in at.text_input if t.label in ("Dask scheduler", "Tracking server URL")]
    store = tracking.open_store()
    with tracking_server(store) as url:
        monkeypatch.setenv("TRACKING_SERVER_URL", url)  # prefill the form's two fields
        monkeypatch.setenv("TRACKING_DASK_SCHEDULER", cluster[0])
        at = _form(at)
        at.radio(key="executor").set_value("dask").run()
        assert at.text_input(key="executor_scheduler").value == cluster[0]
        assert at.text_input(key="executor_server").value == url
        at.button(key="launch").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        (sweep,) = tracking.list_sweeps(store)
        wait_until(lambda: tracking.get_sweep(store, sweep.id).status == "complete", 180, "the sweep to complete")
        runs = tracking.list_runs(store, sweep_id=sweep.id)
        assert sorted(r.status for r in runs) == ["complete"] * 3 and {r.owner for r in runs} == {"data_scientist"}
        assert _worker_pids(store, sweep.id) <= _dask_pids(cluster[0])  # every trial ran in a Dask worker process


def test_dask_pages_launch_form_without_a_server_url_says_so_and_makes_no_sweep(cluster, monkeypatch):
    monkeypatch.delenv("TRACKING_SERVER_URL", raising=False)
    at = _form(signed_in_app(timeout=90).switch_page("pages/sweeps.py").run())
    at.radio(key="executor").set_value("dask").run()
    at.text_input(key="executor_scheduler").set_value(cluster[0]).run()
    assert at.text_input(key="executor_server").value == ""
    at.button(key="launch").click().run()
    assert not at.exception
    assert [shown_text(e.value) for e in at.error] == [
        "Workers on a Dask cluster log through a tracking server: give its address (--server, or set "
        "TRACKING_SERVER_URL), e.g. http://tracking.internal:8765."
    ]
    assert tracking.list_sweeps(tracking.open_store()) == []


@pytest.mark.slow
def test_dask_pages_resume_on_the_cluster_from_the_detail_page(cluster, monkeypatch):
    at = signed_in_app(timeout=90)  # makes the accounts
    store = tracking.open_store()
    user = authenticate(store, "data_scientist", PASSWORD)
    sweep = create_sweep(store, SweepSpec(model="knn", task="iris", n_trials=2, folds=2, pruner="none"), actor=user)
    cancel_sweep(store, sweep.id, actor=user)  # never started: cancelled at once, resumable
    with tracking_server(store) as url:
        monkeypatch.setenv("TRACKING_SERVER_URL", url)
        at.query_params["id"] = str(sweep.id)
        at = at.switch_page("pages/sweep.py").run()
        at.radio(key="resume_executor").set_value("dask").run()
        at.text_input(key="resume_executor_scheduler").set_value(cluster[0]).run()
        {n.label: n for n in at.number_input}["Workers"].set_value(1).run()
        button(at, "Resume").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        wait_until(lambda: tracking.get_sweep(store, sweep.id).status == "complete", 180, "the sweep to complete")
        assert sorted(r.status for r in tracking.list_runs(store, sweep_id=sweep.id)) == ["complete"] * 2
        assert _worker_pids(store, sweep.id) <= _dask_pids(cluster[0])


@pytest.mark.slow
def test_dask_cli_watch_ends_and_says_why_when_the_tasks_fail(team, capsys):
    store, _, url, scheduler = team
    code = main(["sweep", *IRIS, "--trials", "2", "--workers", "2", "--store", store.url, "--executor", "dask",
                 "--scheduler", scheduler, "--server", f"{url}/no-such-prefix"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured
    assert "warning: worker task(s) on the Dask cluster failed: tracking-sweep-1-" in captured.err, captured.err
    assert captured.err.count("tracking-sweep-1-") == 2, captured.err  # both tasks, each with its error
    assert "sweep 1 pending: 0/2 trials finished" in captured.out
