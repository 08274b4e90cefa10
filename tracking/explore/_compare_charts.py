"""Plotly figures of a comparison, shared by the compare page and the HTML report.

Every piece of user text that reaches a figure (run names, keys, categorical values) is HTML-escaped
first: Plotly draws a subset of HTML in labels, so a run named `<a href=...>` must stay text.
Plotly is imported on first use, so `import tracking` stays light.
"""

from __future__ import annotations

import html
import math
from typing import Any

from tracking.explore._compare import CompareView, Comparison, Delta, _is_number, champion_challenger
from tracking.explore._histories import history_figure  # re-exported: the history chart lives with its rules

# Plotly is imported inside the functions that use it: `import tracking` stays light.

BEST_COLOUR = "#1a9850"
WORSE_COLOUR = "#d73027"
PLAIN_COLOUR = "#4c78a8"
BASELINE_COLOUR = "#7f7f7f"


def text(value: Any) -> str:
    """User text made safe for a Plotly label."""
    return html.escape(str(value), quote=True)


def _layout(fig: Any, title: str, x: str, y: str) -> Any:
    fig.update_layout(
        title=text(title),
        xaxis_title=text(x),
        yaxis_title=text(y),
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        height=420,
        legend={"font": {"size": 11}},
    )
    return fig


def parallel_figure(comparison: Comparison, params: list[str], metric: str) -> Any:
    """Parallel coordinates: one axis per param, the chosen metric last and as the line colour."""
    import plotly.graph_objects as go

    metric_values = comparison.values(metric)
    keep = [i for i, value in enumerate(metric_values) if _is_number(value)]
    dimensions = [_dimension(name, [comparison.values(name)[i] for i in keep]) for name in [*params, metric]]
    row = comparison.row(metric)
    reverse = bool(row and row.direction == "minimize")  # the best runs are drawn in the strongest colour
    fig = go.Figure(
        go.Parcoords(
            line={
                "color": [metric_values[i] for i in keep],
                "colorscale": "Viridis",
                "reversescale": reverse,
                "showscale": True,
                "colorbar": {"title": {"text": text(metric)}},
            },
            dimensions=dimensions,
        )
    )
    fig.update_layout(title=text(f"Params -> {metric}"), height=460, margin={"l": 80, "r": 80, "t": 80, "b": 40})
    return fig


def _dimension(name: str, values: list[Any]) -> dict[str, Any]:
    label = text(name.split(".", 1)[-1])
    if values and all(_is_number(v) or v is None for v in values):
        return {"label": label, "values": [float(v) if v is not None else math.nan for v in values]}
    categories = sorted({"(none)" if v is None else str(v) for v in values})
    codes = {category: i for i, category in enumerate(categories)}
    return {
        "label": label,
        "values": [codes["(none)" if v is None else str(v)] for v in values],
        "tickvals": list(range(len(categories))),
        "ticktext": [text(c) for c in categories],
    }


def scatter_figure(comparison: Comparison, x: str, y: str) -> Any:
    """Each run as a point at (x, y), labelled with its name."""
    import plotly.graph_objects as go

    xs, ys = comparison.values(x), comparison.values(y)
    keep = [i for i in range(len(comparison.runs)) if xs[i] is not None and ys[i] is not None]
    labels = [text(comparison.labels[i]) for i in keep]
    fig = go.Figure(
        go.Scatter(
            x=[_plain(xs[i]) for i in keep],
            y=[_plain(ys[i]) for i in keep],
            mode="markers+text",
            text=labels,
            textposition="top center",
            marker={"size": 11, "color": PLAIN_COLOUR},
            hovertemplate="%{text}<br>x=%{x}<br>y=%{y}<extra></extra>",
        )
    )
    return _layout(fig, f"{y} against {x}", x, y)


def bar_figure(comparison: Comparison, metric: str, baseline: int | None = None) -> Any:
    """The metric per run; the best value(s) in green, the baseline in grey."""
    import plotly.graph_objects as go

    row = comparison.row(metric)
    best = set(row.best) if row else set()
    values = comparison.values(metric)
    colours = [
        BEST_COLOUR if i in best else BASELINE_COLOUR if run.id == baseline else PLAIN_COLOUR
        for i, run in enumerate(comparison.runs)
    ]
    fig = go.Figure(
        go.Bar(
            x=[text(label) for label in comparison.labels],
            y=[v if _is_number(v) else None for v in values],
            marker_color=colours,
            hovertemplate="%{x}: %{y}<extra></extra>",
        )
    )
    way = {"maximize": " (higher is better)", "minimize": " (lower is better)"}.get(row.direction if row else "", "")
    return _layout(fig, f"{metric}{way}", "run", metric)


def delta_figure(comparison: Comparison, deltas: list[Delta], metric: str, baseline: int) -> Any:
    """Each challenger's difference from the baseline in one metric, green when better, red when worse."""
    import plotly.graph_objects as go

    chosen = [d for d in deltas if d.key == metric]
    labels = dict(zip(comparison.ids, comparison.labels, strict=True))
    colours = {"better": BEST_COLOUR, "worse": WORSE_COLOUR}
    fig = go.Figure(
        go.Bar(
            x=[text(labels[d.run_id]) for d in chosen],
            y=[d.delta for d in chosen],
            marker_color=[colours.get(d.verdict or "", PLAIN_COLOUR) for d in chosen],
            hovertemplate="%{x}: %{y:+.4g}<extra></extra>",
        )
    )
    return _layout(fig, f"{metric} minus the baseline ({labels[baseline]})", "run", f"Δ {metric}")


def _plain(value: Any) -> Any:
    return value if _is_number(value) else text(value)


def view_figures(comparison: Comparison, view: CompareView, points: dict[int, list] | None) -> dict[str, Any]:
    """The figures a view asks for (those it has the fields for), by name, in page order."""
    figures: dict[str, Any] = {}
    if view.history and points is not None:
        figures["history"] = history_figure(comparison, points, view.history, view.smoothing, view.log_y)
    if view.metric and comparison.row(view.metric):
        if view.params:
            figures["parallel"] = parallel_figure(comparison, list(view.params), view.metric)
        figures["bar"] = bar_figure(comparison, view.metric, view.baseline)
        if view.baseline in comparison.ids:
            deltas = champion_challenger(comparison, view.baseline)
            figures["delta"] = delta_figure(comparison, deltas, view.metric, view.baseline)
    if view.x and view.y and comparison.row(view.x) and comparison.row(view.y):
        figures["scatter"] = scatter_figure(comparison, view.x, view.y)
    return figures
