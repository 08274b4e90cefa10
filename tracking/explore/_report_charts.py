"""The charts of the HTML report: every figure as SVG, so each draws offline under the report's strict policy.

Plotly's parallel coordinates draw with WebGL through regl, which compiles its drawing code with
`new Function`: the report's Content-Security-Policy (no 'unsafe-eval', so no string can ever become
code) stops that, and Plotly then shows "WebGL is not supported by your browser" instead of the chart
(checked in Chromium; 'wasm-unsafe-eval' does not help, and no regl or Plotly setting avoids the
compile). A browser without WebGL (a locked-down machine, a remote desktop) would show the same. So
the report redraws parallel coordinates as SVG lines: the same axes, values, colours and colour bar,
without brushing. The compare page keeps Plotly's interactive chart.
"""

from __future__ import annotations

import math
from typing import Any

# Plotly is imported inside the functions that use it: `import tracking` stays light.

AXIS_COLOUR = "#888"
TICKS = 5  # ticks on a numeric axis


def charts_html(figures: dict[str, Any], titles: dict[str, str], escape: Any) -> str:
    """The report's Charts section: one `<div class="chart">` per figure, Plotly's JavaScript inlined once."""
    import plotly.io as pio

    parts = []
    for position, (name, figure) in enumerate(figures.items()):
        drawn = svg_parallel(figure) if _is_parcoords(figure) else figure
        div = pio.to_html(
            drawn,
            include_plotlyjs=position == 0,  # Plotly's JavaScript once, inline: the file works offline
            full_html=False,
            config={"displaylogo": False, "responsive": True},
            default_height="440px",
        )
        parts.append(f'<div class="chart" data-chart="{name}"><h3>{escape(titles[name])}</h3>{div}</div>')
    return f"<section><h2>Charts</h2>{''.join(parts)}</section>" if parts else ""


def _is_parcoords(figure: Any) -> bool:
    return len(figure.data) == 1 and figure.data[0].type == "parcoords"


def svg_parallel(figure: Any) -> Any:
    """A parallel-coordinates figure redrawn with SVG lines: one vertical axis per dimension (each scaled to
    its own range, categories at their tick values), one line per row in the colour of its value.

    Labels and tick texts are taken as they are: the figure's builder has escaped them already."""
    import plotly.graph_objects as go
    from plotly.colors import sample_colorscale

    trace = figure.data[0]
    dimensions = list(trace.dimensions)
    axes = [_axis(d) for d in dimensions]
    line = trace.line
    colours = _colours(line, sample_colorscale)
    rows = len(dimensions[0].values) if dimensions else 0
    fig = go.Figure()
    for row in range(rows):
        ys = [position(d.values[row]) for d, (position, _) in zip(dimensions, axes, strict=True)]
        hover = "<br>".join(f"{d.label}: {_shown(d, d.values[row])}" for d in dimensions)
        fig.add_trace(
            go.Scatter(
                x=list(range(len(dimensions))), y=ys, mode="lines+markers", showlegend=False,
                line={"color": colours[row] if colours else "#4c78a8", "width": 2}, marker={"size": 5},
                hovertext=hover, hoverinfo="text",
            )
        )  # fmt: skip
    if colours and line.showscale:
        values = [float(v) for v in line.color]
        fig.add_trace(  # an invisible point whose only job is the colour bar
            go.Scatter(
                x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
                marker={"color": values, "colorscale": line.colorscale, "reversescale": line.reversescale,
                        "cmin": min(values), "cmax": max(values), "showscale": True,
                        "colorbar": {"title": {"text": line.colorbar.title.text}}},
            )
        )  # fmt: skip
    for i, (d, (_, ticks)) in enumerate(zip(dimensions, axes, strict=True)):
        fig.add_shape(type="line", x0=i, x1=i, y0=0, y1=1, line={"color": AXIS_COLOUR, "width": 1}, layer="below")
        fig.add_annotation(x=i, y=1.08, text=f"<b>{d.label}</b>", showarrow=False, yanchor="bottom")
        for y, tick in ticks:
            fig.add_annotation(x=i, y=y, text=tick, showarrow=False, xanchor="right", xshift=-4, font={"size": 10})
    fig.update_layout(
        title=figure.layout.title,
        height=figure.layout.height,
        margin=figure.layout.margin,
        plot_bgcolor="white",
        xaxis={"visible": False, "range": [-0.6, max(len(dimensions) - 0.6, 0.6)], "fixedrange": True},
        yaxis={"visible": False, "range": [-0.06, 1.16], "fixedrange": True},
    )
    return fig


def _axis(dimension: Any) -> tuple[Any, list[tuple[float, str]]]:
    """(value -> height from 0 to 1 or None, [(height, tick text)]) of one dimension."""
    if dimension.tickvals is not None:  # categories coded 0..k-1, named by their tick texts
        low, high = min(dimension.tickvals), max(dimension.tickvals)
        named = list(zip(dimension.tickvals, dimension.ticktext or dimension.tickvals, strict=False))
    else:
        finite = [float(v) for v in dimension.values if _finite(v)]
        low, high = (min(finite), max(finite)) if finite else (0.0, 0.0)
        steps = [low + (high - low) * k / (TICKS - 1) for k in range(TICKS)] if high > low else [low]
        named = [(v, f"{v:.4g}") for v in steps] if finite else []
    span = high - low

    def position(value: Any) -> float | None:
        if not _finite(value):
            return None  # a gap in the line: the run has no value here
        return 0.5 if span == 0 else (float(value) - low) / span

    return position, [(position(v), str(text)) for v, text in named]


def _colours(line: Any, sample: Any) -> list[str]:
    values = list(line.color) if line.color is not None and not isinstance(line.color, str) else []
    if not values:
        return []
    low, high = min(values), max(values)
    points = [0.5 if high == low else (v - low) / (high - low) for v in values]
    if line.reversescale:
        points = [1 - p for p in points]
    return sample([list(step) for step in line.colorscale], points)


def _shown(dimension: Any, value: Any) -> str:
    if dimension.tickvals is not None and dimension.ticktext is not None and value in dimension.tickvals:
        return str(dimension.ticktext[list(dimension.tickvals).index(value)])
    return f"{value:.4g}" if _finite(value) else "(none)"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
