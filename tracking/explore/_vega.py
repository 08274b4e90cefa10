"""The charts a page opens on, drawn with Vega-Lite (Altair): a sweep's optimisation history, metric histories.

A browser loads Plotly's 4.7 MB of script for the first Plotly chart of a page (1.5 to 2.4 s of CPU on a cold
cache, `benchmarks/bench_chart_library.py`), Vega-Lite's for 0.6 to 0.85 s; Streamlit ships Vega-Lite and
loads it anyway. So the default charts are Altair charts; the analysis charts chosen afterwards (Optuna's
importances, contour, slice, ...) and the offline HTML report stay Plotly figures.

Vega-Lite draws labels as text (never HTML) and its tooltips escape what they show, so user text (run names)
goes in as it is: the full name on hover. Altair is imported inside the functions: `import tracking` stays
light.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tracking.explore._histories import comparison_curves, smooth

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tracking.explore._compare import Comparison

# Colours of a sweep's trials: complete, pruned, and the best-so-far line.
_STATES = ("complete", "pruned", "best so far")
_STATE_COLOURS = ("#1f77b4", "#f9a825", "#2e7d32")
# 10 runs or fewer: Plotly's default palette, as before; up to 50 runs: 48 distinct colours.
_PALETTE_10 = ("#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3", "#FF6692", "#B6E880", "#FF97FF",
               "#FECB52")  # fmt: skip


def _palette(count: int) -> list[str]:
    if count <= len(_PALETTE_10):
        return list(_PALETTE_10)
    from plotly.colors import qualitative  # the palette's numbers only: the browser never loads Plotly for them

    return list(qualitative.Dark24 + qualitative.Light24)


def _frame(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> Any:
    """A chart's data as a DataFrame: Streamlit sends it to the browser as Arrow, and Altair does not check
    thousands of inline values against Vega-Lite's schema (2.7 s of CPU for 10 runs of 500 steps)."""
    import pandas as pd

    return pd.DataFrame(rows, columns=list(columns))


def _zoom(alt: Any) -> Any:
    """Drag to pan, shift and the wheel to zoom, a double click to reset: the wheel alone still scrolls the page."""
    return alt.selection_interval(bind="scales", zoom="wheel![event.shiftKey]")


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def trials_chart(trials: Sequence[Mapping[str, Any]], key: str, direction: str, *, height: int = 320) -> Any:
    """A sweep's optimisation history: each trial's objective value (points coloured by state) and the best so far.

    `trials` are mappings with `trial` (its number), `value` (the objective, None when it has none), `state`
    ("complete" or "pruned"), `run` (the run's id) and `name` (its name); only complete trials move the best.
    """
    import altair as alt

    points = sorted(
        ({**t, "value": float(t["value"])} for t in trials if _finite(t.get("value")) and t.get("trial") is not None),
        key=lambda t: t["trial"],
    )
    best, line = None, []
    for trial in points:
        if trial["state"] != "complete":
            continue
        value = trial["value"]
        best = value if best is None else (max(best, value) if direction == "maximize" else min(best, value))
        line.append({"trial": trial["trial"], "best": best, "state": "best so far"})
    x = alt.X("trial:Q", title="trial", axis=alt.Axis(format="d", tickMinStep=1))
    # The legend names only what is drawn: pruned trials usually report no objective value, and a "pruned" entry
    # with no dot had a reader look for them.
    shown = [
        (s, c) for s, c in zip(_STATES, _STATE_COLOURS, strict=True) if any(p["state"] == s for p in points + line)
    ]
    colour = alt.Color(
        "state:N", title=None, scale=alt.Scale(domain=[s for s, _ in shown], range=[c for _, c in shown])
    )
    dots = (
        alt.Chart(_frame(points, ("trial", "value", "state", "run", "name")))
        .mark_circle(size=40, opacity=0.8)
        .encode(
            x=x,
            y=alt.Y("value:Q", title=key, scale=alt.Scale(zero=False)),
            color=colour,
            tooltip=[
                alt.Tooltip("trial:Q", title="trial"),
                alt.Tooltip("value:Q", title=key, format=".6g"),
                alt.Tooltip("state:N", title="state"),
                alt.Tooltip("name:N", title="run"),
                alt.Tooltip("run:Q", title="run id"),
            ],
        )
    )
    best_line = (
        alt.Chart(_frame(line, ("trial", "best", "state")))
        .mark_line(interpolate="step-after")
        .encode(x=x, y=alt.Y("best:Q", title=key), color=colour, tooltip=[alt.Tooltip("best:Q", title="best so far")])
    )
    return alt.layer(dots, best_line).properties(height=height).add_params(_zoom(alt))


def warm_altair() -> None:
    """Build and check one small chart of each kind: Altair loads and compiles Vega-Lite's JSON schema on its first
    check (1.5 s of CPU), which a server does ahead of its first chart page (`warm_chart_imports`)."""
    curves_chart([("a", [(0, 1.0), (1, 2.0)])], "x", smoothing=0.5).to_dict()
    trials_chart([{"trial": 0, "value": 1.0, "state": "complete", "run": 1, "name": "a"}], "x", "minimize").to_dict()


def curves_chart(
    curves: Sequence[tuple[str, Sequence[tuple[int, float | None]]]],
    key: str,
    *,
    smoothing: float = 0.0,
    log_y: bool = False,
    title: str | None = None,
    height: int = 420,
    legend: bool = True,
) -> Any:
    """One line per (label, points) of one metric; with smoothing, the smoothed line over the faint raw one.

    Missing or non-finite values are left out (and values at or below 0 on a log scale), a gap in the line.
    """
    import altair as alt

    drawn = [(str(label), series) for label, series in curves if series]
    rows = []
    for label, series in drawn:
        steps, values = (list(part) for part in zip(*series, strict=True))
        shown = smooth(values, smoothing) if smoothing > 0 else values
        for step, raw, value in zip(steps, values, shown, strict=True):
            if _finite(value) and (not log_y or value > 0):
                rows.append(
                    {
                        "run": label,
                        "step": int(step),
                        "value": value,
                        "raw": raw if _finite(raw) and (not log_y or raw > 0) else None,
                    }
                )
    labels = [label for label, _ in drawn]
    palette = _palette(len(labels))
    colour = alt.Color(
        "run:N",
        title="run",
        sort=labels,
        scale=alt.Scale(domain=labels, range=palette[: len(labels)] if len(labels) <= len(palette) else palette),
        legend=alt.Legend(labelLimit=400) if legend else None,
    )
    x = alt.X("step:Q", title="step", axis=alt.Axis(format="d", tickMinStep=1))
    y_scale = alt.Scale(type="log") if log_y else alt.Scale(zero=False)
    few = max((len(series) for _, series in drawn), default=0) < 50  # a one-step history is still a visible dot
    base = alt.Chart(_frame(rows, ("run", "step", "value", "raw")))
    tooltip = [alt.Tooltip("run:N", title="run"), alt.Tooltip("step:Q", title="step"),
               alt.Tooltip("value:Q", title=key, format=".6g")]  # fmt: skip
    lines = base.mark_line(point=few).encode(x=x, y=alt.Y("value:Q", title=key, scale=y_scale), color=colour,
                                             tooltip=tooltip)  # fmt: skip
    layers = [lines]
    if smoothing > 0:
        raw = base.mark_line(opacity=0.3, strokeWidth=1).encode(
            x=x, y=alt.Y("raw:Q", title=key, scale=y_scale), color=colour, tooltip=[alt.Tooltip("run:N", title="run")]
        )
        layers = [raw, lines]
    chart = alt.layer(*layers).properties(height=height, title=title if title is not None else f"History of {key}")
    return chart.add_params(_zoom(alt))


def history_chart(
    comparison: Comparison,
    points: Mapping[int, Sequence[tuple[int, float | None]]],
    key: str,
    smoothing: float = 0.0,
    log_y: bool = False,
) -> Any:
    """One line per compared run (up to 50): the metric's value at each step, labelled with the run's full name."""
    return curves_chart(comparison_curves(comparison, points), key, smoothing=smoothing, log_y=log_y)
