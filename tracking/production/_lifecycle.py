"""Reproducing a run and retraining a production model, both from the recipe a sweep recorded.

A run of a built-in-model sweep is retrained from what was recorded with it: its params and seed, its
dataset version (reloaded and re-hashed) and, from the sweep's config, the model family, the CV folds
and the primary metric. `reproduce_run` does that on the recorded data and compares every `cv_*` and
`test_*` metric within a tolerance; `retrain` does it on the current data of the same source, with the
current code and optionally new params, and registers the result as a candidate version of the model,
or skips training when nothing changed. Each attempt is a `Reproduction` row written with its audit
event in one transaction. A run made by a reproduction or a retrain has no sweep of its own: its recipe
is found through the `Reproduction` row that made it, back to the sweep run it descends from.
"""

from __future__ import annotations

import json
import math
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from tracking._errors import NotFoundError, TrackingError, ValidationError
from tracking.governance import Action, UserRecord, authorize, record, require, why_not
from tracking.ml import COST_METRICS, FAMILIES, task_metrics, train_and_score
from tracking.registry import VersionRecord, get_model, production_version, rebuild_dataset, register_version
from tracking.runs import (
    ActiveRun,
    TaskData,
    code_version,
    get_or_create_experiment,
    get_run,
    insert_run,
    json_safe,
    load_task,
    process_worker_id,
    register_dataset,
    run_row,
    run_scope,
)
from tracking.store import Reproduction, Run, RunRecord, RunStatus, Store, Sweep, bump_change_counter, utcnow
from tracking.sweeps import objective_code_path

DEFAULT_TOLERANCE = 1e-6
_MAX_LINEAGE = 1000  # a guard against a cycle in hand-edited reproduction rows


@dataclass(frozen=True)
class ReproductionRecord:
    """One reproduction or retrain attempt.

    `details["summary"]` is one sentence saying what happened; a reproduction's `details["metrics"]` is
    its per-metric table (key, recorded, reproduced, difference, within_tolerance).
    """

    id: int
    run_id: int  # the run reproduced, or the production run retrained
    new_run_id: int | None
    kind: str  # "reproduce" or "retrain"
    outcome: str  # reproduce: matched / differs / failed; retrain: skipped / retrained / failed
    tolerance: float | None
    details: dict[str, Any]
    created_by: str
    created_at: datetime

    @property
    def summary(self) -> str:
        return str(self.details.get("summary", ""))


@dataclass(frozen=True)
class RetrainResult:
    """What `retrain` did: the recorded attempt and, when it retrained, the new candidate version."""

    record: ReproductionRecord
    version: VersionRecord | None  # the new version (stage none), or None when skipped or failed

    @property
    def outcome(self) -> str:
        return self.record.outcome

    @property
    def new_run_id(self) -> int | None:
        return self.record.new_run_id

    @property
    def changes(self) -> dict[str, Any]:
        return dict(self.record.details.get("changes") or {})

    @property
    def summary(self) -> str:
        return self.record.summary


@dataclass(frozen=True)
class _Recipe:
    """How the sweep behind a run trained it."""

    model: str
    folds: int
    seed: int
    primary: str  # the base metric whose learning curve is logged, e.g. `f1_macro`
    data: dict[str, Any]  # the sweep's data source: task or csv, target, sensitive, name, task_type
    code_path: Path


# --- reads ---


def list_reproductions(store: Store, run_id: int | None = None, kind: str | None = None) -> list[ReproductionRecord]:
    """Reproduction and retrain attempts, newest first: all, or those of one original run or of one kind."""
    query = select(Reproduction).order_by(Reproduction.id.desc())
    if run_id is not None:
        query = query.where(Reproduction.run_id == run_id)
    if kind is not None:
        query = query.where(Reproduction.kind == kind)
    with store.session_scope() as session:
        return [_record(row) for row in session.execute(query).scalars()]


def get_reproduction(store: Store, reproduction_id: int) -> ReproductionRecord:
    """One attempt by id. Raises NotFoundError."""
    with store.session_scope() as session:
        row = session.get(Reproduction, reproduction_id)
        if row is None:
            raise NotFoundError(f"There is no reproduction {reproduction_id}.")
        return _record(row)


def _record(row: Reproduction) -> ReproductionRecord:
    return ReproductionRecord(
        row.id, row.run_id, row.new_run_id, row.kind, row.outcome, row.tolerance, dict(row.details),
        row.created_by, row.created_at,
    )  # fmt: skip


def reproduce_blockers(store: Store, actor: UserRecord | None, run: RunRecord) -> list[str]:
    """Why `actor` cannot reproduce this run now (empty: they can): the sentences `reproduce_run` raises."""
    if role := why_not(actor, Action.run_reproduce):
        return [role]
    if run.status != RunStatus.complete.value:
        return [_incomplete(run)]
    try:
        _recipe(store, run, "reproduce")
    except TrackingError as err:
        return [str(err)]
    return []


def _incomplete(run: RunRecord) -> str:
    return f"Run {run.id} is {run.status}; only a complete run can be reproduced."


def _recipe(store: Store, run: RunRecord, verb: str) -> _Recipe:
    """The recipe of the built-in-model sweep that `run` (or the run it was reproduced or retrained from) came from.

    Raises:
        ValidationError: the run descends from no sweep, or from a sweep of the user's own objective.
    """
    current, sweep_id = run.id, run.sweep_id
    with store.connect() as conn:
        for _ in range(_MAX_LINEAGE):
            if sweep_id is not None:
                break
            origin = conn.execute(
                select(Reproduction.run_id).where(Reproduction.new_run_id == current).limit(1)
            ).scalar()
            if origin is None:
                break
            current = origin
            sweep_id = conn.execute(select(Run.sweep_id).where(Run.id == origin)).scalar()
        config = conn.execute(select(Sweep.config).where(Sweep.id == sweep_id)).scalar() if sweep_id else None
    if not config or config.get("objective") or config.get("model") not in FAMILIES or not config.get("data"):
        raise ValidationError(
            f"Run {run.id} was not trained by a sweep of a built-in model, so there is no recipe to {verb} it from."
        )
    data = dict(config["data"])
    first = config["metrics"][0]["key"]
    base = first.split("_", 1)[1] if first.startswith(("cv_", "test_")) else None
    primary = base or next(iter(task_metrics(data["task_type"])))
    seed = run.seed if run.seed is not None else int(config["seed"])
    return _Recipe(config["model"], int(config["folds"]), seed, primary, data, objective_code_path(config))


# --- training a run the way a sweep trial does ---


def _train(
    store: Store,
    recipe: _Recipe,
    data: TaskData,
    *,
    experiment: str,
    name: str,
    params: Mapping[str, Any],
    dataset_version_id: int | None,
    tags: Mapping[str, Any],
    owner: str,
    actor: UserRecord | None,
) -> tuple[int, RunRecord | None, str | None]:
    """Train and score one configuration like a sweep trial and log it as a run.

    Returns (run id, the finished run or None, the sentence saying why training failed or None).
    """
    values = run_row(
        experiment_id=get_or_create_experiment(store, experiment),
        worker_id=process_worker_id(store),
        params=params,
        name=name,
        dataset_version_id=dataset_version_id,
        seed=recipe.seed,
        code_path=recipe.code_path,
        owner=owner,
    )
    with store.connect(write=True) as conn:
        run_id = insert_run(conn, values)
    run = ActiveRun(store, run_id, actor)
    run.set_tags(tags)
    family = FAMILIES[recipe.model]

    def on_step(key: str, step: int, value: float) -> None:
        run.log_metric(key, value, step=step)

    try:
        result = train_and_score(data, family, dict(params), recipe.seed, recipe.primary, on_step, recipe.folds)
    except (KeyboardInterrupt, SystemExit):
        run.end(RunStatus.killed, error="Interrupted during training.\n" + traceback.format_exc())
        raise
    except Exception as err:  # the model itself failed (e.g. other library versions): an outcome, not a crash
        run.end(RunStatus.failed, error=traceback.format_exc())
        first = (str(err).strip().splitlines() or [""])[0]
        return run_id, None, f"Training failed in run {run_id} ({type(err).__name__}: {first}); see its error."
    with run_scope(run):
        for key, history in result.histories.items():
            for step, value in enumerate(history):
                run.log_metric(key, value, step=step)
        run.log_metrics(result.metrics)
        run.log_artifact(result.model_bytes, name="model", kind="model")
    return run_id, get_run(store, run_id), None


def _save(
    store: Store,
    actor: UserRecord | None,
    action: Action,
    audit_object: tuple[str, Any],
    *,
    kind: str,
    run_id: int,
    new_run_id: int | None,
    outcome: str,
    tolerance: float | None,
    details: dict[str, Any],
) -> ReproductionRecord:
    """Record an attempt and its audit event in one transaction."""
    with store.connect(write=True) as conn:
        who = authorize(conn, actor, action)
        row_id = conn.execute(
            insert(Reproduction)
            .values(run_id=run_id, new_run_id=new_run_id, kind=kind, outcome=outcome, tolerance=tolerance,
                    details=details, created_by=who, created_at=utcnow())
            .returning(Reproduction.id)
        ).scalar_one()  # fmt: skip
        after = {"reproduction": row_id, "kind": kind, "run": run_id, "new_run": new_run_id, "outcome": outcome,
                 "summary": details["summary"]}  # fmt: skip
        if kind == "retrain":
            after.update({k: details.get(k) for k in ("model", "from_version", "version", "changes")})
        record(conn, who, action.value, audit_object[0], audit_object[1], None, after)
        bump_change_counter(conn)
    return get_reproduction(store, row_id)


# --- reproduce ---


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def compare_metrics(recorded: Mapping[str, Any], reproduced: Mapping[str, Any], tolerance: float) -> list[dict]:
    """The per-metric table of a reproduction: every recorded `cv_*` / `test_*` metric against the new value.

    A metric recorded as missing (null, e.g. an undefined ROC AUC) matches only a missing value.
    """
    table = []
    for key in sorted(recorded):
        if not key.startswith(("cv_", "test_")) or key in COST_METRICS:
            continue
        old, new = _finite(recorded[key]), _finite(reproduced.get(key))
        difference = new - old if old is not None and new is not None else None
        within = (old is None and new is None) or (difference is not None and abs(difference) <= tolerance)
        table.append({"key": key, "recorded": old, "reproduced": new, "difference": difference,
                      "within_tolerance": within})  # fmt: skip
    return table


def reproduce_run(
    store: Store, run_id: int, *, tolerance: float = DEFAULT_TOLERANCE, actor: UserRecord | None = None
) -> ReproductionRecord:
    """Retrain a sweep run from its recorded params, seed and dataset version, and compare its metrics.

    The new run is logged in the original's experiment, tagged `reproduces=<run id>`, with the same
    dataset version, seed and params and its own model artifact. Every recorded `cv_*` / `test_*`
    metric is compared with the new one (absolute difference within `tolerance`); the cost metrics
    (fit_seconds, predict_ms_per_row, model_bytes) are not compared. Whether the current code version
    differs from the recorded one is noted in the details.

    Args:
        store: the store.
        run_id: the run to reproduce.
        tolerance: the largest absolute difference a metric may show and still match.
        actor: who asks (data scientists, engineers and admins may).

    Returns:
        The recorded attempt: outcome `matched` or `differs` (with the per-metric table in
        `details["metrics"]`), or `failed` when the recorded data changed or is gone, or training
        failed (the sentence is `summary`).

    Raises:
        NotFoundError: no such run.
        ValidationError: a bad tolerance, the run did not complete, or it was not trained by a sweep of
            a built-in model.
        PermissionDenied: the actor may not reproduce runs.
    """
    who = require(store, actor, Action.run_reproduce)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not 0 <= tolerance < math.inf:
        raise ValidationError(f"The tolerance must be a number of at least 0, not {tolerance!r}.")
    run = get_run(store, run_id)
    if run.status != RunStatus.complete.value:
        raise ValidationError(_incomplete(run))
    recipe = _recipe(store, run, "reproduce")
    if not compare_metrics(run.metrics, {}, tolerance):
        raise ValidationError(f"Run {run_id} recorded no cv_* or test_* metrics to compare a reproduction with.")
    current_code = code_version(recipe.code_path)
    dataset_id = run.dataset["id"] if run.dataset else None
    details: dict[str, Any] = {
        "model": recipe.model,
        "folds": recipe.folds,
        "seed": recipe.seed,
        "params": run.params,
        "dataset": run.dataset,
        "code_version": {"recorded": run.code_version, "current": current_code,
                         "differs": current_code != run.code_version},
    }  # fmt: skip
    code_note = ""
    if current_code != run.code_version:
        then, now = short_code(run.code_version), short_code(current_code)
        code_note = f" The code version differs from the recorded one ({then} then, {now} now)."
    save = {"kind": "reproduce", "run_id": run_id, "tolerance": float(tolerance)}
    audit_object = ("run", run_id)
    try:
        data = rebuild_dataset(store, dataset_id)
    except ValidationError as err:
        details.update(summary=str(err), reason=str(err))
        return _save(store, actor, Action.run_reproduce, audit_object, new_run_id=None, outcome="failed",
                     details=details, **save)  # fmt: skip
    new_id, new_run, error = _train(
        store, recipe, data, experiment=run.experiment, name=f"reproduce-{run_id}", params=run.params,
        dataset_version_id=dataset_id, tags={"reproduces": run_id}, owner=who, actor=actor,
    )  # fmt: skip
    if new_run is None:
        details.update(summary=error + code_note, reason=error)
        return _save(store, actor, Action.run_reproduce, audit_object, new_run_id=new_id, outcome="failed",
                     details=details, **save)  # fmt: skip
    table = compare_metrics(run.metrics, new_run.metrics, tolerance)
    off = [row["key"] for row in table if not row["within_tolerance"]]
    if off:
        summary = (
            f"{len(off)} of {len(table)} recorded metrics of run {run_id} differ in run {new_id} by more than "
            f"{tolerance:g}: {', '.join(off)}."
        )
    else:
        summary = (
            f"All {len(table)} recorded metrics of run {run_id} were reproduced by run {new_id} within {tolerance:g}."
        )
    details.update(summary=summary + code_note, metrics=table)
    return _save(store, actor, Action.run_reproduce, audit_object, new_run_id=new_id,
                 outcome="differs" if off else "matched", details=details, **save)  # fmt: skip


# --- retrain ---


def short_sha(value: Any) -> str:
    """A sha256 as its first 12 characters and an ellipsis; `none` for None."""
    if value is None:
        return "none"
    text = str(value)
    return text[:12] + "…" if len(text) == 64 else text  # a sha256


def short_code(value: str | None) -> str:
    """A code version as its commit's first 12 characters (and `+dirty`); `none` outside git."""
    if value is None:
        return "none"
    commit, plus, dirty = value.partition("+")
    return commit[:12] + plus + dirty


def describe_changes(changes: Mapping[str, Any]) -> str:
    """What changed, for a version's description: `dataset changed (a…→b…); params changed (C: 10→0.5)`."""
    parts = []
    if "dataset" in changes:
        dataset = changes["dataset"]
        parts.append(f"dataset changed ({short_sha(dataset['before'])}→{short_sha(dataset['after'])})")
    if "code_version" in changes:
        code = changes["code_version"]
        parts.append(f"code changed ({short_code(code['before'])}→{short_code(code['after'])})")
    if "params" in changes:
        shown = ", ".join(
            f"{key}: {json.dumps(change['before'])}→{json.dumps(change['after'])}"
            for key, change in sorted(changes["params"].items())
        )
        parts.append(f"params changed ({shown})")
    return "; ".join(parts)


def _overridden(recipe: _Recipe, recorded: Mapping[str, Any], params: Mapping[str, Any] | None) -> dict[str, Any]:
    if params is None:
        return dict(recorded)
    if not isinstance(params, Mapping):
        raise ValidationError(f"The params to change must be a mapping of names to values, not {params!r}.")
    accepted = FAMILIES[recipe.model].accepted_params(recipe.data["task_type"])
    unknown = sorted(str(key) for key in params if key not in accepted)
    if unknown:
        raise ValidationError(
            f"The model family {recipe.model!r} has no parameter {unknown[0]!r}; its parameters are: "
            f"{', '.join(sorted(accepted))}."
        )
    return {**recorded, **json_safe(params)}


def retrain(
    store: Store, model: str, *, params: Mapping[str, Any] | None = None, actor: UserRecord | None = None
) -> RetrainResult:
    """Retrain a registered model's production version on the current data, code and params.

    The production version's run is retrained the way its sweep trained it (same model family, seed and
    folds) on the current content of the same data source (the built-in task, or the CSV file with the
    same target and sensitive columns), with the current code and the run's params overridden by
    `params`. When the dataset sha256, the code version and the params all equal the production run's,
    nothing is trained (outcome `skipped`). Otherwise the new run is tagged `retrained_from=<run id>`
    and `retrain_changes`, and registered as the next version of `model` (stage none, ready for a
    promotion request), described by what changed. A code version of a work tree with uncommitted
    changes ends in `+dirty` whatever those changes are, so two dirty trees on one commit compare equal.

    Args:
        store: the store.
        model: the registered model's name.
        params: params to change, e.g. `{"C": 0.5}` (the family's parameter names).
        actor: who asks (data scientists, engineers and admins may).

    Returns:
        The recorded attempt (outcome `skipped`, `retrained`, or `failed` when the data source can no
        longer be loaded or training failed) and the new version when it retrained.

    Raises:
        NotFoundError: no registered model of that name.
        ValidationError: no version in production, its run was not trained by a sweep of a built-in
            model, or an unknown parameter.
        PermissionDenied: the actor may not retrain models (or register versions).
    """
    who = require(store, actor, Action.model_retrain)
    get_model(store, model)
    production = production_version(store, model)
    if production is None:
        raise ValidationError(f"The registered model {model!r} has no version in production to retrain.")
    run = get_run(store, production.run_id)
    recipe = _recipe(store, run, "retrain")
    new_params = _overridden(recipe, run.params, params)
    recorded_sha = run.dataset["hash"] if run.dataset else None
    current_code = code_version(recipe.code_path)
    details: dict[str, Any] = {"model": model, "from_version": production.version, "production_run": run.id}
    save = {"kind": "retrain", "run_id": run.id, "tolerance": None}
    audit_object = ("registered_model", model)
    spec = recipe.data
    try:
        data = load_task(spec["task"], None if spec["task"] else spec["csv"], spec["target"], spec["sensitive"])
    except ValidationError as err:
        details.update(summary=str(err), reason=str(err))
        return RetrainResult(_save(store, actor, Action.model_retrain, audit_object, new_run_id=None,
                                   outcome="failed", details=details, **save), None)  # fmt: skip
    details["compared"] = {
        "dataset_sha256": {"recorded": recorded_sha, "current": data.sha256},
        "code_version": {"recorded": run.code_version, "current": current_code},
        "params": {"recorded": run.params, "current": new_params},
    }
    changes: dict[str, Any] = {}
    if data.sha256 != recorded_sha:
        changes["dataset"] = {"before": recorded_sha, "after": data.sha256}
    if current_code != run.code_version:
        changes["code_version"] = {"before": run.code_version, "after": current_code}
    changed_params = {
        key: {"before": run.params.get(key), "after": new_params.get(key)}
        for key in sorted(set(run.params) | set(new_params))
        if run.params.get(key) != new_params.get(key) or (key in run.params) != (key in new_params)
    }
    if changed_params:
        changes["params"] = changed_params
    details["changes"] = changes
    if not changes:
        details["summary"] = (
            f"Nothing changed since {production.label} (run {run.id}): its dataset sha256 {short_sha(data.sha256)}, "
            f"code version {short_code(current_code)} and params {json.dumps(new_params, sort_keys=True)} are "
            "all current, so no training was done."
        )
        return RetrainResult(_save(store, actor, Action.model_retrain, audit_object, new_run_id=None,
                                   outcome="skipped", details=details, **save), None)  # fmt: skip
    what = describe_changes(changes)
    dataset_id = register_dataset(store, data, actor)  # the recorded version's id when the content is the same
    if "dataset" in changes:
        changes["dataset"]["dataset_version_id"] = dataset_id
    new_id, new_run, error = _train(
        store, recipe, data, experiment=run.experiment, name=f"retrain-{model}", params=new_params,
        dataset_version_id=dataset_id, owner=who, actor=actor,
        tags={"retrained_from": run.id, "retrained_model": model, "retrain_changes": ",".join(changes)},
    )  # fmt: skip
    if new_run is None:
        details.update(summary=error, reason=error)
        return RetrainResult(_save(store, actor, Action.model_retrain, audit_object, new_run_id=new_id,
                                   outcome="failed", details=details, **save), None)  # fmt: skip
    version = register_version(
        store, new_id, model, description=f"retrained from v{production.version}: {what}", actor=actor
    )
    key = f"cv_{recipe.primary}"
    details.update(
        version=version.version,
        version_id=version.id,
        metric={"key": key, "production": run.metrics.get(key), "candidate": new_run.metrics.get(key)},
        summary=(
            f"{version.label} was registered from run {new_id}, retrained from v{production.version} because "
            f"{what}; request its promotion to put it in production."
        ),
    )
    saved = _save(store, actor, Action.model_retrain, audit_object, new_run_id=new_id, outcome="retrained",
                  details=details, **save)  # fmt: skip
    return RetrainResult(saved, version)
