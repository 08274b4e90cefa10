"""Pieces of the run page: value tables, provenance, artifacts and metric-history charts."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

import tracking
from tracking.explore import MAX_COMPARE, MAX_SMOOTHING, curves_chart
from tracking.runs import artifact_exists
from tracking.store import ArtifactRecord, RunRecord
from ui.data import sweep_runs
from ui.explore import cached_histories


def value_frame(values: dict[str, Any], label: str) -> pd.DataFrame:
    """Key/value rows as text, so a column mixing numbers and words displays as written."""
    rows = [
        (key, "" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)) for key, v in sorted(values.items())
    ]
    return pd.DataFrame(rows, columns=[label, "value"])


def provenance(run: RunRecord) -> pd.DataFrame:
    """Where the run came from: data, code, seed, machine, times."""
    env = run.environment or {}
    duration = (run.finished_at - run.started_at).total_seconds() if run.finished_at else None
    rows = [
        ("dataset", f"{run.dataset['name']} (version {run.dataset['id']})" if run.dataset else "—"),
        ("dataset sha256", run.dataset["hash"] if run.dataset else "—"),
        ("code version", run.code_version or "—"),
        ("seed", "—" if run.seed is None else str(run.seed)),
        ("host", run.host or "—"),
        ("python", str(env.get("python", "—"))),
        ("platform", str(env.get("platform", "—"))),
        ("started", f"{run.started_at:%Y-%m-%d %H:%M:%S} UTC"),
        ("finished", f"{run.finished_at:%Y-%m-%d %H:%M:%S} UTC" if run.finished_at else "still running"),
        ("duration", "—" if duration is None else f"{duration:.1f} s"),
    ]
    return pd.DataFrame(rows, columns=["what", "value"])


def tags_frame(tags: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(sorted(tags.items()), columns=["key", "value"]).astype("string")


def artifact_rows(store: tracking.Store, artifacts: list[ArtifactRecord]) -> list[tuple[ArtifactRecord, str, bool]]:
    """Each artifact with its size for people and whether its file is still there."""
    return [(a, human_size(a.size), artifact_exists(store, a.sha256)) for a in artifacts]


def human_size(size: int) -> str:
    """1536 -> "1.5 KB"."""
    value, unit = float(size), "B"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            break
        value /= 1024
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"


def history_controls(prefix: str) -> tuple[float, bool]:
    """The smoothing slider and log-scale toggle of history charts (state in `<prefix>_smooth`, `<prefix>_logy`)."""
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    smoothing = left.slider(
        "Smoothing", 0.0, MAX_SMOOTHING, step=0.01, key=f"{prefix}_smooth",
        help="Exponential moving average of each curve, as TensorBoard's slider; the raw curve stays faint behind it.",
    )  # fmt: skip
    log_y = right.toggle("Log scale", key=f"{prefix}_logy", help="The value axis on a log scale.")
    return smoothing, log_y


def sweep_trials(run: RunRecord) -> list[tuple[int, str]]:
    """The other trials of the run's sweep to overlay on its charts (the last `MAX_COMPARE` - 1), as (id, label)."""
    others = [r for r in sweep_runs(run.sweep_id) if r.id != run.id][-(MAX_COMPARE - 1) :]
    return [(r.id, f"trial {r.trial_number} #{r.id}") for r in others]


def history_charts(
    history: dict[str, list[tuple[int, float | None]]],
    keys: list[str],
    smoothing: float = 0.0,
    log_y: bool = False,
    overlay: list[tuple[int, str]] | None = None,
) -> None:
    """One line chart per chosen metric, two side by side; other runs' curves (`overlay`) drawn after this run's."""
    for start in range(0, len(keys), 2):
        for column, key in zip(st.columns(2), keys[start : start + 2], strict=False):
            curves = [("this run", history[key])]
            if overlay:
                points = cached_histories(tuple(run_id for run_id, _ in overlay), key)
                curves += [(label, points.get(run_id) or []) for run_id, label in overlay]
            chart = curves_chart(curves, key, smoothing=smoothing, log_y=log_y, title=key, height=300, legend=False)
            column.altair_chart(chart, width="stretch", key=f"history_{key}")
