"""The built-in machine learning: model families, search spaces, the cross-validated objective, and the
held-out assessment of two models on the same rows.
"""

from __future__ import annotations

from tracking.ml._assess import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_CONFIDENCE,
    Assessment,
    GroupRow,
    assess,
    plain_json,
)
from tracking.ml._families import (
    CLASSIFICATION,
    FAMILIES,
    curve_length,
    families_for,
    make_pipeline,
)
from tracking.ml._objective import (
    CLASSIFICATION_METRICS,
    COST_METRICS,
    DEFAULT_METRIC,
    REGRESSION_METRICS,
    metric_direction,
    score,
    split,
    task_metrics,
    train_and_score,
)
from tracking.ml._space import (
    GRID_POINTS,
    TYPES,
    load_space_file,
    parse_space,
    space_from_rows,
    space_rows,
    to_distributions,
    to_grid,
)

__all__ = [
    "CLASSIFICATION",
    "CLASSIFICATION_METRICS",
    "COST_METRICS",
    "DEFAULT_BOOTSTRAP",
    "DEFAULT_CONFIDENCE",
    "DEFAULT_METRIC",
    "FAMILIES",
    "GRID_POINTS",
    "REGRESSION_METRICS",
    "TYPES",
    "Assessment",
    "GroupRow",
    "assess",
    "curve_length",
    "families_for",
    "load_space_file",
    "make_pipeline",
    "metric_direction",
    "parse_space",
    "plain_json",
    "score",
    "space_from_rows",
    "space_rows",
    "split",
    "task_metrics",
    "to_distributions",
    "to_grid",
    "train_and_score",
]
