"""Read models: frozen snapshots that pages, the CLI and scripts get instead of ORM rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z`, or None."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if moment else None


@dataclass(frozen=True)
class ExperimentRecord:
    id: int
    name: str
    description: str
    created_at: datetime
    n_runs: int = 0


@dataclass(frozen=True)
class DatasetRecord:
    id: int
    name: str
    sha256: str
    source: str
    path: str | None
    n_rows: int
    n_columns: int
    schema: dict[str, Any]
    stats: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class ArtifactRecord:
    id: int
    run_id: int
    name: str
    kind: str
    sha256: str
    size: int
    created_at: datetime


@dataclass(frozen=True)
class NoteRecord:
    id: int
    run_id: int
    author: str
    body: str
    created_at: datetime


@dataclass(frozen=True)
class RunRecord:
    id: int
    name: str
    experiment: str
    sweep_id: int | None
    trial_number: int | None
    status: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    dataset: dict[str, Any] | None
    code_version: str | None
    seed: int | None
    host: str
    owner: str
    environment: dict[str, Any]
    error: str | None
    started_at: datetime
    finished_at: datetime | None
    tags: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The `runs --format json` object (DESIGN.md contract)."""
        return {
            "id": self.id,
            "name": self.name,
            "experiment": self.experiment,
            "sweep_id": self.sweep_id,
            "trial_number": self.trial_number,
            "status": self.status,
            "params": self.params,
            "metrics": self.metrics,
            "dataset": self.dataset,
            "code_version": self.code_version,
            "seed": self.seed,
            "host": self.host,
            "tags": self.tags,
            "error": self.error,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
        }


@dataclass(frozen=True)
class SweepRecord:
    id: int
    name: str
    experiment: str
    status: str
    n_trials: int
    config: dict[str, Any]
    study_name: str
    optuna_storage: str
    owner: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cancel_requested: bool
    counts: dict[str, int]
    live_workers: int
    best_value: float | list[float] | None = None
    best_run_id: int | None = None
    workers_at: dict[str, Any] | None = None  # where its workers last ran (`start_workers`), None if never recorded

    @property
    def finished(self) -> int:
        """Trials that ended, whatever their outcome."""
        return sum(n for status, n in self.counts.items() if status != "running")
