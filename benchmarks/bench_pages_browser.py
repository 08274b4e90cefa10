"""Chart pages in a real browser: from navigation to the last chart drawn, with a cold server.

Chromium (Debian's, driven by Playwright) opens the dashboard started the way users start it
(`streamlit run app.py`), signs in through the form, then navigates to the page and waits until every
chart the page draws is plotted (a Plotly chart laid out with its SVG, a Vega-Lite chart with its marks) or its table shows, and the
app's script has finished. Each measurement starts a fresh server process, so the server's caches are
cold; `warm` is the same address opened again on that server.

What is measured (targets on the project's 2-core machine):

- a sweep page of a real 200-trial sweep (knn on iris, TPE, 2-fold CV, through `run_worker`): its
  default view (the optimisation history) and the parameter importances (fANOVA over the trials,
  with Optuna's study loaded from the store) — under 2 s;
- the Compare page of 10 runs with metric histories (logged with `tracking.start_run`, 3 metrics x
  500 steps each), on its Charts tab (it draws one chart at a time: the metric histories) — under 2 s;
- the Runs page of 100,000 runs (bulk-filled like `bench_runs_table.py`): the first page of the table
  and the count of matching runs — under 1.5 s.

Every figure is printed only after the page was checked to show what it claims (the sweep's 200
finished trials and its charts, the 10 compared runs and their history lines, the 100,000 runs), else the
script exits non-zero with one sentence.

Run from the repository root with the project's venv:

    python benchmarks/bench_pages_browser.py                       # the three pages, best of 3
    python benchmarks/bench_pages_browser.py --runs 10000 --repeat 1
    python benchmarks/bench_pages_browser.py --home /tmp/bench-pages --keep   # fill once, then reuse
    python benchmarks/bench_pages_browser.py --only runs --runs-store sqlite:////tmp/bench-1m/tracking.db
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ACCOUNT, PASSWORD = "bench", "bench-password-1"
SWEEP_TRIALS = 200
COMPARED, HISTORY_KEYS, HISTORY_STEPS = 10, ("loss", "val_loss", "accuracy"), 500
VIEWPORT = {"width": 1400, "height": 1000}
WAIT_MS = 180_000  # a bound against hangs, not a pause


@dataclass
class Target:
    """One page to time: its address, what it must show, and the target."""

    label: str
    address: str  # path and query, after the server's base URL
    charts: int  # charts the page draws, Plotly or Vega-Lite (0: a table page)
    target: float | None
    check: Callable[[Any], None]  # raises WrongPage when the page does not show what the figure claims
    shows: str = ""  # a page without charts or table: drawn once this text shows and its script has finished
    by_address: bool = False  # opened signed out as the server's first page, timed from the click on "Sign in"


class WrongPage(SystemExit):
    """A timed page that did not draw what the figure claims: exit non-zero with one sentence."""


# -- filling -----------------------------------------------------------------------------------------


def fill_charts_store(home: Path) -> tuple[int, list[int]]:
    """A real 200-trial sweep and 10 runs with histories in a new SQLite store; returns (sweep id, run ids)."""
    import tracking
    from tracking.sweeps import SweepSpec

    store = tracking.open_store(f"sqlite:///{home / 'tracking.db'}", home=home)
    spec = SweepSpec(model="knn", task="iris", n_trials=SWEEP_TRIALS, folds=2, sampler="tpe", name="bench-200",
                     experiment="bench")  # fmt: skip
    sweep = tracking.create_sweep(store, spec)
    start = time.perf_counter()
    tracking.run_worker(store, sweep.id)
    print(
        f"  sweep of {SWEEP_TRIALS} trials (knn on iris, run_worker): {time.perf_counter() - start:.1f} s", flush=True
    )
    ids = []
    start = time.perf_counter()
    for i in range(COMPARED):
        params = {"lr": round(0.01 * (i + 1), 3), "depth": 2 + i % 5, "optimizer": ("adam", "sgd")[i % 2]}
        with tracking.start_run("bench-compare", params=params, store=store, name=f"candidate-{i}") as run:
            for step in range(HISTORY_STEPS):
                decay = 1 / (1 + step * (0.01 + i / 1000))
                run.log_metrics(
                    {"loss": decay, "val_loss": decay * 1.1 + i / 100, "accuracy": 1 - decay / 2}, step=step
                )
            run.log_metrics({"test_accuracy": 0.78 + i / 500, "fit_seconds": 1_500_000 + i * 20_000})
        ids.append(run.id)
    print(
        f"  {COMPARED} runs x {len(HISTORY_KEYS)} metrics x {HISTORY_STEPS} steps: {time.perf_counter() - start:.1f} s"
    )
    make_account(store)
    store.dispose()
    return sweep.id, ids


def fill_runs_store(home: Path, n_runs: int) -> None:
    """`n_runs` runs with the bulk paths of bench_runs_table.py (its fill writes ids from 1, so a store of its own)."""
    import tracking

    bench = _bench_runs_table()
    bench.fill(f"sqlite:///{home / 'tracking.db'}", home, n_runs, 0, 20, 10)
    store = tracking.open_store(f"sqlite:///{home / 'tracking.db'}", home=home)
    make_account(store)
    store.dispose()


def _bench_runs_table() -> Any:
    spec = importlib.util.spec_from_file_location("bench_runs_table", ROOT / "benchmarks" / "bench_runs_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_account(store: Any) -> None:
    """The account the browser signs in as (the store's first admin), made after the filling."""
    from tracking.governance import create_user, has_accounts

    if not has_accounts(store):
        create_user(store, None, ACCOUNT, "admin", PASSWORD)


def charts_store_ids(home: Path) -> tuple[int, list[int]] | None:
    """The sweep and compared runs of a store filled before (`--keep`), or None when it is not filled."""
    import tracking

    if not (home / "tracking.db").exists():
        return None
    store = tracking.open_store(f"sqlite:///{home / 'tracking.db'}", home=home)
    try:
        sweeps = [s for s in tracking.list_sweeps(store) if s.name == "bench-200" and s.status == "complete"]
        runs = tracking.list_runs(store, filter='experiment = "bench-compare"', newest_first=False)
        if not sweeps or len(runs) != COMPARED:
            return None
        return sweeps[0].id, [r.id for r in runs]
    finally:
        store.dispose()


# -- measuring ---------------------------------------------------------------------------------------


def _charts_drawn(page: Any, count: int) -> None:
    """Wait until `count` charts are drawn and the app's script has finished: a Plotly chart laid out with its SVG,
    a Vega-Lite (Altair) chart with its marks drawn (`.vega-embed` holding its SVG or canvas)."""
    page.wait_for_function(
        """(count) => {
            const app = document.querySelector('[data-testid="stApp"]');
            const plotly = [...document.querySelectorAll('.js-plotly-plot')];
            const vega = [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')];
            return app && app.getAttribute('data-test-script-state') === 'notRunning'
                && plotly.length + vega.length === count
                && plotly.every((c) => c._fullLayout && c.querySelector('.main-svg'))
                && vega.every((c) => c.querySelector('.vega-embed svg.marks, .vega-embed canvas'));
        }""",
        arg=count,
        timeout=WAIT_MS,
        polling="raf",
    )


def _table_drawn(page: Any) -> None:
    page.wait_for_function(
        """() => {
            const app = document.querySelector('[data-testid="stApp"]');
            return app && app.getAttribute('data-test-script-state') === 'notRunning'
                && document.querySelector('[data-testid="stDataFrame"] canvas')
                && /of [0-9,]+ matching/.test(document.querySelector('[data-testid="stMain"]').innerText);
        }""",
        timeout=WAIT_MS,
        polling="raf",
    )


@dataclass
class Timing:
    """One navigation: wall-clock seconds, and the CPU seconds the server and the browser spent on it."""

    wall: float
    server_cpu: float
    browser_cpu: float


def time_page(home: Path, target: Target, store_url: str | None = None) -> tuple[Timing, Timing]:
    """(cold, warm) timings from navigation to the page drawn, on a fresh server signed in through the form.

    A target `by_address` is opened signed out, as the server's first page: the cold figure runs from the
    click on "Sign in" on its form to the page drawn (a link followed by someone not signed in yet)."""
    from tests.e2e import chromium, open_app, sign_in, streamlit_server

    env = {"TRACKING_HOME": str(home), **({"TRACKING_STORE_URL": store_url} if store_url else {})}
    with streamlit_server(env=env) as url, chromium() as browser:
        context = browser.new_context(viewport=VIEWPORT)
        page = open_app(context, f"{url}/{target.address}" if target.by_address else url)
        if target.by_address:
            page.get_by_label("Account name").fill(ACCOUNT)
            page.get_by_label("Password", exact=True).fill(PASSWORD)
        else:
            sign_in(page, ACCOUNT, PASSWORD)
        timings = []
        for visit in range(2):  # the first visit of this server process, then the same address again
            cpu = _cpu_by_role()
            start = time.perf_counter()
            if visit == 0 and target.by_address:
                page.get_by_role("button", name="Sign in").click()
            else:
                page.goto(f"{url}/{target.address}")
            _charts_drawn(page, target.charts) if target.charts or target.shows else _table_drawn(page)
            if target.shows:
                page.get_by_text(target.shows).first.wait_for(timeout=WAIT_MS)
            wall = time.perf_counter() - start
            after = _cpu_by_role()
            timings.append(Timing(wall, after[0] - cpu[0], after[1] - cpu[1]))
            target.check(page)
        context.close()
        return timings[0], timings[1]


def _cpu_by_role() -> tuple[float, float]:
    """CPU seconds used so far by this script's descendants: (the streamlit server, the browser and its driver).

    On a machine other work shares, wall-clock time says how long a person waited; the CPU time says how much
    work the page was, whatever else ran beside it."""
    ticks = os.sysconf("SC_CLK_TCK")
    table: dict[int, tuple[int, float, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            command = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
        except OSError:  # the process ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks, command)
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(pid)
    server = browser = 0.0
    todo = [(pid, None) for pid in children.get(os.getpid(), [])]
    while todo:
        pid, role = todo.pop()
        role = role or ("server" if "streamlit" in table[pid][2] else "browser")
        if role == "server":
            server += table[pid][1]
        else:
            browser += table[pid][1]
        todo.extend((child, role) for child in children.get(pid, []))
    return server, browser


def _main_text(page: Any) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


def _chart_data(page: Any) -> list[list[dict[str, Any]]]:
    """Each drawn chart's traces: their type, name and number of points. A Vega-Lite chart's are read from its
    SVG: one trace of points per layer of symbols (a path each; legends' left out), one trace per drawn line (its
    path's vertices)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('.js-plotly-plot, [data-testid="stVegaLiteChart"]')].map((c) => {
            if (c.classList.contains('js-plotly-plot')) {
                return c.data.map((t) => ({ type: t.type, name: t.name, n: (t.x || t.dimensions || []).length }));
            }
            const traces = [];
            for (const group of c.querySelectorAll('svg.marks g.mark-symbol.role-mark')) {
                traces.push({ type: 'points', name: group.getAttribute('class'), n: group.querySelectorAll('path').length });
            }
            for (const line of c.querySelectorAll('svg.marks g.mark-line.role-mark path')) {
                traces.push({ type: 'line', name: line.getAttribute('aria-label') || '',
                              n: ((line.getAttribute('d') || '').match(/[ML]/g) || []).length });
            }
            return traces;
        })"""
    )


def sweep_check(sweep_id: int, complete: int, chart: str) -> Callable[[Any], None]:
    def check(page: Any) -> None:
        page.get_by_text(f"{SWEEP_TRIALS} / {SWEEP_TRIALS} trials finished").first.wait_for(timeout=WAIT_MS)
        text = _main_text(page)
        if f"Sweep {sweep_id}" not in text or f"{SWEEP_TRIALS} / {SWEEP_TRIALS} trials finished" not in text:
            raise WrongPage(
                f"the sweep page did not show sweep {sweep_id} with its {SWEEP_TRIALS} finished trials; it showed: "
                f"{' '.join(text.split())[:400]!r}"
            )
        charts = _chart_data(page)
        if not chart:
            return
        if chart == "history":  # the optimisation history: one point per complete trial (pruned ones have none)
            points = charts[0][0]["n"] if charts and charts[0] else 0
            if points != complete:
                raise WrongPage(
                    f"the sweep page's history has {points} points, not the sweep's {complete} complete trials."
                )
        elif not (charts and charts[0] and charts[0][0]["type"] == "bar" and charts[0][0]["n"] == 3):
            raise WrongPage("the importances chart does not rank the sweep's 3 parameters.")

    return check


def compare_check(ids: list[int], with_history: bool = True) -> Callable[[Any], None]:
    def check(page: Any) -> None:
        if f"{len(ids)} runs" not in _main_text(page):
            raise WrongPage(f"the Compare page did not draw the comparison of {len(ids)} runs.")
        if not with_history:
            return
        history = _chart_data(page)[0]
        if len(history) != len(ids) or any(trace["n"] != HISTORY_STEPS for trace in history):
            raise WrongPage(
                f"the Compare page's history chart does not draw {len(ids)} runs of {HISTORY_STEPS} steps: {history}"
            )

    return check


def runs_check(total: int) -> Callable[[Any], None]:
    def check(page: Any) -> None:
        if f"of {total:,} matching" not in _main_text(page):
            raise WrongPage(f"the Runs page does not say 'of {total:,} matching'.")

    return check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000, help="runs in the Runs page's store (100,000)")
    parser.add_argument("--repeat", type=int, default=3, help="fresh servers per page; the best is reported (3)")
    parser.add_argument("--home", type=Path, help="a folder for the two stores (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep --home afterwards (reused when already filled)")
    parser.add_argument("--runs-store", help="time the Runs page on this filled store (a SQLite or PostgreSQL URL, "
                        "e.g. bench_million.py's) instead of filling one")  # fmt: skip
    parser.add_argument("--only", choices=("sweep", "compare", "runs"), action="append", help="time only these pages")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.runs < 1:
        parser.error("--repeat and --runs must be at least 1")
    home = (args.home or Path(tempfile.mkdtemp(prefix="bench-pages-"))).resolve()
    charts_home, runs_home = home / "charts", home / "runs"
    only = set(args.only or ("sweep", "compare", "runs"))
    os.environ.pop("TRACKING_STORE_URL", None)
    try:
        print(f"Filling the stores in {home}", flush=True)
        charts_home.mkdir(parents=True, exist_ok=True)
        found = charts_store_ids(charts_home) if only & {"sweep", "compare"} else (0, [])
        if found is None:
            shutil.rmtree(charts_home)
            charts_home.mkdir(parents=True)
            found = fill_charts_store(charts_home)
        sweep_id, ids = found
        runs_url = args.runs_store or f"sqlite:///{runs_home / 'tracking.db'}"
        if args.runs_store:
            runs_home.mkdir(parents=True, exist_ok=True)
            _signed_in_account(runs_url, runs_home)
        elif "runs" in only and not (runs_home / "tracking.db").exists():
            runs_home.mkdir(parents=True, exist_ok=True)
            fill_runs_store(runs_home, args.runs)
        targets: list[tuple[Path, Target]] = []
        if "sweep" in only:
            complete = _complete_trials(charts_home, sweep_id)
            finished = f"{SWEEP_TRIALS} / {SWEEP_TRIALS} trials finished"  # the progress bar: drawn last, timed too
            targets += [
                (charts_home, Target(f"sweep page, {SWEEP_TRIALS} trials: Settings tab, no chart (the page without charts)",
                                     f"sweep?id={sweep_id}&view=Settings", 0, None, sweep_check(sweep_id, complete, ""),
                                     shows="Search space")),
                (charts_home, Target(f"sweep page, {SWEEP_TRIALS} trials: optimisation history",
                                     f"sweep?id={sweep_id}", 1, 2.0, sweep_check(sweep_id, complete, "history"),
                                     shows=finished)),
                (charts_home, Target(f"sweep page, {SWEEP_TRIALS} trials: optimisation history, by address (from Sign in)",
                                     f"sweep?id={sweep_id}", 1, 2.0, sweep_check(sweep_id, complete, "history"),
                                     shows=finished, by_address=True)),
                (charts_home, Target(f"sweep page, {SWEEP_TRIALS} trials: parameter importances",
                                     f"sweep?id={sweep_id}&chart=Parameter+importances", 1, 2.0,
                                     sweep_check(sweep_id, complete, "Parameter importances"), shows=finished)),
            ]  # fmt: skip
        if "compare" in only:
            targets.append((charts_home, Target(
                f"compare page, {len(ids)} runs: first tab (side by side, no chart)",
                f"compare?runs={','.join(map(str, ids))}", 0, 2.0, compare_check(ids, with_history=False),
                shows="Show only differences")))  # fmt: skip
            targets.append((charts_home, Target(
                f"compare page, {len(ids)} runs with histories: Charts tab",
                f"compare?runs={','.join(map(str, ids))}&history=loss&tab=Charts", 1, 2.0, compare_check(ids))))  # fmt: skip
        if "runs" in only:
            total = _count_runs(runs_url, runs_home)
            targets.append((runs_home, Target(f"runs page, {total:,} runs", "runs", 0, 1.5, runs_check(total))))
        print(f"\nNavigation to the last chart drawn, fresh server each time (best of {args.repeat}):", flush=True)
        print("  (wall clock: navigation to the last chart drawn; cpu: seconds of the server / the browser on it)")
        for store_home, target in targets:
            cold, warm = [], []
            for _ in range(args.repeat):
                first, again = time_page(store_home, target, args.runs_store if store_home == runs_home else None)
                cold.append(first)
                warm.append(again)
            best, worst = min(cold, key=lambda t: t.wall), max(t.wall for t in cold)
            warm_best = min(warm, key=lambda t: t.wall)
            verdict = (
                "(reference)" if target.target is None
                else "ok" if best.wall < target.target else f"OVER the {target.target} s target"
            )  # fmt: skip
            print(f"  {target.label}\n    cold {best.wall:6.2f} s (worst {worst:5.2f}, cpu {best.server_cpu:.2f} / "
                  f"{best.browser_cpu:.2f})  warm {warm_best.wall:5.2f} s (cpu {warm_best.server_cpu:.2f} / "
                  f"{warm_best.browser_cpu:.2f})  {verdict}", flush=True)  # fmt: skip
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    return 0


def _complete_trials(home: Path, sweep_id: int) -> int:
    import tracking

    store = tracking.open_store(f"sqlite:///{home / 'tracking.db'}", home=home)
    try:
        return sum(run.status == "complete" for run in tracking.list_runs(store, sweep_id=sweep_id))
    finally:
        store.dispose()


def _signed_in_account(url: str, home: Path) -> None:
    import tracking

    store = tracking.open_store(url, home=home)
    try:
        make_account(store)
    finally:
        store.dispose()


def _count_runs(url: str, home: Path) -> int:
    import tracking

    store = tracking.open_store(url, home=home)
    try:
        return _bench_runs_table()._count_runs(store)
    finally:
        store.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
