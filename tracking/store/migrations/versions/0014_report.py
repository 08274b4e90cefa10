"""gate states: a no-regression gate stored as passed while nothing was in production becomes 'not applicable'

No column changes: the gate results are JSON. Requests evaluated before gates had three states stored the
no-regression gate of a first promotion (no version in production) as passed; this marks those results
not applicable, as a new request would store them, so the summary no longer counts them as passes.
Every other stored result keeps `passed` and reads its state from it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

OLD_DETAIL = "No version is in production, so there is nothing to regress against."
NEW_DETAIL = "No version is in production, so there is nothing to regress against: this gate does not apply."
REQUESTS = sa.table(
    "promotion_requests",
    sa.column("id", sa.Integer()),
    sa.column("gates", sa.JSON().with_variant(JSONB(), "postgresql")),
)


def _not_applicable(gate: dict[str, Any]) -> dict[str, Any]:
    if gate.get("gate") != "regression" or gate.get("state") or gate.get("detail") != OLD_DETAIL:
        return gate
    metric = str(gate.get("label", "")).split(" ", 1)[0]
    return {**gate, "passed": False, "state": "not applicable", "detail": NEW_DETAIL, "value": None,
            "threshold": None, "metric": metric}  # fmt: skip


def _passed_again(gate: dict[str, Any]) -> dict[str, Any]:
    if gate.get("state") != "not applicable":
        return gate
    old = {k: v for k, v in gate.items() if k not in ("state", "metric")}
    return {**old, "passed": True, "detail": OLD_DETAIL if gate.get("gate") == "regression" else gate.get("detail")}


def _rewrite(change: Any) -> None:
    bind = op.get_bind()
    for request_id, gates in bind.execute(sa.select(REQUESTS.c.id, REQUESTS.c.gates)).all():
        changed = [change(gate) for gate in gates or []]
        if changed != gates:
            bind.execute(sa.update(REQUESTS).where(REQUESTS.c.id == request_id).values(gates=changed))


def upgrade() -> None:
    _rewrite(_not_applicable)


def downgrade() -> None:
    _rewrite(_passed_again)
