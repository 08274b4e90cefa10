"""Sending webhook deliveries: the signature, one attempt over HTTP, retries with backoff, the deliverer thread.

A delivery is a row of `webhook_deliveries`, the outbox, written in the transaction of the change that
caused its event (`_outbox`). Nothing here runs inside that transaction or on its thread: a deliverer
is a daemon thread of its own, so a slow or broken endpoint never delays or fails a change.

Each attempt POSTs the row's body (the same bytes every time) with these headers:

    Content-Type: application/json
    X-Tracking-Event: promotion.approved
    X-Tracking-Event-Id: 3f2a...            (the same for every endpoint and every retry of one event)
    X-Tracking-Delivery: 17                 (this endpoint's delivery of it)
    X-Tracking-Signature: t=1764424800,v1=5b1c...

`v1` is the hex HMAC-SHA256, keyed with the endpoint's secret (its UTF-8 bytes), of `"<t>." + body`;
`t` is the attempt's Unix time, so a receiver rejects old replays (`verify_signature` does it all).
A 2xx answer delivers; anything else (another status, a redirect, a timeout, no connection) is retried
after `TRACKING_WEBHOOK_RETRY_SECONDS`, doubled after each failure (at most an hour), until
`TRACKING_WEBHOOK_ATTEMPTS` attempts were made; then the delivery is marked failed. Deliveries are
at-least-once: a deliverer stopped in the middle of an attempt leaves its claim to expire, and another
one sends again, so receivers dedupe on `X-Tracking-Event-Id`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, update

from tracking._settings import number_setting
from tracking.store import Store, WebhookDelivery, WebhookEndpoint, utcnow

# httpx is imported inside `deliver_pending`: `import tracking` stays light.

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Tracking-Signature"
MAX_DELAY_SECONDS = 3600.0
CLAIM_EXTRA_SECONDS = 30.0  # a claim lasts the attempt's timeout and this much more
SIGNATURE_TOLERANCE_SECONDS = 300
_USER_AGENT = "tracking-webhooks/1"


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The `X-Tracking-Signature` value for a body: `t=<unix seconds>,v1=<hex HMAC-SHA256>`."""
    moment = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={moment},v1={_mac(secret, moment, body)}"


def _mac(secret: str, moment: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{moment}.".encode() + body, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str, body: bytes, header: str, *, tolerance: float = SIGNATURE_TOLERANCE_SECONDS, now: float | None = None
) -> bool:
    """Whether `header` (an `X-Tracking-Signature` value) signs `body` with `secret`, made within `tolerance`
    seconds of `now`: what a receiver checks before trusting a delivery."""
    parts: dict[str, list[str]] = {}
    for item in (header or "").split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        moment = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - moment) > tolerance:
        return False
    expected = _mac(secret, moment, body)
    return any(hmac.compare_digest(expected, given) for given in parts.get("v1", []))


def retry_delay(attempts: int) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: the base setting, doubled each time, at most an hour."""
    base = number_setting("TRACKING_WEBHOOK_RETRY_SECONDS")
    return min(MAX_DELAY_SECONDS, base * 2 ** max(0, attempts - 1))


def max_attempts() -> int:
    """Attempts of one delivery before it is marked failed (`TRACKING_WEBHOOK_ATTEMPTS`)."""
    return max(1, int(number_setting("TRACKING_WEBHOOK_ATTEMPTS")))


@dataclass(frozen=True)
class DeliveryPass:
    """What one pass over the due deliveries did."""

    delivered: int
    retrying: int  # failed this time, tried again later
    failed: int  # failed for the last time

    @property
    def attempted(self) -> int:
        return self.delivered + self.retrying + self.failed


@dataclass(frozen=True)
class _Claimed:
    id: int
    event: str
    event_id: str
    body: str
    attempts: int
    url: str
    secret: str


def _due(now: datetime) -> Any:
    return and_(
        WebhookDelivery.status == "pending",
        WebhookDelivery.next_attempt_at <= now,
        WebhookEndpoint.enabled.is_(True),
    )


def deliver_pending(store: Store, *, limit: int = 100, only: Iterable[int] | None = None) -> DeliveryPass:
    """Make one attempt at every delivery that is due now (at most `limit`), outside any change's transaction.

    Args:
        store: the store.
        limit: the most attempts made in this pass.
        only: just these deliveries (ids), when due.

    Each one is claimed just before its attempt (its next attempt moved past the attempt's timeout), so
    deliverers of several processes never send one delivery at the same time.
    """
    timeout = number_setting("TRACKING_WEBHOOK_TIMEOUT_SECONDS")
    wanted = None if only is None else list(only)
    counts = {"delivered": 0, "retrying": 0, "failed": 0}
    client = None
    try:
        for _ in range(limit):
            row = _claim_next(store, timeout + CLAIM_EXTRA_SECONDS, wanted)
            if row is None:
                break
            if client is None:
                import httpx

                client = httpx.Client(timeout=timeout, follow_redirects=False, headers={"User-Agent": _USER_AGENT})
            status, error = _attempt(client, row)
            counts[_settle(store, row, status, error)] += 1
    finally:
        if client is not None:
            client.close()
    return DeliveryPass(**counts)


def _claim_next(store: Store, lease: float, only: list[int] | None) -> _Claimed | None:
    """The next due delivery, claimed for this attempt; None when nothing is due."""
    while True:
        now = utcnow()
        query = (
            select(WebhookDelivery.id, WebhookDelivery.event, WebhookDelivery.event_id, WebhookDelivery.body,
                   WebhookDelivery.attempts, WebhookEndpoint.url, WebhookEndpoint.secret)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(_due(now))
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(1)
        )  # fmt: skip
        if only is not None:
            query = query.where(WebhookDelivery.id.in_(only))
        with store.connect() as conn:  # a read first: an idle deliverer never takes SQLite's write lock
            row = conn.execute(query).first()
        if row is None:
            return None
        with store.connect(write=True) as conn:
            # Conditional on still being due: when a deliverer of another process claimed it first, look again.
            taken = conn.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == row.id, WebhookDelivery.status == "pending",
                       WebhookDelivery.next_attempt_at <= now)
                .values(next_attempt_at=now + timedelta(seconds=lease))
            ).rowcount  # fmt: skip
        if taken == 1:
            return _Claimed(*row)


def _attempt(client: Any, row: _Claimed) -> tuple[int | None, str | None]:
    """POST one delivery; (HTTP status or None, error sentence or None when it was delivered)."""
    body = row.body.encode()
    headers = {
        "Content-Type": "application/json",
        "X-Tracking-Event": row.event,
        "X-Tracking-Event-Id": row.event_id,
        "X-Tracking-Delivery": str(row.id),
        SIGNATURE_HEADER: sign(row.secret, body),
    }
    try:
        response = client.post(row.url, content=body, headers=headers)
    except Exception as err:  # any failure of the endpoint (refused, timeout, bad TLS) is the delivery's outcome
        return None, _one_line(f"{type(err).__name__}: {err}")
    if 200 <= response.status_code < 300:
        return response.status_code, None
    answer = _one_line(response.text[:200]) if response.content else ""
    return response.status_code, f"HTTP {response.status_code}" + (f": {answer}" if answer else "")


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500] or "no details"


def _settle(store: Store, row: _Claimed, status: int | None, error: str | None) -> str:
    """Record an attempt's outcome; which of delivered, retrying or failed it is now."""
    attempts = row.attempts + 1
    now = utcnow()
    values: dict[str, Any] = {"attempts": attempts, "last_status": status, "last_error": error}
    if error is None:
        outcome = "delivered"
        values.update(status="delivered", delivered_at=now)
    elif attempts >= max_attempts():
        outcome = "failed"
        values.update(status="failed")
    else:
        outcome = "retrying"
        values.update(next_attempt_at=now + timedelta(seconds=retry_delay(attempts)))
    with store.connect(write=True) as conn:
        conn.execute(update(WebhookDelivery).where(WebhookDelivery.id == row.id).values(**values))
    if error is not None:
        logger.info("webhook delivery %s to %s: %s (%s)", row.id, row.url, error, outcome)
    return outcome


def seconds_to_next(store: Store) -> float | None:
    """Seconds until the next pending delivery of an enabled endpoint is due (0: now), or None when none waits."""
    with store.connect() as conn:
        first = conn.execute(
            select(func.min(WebhookDelivery.next_attempt_at))
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.status == "pending", WebhookEndpoint.enabled.is_(True))
        ).scalar()
    if first is None:
        return None
    return max(0.0, (first - utcnow()).total_seconds())


# ---- the deliverer thread ----------------------------------------------------------------------------


class Deliverer:
    """A daemon thread that sends one store's due deliveries: at once when woken (a change queued one in this
    process), when a retry falls due, and every `TRACKING_WEBHOOK_POLL_SECONDS` (another process queued one).
    """

    # After a wake that found nothing: look again after these pauses. The wake comes from the queuing
    # transaction's commit event, which fires just before the database commits, so the rows may not be
    # visible yet on the first look.
    RECHECKS = (0.05, 0.25, 1.0)

    def __init__(self, store: Store) -> None:
        self.store = store
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tracking-webhooks", daemon=True)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Look for due deliveries now."""
        self._wake.set()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop after the attempt in flight (waiting at most `timeout` seconds for it)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _loop(self) -> None:
        rechecks: list[float] = []
        while not self._stop.is_set():
            if self._wake.is_set():
                self._wake.clear()
                rechecks = list(self.RECHECKS)
            try:
                poll = number_setting("TRACKING_WEBHOOK_POLL_SECONDS")
                done = deliver_pending(self.store)
                if done.attempted:
                    rechecks = []
                due = seconds_to_next(self.store)
                pause = poll if due is None else min(poll, due)
            except Exception:  # the store went away or a setting is wrong: say so, keep the thread for later
                logger.warning("webhook deliverer of %s failed; trying again later", self.store.display_url,
                               exc_info=True)  # fmt: skip
                poll, pause = 5.0, 5.0
            if rechecks:
                pause = min(pause, rechecks.pop(0))
            self._wake.wait(pause)


_starting = threading.Lock()


def start_deliverer(store: Store) -> Deliverer:
    """This process's deliverer for the store, started on first use (the dashboard and the model server call
    this when they open the store; a change that queues a delivery starts it too)."""
    with _starting:
        deliverer = store.webhook_deliverer
        if not isinstance(deliverer, Deliverer) or not deliverer.alive:
            deliverer = Deliverer(store)
            store.webhook_deliverer = deliverer
            deliverer.start()
    return deliverer


def stop_deliverer(store: Store) -> None:
    """Stop this process's deliverer for the store, if one runs (`Store.dispose` does it too)."""
    with _starting:
        deliverer, store.webhook_deliverer = store.webhook_deliverer, None
    if isinstance(deliverer, Deliverer):
        deliverer.stop()
