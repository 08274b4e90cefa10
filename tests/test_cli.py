"""`python -m tracking`: help, user mistakes (one line, nothing written), the runs JSON contract.

The commands run in this process through the CLI's own entry point (`tracking.cli.main`); one test runs
`python -m tracking` as a user would, to prove the real process prints one line and no traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import tracking
from tests.polling import wait_until
from tracking.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parent.parent


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `python -m tracking ARGS` in this process: (exit status, stdout, stderr)."""
    sigterm = signal.getsignal(signal.SIGTERM)  # `worker` installs its own handler; the test process keeps pytest's
    try:
        code = main(list(args))
    except SystemExit as exit_:  # argparse's way out: --help, or arguments it cannot parse
        code = exit_.code or 0
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_help_lists_every_command_and_each_has_help(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for command in COMMANDS:
        assert command in out
        code, out_command, _ = run_cli(capsys, command, "--help")
        assert code == 0 and out_command.startswith("usage: ") and f" {command}" in out_command.splitlines()[0]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A folder of broken inputs: CSVs and search-space files."""
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "latin1.csv").write_bytes("a,b\ncaf\xe9,1\nthé,0\n".encode("latin-1"))
    (tmp_path / "constant.csv").write_text("a,b\n1,1\n2,1\n3,1\n")
    (tmp_path / "ok.csv").write_text("a,b\n1,0\n2,1\n3,0\n4,1\n")
    (tmp_path / "bad.yaml").write_text("C: {type: float, low: [1\n")
    (tmp_path / "lowhigh.yaml").write_text("C: {type: float, low: 10, high: 1}\n")
    (tmp_path / "unknown.yaml").write_text("not_a_param: {type: int, low: 1, high: 3}\n")
    return tmp_path


BAD = [
    (["sweep", "--task", "nope", "--model", "knn"], "Unknown task"),
    (["sweep", "--task", "iris", "--model", "nope"], "Unknown model"),
    (["sweep", "--task", "iris", "--model", "ridge"], "does not do classification"),
    (["sweep", "--task", "iris", "--model", "knn", "--trials", "-1"], "must be at least 1"),
    (["sweep", "--task", "iris", "--model", "knn", "--trials", "many"], "not a whole number"),
    (["sweep", "--task", "iris", "--model", "knn", "--space", "{d}/missing.yaml"], "does not exist"),
    (["sweep", "--task", "iris", "--model", "knn", "--space", "{d}/bad.yaml"], "not valid YAML"),
    (["sweep", "--task", "iris", "--model", "logistic_regression", "--space", "{d}/lowhigh.yaml"], "greater than high"),
    (["sweep", "--task", "iris", "--model", "knn", "--space", "{d}/unknown.yaml"], "no such parameter"),
    (["sweep", "--task", "iris", "--model", "knn", "--sampler", "annealing"], "Unknown sampler"),
    (["sweep", "--task", "iris", "--model", "knn", "--metric", "cv_rmse"], "Unknown metric"),
    (["sweep", "--csv", "{d}/missing.csv", "--target", "b", "--model", "knn"], "does not exist"),
    (["sweep", "--csv", "{d}/empty.csv", "--target", "b", "--model", "knn"], "is empty"),
    (["sweep", "--csv", "{d}/latin1.csv", "--target", "b", "--model", "knn"], "not UTF-8"),
    (["sweep", "--csv", "{d}/ok.csv", "--target", "zzz", "--model", "knn"], "no target column"),
    (["sweep", "--csv", "{d}/ok.csv", "--target", "b", "--sensitive", "zzz", "--model", "knn"], "no sensitive column"),
    (["sweep", "--csv", "{d}/constant.csv", "--target", "b", "--model", "knn"], "only one value"),
    (["sweep", "--csv", "{d}/ok.csv", "--model", "knn"], "target column"),
    (["sweep", "--objective", "no_such_module:f", "--space", "{d}/unknown.yaml"], "Could not import"),
    (["worker", "--sweep", "999"], "no sweep 999"),
    (["show", "12345"], "no run 12345"),
    (["runs", "--store", "mysql://"], "driver that is not installed"),
    (["runs", "--filter", "metrics.test_f1_macro > and"], "Filter error at column 25"),
    (["runs", "--filter", "name = 'x'; DROP TABLE runs; --"], "Filter error at column"),
]


def _nothing_written() -> bool:
    store = tracking.open_store()
    return tracking.list_sweeps(store) == [] and tracking.list_runs(store) == []


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a[:4]) for a, _ in BAD])
def test_cli_user_mistake_exits_with_one_line_and_writes_nothing(files, capsys, argv, message):
    code, out, err = run_cli(capsys, *(arg.replace("{d}", str(files)) for arg in argv))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert message in lines[0]
    assert "Traceback" not in err + out
    assert _nothing_written()


def test_cli_process_prints_one_line_for_a_mistake_and_no_traceback():
    # The one test that starts `python -m tracking` itself: the real entry point, exit status and stderr.
    out = subprocess.run([sys.executable, "-m", "tracking", "show", "12345"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)  # fmt: skip
    assert out.returncode == 2
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "no run 12345" in lines[0], out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert _nothing_written()


@pytest.mark.slow
def test_cli_sweep_with_two_workers_logs_complete_records(capsys):
    code, out, err = run_cli(capsys, "sweep", "--task", "breast_cancer", "--model", "logistic_regression", "--trials",
                             "20", "--workers", "2", "--pruner", "none")  # fmt: skip  # every trial runs to the end, so every run has test metrics
    assert code == 0, err
    assert "20/20" in err and "best: run" in out
    sweep_id = int(out.split()[1])
    runs = json.loads(run_cli(capsys, "runs", "--sweep", str(sweep_id), "--format", "json")[1])
    assert len(runs) == 20 and sorted(r["trial_number"] for r in runs) == list(range(20))
    git_head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    store = tracking.open_store()
    for record in runs:
        assert {"id", "name", "experiment", "sweep_id", "trial_number", "status", "params", "metrics", "dataset",
                "code_version", "started_at", "finished_at"} <= set(record)  # fmt: skip
        assert record["status"] == "complete" and record["sweep_id"] == sweep_id
        assert set(record["params"]) == {"C", "class_weight"}
        assert {"test_accuracy", "test_f1_macro", "test_roc_auc", "cv_f1_macro", "fit_seconds"} <= set(
            record["metrics"]
        )
        assert record["dataset"]["name"] == "breast_cancer" and len(record["dataset"]["hash"]) == 64
        assert record["code_version"].split("+")[0] == git_head
        assert record["started_at"].endswith("Z") and record["finished_at"] > record["started_at"]
        assert tracking.load_model(store, record["id"]).predict(
            tracking.load_task("breast_cancer").X.head(2)
        ).shape == (2,)
    table = run_cli(capsys, "runs", "--sweep", str(sweep_id))[1]
    assert table.count("complete") == 20
    csv_text = run_cli(capsys, "runs", "--sweep", str(sweep_id), "--format", "csv")[1]
    assert csv_text.splitlines()[0].startswith("id,name,experiment") and len(csv_text.splitlines()) == 21
    shown = run_cli(capsys, "show", str(runs[0]["id"]))[1]
    assert "artifact model" in shown and runs[0]["dataset"]["hash"] in shown
    assert "breast_cancer" in run_cli(capsys, "datasets")[1]
    assert f"{sweep_id} " in run_cli(capsys, "sweeps")[1]


def test_cli_cancel_and_resume_detached_sweep(tmp_path, monkeypatch, capsys):
    flag = tmp_path / "slow"
    flag.touch()  # holds the first trial until the sweep is cancelled
    monkeypatch.setenv("SLOW_FLAG", str(flag))
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"x": {"type": "float", "low": -1, "high": 1}}))
    code, out, err = run_cli(capsys, "sweep", "--objective", "tests.objectives:slow_while_flag", "--space", str(space),
                             "--metric", "value:min", "--trials", "3", "--detach")  # fmt: skip
    assert code == 0, err
    sweep_id = int(out.split()[1])
    store = tracking.open_store()
    wait_until(lambda: tracking.get_sweep(store, sweep_id).counts.get("running", 0) == 1, timeout=120,
               what="the worker to start a trial")  # fmt: skip
    assert run_cli(capsys, "cancel", str(sweep_id))[0] == 0
    flag.unlink()
    wait_until(lambda: tracking.get_sweep(store, sweep_id).status == "cancelled", timeout=120,
               what="the worker to honour the cancel request")  # fmt: skip
    assert tracking.get_sweep(store, sweep_id).finished == 1  # the trial under way was kept
    code, _, err = run_cli(capsys, "resume", str(sweep_id), "--add-trials", "1")
    assert code == 0, err
    sweep = tracking.get_sweep(store, sweep_id)
    assert sweep.status == "complete" and sweep.n_trials == 4 and sweep.finished == 4
    assert run_cli(capsys, "cancel", str(sweep_id))[0] == 2  # nothing left to cancel


def test_cli_models_lists_every_family(capsys):
    code, out, _ = run_cli(capsys, "models")
    assert code == 0 and all(name in out for name in tracking.FAMILIES)


@pytest.mark.parametrize("where", ["missing/card.md", "."], ids=["missing folder", "a folder"])
def test_cli_card_output_that_cannot_be_written_is_one_sentence(served, capsys, tmp_path, where):
    code, _, err = run_cli(capsys, "registry", "card", "loan", "1", "--output", str(tmp_path / where))
    assert code != 0 and "Traceback" not in err
    assert (
        err.startswith("error: The model card cannot be written to ")
        and err.strip().endswith(".")
        and len(err.strip().splitlines()) == 1
    ), err
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize(
    "args",
    [["show", "99999999999999999999999"], ["show", "abc"], ["resume", "9" * 5000], ["registry", "card", "loan", "-1"]],
    ids=["huge run", "word", "5,000 digits", "negative version"],
)
def test_cli_a_bad_id_is_one_line(capsys, args):
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "Traceback" not in err and "is not an id: an id is a whole number from 1 to" in err
