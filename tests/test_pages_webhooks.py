"""The Webhooks page under Streamlit's AppTest, signed in, against a real store and a real receiver."""

from __future__ import annotations

import pytest

import tracking
from tests.pages import open_page, shown_text
from tests.polling import wait_until
from tracking.governance import get_webhook, list_deliveries, list_webhooks
from tracking.governance._audit import list_events


def _button(at, label: str):
    return next(b for b in [*at.button, *at.form_submit_button] if b.label == label)


def _add(at, url: str, *events: str):
    at.text_input(key="webhook_url").set_value(url)
    at.text_input(key="webhook_about").set_value("ops channel")
    for name in events:
        at.checkbox(key=f"webhook_event_{name}").check()
    return _button(at, "Add webhook").click().run()


def test_pages_webhooks_admin_adds_an_endpoint_and_sees_its_secret_once(users, receiver):
    at = open_page("admin", "pages/webhooks.py")
    assert sorted(c.label for c in at.checkbox) == sorted(tracking.governance.EVENTS)
    _add(at, receiver.url, "promotion.approved", "monitoring.alert")
    assert not at.exception and [s.value for s in at.success] == ["Webhook 1 added."]
    (secret,) = [c.value for c in at.code]
    assert secret.startswith("whsec_")
    store = tracking.open_store()
    (webhook,) = list_webhooks(store, users["admin"])
    assert webhook.events == ["promotion.approved", "monitoring.alert"] and webhook.description == "ops channel"
    assert list(at.dataframe[0].value["url"]) == [receiver.url]
    assert list_events(store, action="webhook.add")[0].actor == "admin"
    at.run()
    assert not at.code  # shown once: gone on the next run
    receiver.secret = secret  # the secret shown is the one deliveries are signed with
    _button(at, "Send test event").click().run()
    assert [s.value for s in at.success] == ["A test event is on its way to webhook 1."]
    assert wait_until(receiver.accepted, what="the test event")[0]["event"] == "webhook.test"
    wait_until(lambda: list_deliveries(store, users["admin"])[0].status == "delivered", what="the recorded delivery")
    _button(at, "Refresh").click().run()
    deliveries = at.dataframe[1].value
    assert list(deliveries["event"]) == ["webhook.test"] and list(deliveries["status"]) == ["delivered"]
    assert list(deliveries["last HTTP status"]) == [200]


def test_pages_webhooks_a_bad_url_is_one_sentence_and_adds_nothing(users):
    at = open_page("admin", "pages/webhooks.py")
    _add(at, "ftp://files.example.com/drop", "promotion.approved")
    assert [shown_text(e.value) for e in at.error] == [
        "The webhook URL 'ftp://files.example.com/drop' is not an http:// or https:// address with a host name."
    ]
    assert list_webhooks(tracking.open_store(), users["admin"]) == [] and not at.code


def test_pages_webhooks_admin_disables_enables_and_removes(users, receiver):
    store = tracking.open_store()
    webhook = tracking.add_webhook(store, users["admin"], receiver.url, ["review.opened"]).webhook
    at = open_page("admin", "pages/webhooks.py")
    _button(at, "Disable").click().run()
    assert not get_webhook(store, webhook.id).enabled
    test = _button(at, "Send test event")
    assert test.disabled and test.help == f"Webhook {webhook.id} is disabled; enable it before sending a test event."
    _button(at, "Enable").click().run()
    assert get_webhook(store, webhook.id).enabled and not _button(at, "Send test event").disabled
    _button(at, "Remove").click().run()
    assert [s.value for s in at.success] == [f"Webhook {webhook.id} removed."]
    assert list_webhooks(store, users["admin"]) == [] and [i.value for i in at.info] == ["No webhooks yet."]
    actions = [e.action for e in list_events(store, action="webhook.")]
    assert actions == ["webhook.remove", "webhook.enable", "webhook.disable", "webhook.add"]


@pytest.mark.parametrize(("role", "label"), [("viewer", "viewer"), ("product_owner", "product owner")])
def test_pages_webhooks_non_admins_see_why_and_no_endpoints(users, receiver, role, label):
    tracking.add_webhook(tracking.open_store(), users["admin"], receiver.url, ["review.opened"])
    at = open_page(role, "pages/webhooks.py")
    assert [i.value for i in at.info] == [f"Your role ({label}) may not manage webhooks; only admins can."]
    assert not at.dataframe and not at.text_input and not at.main.button
