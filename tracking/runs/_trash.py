"""The trash: runs, sweeps and experiments moved out of sight, restored exactly, or purged for good.

Moving something to the trash writes one `trash_entries` row and stamps its id on the sweeps and runs
that go with it (`trash_id`); an experiment is in the trash while its entry exists. Every list, filter,
comparison, report and count of runs leaves them out through one predicate (`live_runs` in
`_queries.py`). Restoring clears exactly the rows stamped with that entry, so a run trashed on its own
before its sweep stays in the trash when the sweep comes back. Purging deletes the rows for good:
the runs with their metric points, artifacts, tags, notes and reproductions, a sweep with its workers,
sweep-scoped tokens and Optuna study, and then the artifact files no remaining run refers to.

A run behind a registered model version is never trashed or purged (the registry's lineage points at
it); a running run or a sweep with live workers is refused until it ends. Moving to the trash and
restoring is for data scientists, engineers and admins (`run.trash`); purging only for admins
(`trash.purge`). Every change is an audit event.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.engine import Connection

from tracking._errors import NotFoundError, ValidationError
from tracking.governance import Action, UserRecord, authorize, record
from tracking.runs._liveness import fail_stale_runs, live_workers
from tracking.store import (
    AccessToken,
    Artifact,
    DatasetVersion,
    Experiment,
    MetricBatch,
    MetricPoint,
    ModelVersion,
    Note,
    OptunaJournalEntry,
    RegisteredModel,
    Reproduction,
    Run,
    RunStatus,
    RunTag,
    RunValue,
    RunWord,
    Store,
    Sweep,
    TrashEntry,
    Worker,
    bump_change_counter,
    utcnow,
)

KINDS = ("run", "sweep", "experiment")
_CHUNK = 1000  # ids per IN (...) list


@dataclass(frozen=True)
class TrashRecord:
    """One entry of the trash: what went there (with how many runs), who moved it and when."""

    id: int
    kind: str  # "run", "sweep" or "experiment"
    object_id: int
    name: str
    runs: int
    trashed_by: str
    trashed_at: datetime

    @property
    def label(self) -> str:
        """How messages name it, e.g. `sweep 3 (rf-loan-3)`."""
        return f"{self.kind} {self.object_id} ({self.name})"


@dataclass(frozen=True)
class PurgeReport:
    """What a purge deleted for good, and the entries it left alone with the reason."""

    entries: tuple[int, ...] = ()
    runs: int = 0
    sweeps: int = 0
    experiments: int = 0
    files: int = 0
    bytes: int = 0
    skipped: tuple[str, ...] = ()


# --- moving to the trash ---


def trash_run(store: Store, run_id: int, actor: UserRecord | None = None) -> TrashRecord:
    """Move one run to the trash.

    Raises:
        NotFoundError: no such run. ValidationError: it is already in the trash, still running, or behind
            a registered model version. PermissionDenied: the actor's role may not.
    """
    fail_stale_runs(store)  # a run whose process died is not running any more
    with store.connect(write=True) as conn:
        who = authorize(conn, actor, Action.run_trash)
        row = conn.execute(select(Run.name, Run.status, Run.trash_id).where(Run.id == run_id)).first()
        if row is None:
            raise NotFoundError(f"There is no run {run_id}.")
        if row.trash_id is not None:
            raise ValidationError(f"Run {run_id} is already in the trash.")
        if row.status == RunStatus.running:
            raise ValidationError(f"Run {run_id} is still running; move it to the trash once it has ended.")
        _refuse_registered(conn, [run_id], "moved to the trash")
        entry = _add_entry(conn, "run", run_id, row.name, [run_id], who)
    return entry


def trash_sweep(store: Store, sweep_id: int, actor: UserRecord | None = None) -> TrashRecord:
    """Move a sweep to the trash with every run of it not already there.

    Raises:
        NotFoundError, ValidationError (already in the trash, running, a run behind a registered version),
        PermissionDenied.
    """
    fail_stale_runs(store, sweep_id)  # an interrupted sweep's runs whose processes died are not running any more
    with store.connect(write=True) as conn:
        who = authorize(conn, actor, Action.run_trash)
        row = conn.execute(select(Sweep.name, Sweep.trash_id).where(Sweep.id == sweep_id)).first()
        if row is None:
            raise NotFoundError(f"There is no sweep {sweep_id}.")
        if row.trash_id is not None:
            raise ValidationError(f"Sweep {sweep_id} is already in the trash.")
        _refuse_running(conn, [sweep_id], Run.sweep_id == sweep_id, f"Sweep {sweep_id}")
        runs = _ids(conn, select(Run.id).where(Run.sweep_id == sweep_id, Run.trash_id.is_(None)))
        _refuse_registered(conn, runs, "moved to the trash")
        entry = _add_entry(conn, "sweep", sweep_id, row.name, runs, who, sweeps=[sweep_id])
    return entry


def trash_experiment(store: Store, experiment: str | int, actor: UserRecord | None = None) -> TrashRecord:
    """Move an experiment (by name or id) to the trash with its sweeps and runs not already there.

    Raises:
        NotFoundError, ValidationError (already in the trash, running, a run behind a registered version),
        PermissionDenied.
    """
    fail_stale_runs(store)
    with store.connect(write=True) as conn:
        who = authorize(conn, actor, Action.run_trash)
        where = Experiment.id == experiment if isinstance(experiment, int) else Experiment.name == experiment
        row = conn.execute(select(Experiment.id, Experiment.name).where(where)).first()
        if row is None:
            raise NotFoundError(f"There is no experiment {experiment!r}.")
        if _entry_of(conn, "experiment", row.id) is not None:
            raise ValidationError(f"The experiment {row.name!r} is already in the trash.")
        sweeps = _ids(conn, select(Sweep.id).where(Sweep.experiment_id == row.id, Sweep.trash_id.is_(None)))
        _refuse_running(conn, sweeps, Run.experiment_id == row.id, f"The experiment {row.name!r}")
        runs = _ids(conn, select(Run.id).where(Run.experiment_id == row.id, Run.trash_id.is_(None)))
        _refuse_registered(conn, runs, "moved to the trash")
        entry = _add_entry(conn, "experiment", row.id, row.name, runs, who, sweeps=sweeps)
    store.experiment_ids.pop(row.name, None)
    return entry


def _add_entry(
    conn: Connection, kind: str, object_id: int, name: str, runs: list[int], who: str, sweeps: Sequence[int] = ()
) -> TrashRecord:
    values = {"kind": kind, "object_id": object_id, "name": name, "runs": len(runs), "trashed_by": who,
              "trashed_at": utcnow()}  # fmt: skip
    entry_id = int(conn.execute(insert(TrashEntry).values(**values).returning(TrashEntry.id)).scalar_one())
    for part in _chunks(runs):
        conn.execute(update(Run).where(Run.id.in_(part)).values(trash_id=entry_id))
    if sweeps:
        conn.execute(update(Sweep).where(Sweep.id.in_(list(sweeps))).values(trash_id=entry_id))
    record(
        conn, who, f"{kind}.trash", kind, object_id, None, {"trash_entry": entry_id, "name": name, "runs": len(runs)}
    )
    bump_change_counter(conn)
    return TrashRecord(id=entry_id, **values)


def _refuse_running(conn: Connection, sweeps: list[int], runs_where: Any, what: str) -> None:
    running = conn.execute(select(Run.id).where(runs_where, Run.status == RunStatus.running).limit(1)).first()
    if running is not None or any(live_workers(conn, sweeps).values()):
        raise ValidationError(
            f"{what} is still running; cancel it and let its trials end before moving it to the trash."
        )


def _refuse_registered(conn: Connection, runs: list[int], doing: str) -> None:
    for part in _chunks(runs):
        found = conn.execute(
            select(ModelVersion.run_id, RegisteredModel.name, ModelVersion.version)
            .join(RegisteredModel, RegisteredModel.id == ModelVersion.model_id)
            .where(ModelVersion.run_id.in_(part))
            .order_by(ModelVersion.id)
            .limit(1)
        ).first()
        if found is not None:
            raise ValidationError(
                f"Run {found.run_id} is behind the registered model version {found.name} v{found.version}, "
                f"so it cannot be {doing}."
            )


# --- reading the trash ---


def list_trash(store: Store) -> list[TrashRecord]:
    """Everything in the trash, most recently trashed first."""
    with store.connect() as conn:
        rows = conn.execute(select(TrashEntry).order_by(TrashEntry.id.desc())).all()
    return [_record(row) for row in rows]


def find_trash(store: Store, kind: str, object_id: int) -> TrashRecord | None:
    """The trash entry a run, sweep or experiment is in the trash with (its own or its sweep's or experiment's),
    or None when it is not in the trash."""
    with store.connect() as conn:
        return _entry_of(conn, kind, object_id)


def _entry_of(conn: Connection, kind: str, object_id: int) -> TrashRecord | None:
    if kind == "experiment":
        where = (TrashEntry.kind == "experiment") & (TrashEntry.object_id == object_id)
    else:
        table = Run if kind == "run" else Sweep
        where = TrashEntry.id == select(table.trash_id).where(table.id == object_id).scalar_subquery()
    row = conn.execute(select(TrashEntry).where(where)).first()
    return _record(row) if row is not None else None


def _entry(conn: Connection, entry_id: int) -> TrashRecord:
    row = conn.execute(select(TrashEntry).where(TrashEntry.id == entry_id)).first()
    if row is None:
        raise NotFoundError(f"There is no trash entry {entry_id} (see `python -m tracking trash list`).")
    return _record(row)


def _own_entry(conn: Connection, kind: str, object_id: int) -> TrashRecord:
    """The entry that holds exactly this run or sweep; a sentence when it is not in the trash or went with more."""
    entry = _entry_of(conn, kind, object_id)
    if entry is None:
        exists = conn.execute(select((Run if kind == "run" else Sweep).id).where(
            (Run if kind == "run" else Sweep).id == object_id)).first()  # fmt: skip
        if exists is None:
            raise NotFoundError(f"There is no {kind} {object_id}.")
        raise ValidationError(f"{kind.capitalize()} {object_id} is not in the trash.")
    if (entry.kind, entry.object_id) != (kind, object_id):
        raise ValidationError(
            f"{kind.capitalize()} {object_id} went to the trash with {entry.label}; restore or purge that "
            f"(trash entry {entry.id})."
        )
    return entry


def _record(row: Any) -> TrashRecord:
    return TrashRecord(row.id, row.kind, row.object_id, row.name, row.runs, row.trashed_by, row.trashed_at)


# --- restoring ---


def restore_trashed(store: Store, entry_id: int, actor: UserRecord | None = None) -> TrashRecord:
    """Bring back exactly what went to the trash with this entry.

    Raises:
        NotFoundError: no such entry. ValidationError: its sweep or experiment is itself in the trash (restore
            that first). PermissionDenied: the actor's role may not.
    """
    with store.connect(write=True) as conn:
        who = authorize(conn, actor, Action.run_trash)
        entry = _entry(conn, entry_id)
        _restore(conn, entry, who)
    return entry


def restore_run(store: Store, run_id: int, actor: UserRecord | None = None) -> TrashRecord:
    """Restore a run that went to the trash on its own (`restore_trashed` takes any entry)."""
    with store.connect(write=True) as conn:
        who = authorize(conn, actor, Action.run_trash)
        entry = _own_entry(conn, "run", run_id)
        _restore(conn, entry, who)
    return entry


def _restore(conn: Connection, entry: TrashRecord, who: str) -> None:
    parents: list[tuple[str, Any]] = []
    if entry.kind == "run":
        row = conn.execute(select(Run.sweep_id, Run.experiment_id).where(Run.id == entry.object_id)).one()
        parents = [("sweep", row.sweep_id), ("experiment", row.experiment_id)]
    elif entry.kind == "sweep":
        parents = [
            ("experiment", conn.execute(select(Sweep.experiment_id).where(Sweep.id == entry.object_id)).scalar())
        ]
    for kind, parent in parents:
        held = _entry_of(conn, kind, parent) if parent is not None else None
        if held is not None:
            raise ValidationError(
                f"The {entry.kind} {entry.object_id} belongs to {held.label}, which is in the trash; "
                f"restore that first (trash entry {held.id})."
            )
    conn.execute(update(Run).where(Run.trash_id == entry.id).values(trash_id=None))
    conn.execute(update(Sweep).where(Sweep.trash_id == entry.id).values(trash_id=None))
    conn.execute(delete(TrashEntry).where(TrashEntry.id == entry.id))
    record(conn, who, f"{entry.kind}.restore", entry.kind, entry.object_id, {"trash_entry": entry.id}, None)
    bump_change_counter(conn)


# --- purging ---


def purge_trashed(store: Store, entry_id: int, actor: UserRecord | None = None) -> PurgeReport:
    """Delete for good what this trash entry holds: a run, or a sweep or experiment with every run and sweep of
    it (also those trashed on their own), their Optuna study, and the artifact files no one refers to any more.

    Raises:
        NotFoundError: no such entry. ValidationError: a run of it is behind a registered model version.
        PermissionDenied: only admins may purge.
    """
    started = time.time()
    with store.connect(write=True) as conn:
        who = authorize(conn, actor, Action.trash_purge)
        entry = _entry(conn, entry_id)
        report, files, studies = _purge(conn, entry, who)
    return _after_purge(store, report, files, studies, started)


def purge_run(store: Store, run_id: int, actor: UserRecord | None = None) -> PurgeReport:
    """Purge a run that went to the trash on its own (`purge_trashed` takes any entry)."""
    started = time.time()
    with store.connect(write=True) as conn:
        who = authorize(conn, actor, Action.trash_purge)
        entry = _own_entry(conn, "run", run_id)
        report, files, studies = _purge(conn, entry, who)
    return _after_purge(store, report, files, studies, started)


def empty_trash(store: Store, actor: UserRecord | None = None, older_than_days: float | None = None) -> PurgeReport:
    """Purge every entry of the trash (only those trashed more than `older_than_days` ago, when given); an entry
    that cannot go (a run of it was registered since) is left with its reason in `skipped`.

    Raises:
        ValidationError: a negative age. PermissionDenied: only admins may purge.
    """
    if older_than_days is not None and older_than_days < 0:
        raise ValidationError("The age of the entries to purge cannot be negative.")
    with store.connect() as conn:
        authorize(conn, actor, Action.trash_purge)
    cutoff = utcnow() - timedelta(days=older_than_days) if older_than_days is not None else None
    total = PurgeReport()
    for entry in sorted(list_trash(store), key=lambda e: e.id):
        if cutoff is not None and entry.trashed_at > cutoff:
            continue
        try:
            done = purge_trashed(store, entry.id, actor)
        except NotFoundError:  # went with an experiment or sweep purged just before
            continue
        except ValidationError as err:
            total = _add(total, PurgeReport(skipped=(f"{entry.label}: {err}",)))
            continue
        total = _add(total, done)
    return total


def _add(a: PurgeReport, b: PurgeReport) -> PurgeReport:
    return PurgeReport(a.entries + b.entries, a.runs + b.runs, a.sweeps + b.sweeps, a.experiments + b.experiments,
                       a.files + b.files, a.bytes + b.bytes, a.skipped + b.skipped)  # fmt: skip


def _purge(conn: Connection, entry: TrashRecord, who: str) -> tuple[PurgeReport, set[str], list[tuple[str, str]]]:
    """Delete the rows inside the caller's write transaction; the sha256s and studies to drop once it commits."""
    experiment = entry.object_id if entry.kind == "experiment" else None
    if entry.kind == "run":
        runs, sweeps = [entry.object_id], []
    elif entry.kind == "sweep":
        runs, sweeps = _ids(conn, select(Run.id).where(Run.sweep_id == entry.object_id)), [entry.object_id]
    else:
        runs = _ids(conn, select(Run.id).where(Run.experiment_id == experiment))
        sweeps = _ids(conn, select(Sweep.id).where(Sweep.experiment_id == experiment))
    _refuse_registered(conn, runs, "purged")
    shas: set[str] = set()
    for part in _chunks(runs):
        # Held first (PostgreSQL; SQLite's writers queue): a writer that has checked one of these runs finishes
        # its points before they are deleted, and one that has not finds the run gone (no foreign key on points).
        conn.execute(select(Run.id).where(Run.id.in_(part)).with_for_update())
        shas.update(conn.execute(select(Artifact.sha256).where(Artifact.run_id.in_(part))).scalars())
        for table in (MetricPoint, MetricBatch, RunValue, RunWord, Artifact, RunTag, Note, Reproduction):
            conn.execute(delete(table).where(table.run_id.in_(part)))
        conn.execute(update(Reproduction).where(Reproduction.new_run_id.in_(part)).values(new_run_id=None))
        conn.execute(delete(TrashEntry).where(TrashEntry.kind == "run", TrashEntry.object_id.in_(part)))
        conn.execute(delete(Run).where(Run.id.in_(part)))
    studies: list[tuple[str, str]] = []
    if sweeps:
        studies = [(ref, name) for name, ref in conn.execute(
            select(Sweep.study_name, Sweep.optuna_storage).where(Sweep.id.in_(sweeps)))]  # fmt: skip
        journals = [name for ref, name in studies if ref == "store-journal"]
        if journals:  # Optuna's journal in the store goes in this same transaction
            conn.execute(delete(OptunaJournalEntry).where(OptunaJournalEntry.journal.in_(journals)))
        conn.execute(delete(Worker).where(Worker.sweep_id.in_(sweeps)))
        conn.execute(delete(AccessToken).where(AccessToken.sweep_id.in_(sweeps)))  # never left unscoped
        conn.execute(delete(TrashEntry).where(TrashEntry.kind == "sweep", TrashEntry.object_id.in_(sweeps)))
        conn.execute(delete(Sweep).where(Sweep.id.in_(sweeps)))
    if experiment is not None:
        conn.execute(delete(Experiment).where(Experiment.id == experiment))
    conn.execute(delete(TrashEntry).where(TrashEntry.id == entry.id))
    record(conn, who, f"{entry.kind}.purge", entry.kind, entry.object_id,
           {"trash_entry": entry.id, "name": entry.name, "runs": len(runs), "sweeps": sweeps}, None)  # fmt: skip
    bump_change_counter(conn)
    report = PurgeReport((entry.id,), len(runs), len(sweeps), 1 if experiment is not None else 0)
    return report, shas, [(ref, name) for ref, name in studies if ref != "store-journal"]


def _after_purge(
    store: Store, report: PurgeReport, shas: set[str], studies: list[tuple[str, str]], started: float
) -> PurgeReport:
    """Once the purge committed: drop the Optuna studies kept outside the store's journal, and the files of the
    purged artifacts that no other run or model version refers to (content is shared by sha256) and that no
    run reused since the purge began (`put_bytes` freshens the time of content it reuses)."""
    for ref, name in studies:
        _delete_study(store, ref, name)
    still = referenced_shas(store, shas)
    files = size = 0
    for sha in sorted(shas - still):
        found = store.blobs.stat(sha)
        if found is None or found[1] >= started or not store.blobs.delete(sha):
            continue
        files, size = files + 1, size + found[0]
    if report.experiments:
        store.experiment_ids.clear()  # ids this process cached by name may name a purged experiment
    return PurgeReport(report.entries, report.runs, report.sweeps, report.experiments, files, size, report.skipped)


def referenced_shas(store: Store, shas: Iterable[str] | None = None) -> set[str]:
    """The sha256s of content some run or model version refers to (among `shas`, when given): artifacts, and
    the CSV datasets a run or sweep uses (kept in the artifact storage so any worker loads them by hash)."""
    wanted = list(shas) if shas is not None else None
    found: set[str] = set()
    used = or_(
        DatasetVersion.id.in_(select(Run.dataset_version_id)), DatasetVersion.id.in_(select(Sweep.dataset_version_id))
    )
    with store.connect() as conn:
        for column, query in (
            (Artifact.sha256, select(Artifact.sha256).distinct()),
            (ModelVersion.artifact_sha256, select(ModelVersion.artifact_sha256).distinct()),
            (DatasetVersion.sha256, select(DatasetVersion.sha256).where(used).distinct()),
        ):
            if wanted is None:
                found.update(conn.execute(query).scalars())
                continue
            for part in _chunks(wanted):
                found.update(conn.execute(query.where(column.in_(part))).scalars())
    return found


def _delete_study(store: Store, ref: str, study_name: str) -> None:
    """Delete a purged sweep's study from Optuna's RDB storage (PostgreSQL) or an older sweep's journal file."""
    import optuna

    if ref.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        storage: Any = optuna.storages.JournalStorage(JournalFileBackend(ref.split(":", 1)[1]))
    else:
        storage = optuna.storages.RDBStorage(store.url, engine_kwargs={"pool_pre_ping": True})
    try:
        with contextlib.suppress(KeyError):  # already gone
            optuna.delete_study(study_name=study_name, storage=storage)
    finally:
        if hasattr(storage, "engine"):
            storage.engine.dispose()


def _ids(conn: Connection, query: Any) -> list[int]:
    return [int(i) for i in conn.execute(query).scalars()]


def _chunks(ids: Sequence[Any]) -> Iterable[list[Any]]:
    ids = list(ids)
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]
