"""Webhooks: endpoints admins register, events queued with the change that caused them, delivered by a
background thread to a real HTTP receiver that checks the signature, retried with backoff, and never
in the way of the change itself."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from sqlalchemy import func, select, text, update

from tests.conftest import ROOT
from tests.governance import PASSWORD
from tests.polling import wait_until
from tests.traffic import rows, serve, shifted
from tests.webhooks import Receiver
from tracking._errors import PermissionDenied, ValidationError
from tracking.cli import main
from tracking.governance import (
    EVENTS,
    add_webhook,
    check_url,
    deliver_pending,
    get_delivery,
    get_webhook,
    list_deliveries,
    list_webhooks,
    remove_webhook,
    send_test_event,
    set_webhook_enabled,
    sign,
    stop_deliverer,
    verify_signature,
)
from tracking.governance._audit import list_events, record
from tracking.production import monitor, open_review
from tracking.registry._models import production_version, register_version
from tracking.registry._promotions import approve_promotion, reject_promotion, request_promotion
from tracking.runs._queries import list_runs
from tracking.store._tables import WebhookDelivery, WebhookEndpoint


def _closed_port_url() -> str:
    """An address where nothing listens (the port was just free): connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/down"


def _hook(store, actor, receiver, events) -> int:
    new = add_webhook(store, actor, receiver.url, events, "test receiver")
    receiver.secret = new.secret
    return new.webhook.id


def _deliveries(store) -> list:
    with store.connect() as conn:
        return conn.execute(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()


def _all_delivered(store, actor=None) -> list:
    """Every delivery, once all are recorded as delivered (else an empty list)."""
    done = list_deliveries(store, actor)
    return done if done and all(d.status == "delivered" for d in done) else []


def _new_version(store, users):
    """`loan` v2 from the well-fitting run of the template (the gates pass against v1)."""
    good = min(list_runs(store), key=lambda run: run.id)
    return register_version(store, good.id, "loan", actor=users["data_scientist"])


# ---- signatures ----------------------------------------------------------------------------------


def test_webhooks_signature_verifies_only_the_same_body_secret_and_a_recent_time():
    body = b'{"event":"webhook.test"}'
    header = sign("whsec_a", body, timestamp=1_000_000)
    assert header.startswith("t=1000000,v1=") and len(header.split("v1=")[1]) == 64
    assert verify_signature("whsec_a", body, header, now=1_000_100)
    assert not verify_signature("whsec_a", body + b" ", header, now=1_000_100)
    assert not verify_signature("whsec_b", body, header, now=1_000_100)
    assert not verify_signature("whsec_a", body, header, now=1_000_000 + 301)  # an old replay
    assert not verify_signature("whsec_a", body, "v1=" + header.split("v1=")[1], now=1_000_000)  # no time
    assert not verify_signature("whsec_a", body, "garbage", now=1_000_000)


# ---- endpoints -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "javascript:alert(1)", "file:///etc/passwd", "https://", "example.com/hook",
     "http://exa mple.com/", "http://example.com:notaport/"],
)  # fmt: skip
def test_webhooks_refuse_urls_that_are_not_http_with_a_host(url):
    with pytest.raises(ValidationError, match="webhook URL"):
        check_url(url)


def test_webhooks_accept_http_and_https_urls():
    assert check_url(" https://hooks.example.com:8443/t/x?a=1 ") == "https://hooks.example.com:8443/t/x?a=1"
    assert check_url("http://127.0.0.1:9000/") == "http://127.0.0.1:9000/"


def test_webhooks_need_known_events(served, users, receiver):
    with pytest.raises(ValidationError, match="Unknown webhook event"):
        add_webhook(served, users["admin"], receiver.url, ["promotion.approved", "promotion.exploded"])
    with pytest.raises(ValidationError, match="at least one event"):
        add_webhook(served, users["admin"], receiver.url, [])
    new = add_webhook(served, users["admin"], receiver.url, ["review.opened", "promotion.approved"])
    assert new.webhook.events == ["promotion.approved", "review.opened"]  # in the order of EVENTS


def test_webhooks_only_admins_manage_them(served, users, receiver):
    webhook_id = _hook(served, users["admin"], receiver, ["promotion.approved"])
    for role in ("viewer", "data_scientist", "engineer", "product_owner"):
        with pytest.raises(PermissionDenied, match="manage webhooks; only admins can"):
            add_webhook(served, users[role], receiver.url, ["promotion.approved"])
        with pytest.raises(PermissionDenied):
            list_webhooks(served, users[role])
        with pytest.raises(PermissionDenied):
            remove_webhook(served, users[role], webhook_id)
        with pytest.raises(PermissionDenied):
            send_test_event(served, users[role], webhook_id)
    assert [w.id for w in list_webhooks(served, users["admin"])] == [webhook_id]


def test_webhooks_changes_are_audited_without_the_secret_or_the_url_path(served, users, receiver):
    new = add_webhook(served, users["admin"], receiver.url, ["promotion.approved"], "ops channel")
    set_webhook_enabled(served, users["admin"], new.webhook.id, False)
    set_webhook_enabled(served, users["admin"], new.webhook.id, True)
    remove_webhook(served, users["admin"], new.webhook.id)
    events = list_events(served, action="webhook.")
    assert [e.action for e in reversed(events)] == [
        "webhook.add",
        "webhook.disable",
        "webhook.enable",
        "webhook.remove",
    ]
    assert all(e.actor == "admin" and e.object_id == str(new.webhook.id) for e in events)
    trail = json.dumps([[e.before, e.after] for e in events])
    assert new.secret not in trail and "/hooks/tracking" not in trail and "source=test" not in trail
    assert events[-1].after["host"] == f"http://127.0.0.1:{receiver.server.server_port}"


def test_webhooks_secret_is_returned_once_and_never_read_back(served, users, receiver):
    new = add_webhook(served, users["admin"], receiver.url, ["promotion.approved"])
    assert new.secret.startswith("whsec_") and len(new.secret) > 40
    second = add_webhook(served, users["admin"], receiver.url, ["promotion.approved"])
    assert second.secret != new.secret
    for record_ in [get_webhook(served, new.webhook.id), *list_webhooks(served, users["admin"])]:
        assert new.secret not in repr(record_) and not hasattr(record_, "secret")


# ---- events queued with their change, delivered signed ---------------------------------------------------


def test_webhooks_promotion_approval_is_delivered_signed_with_the_model(served, users, receiver):
    _hook(served, users["admin"], receiver, ["promotion.approved", "version.stage_changed"])
    v2 = _new_version(served, users)
    request = request_promotion(served, v2.id, "same fit, newer code", actor=users["data_scientist"])
    approve_promotion(served, request.id, "go", actor=users["product_owner"])
    bodies = wait_until(lambda: len(receiver.accepted()) == 3 and receiver.accepted(), what="three deliveries")
    approved = next(b for b in bodies if b["event"] == "promotion.approved")
    assert approved["actor"] == "product_owner" and approved["object"] == {"type": "promotion_request",
                                                                            "id": str(request.id)}  # fmt: skip
    assert approved["model"] == {"name": "loan", "version": 2, "version_id": v2.id, "stage": "production"}
    assert approved["data"]["after"]["status"] == "approved" and approved["data"]["audit_seq"] > 0
    stages = {b["model"]["version"]: b["data"]["after"]["stage"] for b in bodies if b["event"] != "promotion.approved"}
    assert stages == {1: "archived", 2: "production"}
    headers = {h["X-Tracking-Event"] for h, _b, _s in receiver.received}
    assert headers == {"promotion.approved", "version.stage_changed"}
    assert len({b["id"] for b in bodies}) == 3
    done = wait_until(
        lambda: _all_delivered(served, users["admin"]), what="the attempts recorded"
    )  # just after the answers
    assert {(d.status, d.attempts, d.last_status, d.last_error) for d in done} == {("delivered", 1, 200, None)}


def test_webhooks_only_subscribed_events_of_enabled_endpoints_are_queued(served, users, receiver):
    _hook(served, users["admin"], receiver, ["promotion.rejected"])
    disabled = add_webhook(served, users["admin"], _closed_port_url(), list(EVENTS)).webhook.id
    set_webhook_enabled(served, users["admin"], disabled, False)
    v2 = _new_version(served, users)
    request = request_promotion(served, v2.id, "try", actor=users["data_scientist"])
    reject_promotion(served, request.id, "not now", actor=users["product_owner"])
    queued = _deliveries(served)
    assert [(d.event, d.endpoint_id != disabled) for d in queued] == [("promotion.rejected", True)]
    assert wait_until(receiver.accepted)[0]["data"]["after"]["comment"] == "not now"


def test_webhooks_a_refused_change_queues_nothing(served, users, receiver):
    _hook(served, users["admin"], receiver, list(EVENTS))
    v2 = _new_version(served, users)
    request = request_promotion(served, v2.id, "mine", actor=users["data_scientist"])
    before = len(_deliveries(served))
    with pytest.raises(PermissionDenied):
        approve_promotion(served, request.id, "self-approval", actor=users["data_scientist"])
    assert len(_deliveries(served)) == before  # rolled back with the change


def test_webhooks_review_opened_is_delivered(served, users, receiver):
    _hook(served, users["admin"], receiver, ["review.opened"])
    version = production_version(served, "loan")
    review = open_review(served, version.id, "drift on income", actor=users["engineer"])
    body = wait_until(receiver.accepted, what="the review event")[0]
    assert body["event"] == "review.opened" and body["object"] == {"type": "review", "id": str(review.id)}
    assert body["model"]["version_id"] == version.id and body["data"]["after"]["reason"] == "drift on income"


def test_webhooks_monitoring_alert_is_sent_once_for_the_same_breaches(served, users, receiver):
    _hook(served, users["admin"], receiver, ["monitoring.alert"])
    version = production_version(served, "loan")
    X, _ = rows(served, version, "test")
    serve(served, version, shifted(X))
    first = monitor(served, "loan")
    assert first.breaches
    body = wait_until(receiver.accepted, what="the alert")[0]
    assert body["event"] == "monitoring.alert" and body["actor"] is None
    assert body["model"] == {"name": "loan", "version": 1, "version_id": version.id, "stage": "production"}
    assert {b["name"] for b in body["data"]["breaches"]} == {b.name for b in first.breaches}
    monitor(served, "loan")  # the same breaches again: already sent today
    assert [d.event for d in _deliveries(served)] == ["monitoring.alert"]


# ---- retries, failures, and the change never waits ----------------------------------------------------


def test_webhooks_retry_with_backoff_until_the_receiver_accepts(served, users, monkeypatch):
    monkeypatch.setenv("TRACKING_WEBHOOK_RETRY_SECONDS", "0.2")
    flaky = Receiver(statuses=(500, 503))
    try:
        webhook_id = _hook(served, users["admin"], flaky, ["promotion.approved"])
        delivery = send_test_event(served, users["admin"], webhook_id)
        done = wait_until(lambda: (d := get_delivery(served, delivery.id)).status == "delivered" and d, timeout=20,
                          what="the third attempt")  # fmt: skip
        assert (done.attempts, done.last_status, done.last_error) == (3, 200, None)
        assert [status for _h, _b, status in flaky.received] == [500, 503, 200]
        assert len({body for _h, body, _s in flaky.received}) == 1  # the same bytes on every attempt
        assert len({h["X-Tracking-Event-Id"] for h, _b, _s in flaky.received}) == 1
        assert json.loads(flaky.received[0][1])["event"] == "webhook.test"
    finally:
        flaky.close()


def test_webhooks_approval_succeeds_while_the_endpoint_is_down(served, users, monkeypatch):
    monkeypatch.setenv("TRACKING_WEBHOOK_RETRY_SECONDS", "0.2")
    monkeypatch.setenv("TRACKING_WEBHOOK_ATTEMPTS", "2")
    new = add_webhook(served, users["admin"], _closed_port_url(), ["promotion.approved"])
    v2 = _new_version(served, users)
    request = request_promotion(served, v2.id, "newer", actor=users["data_scientist"])
    decided = approve_promotion(served, request.id, "go", actor=users["product_owner"])
    assert decided.status == "approved" and production_version(served, "loan").id == v2.id
    (queued,) = _deliveries(served)
    gave_up = wait_until(lambda: (d := get_delivery(served, queued.id)).status == "failed" and d, timeout=20,
                         what="the delivery to give up")  # fmt: skip
    assert gave_up.attempts == 2 and gave_up.last_status is None and "ConnectError" in gave_up.last_error
    assert gave_up.delivered_at is None and new.webhook.id == gave_up.webhook_id


def test_webhooks_a_failure_to_queue_never_fails_the_change(served, users, receiver):
    _hook(served, users["admin"], receiver, ["promotion.approved"])
    v2 = _new_version(served, users)
    request = request_promotion(served, v2.id, "newer", actor=users["data_scientist"])
    with served.connect(write=True) as conn:  # the outbox is broken (a damaged schema): queuing fails
        conn.execute(text("ALTER TABLE webhook_deliveries RENAME TO webhook_deliveries_gone"))
    assert approve_promotion(served, request.id, "go", actor=users["product_owner"]).status == "approved"
    assert production_version(served, "loan").id == v2.id
    assert list_events(served, action="promotion.approve")[0].object_id == str(request.id)


def test_webhooks_disabled_endpoint_keeps_its_queued_deliveries_until_enabled(served, users, receiver):
    webhook_id = _hook(served, users["admin"], receiver, ["version.stage_changed"])
    with served.connect(write=True) as conn:  # an event queued, and the endpoint disabled before it is sent
        record(conn, "dana", "version.stage", "model_version", 1, {"stage": "staging"}, {"stage": "production"})
        set_webhook_enabled(served, users["admin"], webhook_id, False)  # joins this transaction
    with pytest.raises(ValidationError, match="disabled"):
        send_test_event(served, users["admin"], webhook_id)
    assert deliver_pending(served).attempted == 0
    (queued,) = _deliveries(served)
    assert queued.status == "pending" and queued.attempts == 0 and receiver.received == []
    set_webhook_enabled(served, users["admin"], webhook_id, True)  # wakes the deliverer
    wait_until(lambda: get_delivery(served, queued.id).status == "delivered", what="the waiting delivery")
    assert [b["event"] for b in receiver.accepted()] == ["version.stage_changed"]


def test_webhooks_removing_an_endpoint_removes_its_deliveries(served, users, receiver):
    webhook_id = _hook(served, users["admin"], receiver, ["promotion.approved"])
    send_test_event(served, users["admin"], webhook_id)
    remove_webhook(served, users["admin"], webhook_id)
    assert list_webhooks(served, users["admin"]) == [] and _deliveries(served) == []


# ---- every backend ------------------------------------------------------------------------------------


def test_webhooks_audit_events_are_queued_in_the_changes_transaction_on_every_backend(store, receiver):
    webhook_id = _hook(store, None, receiver, ["version.stage_changed"])
    with store.session_scope(write=True) as session:  # the registry's way (an ORM session)
        record(session, "dana", "version.stage", "model_version", 41, {"stage": "none"}, {"stage": "staging"})
    with store.connect(write=True) as conn:  # the reviews' way (a Core connection)
        record(conn, "dana", "version.stage", "model_version", 42, {"stage": "staging"}, {"stage": "archived"})
        record(conn, "dana", "run.tags", "run", 1, [], ["x"])  # not a webhook event
    with pytest.raises(RuntimeError), store.connect(write=True) as conn:
        record(conn, "dana", "version.stage", "model_version", 43, None, {"stage": "staging"})
        raise RuntimeError("the change failed after its audit event")
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(WebhookDelivery)).scalar() == 2
    bodies = wait_until(lambda: len(receiver.accepted()) == 2 and receiver.accepted(), what="both deliveries")
    assert sorted(b["object"]["id"] for b in bodies) == ["41", "42"] and [b["model"] for b in bodies] == [None, None]
    done = wait_until(lambda: _all_delivered(store), what="the attempts recorded")
    assert {(d.webhook_id, d.status, d.attempts) for d in done} == {(webhook_id, "delivered", 1)}


# ---- the CLI ------------------------------------------------------------------------------------------


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["webhooks", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_webhooks_cli_adds_lists_tests_and_removes(served, users, receiver, monkeypatch, capsys):
    monkeypatch.setenv("TRACKING_USER", "admin")
    monkeypatch.setenv("TRACKING_PASSWORD", PASSWORD)
    code, out, _ = _cli(capsys, "add", receiver.url, "--event", "review.opened", "--description", "ops")
    assert code == 0 and out.startswith("webhook 1 added: ")
    receiver.secret = out.split("secret (shown this once; keep it where the receiver can read it): ")[1].strip()
    code, out, _ = _cli(capsys, "list", "--format", "json")
    (listed,) = json.loads(out)
    assert listed["url"] == receiver.url and listed["events"] == "review.opened" and receiver.secret not in out
    code, out, _ = _cli(capsys, "test", "1")
    assert code == 0 and out.startswith("test event delivered to webhook 1: HTTP 200")
    assert receiver.accepted()[0]["event"] == "webhook.test"
    code, out, _ = _cli(capsys, "deliveries", "--format", "json")
    assert [(d["event"], d["status"], d["attempts"], d["last_status"]) for d in json.loads(out)] == [
        ("webhook.test", "delivered", 1, 200)
    ]
    assert _cli(capsys, "disable", "1")[:2] == (0, "webhook 1 disabled\n")
    code, _, err = _cli(capsys, "test", "1")
    assert code == 2 and err == "error: Webhook 1 is disabled; enable it before sending a test event.\n"
    assert _cli(capsys, "remove", "1")[:2] == (0, "webhook 1 removed\n")
    assert list_webhooks(served, users["admin"]) == []


def test_webhooks_cli_test_of_an_endpoint_that_is_down_exits_1(served, users, monkeypatch, capsys):
    monkeypatch.setenv("TRACKING_USER", "admin")
    monkeypatch.setenv("TRACKING_PASSWORD", PASSWORD)
    add_webhook(served, users["admin"], _closed_port_url(), ["review.opened"])
    code, out, _ = _cli(capsys, "test", "1")
    assert code == 1 and "not delivered to webhook 1: ConnectError" in out and "pending" in out


def test_webhooks_cli_refuses_non_admins_in_one_line(served, monkeypatch, capsys):
    monkeypatch.setenv("TRACKING_USER", "engineer")
    monkeypatch.setenv("TRACKING_PASSWORD", PASSWORD)
    code, out, err = _cli(capsys, "add", "https://hooks.example.com/x", "--all-events")
    assert code == 2 and out == ""
    assert err == "error: Your role (engineer) may not manage webhooks; only admins can.\n"


def test_webhooks_cli_deliver_sends_what_other_processes_queued(served, users, receiver):
    webhook_id = _hook(served, users["admin"], receiver, ["version.stage_changed"])
    with served.connect(write=True) as conn:  # queued while the endpoint is disabled: no deliverer sends it ...
        record(conn, "dana", "version.stage", "model_version", 1, {"stage": "staging"}, {"stage": "production"})
        set_webhook_enabled(served, users["admin"], webhook_id, False)
    stop_deliverer(served)  # the commit started one in this process: this test is about another process's
    with served.connect(write=True) as conn:  # ... until it is back, with no deliverer of this process woken
        conn.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == webhook_id).values(enabled=True))
    out = subprocess.run([sys.executable, "-m", "tracking", "webhooks", "deliver"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == "delivered 1, to retry later 0, given up 0\n"
    assert [b["event"] for b in receiver.accepted()] == ["version.stage_changed"]
    assert _deliveries(served)[0].status == "delivered"
