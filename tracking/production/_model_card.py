"""Model cards: one registered version's purpose, data, lineage, scores, gates, fairness, approvals, and its
monitoring alerts, open reviews and latest reproduction at the time the card is made.

`model_card` gathers everything once into a frozen `ModelCard`; `card_markdown` and `card_html` only
format it. The markdown is for people and repositories: the texts people wrote (description, intended
use, limitations) go in as the markdown they are, while every table cell is escaped so that a `|` or a
line break in a name, justification or comment cannot break the table. The HTML is one self-contained
file (no scripts, no network, a strict Content-Security-Policy) where every value is escaped and the
written texts go through the same safe markdown renderer as report notes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tracking._errors import TrackingError
from tracking.explore import escape_html, html_document, markdown_html
from tracking.governance import AuditRecord, list_events
from tracking.ml import Assessment, GroupRow, task_metrics
from tracking.production._card_format import (
    _WRAP,
    _block,
    _cell,
    _code_cell,
    _html_table,
    _meta,
    _number,
    _section,
    _table,
    _td,
    _td_verdict,
    _when,
    _written_html,
)
from tracking.production._inference import recent_inferences
from tracking.production._lifecycle import ReproductionRecord, list_reproductions
from tracking.production._monitoring import Breach, monitor
from tracking.production._reviews import ReviewRecord, list_reviews
from tracking.registry import (
    FAILED,
    NOT_APPLICABLE,
    GateResult,
    RequestRecord,
    VersionRecord,
    gate_summary,
    get_version,
    lineage,
    list_requests,
)
from tracking.store import Stage, Store, iso

NO_GATES = "No gate results yet: nobody has requested a promotion of this version."
NO_REQUESTS = "No promotion requests yet."
NO_REVIEWS = "No open reviews."
BREACH_HEAD = ["alert", "on", "value", "threshold", "finding"]
REVIEW_HEAD = ["review", "opened by", "opened at", "reason"]
REPRODUCTION_HEAD = ["metric", "recorded", "reproduced", "difference", "within tolerance"]


@dataclass(frozen=True)
class ApprovalEntry:
    """One promotion request of the version, as the approval history shows it."""

    request_id: int
    status: str  # pending, approved, rejected, withdrawn or stale
    requested_by: str
    requested_at: datetime
    justification: str
    baseline_version: int | None  # the version in production when it was requested
    gates_passed: int
    gates_failed: int
    decided_by: str | None
    decided_at: datetime | None
    comment: str | None
    override_justification: str | None


@dataclass(frozen=True)
class MonitoringStatus:
    """Monitoring of one version when its card is made."""

    monitored: bool  # its newest logged requests were compared with its training rows
    summary: str  # one sentence: what was read and what was found, or why nothing was measured
    breaches: list[Breach]
    notes: list[str]  # the report's notes (too few rows, an unreadable policy, ...)
    open_reviews: list[ReviewRecord]  # newest first


@dataclass(frozen=True)
class ModelCard:
    """Everything a model card shows, read from the store once."""

    version: VersionRecord
    lineage: dict[str, Any]  # `tracking.registry._models.lineage` of the version
    metrics: dict[str, float]  # the run's recorded metrics
    evaluation: Assessment | None  # the version alone on its held-out rows, scored at registration
    evaluation_error: str | None  # why that evaluation is missing (one sentence), when it is
    gates: list[GateResult]  # of the latest promotion request; empty without one
    gates_request_id: int | None  # that request
    sensitive: str | None  # the sensitive column the groups come from
    groups: list[GroupRow]  # this version's scores per sensitive group; empty without a sensitive column
    groups_source: str | None  # where the per-group table comes from, as words; None: nothing was assessed
    approvals: list[ApprovalEntry]  # every promotion request of the version, oldest first
    events: list[AuditRecord]  # audit events of the version and its requests, oldest first
    monitoring: MonitoringStatus  # breaches of its newest requests (in production) and its open reviews
    reproduction: ReproductionRecord | None  # the latest reproduction of its run; None: never reproduced
    generated_at: datetime

    @property
    def title(self) -> str:
        return f"Model card: {self.version.model} v{self.version.version}"

    @property
    def task_type(self) -> str:
        if self.evaluation is not None:
            return self.evaluation.task_type
        dataset = self.lineage.get("dataset") or {}
        return (dataset.get("schema") or {}).get("task_type", "classification")


# --- gathering ---


def model_card(store: Store, version_id: int) -> ModelCard:
    """Gather a version's model card.

    Raises:
        NotFoundError: there is no such version.
    """
    version = get_version(store, version_id)
    origin = lineage(store, version_id)
    requests = list_requests(store, version_id=version_id)  # newest first
    latest = requests[0] if requests else None

    evaluation, error = None, None
    if not version.evaluation:
        error = "No held-out evaluation was recorded when this version was registered."
    elif "error" in version.evaluation:
        error = str(version.evaluation["error"])
    else:
        evaluation = Assessment.from_json(version.evaluation)

    groups_from = evaluation
    source = "this version's held-out evaluation at registration" if evaluation is not None else None
    assessed = (latest.evaluation or {}).get("assessment") if latest is not None else None
    if assessed:
        groups_from, source = Assessment.from_json(assessed), f"the held-out assessment of request {latest.id}"

    events = list_events(store, object_type="model_version", object_id=version_id)
    if requests:
        events += list_events(store, object_type="promotion_request", object_id=[r.id for r in requests])
    return ModelCard(
        version=version,
        lineage=origin,
        metrics=dict(origin["run"]["metrics"]),
        evaluation=evaluation,
        evaluation_error=error,
        gates=[GateResult.from_json(gate) for gate in latest.gates] if latest is not None else [],
        gates_request_id=latest.id if latest is not None else None,
        sensitive=groups_from.sensitive if groups_from is not None else None,
        groups=list(groups_from.groups) if groups_from is not None else [],
        groups_source=source,
        approvals=[_approval(request) for request in reversed(requests)],
        events=sorted(events, key=lambda event: event.seq),
        monitoring=_monitoring_status(store, version),
        reproduction=_latest_reproduction(store, version.run_id),
        generated_at=datetime.now(UTC),
    )


def _monitoring_status(store: Store, version: VersionRecord) -> MonitoringStatus:
    """The version's monitoring breaches (in production, with logged requests) and its open reviews."""
    reviews = list_reviews(store, version_id=version.id, status="open")

    def unmonitored(summary: str) -> MonitoringStatus:
        return MonitoringStatus(False, summary, [], [], reviews)

    if version.stage != Stage.production.value:
        return unmonitored(f"{version.label} is not in production ({version.stage}), so it is not monitored.")
    if not recent_inferences(store, version.model_id, version_id=version.id, limit=1):
        return unmonitored(f"No requests to {version.label} have been logged yet, so nothing was measured.")
    try:
        report = monitor(store, version.model, version_id=version.id)
    except TrackingError as err:
        return unmonitored(f"Monitoring could not run: {err}")
    span = ""
    if report.first_at and report.last_at:
        span = f", {report.first_at:%Y-%m-%d %H:%M} to {report.last_at:%Y-%m-%d %H:%M} UTC"
    count = len(report.breaches)
    found = f"{count} alert{'s' if count != 1 else ''}" if count else "no alerts"
    summary = (
        f"Over the newest {report.n_requests:,} sampled requests to {version.label} ({report.n_rows:,} rows{span}): "
        f"{found}."
    )
    return MonitoringStatus(True, summary, list(report.breaches), list(report.notes), reviews)


def _latest_reproduction(store: Store, run_id: int) -> ReproductionRecord | None:
    """The newest reproduction of a run (any outcome), or None when it was never reproduced."""
    attempts = list_reproductions(store, run_id=run_id, kind="reproduce")
    return attempts[0] if attempts else None


def _approval(request: RequestRecord) -> ApprovalEntry:
    failed = len(request.failed_gates)
    return ApprovalEntry(
        request.id, request.status, request.requested_by, request.created_at, request.justification,
        request.baseline_version, len(request.gates) - failed, failed, request.decided_by, request.decided_at,
        request.comment, request.override_justification,
    )  # fmt: skip


# --- shared wording ---


def _gate_summary(card: ModelCard) -> str:
    failed = [gate.label for gate in card.gates if gate.state == FAILED]
    where = f"Promotion request {card.gates_request_id}"
    if not failed:
        return f"{where}: {gate_summary([gate.to_json() for gate in card.gates])}"
    return f"{where}: {len(failed)} of {len(card.gates)} gates failed ({'; '.join(failed)})."


def _training_rows(card: ModelCard) -> list[tuple[str, str, bool]]:
    """(field, value, shown as code) rows of the training data table; empty without a recorded dataset."""
    dataset = card.lineage.get("dataset")
    if not dataset:
        return []
    schema, stats = dataset.get("schema") or {}, dataset.get("stats") or {}
    classes = stats.get("classes") or {}
    total = sum(classes.values())
    rows = [
        ("Dataset", str(dataset["name"]), False),
        ("Source", str(dataset.get("source") or "—"), False),
        ("sha256", str(dataset["sha256"]), True),
        ("Rows", _number(dataset.get("rows")), False),
        ("Columns", _number(dataset.get("columns")), False),
        ("Task", str(schema.get("task_type") or "—"), False),
        ("Target", str(schema.get("target") or "—"), False),
        ("Sensitive attribute", str(schema.get("sensitive") or "none recorded"), False),
    ]
    if total:  # classification only
        rows.append(("Class balance", ", ".join(f"{c}: {n:,} ({n / total:.1%})" for c, n in classes.items()), False))
    return rows


def _lineage_rows(card: ModelCard) -> list[tuple[str, str, bool]]:
    run, sweep = card.lineage["run"], card.lineage.get("sweep")
    environment = card.lineage.get("environment") or {}
    packages = ", ".join(f"{name} {version}" for name, version in (environment.get("packages") or {}).items())
    python = f"Python {environment['python']}" if environment.get("python") else ""
    return [
        ("Run", f"{run['id']} ({run['name']}), {run['status']}", False),
        ("Sweep", f"{sweep['id']} ({sweep['name']})" if sweep else "none", False),
        (
            "Code version",
            str(card.lineage.get("code_version") or "not recorded"),
            bool(card.lineage.get("code_version")),
        ),
        ("Seed", "—" if run.get("seed") is None else str(run["seed"]), False),
        ("Params", ", ".join(f"{k}={v}" for k, v in sorted(run["params"].items())) or "none", False),
        ("Model file sha256", card.version.artifact_sha256, True),
        ("Environment", "; ".join(part for part in (python, packages) if part) or "not recorded", False),
    ]


def _metric_rows(card: ModelCard) -> list[tuple[str, str, str, str, str]]:
    """(metric, better, cross-validation, test split, held-out) rows: the task's metrics first."""
    directions = task_metrics(card.task_type)
    held_out = card.evaluation.candidate_scores if card.evaluation is not None else {}
    recorded = {key.split("_", 1)[1] for key in card.metrics if key.startswith(("cv_", "test_"))}
    names = [m for m in directions if m in recorded or m in held_out] + sorted(recorded - set(directions))
    rows = []
    for name in names:
        better = {"maximize": "higher", "minimize": "lower"}.get(directions.get(name, ""), "—")
        rows.append((name, better, _number(card.metrics.get(f"cv_{name}")), _number(card.metrics.get(f"test_{name}")),
                     _number(held_out.get(name))))  # fmt: skip
    return rows


def _held_out_note(card: ModelCard) -> str:
    if card.evaluation is None:
        return f"The held-out evaluation could not be computed: {card.evaluation_error}"
    seed = card.lineage["run"].get("seed")
    return (
        f"Held-out: the registered model file re-scored at registration on the run's {card.evaluation.n_test:,} "
        f"held-out rows (split seed {seed}), which it never trained on."
    )


def _group_metrics(card: ModelCard) -> list[str]:
    seen = dict.fromkeys(metric for row in card.groups for metric in row.candidate)
    known = task_metrics(card.task_type)
    return [m for m in known if m in seen] + [m for m in seen if m not in known]


def _gap(card: ModelCard, metric: str) -> float | None:
    values = [row.candidate.get(metric) for row in card.groups if row.n > 0]
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return max(finite) - min(finite) if len(finite) > 1 else None


def _groups_note(card: ModelCard) -> str | None:
    """Why there is no per-group table (None when there is one)."""
    if card.groups:
        return None
    if card.groups_source is None:
        return f"No per-group table: the held-out evaluation could not be computed. {card.evaluation_error}"
    return "The training data has no sensitive attribute, so there is no per-group table."


def _breach_rows(card: ModelCard) -> list[tuple[str, str, str, str, str]]:
    """(alert, on, value, threshold, finding) per monitoring breach."""
    return [(b.kind.replace("_", " "), b.name, _number(b.value), _number(b.threshold), b.sentence)
            for b in card.monitoring.breaches]  # fmt: skip


def _review_rows(card: ModelCard) -> list[tuple[str, str, str, str]]:
    return [(str(r.id), r.opened_by, _when(r.created_at), r.reason) for r in card.monitoring.open_reviews]


def _reproduction_line(card: ModelCard) -> str:
    attempt, run_id = card.reproduction, card.version.run_id
    if attempt is None:
        return f"Run {run_id} has not been reproduced yet."
    made = f" as run {attempt.new_run_id}" if attempt.new_run_id is not None else ""
    tolerance = f" within {attempt.tolerance:g}" if attempt.tolerance is not None else ""
    return f"Run {run_id} was last reproduced{made}{tolerance} by {attempt.created_by} on {_when(attempt.created_at)}."


def _reproduction_rows(card: ModelCard) -> list[tuple[str, str, str, str, str]]:
    """(metric, recorded, reproduced, difference, within tolerance) of the latest reproduction."""
    table = (card.reproduction.details.get("metrics") or []) if card.reproduction is not None else []
    return [
        (row["key"], _number(row["recorded"]), _number(row["reproduced"]),
         "—" if row["difference"] is None else f"{row['difference']:+.2g}" if row["difference"] else "0", "yes" if row["within_tolerance"] else "NO")
        for row in table
    ]  # fmt: skip


def _event_object(event: AuditRecord) -> str:
    return {"model_version": "version", "promotion_request": "request"}.get(event.object_type, event.object_type) + (
        f" {event.object_id}"
    )


# --- markdown ---


def _fields_markdown(rows: list[tuple[str, str, bool]]) -> str:
    cells = [(_cell(name), _code_cell(value) if code else _cell(value)) for name, value, code in rows]
    return _table(["field", "value"], cells)


def card_markdown(card: ModelCard) -> str:
    """The model card as markdown."""
    version = card.version
    parts = [
        f"# {card.title}",
        f"**Stage:** {version.stage} (since {_when(version.stage_changed_at)}) · registered by {version.created_by} "
        f"on {_when(version.created_at)}",
    ]
    if version.description.strip():
        parts.append(_block(version.description))
    parts += ["## Intended use", _block(version.intended_use), "## Limitations", _block(version.limitations)]

    training = _training_rows(card)
    parts += ["## Training data", _fields_markdown(training) if training else "The run recorded no dataset version."]
    parts += ["## Lineage", _fields_markdown(_lineage_rows(card))]

    metric_rows = [tuple(_cell(v) for v in row) for row in _metric_rows(card)]
    parts += ["## Metrics"]
    if metric_rows:
        parts.append(_table(["metric", "better", "cross-validation", "test split", "held-out"], metric_rows))
    parts.append(_held_out_note(card))

    parts.append("## Gate results")
    if card.gates:
        rows = [
            (_cell(f"{g.gate}: {g.label}"), _number(g.value), _number(g.threshold),
             "pass" if g.passed else "n/a" if g.state == NOT_APPLICABLE else "**FAIL**", _cell(g.detail))
            for g in card.gates
        ]  # fmt: skip
        parts += [_gate_summary(card), _table(["gate", "value", "threshold", "result", "detail"], rows)]
    else:
        parts.append(NO_GATES)

    parts.append("## Fairness per group")
    note = _groups_note(card)
    if note:
        parts.append(note)
    else:
        metrics = _group_metrics(card)
        rows = [
            (_cell(row.group), _number(row.n), *(_number(row.candidate.get(m)) for m in metrics)) for row in card.groups
        ]
        rows.append(("**largest gap**", "", *(_number(_gap(card, m)) for m in metrics)))
        parts += [
            f"Scores of this version per {card.sensitive} group, from {card.groups_source}.",
            _table(["group", "n", *map(_cell, metrics)], rows),
        ]

    parts.append("## Approval history")
    if card.approvals:
        head = ["request", "status", "requested by", "requested at", "justification", "gates", "decided by",
                "decided at", "comment", "override justification"]  # fmt: skip
        rows = [
            (str(a.request_id), _cell(a.status), _cell(a.requested_by), _when(a.requested_at), _cell(a.justification),
             f"{a.gates_passed} passed, {a.gates_failed} failed", _cell(a.decided_by or "—"), _when(a.decided_at),
             _cell(a.comment or "—"), _cell(a.override_justification or "—"))
            for a in card.approvals
        ]  # fmt: skip
        parts.append(_table(head, rows))
    else:
        parts.append(NO_REQUESTS)

    parts += _status_markdown(card)

    parts.append("## Audit trail")
    rows = [(str(e.seq), _when(e.recorded_at), _cell(e.actor), _cell(e.action), _cell(_event_object(e)))
            for e in card.events]  # fmt: skip
    parts.append(_table(["#", "recorded at", "actor", "action", "on"], rows) if rows else "No audit events.")

    parts.append(f"_Generated at {iso(card.generated_at)}._")
    return "\n\n".join(parts) + "\n"


def _status_markdown(card: ModelCard) -> list[str]:
    """The Monitoring and Reproduction sections."""
    status = card.monitoring
    parts = ["## Monitoring", _cell(status.summary)]
    if status.breaches:
        parts.append(_table(BREACH_HEAD, [tuple(map(_cell, row)) for row in _breach_rows(card)]))
    parts += [_cell(note) for note in status.notes]
    reviews = [tuple(map(_cell, row)) for row in _review_rows(card)]
    parts += ["Open reviews:", _table(REVIEW_HEAD, reviews)] if reviews else [NO_REVIEWS]

    parts += ["## Reproduction", _cell(_reproduction_line(card))]
    if card.reproduction is not None:
        parts.append(f"**{_cell(card.reproduction.outcome)}**: {_cell(card.reproduction.summary)}")
        rows = [tuple(map(_cell, row)) for row in _reproduction_rows(card)]
        if rows:
            parts.append(_table(REPRODUCTION_HEAD, rows))
    return parts


# --- HTML ---


def _fields_html(rows: list[tuple[str, str, bool]]) -> str:
    cells = [
        (
            f"<th>{escape_html(name)}</th>",
            f"<td><code>{escape_html(value)}</code></td>" if code else _td(value, wrap=True),
        )
        for name, value, code in rows
    ]
    return "<table>" + "".join(f"<tr>{name}{value}</tr>" for name, value in cells) + "</table>"


def _approval_html(entry: ApprovalEntry) -> str:
    """One request of the approval history: who asked and why, the gates, and the decision."""
    decided = f"{entry.decided_by} on {_when(entry.decided_at)}" if entry.decided_by else "not decided yet"
    rows = [
        ("<th>Requested by</th>", _td(f"{entry.requested_by} on {_when(entry.requested_at)}")),
        ("<th>Justification</th>", f"<td{_WRAP}>{markdown_html(entry.justification)}</td>"),
        ("<th>Gates</th>", _td(f"{entry.gates_passed} passed, {entry.gates_failed} failed")),
        ("<th>Decision</th>", f"<td><strong>{escape_html(entry.status)}</strong></td>"),
        ("<th>Decided by</th>", _td(decided)),
    ]
    if entry.comment:
        rows.append(("<th>Comment</th>", f"<td{_WRAP}>{markdown_html(entry.comment)}</td>"))
    if entry.override_justification:
        rows.append(
            ("<th>Override justification</th>", f"<td{_WRAP}>{markdown_html(entry.override_justification)}</td>")
        )
    table = "<table>" + "".join(f"<tr>{name}{value}</tr>" for name, value in rows) + "</table>"
    return f"<h3>Request {escape_html(entry.request_id)}: {escape_html(entry.status)}</h3>{table}"


def _status_html(card: ModelCard) -> list[str]:
    """The Monitoring and Reproduction sections."""
    status = card.monitoring
    monitoring = [f"<p>{escape_html(status.summary)}</p>"]
    if status.breaches:
        rows = [(_td(alert), _td(on), _td(value, numeric=True), _td(threshold, numeric=True), _td(finding, wrap=True))
                for alert, on, value, threshold, finding in _breach_rows(card)]  # fmt: skip
        monitoring.append(_html_table(BREACH_HEAD, rows))
    monitoring += [_meta(note) for note in status.notes]
    reviews = [
        (_td(i, numeric=True), _td(by), _td(at), _td(reason, wrap=True)) for i, by, at, reason in _review_rows(card)
    ]
    monitoring.append(f"<h3>Open reviews</h3>{_html_table(REVIEW_HEAD, reviews)}" if reviews else _meta(NO_REVIEWS))

    reproduction = [f"<p>{escape_html(_reproduction_line(card))}</p>"]
    if card.reproduction is not None:
        reproduction.append(
            f"<p><strong>{escape_html(card.reproduction.outcome)}</strong>: {escape_html(card.reproduction.summary)}</p>"
        )
        rows = [(_td(key), *(_td(v, numeric=True) for v in values)) for key, *values in _reproduction_rows(card)]
        if rows:
            reproduction.append(_html_table(REPRODUCTION_HEAD, rows))
    return [_section("Monitoring", *monitoring), _section("Reproduction", *reproduction)]


def card_html(card: ModelCard) -> str:
    """The model card as one self-contained HTML file (no scripts, nothing fetched, everything escaped)."""
    version = card.version
    header = (
        f'<header><h1>{escape_html(card.title)}</h1><p class="meta">Stage: <strong>{escape_html(version.stage)}</strong> '
        f"(since {escape_html(_when(version.stage_changed_at))}) · registered by {escape_html(version.created_by)} on "
        f"{escape_html(_when(version.created_at))}</p></header>"
    )
    body = [header]
    if version.description.strip():
        body.append(f'<section class="notes">{markdown_html(version.description)}</section>')
    body.append(_section("Intended use", _written_html(version.intended_use)))
    body.append(_section("Limitations", _written_html(version.limitations)))

    training = _training_rows(card)
    body.append(
        _section("Training data", _fields_html(training) if training else _meta("The run recorded no dataset version."))
    )
    body.append(_section("Lineage", _fields_html(_lineage_rows(card))))

    metric_rows = [
        (f"<th>{escape_html(name)}</th>", _td(better), *(_td(v, numeric=True) for v in values))
        for name, better, *values in _metric_rows(card)
    ]
    metrics_table = _html_table(["metric", "better", "cross-validation", "test split", "held-out"], metric_rows)
    body.append(_section("Metrics", metrics_table if metric_rows else "", _meta(_held_out_note(card))))

    if card.gates:
        rows = [
            (_td(f"{g.gate}: {g.label}", wrap=True), _td(_number(g.value), numeric=True),
             _td(_number(g.threshold), numeric=True), _td_verdict(g.passed, g.state), _td(g.detail, wrap=True))
            for g in card.gates
        ]  # fmt: skip
        gates = f"<p><strong>{escape_html(_gate_summary(card))}</strong></p>" + _html_table(
            ["gate", "value", "threshold", "result", "detail"], rows
        )
    else:
        gates = f"<p>{escape_html(NO_GATES)}</p>"
    body.append(_section("Gate results", gates))

    note = _groups_note(card)
    if note:
        fairness = _meta(note)
    else:
        metrics = _group_metrics(card)
        rows = [
            (
                _td(row.group),
                _td(_number(row.n), numeric=True),
                *(_td(_number(row.candidate.get(m)), numeric=True) for m in metrics),
            )
            for row in card.groups
        ]
        rows.append(
            ("<th>largest gap</th>", "<td></td>", *(_td(_number(_gap(card, m)), numeric=True) for m in metrics))
        )
        fairness = _meta(
            f"Scores of this version per {card.sensitive} group, from {card.groups_source}."
        ) + _html_table(["group", "n", *metrics], rows)
    body.append(_section("Fairness per group", fairness))

    approvals = "".join(_approval_html(a) for a in card.approvals) or f"<p>{escape_html(NO_REQUESTS)}</p>"
    body.append(_section("Approval history", approvals))

    body += _status_html(card)

    rows = [
        (_td(e.seq, numeric=True), _td(_when(e.recorded_at)), _td(e.actor), _td(e.action), _td(_event_object(e)))
        for e in card.events
    ]
    body.append(
        _section(
            "Audit trail",
            _html_table(["#", "recorded at", "actor", "action", "on"], rows) if rows else _meta("No audit events."),
        )
    )

    body.append(
        f"<footer>Generated at {escape_html(iso(card.generated_at))} by the experiment-tracking dashboard. "
        "This file needs no server or network.</footer>"
    )
    return html_document(card.title, "\n".join(body))
