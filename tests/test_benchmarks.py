"""The benchmarks measure what they say: the runs-table script signs in, and stops on a page that did not draw."""

from __future__ import annotations

import importlib.util
import sqlite3
import subprocess
import sys

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT
from tracking.runs import start_run
from tracking.store import open_store


def _bench_runs_table():
    spec = importlib.util.spec_from_file_location("bench_runs_table", ROOT / "benchmarks" / "bench_runs_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_runs_table_stops_on_the_sign_in_form():
    bench = _bench_runs_table()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/runs.py").run()  # never signed in: the store has no accounts yet
    with pytest.raises(SystemExit, match="stopped at the sign-in form"):
        bench._check_runs_page(at, ["params.p0"], 1)


@pytest.mark.slow
def test_bench_runs_table_times_the_pages_it_names():
    out = subprocess.run(
        [sys.executable, "benchmarks/bench_runs_table.py", "--runs", "300", "--points", "3000", "--repeat", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "Runs page (AppTest), warm cache" in out.stdout and "Compare page, 50 runs" in out.stdout


def test_bench_logging_variants_write_the_whole_workload(tmp_path, monkeypatch):
    """Each variant of the logging benchmark checks that it wrote every point (ours: and every run complete), so a
    fast figure cannot come from a variant that dropped work."""
    spec = importlib.util.spec_from_file_location("bench_logging", ROOT / "benchmarks" / "bench_logging.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_logging", bench)  # its dataclasses look their module up
    spec.loader.exec_module(bench)
    work = bench.Workload(runs=3, params=4, metrics=2, steps=5)
    for one_pass in (bench.bench_ours_sqlite, bench.bench_raw, bench.bench_raw_same_writes):
        wall, cpu = one_pass(work)
        assert wall > 0 and cpu >= 0
    store = open_store(f"sqlite:///{tmp_path}/short.db", home=tmp_path)
    with start_run("short", store=store) as run:
        run.log_metrics({"m0": 1.0, "m1": 2.0}, step=0)
    with pytest.raises(RuntimeError, match="expected 3 points in 1 runs, found 2 in 1"):
        bench._check_ours(store, bench.Workload(runs=1, params=0, metrics=1, steps=3))
    # The baselines run with the store's pragmas (a fair comparison): the same settings read back on both sides.
    names = [pragma.split("=")[0] for pragma in bench.STORE_PRAGMAS]
    with store.connect() as conn:
        ours = [conn.exec_driver_sql(f"PRAGMA {name}").scalar() for name in names]
    raw = sqlite3.connect(tmp_path / "raw.db")
    for pragma in bench.STORE_PRAGMAS:
        raw.execute(f"PRAGMA {pragma}")
    assert [raw.execute(f"PRAGMA {name}").fetchone()[0] for name in names] == ours
    raw.close()
