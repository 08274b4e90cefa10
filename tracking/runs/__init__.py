"""Runs and what they record: the run API for scripts, reads and filters over runs, tags and notes,
artifacts and model files, provenance, liveness of the processes that log, and datasets.
"""

from __future__ import annotations

from tracking.runs._annotations import (
    add_note,
    delete_note,
    list_notes,
    replace_tags,
    set_tags,
    update_note,
)
from tracking.runs._artifacts import (
    TRUSTED_TYPES,
    artifact_file,
    dump_model,
    find_artifact,
    list_artifacts,
    load_model,
    load_model_file,
    put_bytes,
    read_verified,
    safe_name,
)
from tracking.runs._bulk import (
    BULK_BATCH,
    bulk_log_runs,
)
from tracking.runs._datasets import (
    BUILTIN_TASKS,
    SHIPPED,
    TaskData,
    describe,
    get_dataset,
    list_datasets,
    load_task,
    preview_csv,
    register_dataset,
    save_upload,
)
from tracking.runs._filters import (
    MAX_DEPTH,
    MAX_LENGTH,
    FilterError,
    compile_filter,
    compile_search,
    runs_where,
)
from tracking.runs._frames import (
    history_frame,
    runs_frame,
)
from tracking.runs._import_mlflow import (
    ImportReport,
    import_mlflow,
)
from tracking.runs._index import (
    KINDS,
    index_runs,
)
from tracking.runs._liveness import (
    Heartbeat,
    fail_stale_runs,
    grace_seconds,
    heartbeat_seconds,
    live_workers,
    process_worker_id,
)
from tracking.runs._provenance import (
    code_version,
)
from tracking.runs._queries import (
    find_run,
    get_run,
    list_experiments,
    list_runs,
    metric_history,
)
from tracking.runs._runs import (
    ActiveRun,
    RunClosed,
    check_open,
    get_or_create_experiment,
    insert_run,
    json_safe,
    run_row,
    run_scope,
    start_run,
)

__all__ = [
    "BUILTIN_TASKS",
    "BULK_BATCH",
    "KINDS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "SHIPPED",
    "TRUSTED_TYPES",
    "ActiveRun",
    "FilterError",
    "Heartbeat",
    "ImportReport",
    "RunClosed",
    "TaskData",
    "add_note",
    "artifact_file",
    "bulk_log_runs",
    "check_open",
    "code_version",
    "compile_filter",
    "compile_search",
    "delete_note",
    "describe",
    "dump_model",
    "fail_stale_runs",
    "find_artifact",
    "find_run",
    "get_dataset",
    "get_or_create_experiment",
    "get_run",
    "grace_seconds",
    "heartbeat_seconds",
    "history_frame",
    "import_mlflow",
    "index_runs",
    "insert_run",
    "json_safe",
    "list_artifacts",
    "list_datasets",
    "list_experiments",
    "list_notes",
    "list_runs",
    "live_workers",
    "load_model",
    "load_model_file",
    "load_task",
    "metric_history",
    "preview_csv",
    "process_worker_id",
    "put_bytes",
    "read_verified",
    "register_dataset",
    "replace_tags",
    "run_row",
    "run_scope",
    "runs_frame",
    "runs_where",
    "safe_name",
    "save_upload",
    "set_tags",
    "start_run",
    "update_note",
]
