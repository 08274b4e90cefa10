"""Metric histories: which keys a chart opens on, exponential smoothing, and the overlaid-curves figure.

A run logs its final metrics as one-point histories (`cv_*`, `test_*`) beside its real curves
(`val_*` per iteration, `fold_*` per CV fold, whatever a script logs per step); a chart of one point
says nothing, so the keys with more than one point come first, learning curves before the rest.
Plotly is imported on first use, so `import tracking` stays light.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracking.explore._compare import Comparison

# Plotly is imported inside the functions that use it: `import tracking` stays light.

DEFAULT_HISTORY_KEYS = 4  # the run page opens on at most this many charts
MAX_SMOOTHING = 0.99
# Rank of a multi-point key by its prefix: validation curves, then training curves, then any other
# per-step metric, then per-fold scores (a handful of points, not a curve).
_CURVE_RANK = (
    (("val_", "valid_", "validation_", "eval_"), 0),
    (("train_", "training_"), 1),
    (("fold_",), 3),
)
_OTHER_CURVE = 2


def history_rank(key: str, points: int) -> tuple[int, str]:
    """Where a key goes in the history menus: multi-point keys (learning curves first), then the rest."""
    if points <= 1:
        return (4, key)
    rank = next((rank for prefixes, rank in _CURVE_RANK if key.startswith(prefixes)), _OTHER_CURVE)
    return (rank, key)


def order_history_keys(points: Mapping[str, int]) -> list[str]:
    """Keys by `history_rank`, given each key's number of points (its longest history among the runs).

    >>> order_history_keys({"cv_f1": 1, "train_loss": 50, "val_f1": 50, "fold_f1": 5, "loss": 20})
    ['val_f1', 'train_loss', 'loss', 'fold_f1', 'cv_f1']
    """
    return sorted(points, key=lambda key: history_rank(key, points[key]))


def default_history_keys(points: Mapping[str, int], limit: int = DEFAULT_HISTORY_KEYS) -> list[str]:
    """The keys a chart opens on: the multi-point keys in order (at most `limit`), else the first key."""
    ordered = order_history_keys(points)
    curves = [key for key in ordered if points[key] > 1]
    return curves[:limit] if curves else ordered[:1]


def parse_smoothing(text: str | None) -> float:
    """A smoothing weight from an address, leniently: a number from 0 to 0.99 (rounded to 0.01), else 0."""
    try:
        weight = float(text or 0)
    except ValueError:
        return 0.0
    return round(min(max(weight, 0.0), MAX_SMOOTHING), 2) if math.isfinite(weight) else 0.0


def smooth(values: Sequence[float | None], weight: float) -> list[float | None]:
    """Exponential moving average, debiased as TensorBoard's smoothing slider is.

    `weight` 0 returns the values as they are, 0.99 follows them very slowly. The first values are
    not pulled towards zero (the average is divided by the weight it has accumulated), and a missing or
    non-finite value stays missing without breaking the average.
    """
    if not 0 <= weight < 1:
        raise ValueError(f"The smoothing weight must be from 0 up to 1, not {weight!r}.")
    out: list[float | None] = []
    average, accumulated = 0.0, 0.0
    for value in values:
        if value is None or not math.isfinite(value):
            out.append(None)
            continue
        average = weight * average + (1 - weight) * value
        accumulated = weight * accumulated + (1 - weight)
        out.append(average / accumulated)
    return out


def curves_figure(
    curves: Sequence[tuple[str, Sequence[tuple[int, float | None]]]],
    key: str,
    *,
    smoothing: float = 0.0,
    log_y: bool = False,
    title: str | None = None,
    height: int = 420,
) -> Any:
    """One line per (label, points) of one metric; with smoothing, the smoothed line over the raw one.

    Labels are user text (run names): they are HTML-escaped here, as every label Plotly draws.
    """
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    fig = go.Figure()
    drawn = [(label, series) for label, series in curves if series]
    palette = qualitative.Plotly if len(drawn) <= 10 else qualitative.Dark24 + qualitative.Light24  # 48 for 50 runs
    for index, (label, series) in enumerate(drawn):
        steps, values = (list(part) for part in zip(*series, strict=True))
        colour = palette[index % len(palette)]
        name = html.escape(str(label), quote=True)
        mode = "lines+markers" if len(steps) < 50 else "lines"  # a one-step history is still a visible dot
        if smoothing > 0:
            fig.add_trace(go.Scatter(x=steps, y=values, mode=mode, name=name, legendgroup=name, showlegend=False,
                                     line={"color": colour, "width": 1}, opacity=0.3, hoverinfo="skip"))  # fmt: skip
            values = smooth(values, smoothing)
        fig.add_trace(go.Scatter(x=steps, y=values, mode=mode, name=name, legendgroup=name, line={"color": colour}))
    fig.update_layout(
        title=html.escape(title if title is not None else f"History of {key}", quote=True),
        xaxis_title="step",
        yaxis_title=html.escape(key, quote=True),
        yaxis_type="log" if log_y else "linear",
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        height=height,
        legend={"font": {"size": 11}},
    )
    return fig


def history_figure(
    comparison: Comparison,
    points: Mapping[int, Sequence[tuple[int, float | None]]],
    key: str,
    smoothing: float = 0.0,
    log_y: bool = False,
) -> Any:
    """One line per compared run: the metric's value at each step."""
    return curves_figure(comparison_curves(comparison, points), key, smoothing=smoothing, log_y=log_y)


def comparison_curves(
    comparison: Comparison, points: Mapping[int, Sequence[tuple[int, float | None]]]
) -> list[tuple[str, Sequence[tuple[int, float | None]]]]:
    """Each compared run's points under its full label, in the comparison's order (the lines of a history chart)."""
    return [(label, points.get(run.id) or []) for run, label in zip(comparison.runs, comparison.labels, strict=True)]
