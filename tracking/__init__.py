"""Experiment tracking: a store of runs, Optuna sweeps that log every trial, and reads over both.

    import tracking

    with tracking.start_run(experiment="churn", params={"C": 0.5}) as run:
        for step in range(10):
            run.log_metrics({"loss": 1 / (step + 1)}, step=step)
        run.log_model(fitted_estimator)

The public names below are imported on first use, so `import tracking` stays light (no pandas,
scikit-learn or Optuna until they are needed) and never imports Streamlit.
"""

from __future__ import annotations

import importlib
from typing import Any

from tracking._errors import (
    IntegrityError,
    NotFoundError,
    PermissionDenied,
    StoreError,
    TrackingError,
    ValidationError,
)

_EXPORTS = {
    "Store": "tracking._db",
    "open_store": "tracking._db",
    "change_marker": "tracking._db",
    "start_run": "tracking._runs",
    "ActiveRun": "tracking._runs",
    "set_tags": "tracking._runs",
    "list_runs": "tracking._queries",
    "get_run": "tracking._queries",
    "find_run": "tracking._queries",
    "metric_history": "tracking._queries",
    "list_experiments": "tracking._queries",
    "load_task": "tracking._datasets",
    "register_dataset": "tracking._datasets",
    "list_datasets": "tracking._datasets",
    "get_dataset": "tracking._datasets",
    "BUILTIN_TASKS": "tracking._datasets",
    "FAMILIES": "tracking._families",
    "load_model": "tracking._artifacts",
    "list_artifacts": "tracking._artifacts",
    "SweepSpec": "tracking._sweeps",
    "create_sweep": "tracking._sweeps",
    "get_sweep": "tracking._sweeps",
    "list_sweeps": "tracking._sweeps",
    "cancel_sweep": "tracking._sweeps",
    "reopen_sweep": "tracking._sweeps",
    "launch_workers": "tracking._sweeps",
    "run_worker": "tracking._worker",
    "worker_command": "tracking._sweeps",
    "spec_from_record": "tracking._sweeps",
    "fail_stale_runs": "tracking._liveness",
    "overview": "tracking._overview",
    "Overview": "tracking._overview",
    "compile_filter": "tracking._filters",
    "RunsView": "tracking._explore",
    "RunsPage": "tracking._explore",
    "RunKeys": "tracking._explore",
    "runs_page": "tracking._explore",
    "list_keys": "tracking._explore",
    "runs_table_csv": "tracking._explore",
    "runs_table_json": "tracking._explore",
    "CompareView": "tracking._compare",
    "Comparison": "tracking._compare",
    "compare_runs": "tracking._compare",
    "champion_challenger": "tracking._compare",
    "histories": "tracking._compare",
    "report_html": "tracking._reports",
    "ReportRecord": "tracking._reports",
    "save_report": "tracking._reports",
    "update_report": "tracking._reports",
    "get_report": "tracking._reports",
    "list_reports": "tracking._reports",
    "delete_report": "tracking._reports",
    "add_note": "tracking._annotations",
    "list_notes": "tracking._annotations",
    "replace_tags": "tracking._annotations",
    "FilterError": "tracking._filters",
    "UserRecord": "tracking._access",
    "create_user": "tracking._access",
    "list_users": "tracking._access",
    "set_role": "tracking._access",
    "set_disabled": "tracking._access",
    "reset_password": "tracking._access",
    "authenticate": "tracking._access",
    "sign_in": "tracking._access",
    "session_user": "tracking._access",
    "sign_out": "tracking._access",
    "list_events": "tracking._audit",
    "verify_chain": "tracking._audit",
    "register_version": "tracking._registry",
    "list_models": "tracking._registry",
    "get_model": "tracking._registry",
    "list_versions": "tracking._registry",
    "get_version": "tracking._registry",
    "find_version": "tracking._registry",
    "production_version": "tracking._registry",
    "lineage": "tracking._registry",
    "set_stage": "tracking._registry",
    "set_policy": "tracking._registry",
    "effective_policy": "tracking._registry",
    "request_promotion": "tracking._promotions",
    "approve_promotion": "tracking._promotions",
    "reject_promotion": "tracking._promotions",
    "withdraw_promotion": "tracking._promotions",
    "list_requests": "tracking._promotions",
    "get_request": "tracking._promotions",
    "model_card": "tracking._model_card",
    "card_markdown": "tracking._model_card",
    "card_html": "tracking._model_card",
    "create_app": "tracking._serving",
    "serve": "tracking._serving",
    "record_labels": "tracking._inference",
    "monitor": "tracking._monitoring",
    "breach_summary": "tracking._monitoring",
    "open_review": "tracking._reviews",
    "close_review": "tracking._reviews",
    "list_reviews": "tracking._reviews",
    "retrain": "tracking._lifecycle",
    "reproduce_run": "tracking._lifecycle",
    "list_reproductions": "tracking._lifecycle",
}

__all__ = [
    "IntegrityError",
    "NotFoundError",
    "PermissionDenied",
    "StoreError",
    "TrackingError",
    "ValidationError",
    *_EXPORTS,
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tracking' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
