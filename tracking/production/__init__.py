"""The model in production: the inference log, monitoring (drift and quality), reviews, retraining and
reproducing runs, and model cards.
"""

from __future__ import annotations

from tracking.production._inference import (
    InferenceEntry,
    RetentionReport,
    apply_retention,
    get_inference,
    recent_inferences,
    record_labels,
    retention_policy,
    serving_series,
    write_batch,
)
from tracking.production._lifecycle import (
    DEFAULT_TOLERANCE,
    ReproductionRecord,
    describe_changes,
    list_reproductions,
    reproduce_blockers,
    reproduce_run,
    retrain,
    short_code,
    short_sha,
)
from tracking.production._model_card import (
    ModelCard,
    card_html,
    card_markdown,
    model_card,
)
from tracking.production._monitoring import (
    Drift,
    MonitoringReport,
    breach_summary,
    monitor,
)
from tracking.production._reviews import (
    ReviewRecord,
    close_review,
    list_reviews,
    open_review,
    review_blockers,
)

__all__ = [
    "DEFAULT_TOLERANCE",
    "Drift",
    "InferenceEntry",
    "ModelCard",
    "MonitoringReport",
    "ReproductionRecord",
    "RetentionReport",
    "ReviewRecord",
    "apply_retention",
    "breach_summary",
    "card_html",
    "card_markdown",
    "close_review",
    "describe_changes",
    "get_inference",
    "list_reproductions",
    "list_reviews",
    "model_card",
    "monitor",
    "open_review",
    "recent_inferences",
    "record_labels",
    "reproduce_blockers",
    "reproduce_run",
    "retention_policy",
    "retrain",
    "review_blockers",
    "serving_series",
    "short_code",
    "short_sha",
    "write_batch",
]
