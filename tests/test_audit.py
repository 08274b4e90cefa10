"""The audit trail: appended in the change's transaction, hash-chained and signed with a key outside the
database, its head anchored outside it too; tamper (even with the hashes recomputed) found by `verify_chain`."""

from __future__ import annotations

import csv
import io
import json
import re
import stat
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, insert, select, text, update

import tracking
from tests.governance import PASSWORD, first_admin, make_accounts
from tests.migrations import store_at_revision
from tracking.cli import main
from tracking.governance._access import create_user, set_role
from tracking.governance._audit import GENESIS, _digest, events_csv, list_events, verify_chain
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
    viewer = tracking.authenticate(trail, "engineer", PASSWORD)
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


# ---- a database writer rewrites the trail: hashes recomputed, head moved (only the key and the anchor tell) ----


def _events(store) -> list[dict]:
    with store.connect() as conn:
        return [
            dict(row._mapping) for row in conn.execute(select(*AuditEvent.__table__.columns).order_by(AuditEvent.seq))
        ]


def _rewrite(store, events: list[dict]) -> None:
    """What someone with write access to the database (and this code, not the key) can do: replace the trail
    with `events`, numbered from 1, every hash recomputed into a valid chain and the head moved to its end."""
    with store.connect(write=True) as conn:
        conn.execute(delete(AuditEvent))
        prev = GENESIS
        for seq, event in enumerate(events, start=1):
            fields = {name: event[name] for name in ("recorded_at", "actor", "action", "object_type", "object_id",
                                                     "before", "after")}  # fmt: skip
            digest = _digest(prev, seq, *fields.values())
            conn.execute(insert(AuditEvent).values(seq=seq, **fields, prev_hash=prev, hash=digest, mac=event["mac"]))
            prev = digest
        conn.execute(update(AuditChain).where(AuditChain.id == 1).values(seq=len(events), head=prev))


def _forged(like: dict) -> dict:
    return {**like, "actor": "intruder", "action": "user.set_role", "after": '{"role":"admin"}', "mac": None}


REWRITES = {
    "edited, chain recomputed": (
        lambda ev: [*ev[:2], {**ev[2], "actor": "someone-else"}, *ev[3:]],
        "Event 3 .* fails its MAC check",
    ),
    "last events deleted, head moved back": (lambda ev: ev[:-2], "anchor .* recorded event"),
    "emptied, head reset": (lambda ev: [], "trail ends at event 0, but the anchor"),
    "inserted": (lambda ev: [*ev[:2], _forged(ev[2]), *ev[2:]], "Event 3 .* carries no MAC"),
    "inserted with a copied MAC": (
        lambda ev: [*ev[:2], {**_forged(ev[2]), "mac": ev[2]["mac"]}, *ev[2:]],
        "Event 3 .* fails its MAC check",
    ),
    "appended at the end": (lambda ev: [*ev, _forged(ev[-1])], "Event {n} .* carries no MAC"),
    "reordered": (lambda ev: [ev[0], ev[2], ev[1], *ev[3:]], "Event 2 .* fails its MAC check"),
    "MACs stripped": (lambda ev: [{**e, "mac": None} for e in ev], "Event 1 .* carries no MAC"),
}


@pytest.mark.parametrize("rewrite", list(REWRITES))
def test_audit_rewritten_trail_with_recomputed_hashes_is_detected(trail, rewrite):
    change, found = REWRITES[rewrite]
    events = _events(trail)
    _rewrite(trail, change(events))
    report = verify_chain(trail)
    assert not report.ok
    assert any(re.search(found.format(n=len(events) + 1), p) for p in report.problems), report.problems
    assert not any("was edited after it was recorded" in p for p in report.problems)  # the hashes do add up


def test_audit_cli_verify_exits_1_naming_the_problem_and_0_when_intact(trail, capsys):
    assert main(["audit", "verify", "--store", trail.url]) == 0
    out = capsys.readouterr().out
    assert "verified" in out and "matches the anchor" in out
    events = _events(trail)
    _rewrite(trail, events[:-1])
    assert main(["audit", "verify", "--store", trail.url]) == 1
    assert re.search(f"TAMPERED: The trail ends at event {len(events) - 1}, but the anchor", capsys.readouterr().err)


def test_audit_anchor_line_kept_elsewhere_finds_a_cut_even_without_the_anchor_file(trail, tmp_path, capsys):
    assert main(["audit", "anchor", "--store", trail.url]) == 0
    saved = tmp_path / "saved.jsonl"
    saved.write_text(capsys.readouterr().out)
    line = json.loads(saved.read_text())
    assert (line["seq"], line["hash"]) == (_events(trail)[-1]["seq"], _events(trail)[-1]["hash"])
    _rewrite(trail, _events(trail)[:-3])
    trail.anchor.unlink()  # the writer also removed the store's own anchor
    assert verify_chain(trail).ok  # nothing outside the database left to say otherwise ...
    report = verify_chain(trail, anchors=[saved])  # ... except the line kept elsewhere
    assert any(re.search(f"anchor {saved} recorded event {line['seq']}", p) for p in report.problems)


def test_audit_events_are_signed_with_a_key_file_made_owner_only(file_store):
    create_user(file_store, None, "root", "admin", PASSWORD)
    key = file_store.home / "audit.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert all(len(event["mac"]) == 64 for event in _events(file_store))
    assert key.read_text().strip() not in file_store.anchor.read_text()


def test_audit_other_key_is_refused_and_nothing_changes(file_store, monkeypatch):
    admin = first_admin(file_store)
    monkeypatch.setenv("TRACKING_AUDIT_KEY", "another-key-of-enough-characters-0123456789")
    file_store.audit_cache.clear()  # as a new process would start
    with pytest.raises(tracking.StoreError, match="is not the key this store's events are signed with"):
        create_user(file_store, admin, "late", "viewer", PASSWORD)
    assert [e.action for e in list_events(file_store)] == ["user.create"]
    report = verify_chain(file_store)
    assert any("is not the key this store records" in p for p in report.problems)


def test_audit_missing_key_file_is_one_sentence_not_a_new_key(file_store, capsys):
    admin = first_admin(file_store)
    (file_store.home / "audit.key").unlink()
    file_store.audit_cache.clear()
    with pytest.raises(tracking.StoreError, match=r"audit key .* is missing"):
        create_user(file_store, admin, "late", "viewer", PASSWORD)
    assert not (file_store.home / "audit.key").exists()
    assert main(["audit", "verify", "--store", file_store.url]) == 2
    assert re.fullmatch(r"error: The audit key .* is missing, .*\n", capsys.readouterr().err)


def _legacy_event(conn, seq: int, prev: str) -> str:
    """An event as schema 0005/0006 wrote it (no MAC column yet)."""
    fields = ["2026-01-01T00:00:00.000000Z", "admin", "user.create", "user", f"u{seq}", "null", "{}"]
    digest = _digest(prev, seq, *fields)
    conn.execute(text(
        "INSERT INTO audit_events (seq, recorded_at, actor, action, object_type, object_id, before, after, prev_hash,"
        " hash) VALUES (:seq, :a, :b, :c, :d, :e, :f, :g, :prev, :hash)"
    ), {"seq": seq, **dict(zip("abcdefg", fields, strict=True)), "prev": prev, "hash": digest})  # fmt: skip
    conn.execute(text("UPDATE audit_chain SET seq = :seq, head = :hash"), {"seq": seq, "hash": digest})
    return digest


def test_audit_legacy_events_are_counted_and_later_ones_must_be_signed(backend_url, tmp_path):
    old = store_at_revision(backend_url, tmp_path, "0006")
    with old.connect(write=True) as conn:
        prev = GENESIS
        for seq in (1, 2, 3):
            prev = _legacy_event(conn, seq, prev)
    old.dispose()
    store = tracking.open_store(backend_url, home=tmp_path)  # migrates to 0007: three legacy events
    create_user(store, None, "root", "admin", PASSWORD)
    report = verify_chain(store)
    assert report.ok and (report.checked, report.legacy) == (4, 3), report.problems
    with store.connect(write=True) as conn:
        conn.execute(update(AuditEvent).where(AuditEvent.seq == 4).values(mac=None))
    assert any(re.search("Event 4 .* carries no MAC", p) for p in verify_chain(store).problems)
