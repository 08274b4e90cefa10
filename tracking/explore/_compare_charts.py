"""Plotly figures of a comparison, shared by the compare page and the HTML report.

Every piece of user text that reaches a figure (run names, keys, categorical values) is HTML-escaped
first: Plotly draws a subset of HTML in labels, so a run named `<a href=...>` must stay text.
Plotly is imported on first use, so `import tracking` stays light.
"""

from __future__ import annotations

import html
import math
from typing import Any

from tracking.explore._compare import CompareView, Comparison, Delta, _is_number, champion_challenger, number_text
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
    """Each run as a point at (x, y), labelled with its (shortened) name; the full name and values on hover."""
    import plotly.graph_objects as go

    xs, ys = comparison.values(x), comparison.values(y)
    keep = [i for i in range(len(comparison.runs)) if xs[i] is not None and ys[i] is not None]
    fig = go.Figure(
        go.Scatter(
            x=[_plain(xs[i]) for i in keep],
            y=[_plain(ys[i]) for i in keep],
            mode="markers+text",
            text=[text(comparison.short_labels[i]) for i in keep],
            customdata=[[text(comparison.labels[i]), text(number_text(xs[i])), text(number_text(ys[i]))] for i in keep],
            textposition="top center",
            marker={"size": 11, "color": PLAIN_COLOUR},
            hovertemplate="%{customdata[0]}<br>x=%{customdata[1]}<br>y=%{customdata[2]}<extra></extra>",
        )
    )
    return _layout(fig, f"{y} against {x}", x, y)


def bar_figure(comparison: Comparison, metric: str, baseline: int | None = None) -> Any:
    """The metric per run; the best value(s) in green, the baseline in grey.

    The value axis starts at 0 unless that would flatten the differences (0.78 against 0.80): when the values
    share a sign and differ by less than a quarter of the largest, it spans just the values, and says so.
    """
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
            x=[text(label) for label in comparison.short_labels],
            y=[v if _is_number(v) else None for v in values],
            marker_color=colours,
            customdata=[
                [text(label), text(number_text(v))] for label, v in zip(comparison.labels, values, strict=True)
            ],
            hovertemplate="%{customdata[0]}: %{customdata[1]}<extra></extra>",
        )
    )
    way = {"maximize": " (higher is better)", "minimize": " (lower is better)"}.get(row.direction if row else "", "")
    fig = _layout(fig, f"{metric}{way}", "run", metric)
    span = value_range([v for v in values if _is_number(v)])
    if span is not None:
        fig.update_yaxes(range=list(span), title=text(f"{metric} (axis not from 0)"))
    return fig


def value_range(values: list[float]) -> tuple[float, float] | None:
    """The y range of a bar chart whose bars from 0 would look alike, or None when 0 is the right start."""
    if len(values) < 2:
        return None
    low, high = min(values), max(values)
    spread, size = high - low, max(abs(low), abs(high))
    if spread == 0 or (low < 0 < high) or spread >= 0.25 * size:
        return None
    bottom, top = low - 0.6 * spread, high + 0.3 * spread
    if low > 0:
        return max(bottom, 0.0), top
    return bottom, min(top, 0.0)


def delta_figure(comparison: Comparison, deltas: list[Delta], metric: str, baseline: int) -> Any:
    """Each challenger's difference from the baseline in one metric, green when better, red when worse."""
    import plotly.graph_objects as go

    chosen = [d for d in deltas if d.key == metric]
    labels = dict(zip(comparison.ids, comparison.labels, strict=True))
    colours = {"better": BEST_COLOUR, "worse": WORSE_COLOUR}
    short = dict(zip(comparison.ids, comparison.short_labels, strict=True))
    fig = go.Figure(
        go.Bar(
            x=[text(short[d.run_id]) for d in chosen],
            y=[d.delta for d in chosen],
            marker_color=[colours.get(d.verdict or "", PLAIN_COLOUR) for d in chosen],
            customdata=[[text(labels[d.run_id]), text(_signed(d.delta))] for d in chosen],
            hovertemplate="%{customdata[0]}: %{customdata[1]}<extra></extra>",
        )
    )
    return _layout(fig, f"{metric} minus the baseline ({labels[baseline]})", "run", f"Δ {metric}")


def _signed(value: float | None) -> str:
    """A difference with its sign: `+1,250`, `-0.02`."""
    if value is None:
        return ""
    return ("+" if value >= 0 else "-") + number_text(abs(value))


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
