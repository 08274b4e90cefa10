"""What the home page shows: counts, recent sweeps and runs, and the best result of each sweep."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, true

from tracking.runs import list_runs, live_experiments, live_runs
from tracking.store import DatasetVersion, Experiment, Run, RunRecord, Store, Sweep, SweepRecord
from tracking.sweeps import list_sweeps


@dataclass(frozen=True)
class Overview:
    experiments: int
    sweeps: int
    runs: int
    datasets: int
    runs_by_status: dict[str, int]
    recent_sweeps: list[SweepRecord]
    recent_runs: list[RunRecord]


def overview(store: Store, recent: int = 10) -> Overview:
    """Counts of everything and the most recent sweeps and runs (a handful of small queries)."""
    with store.connect() as conn:
        live = {Experiment: live_experiments(), Sweep: Sweep.trash_id.is_(None), Run: live_runs()}  # not in the trash
        counts = {
            table.__tablename__: int(
                conn.execute(select(func.count()).select_from(table).where(live.get(table, true()))).scalar_one()
            )
            for table in (Experiment, Sweep, Run, DatasetVersion)
        }
        by_status = {
            (status.value if hasattr(status, "value") else str(status)): int(n)
            for status, n in conn.execute(select(Run.status, func.count()).where(live_runs()).group_by(Run.status))
        }
    return Overview(
        experiments=counts["experiments"],
        sweeps=counts["sweeps"],
        runs=counts["runs"],
        datasets=counts["dataset_versions"],
        runs_by_status=by_status,
        recent_sweeps=list_sweeps(store, limit=recent),
        recent_runs=list_runs(store, limit=recent * 2),
    )
