"""What one chart costs the browser: a page without a chart, with a Plotly chart, with a Vega-Lite (Altair) chart.

A chart page's browser work is mostly the chart library's own script, loaded and compiled on a cold cache.
This script serves a one-file Streamlit app (written to a temporary folder) that draws the same chart as the
sweep page's optimisation history (140 trial values as points, the best so far as a line) with either
library, and opens each variant in turn in fresh Chromium contexts (no cache), the first round not counted.
It prints the median wall clock from navigation to the chart drawn and the browser's CPU seconds.

    python benchmarks/bench_chart_library.py            # 3 rounds
    python benchmarks/bench_chart_library.py --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

APP = """
import random
import streamlit as st

random.seed(0)
xs = list(range(140))
ys = [random.random() for _ in xs]
best = [max(ys[: i + 1]) for i in range(len(ys))]
st.title("One chart")
if st.query_params.get("lib") == "plotly":
    import plotly.graph_objects as go

    st.plotly_chart(go.Figure([go.Scatter(x=xs, y=ys, mode="markers"), go.Scatter(x=xs, y=best)]))
elif st.query_params.get("lib") == "vega":
    import altair as alt
    import pandas as pd

    base = alt.Chart(pd.DataFrame({"trial": xs, "value": ys, "best": best})).encode(x="trial")
    st.altair_chart(base.mark_point().encode(y="value") + base.mark_line().encode(y="best"))
else:
    st.write("No chart.")
"""

DRAWN = """(lib) => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
    if (lib === 'plotly') return !!document.querySelector('.js-plotly-plot .main-svg');
    if (lib === 'vega') return !!document.querySelector('[data-testid="stVegaLiteChart"] svg.marks');
    return document.body.innerText.includes('No chart.');
}"""


def main(argv: list[str] | None = None) -> int:
    from bench_pages_browser import VIEWPORT, WAIT_MS, _cpu_by_role

    from tests.e2e import chromium, free_port, wait_for_http

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="counted rounds of the three variants (3)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-chart-") as folder:
        (Path(folder) / "app.py").write_text(APP)
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
             str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(proc, f"{url}/_stcore/health", "streamlit", timeout=WAIT_MS / 1000, every=0.2)
            seen: dict[str, list[tuple[float, float]]] = {"none": [], "plotly": [], "vega": []}
            with chromium() as browser:
                for round_ in range(args.rounds + 1):  # round 0 warms the server
                    for lib, rows in seen.items():
                        context = browser.new_context(viewport=VIEWPORT)
                        page = context.new_page()
                        cpu, start = _cpu_by_role()[1], time.perf_counter()
                        page.goto(f"{url}/?lib={lib}")
                        page.wait_for_function(DRAWN, arg=lib, timeout=WAIT_MS, polling="raf")
                        if round_:
                            rows.append((time.perf_counter() - start, _cpu_by_role()[1] - cpu))
                        context.close()
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    print(f"One chart in a cold browser (median of {args.rounds}): wall clock, browser CPU")
    names = {"none": "no chart (the page)", "plotly": "Plotly", "vega": "Vega-Lite (Altair)"}
    for lib, rows in seen.items():
        wall, cpu = (statistics.median(column) for column in zip(*rows, strict=True))
        print(f"  {names[lib]:22s} {wall:5.2f} s  cpu {cpu:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
