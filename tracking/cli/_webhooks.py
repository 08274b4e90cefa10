"""The CLI's `webhooks` command: register, list, test, disable and remove endpoints, and send queued deliveries.

Managing endpoints is for admins (the account in `TRACKING_USER`, as for every change from the shell).
`webhooks deliver` sends whatever is due and exits: run it from cron where no dashboard or model server
runs a deliverer against the store (it needs only the store's credentials, like a sweep worker).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from tracking._settings import number_setting
from tracking.cli._governance import cli_actor
from tracking.governance import (
    EVENTS,
    DeliveryRecord,
    add_webhook,
    deliver_pending,
    get_delivery,
    list_deliveries,
    list_webhooks,
    remove_webhook,
    send_test_event,
    set_webhook_enabled,
)
from tracking.store import iso, open_store


def add_parsers(sub: Any, store: argparse.ArgumentParser) -> None:
    """Add the `webhooks` command and its subcommands to the top-level subparsers."""
    webhooks = sub.add_parser("webhooks", help="HTTP endpoints told of registry and monitoring events (admins)")
    commands = webhooks.add_subparsers(dest="webhooks_command", required=True, parser_class=type(webhooks))
    add = commands.add_parser("add", parents=[store], help="register an endpoint; prints its secret, once")
    add.add_argument("url", metavar="URL", help="an http:// or https:// address that accepts POSTed JSON")
    add.add_argument("--event", action="append", default=[], choices=list(EVENTS), metavar="EVENT",
                     help=f"an event to send (repeatable): {', '.join(EVENTS)}")  # fmt: skip
    add.add_argument("--all-events", action="store_true", help="every event")
    add.add_argument("--description", default="", help="what the endpoint is for")
    listing = commands.add_parser("list", parents=[store], help="the endpoints (never their secrets)")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    deliveries = commands.add_parser("deliveries", parents=[store], help="the newest deliveries and how they went")
    deliveries.add_argument("--webhook", type=int, metavar="ID", help="only this endpoint's")
    deliveries.add_argument("--limit", type=int, default=20, metavar="N", help="how many (default 20)")
    deliveries.add_argument("--format", choices=("table", "json"), default="table")
    for name, text in (("disable", "stop queuing events for an endpoint (queued ones wait)"),
                       ("enable", "queue events for an endpoint again"),
                       ("remove", "remove an endpoint with its secret and deliveries")):  # fmt: skip
        command = commands.add_parser(name, parents=[store], help=text)
        command.add_argument("webhook", type=int, metavar="ID")
    test = commands.add_parser("test", parents=[store], help="send a test event and wait for the answer")
    test.add_argument("webhook", type=int, metavar="ID")
    commands.add_parser("deliver", parents=[store], help="send every delivery that is due now, then exit (for cron)")


def _delivery_row(d: DeliveryRecord) -> dict[str, Any]:
    return {
        "id": d.id, "webhook": d.webhook_id, "event": d.event, "status": d.status, "attempts": d.attempts,
        "last_status": d.last_status, "last_error": d.last_error, "created_at": iso(d.created_at),
        "next_attempt_at": iso(d.next_attempt_at) if d.status == "pending" else None,
        "delivered_at": iso(d.delivered_at) if d.delivered_at else None,
    }  # fmt: skip


def cmd_webhooks(args: argparse.Namespace, print_table: Callable[[list[dict[str, Any]]], None]) -> int:
    """`webhooks ...`: 0 on success; `test` exits 1 when the endpoint did not accept the event."""
    store = open_store(getattr(args, "store", None))
    command = args.webhooks_command
    if command == "deliver":
        delivered = retrying = failed = 0
        while (done := deliver_pending(store)).attempted:  # until nothing is due (retries wait for their time)
            delivered, retrying, failed = delivered + done.delivered, retrying + done.retrying, failed + done.failed
        print(f"delivered {delivered}, to retry later {retrying}, given up {failed}")
        return 0
    actor = cli_actor(store)
    if command == "add":
        events = list(EVENTS) if args.all_events else args.event
        new = add_webhook(store, actor, args.url, events, args.description)
        print(f"webhook {new.webhook.id} added: {new.webhook.url} ({', '.join(new.webhook.events)})")
        print(f"secret (shown this once; keep it where the receiver can read it): {new.secret}")
        return 0
    if command == "list":
        rows = [{"id": w.id, "url": w.url, "events": ",".join(w.events), "enabled": w.enabled,
                 "description": w.description, "created_by": w.created_by, "created_at": iso(w.created_at)}
                for w in list_webhooks(store, actor)]  # fmt: skip
        return _show(rows, args.format, print_table)
    if command == "deliveries":
        rows = [_delivery_row(d) for d in list_deliveries(store, actor, webhook_id=args.webhook, limit=args.limit)]
        return _show(rows, args.format, print_table)
    if command in ("disable", "enable"):
        webhook = set_webhook_enabled(store, actor, args.webhook, command == "enable")
        print(f"webhook {webhook.id} {'enabled' if webhook.enabled else 'disabled'}")
        return 0
    if command == "remove":
        remove_webhook(store, actor, args.webhook)
        print(f"webhook {args.webhook} removed")
        return 0
    return _test(store, actor, args.webhook)


def _show(rows: list[dict[str, Any]], fmt: str, print_table: Callable[[list[dict[str, Any]]], None]) -> int:
    if fmt == "json":
        print(json.dumps(rows, indent=2))
    else:
        print_table(rows)
    return 0


def _test(store: Any, actor: Any, webhook_id: int) -> int:
    """Queue a test event; this process's deliverer sends it at once: wait for its first attempt."""
    delivery = send_test_event(store, actor, webhook_id)
    deadline = time.monotonic() + number_setting("TRACKING_WEBHOOK_TIMEOUT_SECONDS") + 10
    while delivery.attempts == 0 and time.monotonic() < deadline:
        time.sleep(0.1)  # the deliverer thread makes the attempt; this only looks at its record
        delivery = get_delivery(store, delivery.id)
    if delivery.status == "delivered":
        print(f"test event delivered to webhook {webhook_id}: HTTP {delivery.last_status} (delivery {delivery.id})")
        return 0
    outcome = delivery.last_error or "no attempt was made in time"
    print(f"test event not delivered to webhook {webhook_id}: {outcome} (delivery {delivery.id}, {delivery.status})")
    return 1
