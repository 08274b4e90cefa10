"""Reads over runs: the runs table, one run, metric histories, experiments."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import func, select

from tracking._errors import NotFoundError
from tracking.remote import ServerClient
from tracking.runs._filters import runs_where
from tracking.store import (
    DatasetVersion,
    Experiment,
    ExperimentRecord,
    MetricPoint,
    Run,
    RunRecord,
    RunTag,
    Store,
    TrashEntry,
)

# --- the trash (`tracking.runs._trash`): every list, filter, comparison and count of runs applies this ---


def live_runs() -> Any:
    """The predicate "not in the trash" over `runs`: what lists, filters, compare, reports and counts show."""
    return Run.trash_id.is_(None)


def live_experiments() -> Any:
    """The predicate "not in the trash" over `experiments` (an experiment is in the trash while its entry is)."""
    return ~select(TrashEntry.id).where(TrashEntry.kind == "experiment", TrashEntry.object_id == Experiment.id).exists()


# ---


def _runs_query(filter_text: str | None = None, search: str | None = None, live: bool = True) -> Any:
    query = (
        select(Run, Experiment.name, DatasetVersion.name, DatasetVersion.sha256)
        .join(Experiment, Run.experiment_id == Experiment.id)
        .outerjoin(DatasetVersion, Run.dataset_version_id == DatasetVersion.id)
    )
    if live:
        query = query.where(live_runs())
    if (filter_text and filter_text.strip()) or (search and search.strip()):
        query = query.where(runs_where(filter_text, search))
    return query


def list_runs(
    store: Store | ServerClient,
    *,
    sweep_id: int | None = None,
    experiment: str | None = None,
    filter: str | None = None,
    limit: int | None = None,
    newest_first: bool = True,
    search: str | None = None,
) -> list[RunRecord]:
    """Runs matching the filters (and the words of `search`, as the Runs page's search box), with their tags,
    newest first.

    Raises:
        FilterError: the filter text does not parse.
    """
    if isinstance(store, ServerClient):  # a tracking server's client: the same question over HTTP
        return store.list_runs(sweep_id=sweep_id, experiment=experiment, filter=filter, limit=limit,
                               newest_first=newest_first, search=search)  # fmt: skip
    query = _runs_query(filter, search)
    if sweep_id is not None:
        query = query.where(Run.sweep_id == sweep_id)
    if experiment is not None:
        query = query.where(Experiment.name == experiment)
    query = query.order_by(Run.id.desc() if newest_first else Run.id.asc())
    if limit is not None:
        query = query.limit(limit)
    with store.session_scope() as session:
        rows = session.execute(query).all()
        ids = [row[0].id for row in rows]
        tags: dict[int, dict[str, str]] = defaultdict(dict)
        for chunk in range(0, len(ids), 5000):
            part = ids[chunk : chunk + 5000]
            for run_id, key, value in session.execute(
                select(RunTag.run_id, RunTag.key, RunTag.value).where(RunTag.run_id.in_(part))
            ):
                tags[run_id][key] = value
        return [_record(run, exp, ds_name, ds_sha, tags.get(run.id, {})) for run, exp, ds_name, ds_sha in rows]


def find_run(store: Store | ServerClient, run_id: int) -> RunRecord | None:
    """One run, or None (a run in the trash too: its page offers to restore it)."""
    if isinstance(store, ServerClient):
        return store.find_run(run_id)
    with store.session_scope() as session:
        row = session.execute(_runs_query(live=False).where(Run.id == run_id)).first()
        if row is None:
            return None
        run, exp, ds_name, ds_sha = row
        tags = dict(session.execute(select(RunTag.key, RunTag.value).where(RunTag.run_id == run_id)).all())
        return _record(run, exp, ds_name, ds_sha, tags)


def get_run(store: Store | ServerClient, run_id: int) -> RunRecord:
    """One run. Raises NotFoundError."""
    run = find_run(store, run_id)
    if run is None:
        raise NotFoundError(f"There is no run {run_id}.")
    return run


def metric_history(
    store: Store | ServerClient, run_id: int, key: str | None = None
) -> dict[str, list[tuple[int, float | None]]]:
    """Each metric's (step, value) points of a run, in step order."""
    if isinstance(store, ServerClient):
        return store.metric_history(run_id, key)
    query = select(MetricPoint.key, MetricPoint.step, MetricPoint.value).where(MetricPoint.run_id == run_id)
    if key is not None:
        query = query.where(MetricPoint.key == key)
    history: dict[str, list[tuple[int, float | None]]] = defaultdict(list)
    with store.connect() as conn:
        for name, step, value in conn.execute(query.order_by(MetricPoint.key, MetricPoint.step)):
            history[name].append((step, value))
    return dict(history)


def list_experiments(store: Store) -> list[ExperimentRecord]:
    """Experiments with their run counts, newest first."""
    with store.session_scope() as session:
        counts = dict(
            session.execute(
                select(Run.experiment_id, func.count()).where(live_runs()).group_by(Run.experiment_id)
            ).all()
        )
        rows = session.execute(select(Experiment).where(live_experiments()).order_by(Experiment.id.desc())).scalars()
        return [
            ExperimentRecord(row.id, row.name, row.description, row.created_at, int(counts.get(row.id, 0)))
            for row in rows
        ]


def _record(run: Run, experiment: str, ds_name: str | None, ds_sha: str | None, tags: dict[str, str]) -> RunRecord:
    return RunRecord(
        id=run.id,
        name=run.name,
        experiment=experiment,
        sweep_id=run.sweep_id,
        trial_number=run.trial_number,
        status=run.status.value,
        params=dict(run.params),
        metrics=dict(run.metrics),
        dataset={"id": run.dataset_version_id, "name": ds_name, "hash": ds_sha} if ds_sha else None,
        code_version=run.code_version,
        seed=run.seed,
        host=run.host,
        owner=run.owner,
        environment=dict(run.environment),
        error=run.error,
        started_at=run.started_at,
        finished_at=run.finished_at,
        tags=tags,
    )
