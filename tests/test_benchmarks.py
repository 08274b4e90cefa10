"""The benchmarks measure what they say: the runs-table script signs in, and stops on a page that did not draw."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT


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
