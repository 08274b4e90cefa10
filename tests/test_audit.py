"""The audit trail: appended in the change's transaction, hash-chained, tamper found by `verify_chain`."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select, update

import tracking
from tests.governance import PASSWORD, first_admin, make_accounts
from tracking.governance._access import create_user, set_role
from tracking.governance._audit import events_csv, list_events, verify_chain
from tracking.store._tables import AuditChain, AuditEvent

pytestmark = pytest.mark.file_backends  # sweeps need a store that worker processes could share


@pytest.fixture
def trail(store):
    """A store with accounts and a few audited changes (sweep launched and cancelled, a role changed)."""
    users = make_accounts(store)
    sweep = tracking.create_sweep(
        store, tracking.SweepSpec(task="iris", model="knn", n_trials=2), actor=users["engineer"]
    )
    tracking.cancel_sweep(store, sweep.id, actor=users["engineer"])
    set_role(store, users["admin"], "viewer", "product_owner")
    return store


def test_audit_every_change_is_recorded_with_actor_object_and_before_after(trail):
    events = list_events(trail)
    assert [e.seq for e in events] == list(range(len(events), 0, -1))
    actions = [(e.actor, e.action, e.object_type) for e in reversed(events)]
    assert actions[0] == ("admin", "user.create", "user")
    assert ("engineer", "sweep.launch", "sweep") in actions
    assert ("engineer", "sweep.cancel", "sweep") in actions
    role_change = next(e for e in events if e.action == "user.set_role")
    assert (role_change.before, role_change.after) == ({"role": "viewer"}, {"role": "product_owner"})


def test_audit_untouched_chain_verifies(trail):
    report = verify_chain(trail)
    assert report.ok, report.problems
    assert report.checked == len(list_events(trail))


def _tamper(store, statement):
    with store.connect(write=True) as conn:
        conn.execute(statement)


@pytest.mark.parametrize(
    ("tamper", "found"),
    [
        (lambda: update(AuditEvent).where(AuditEvent.seq == 3).values(actor="someone-else"), "Event 3 .* edited"),
        (lambda: update(AuditEvent).where(AuditEvent.seq == 2).values(after='{"role":"admin"}'), "Event 2 .* edited"),
        (lambda: delete(AuditEvent).where(AuditEvent.seq == 4), "Events 4 to 4 are missing"),
        (lambda: delete(AuditEvent).where(AuditEvent.seq >= 8), "head records event"),
    ],
    ids=["edited actor", "edited after", "deleted", "truncated"],
)
def test_audit_tampering_is_detected(trail, tamper, found):
    _tamper(trail, tamper())
    report = verify_chain(trail)
    assert not report.ok
    assert any(re.search(found, p) for p in report.problems), report.problems


def test_audit_reordered_events_are_detected(trail):
    with trail.connect(write=True) as conn:
        rows = {r.seq: r for r in conn.execute(select(AuditEvent).where(AuditEvent.seq.in_([2, 3])))}
        for seq, other in ((2, 3), (3, 2)):  # swap the contents (and hashes) of events 2 and 3
            src = rows[other]
            conn.execute(
                update(AuditEvent).where(AuditEvent.seq == seq).values(
                    recorded_at=src.recorded_at, actor=src.actor, action=src.action, object_type=src.object_type,
                    object_id=src.object_id, before=src.before, after=src.after, prev_hash=src.prev_hash, hash=src.hash,
                )
            )  # fmt: skip
    report = verify_chain(trail)
    assert not report.ok
    assert any("reordered" in p or "edited" in p for p in report.problems)


def test_audit_refused_change_writes_no_event(trail):
    before = len(list_events(trail))
    viewer = tracking.governance._access.get_user(trail, "engineer")
    with pytest.raises(tracking.PermissionDenied):
        create_user(trail, viewer, "intruder", "admin", PASSWORD)
    assert len(list_events(trail)) == before
    assert verify_chain(trail).ok


def test_audit_filters_by_actor_action_prefix_object_and_time(trail):
    assert {e.actor for e in list_events(trail, actor="engineer")} == {"engineer"}
    assert {e.action for e in list_events(trail, action="sweep.")} == {"sweep.launch", "sweep.cancel"}
    assert [e.object_id for e in list_events(trail, object_type="user", object_id="viewer")] == ["viewer", "viewer"]
    now = datetime.now(UTC)
    assert list_events(trail, since=now + timedelta(minutes=1)) == []
    assert len(list_events(trail, until=now + timedelta(minutes=1))) == len(list_events(trail))


def test_audit_csv_export_has_every_event_and_defuses_formulas(file_store):
    admin = first_admin(file_store)
    tracking.create_sweep(file_store, tracking.SweepSpec(task="iris", model="knn", name="=HYPERLINK(1)"), actor=admin)
    rows = list(csv.DictReader(io.StringIO(events_csv(list_events(file_store)))))
    assert [r["action"] for r in rows] == ["sweep.launch", "user.create"]
    assert rows[0]["after"].startswith("{") and "'=HYPERLINK" not in rows[0]["after"]  # JSON cells stay JSON
    assert all(not cell.startswith("=") for row in rows for cell in row.values())


def test_audit_chain_head_moves_with_each_event(file_store):
    create_user(file_store, None, "root", "admin", PASSWORD)
    with file_store.connect() as conn:
        seq, head = conn.execute(select(AuditChain.seq, AuditChain.head)).one()
    newest = list_events(file_store)[0]
    assert (seq, head) == (newest.seq, newest.hash)
