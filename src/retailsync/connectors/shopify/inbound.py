"""Shopify webhooks in: HMAC-SHA256 over the raw body, then orders, refunds, returns -> events.

Shopify signs every HTTPS delivery with the app's client secret: ``X-Shopify-Hmac-Sha256`` is
the base64 HMAC-SHA256 digest of the raw request body. ``X-Shopify-Webhook-Id`` identifies
the delivery (the same on every retry) and ``X-Shopify-Triggered-At`` says when the event
happened. That timestamp is not covered by the signature, so its window only bounds how long
a captured delivery stays replayable together with the delivery-id table; it is kept at
Shopify's retry horizon (48 hours) by default so that genuine retries are not refused.

Topics: ``orders/create`` -> ``order.created``; ``orders/updated`` and ``orders/cancelled`` ->
``order.status_changed`` (when the status moved); ``refunds/create`` -> ``refund.completed``,
``refund.requested`` or ``refund.failed``; ``returns/request`` -> ``return.requested``. Other
topics (including the other ``returns/*``) are authentic but map to no event.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from retailsync.connectors.shopify.config import ShopifySettings
from retailsync.connectors.shopify.errors import ShopifyPayloadError
from retailsync.connectors.shopify.mapping import (
    order_created_event,
    order_status,
    order_status_changed_event,
    order_version,
    parse_time,
    refund_events,
    return_requested_event,
)
from retailsync.connectors.webhook_protocol import WebhookRejected, WebhookUnmappable
from retailsync.domain.events import CloudEvent
from retailsync.domain.orders import OrderStatus

HMAC_HEADER = "X-Shopify-Hmac-Sha256"
TOPIC_HEADER = "X-Shopify-Topic"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"
TRIGGERED_AT_HEADER = "X-Shopify-Triggered-At"
SHOP_DOMAIN_HEADER = "X-Shopify-Shop-Domain"
#: How far in the future a Triggered-At may be (clock skew) before it is refused.
FUTURE_SKEW_SECONDS = 300


def shopify_hmac(body: bytes, secret: str) -> str:
    """The ``X-Shopify-Hmac-Sha256`` value for ``body``: base64(HMAC-SHA256(secret, body))."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


class OrderStatusMemory(Protocol):
    """Remembers the last status seen per order, because Shopify sends only the new one."""

    def observe(self, order_ref: str, version: int, status: OrderStatus) -> OrderStatus | None:
        """Record ``status`` at ``version``; return the status before it (None if unknown).

        Observing the same version again returns the same answer, so a re-delivered or
        re-processed webhook maps to the same event.
        """
        ...

    def created(self, order_ref: str, version: int, status: OrderStatus) -> None:
        """Record that the order was created in ``status`` at ``version`` (no change)."""
        ...


class InMemoryOrderStatusMemory:
    """:class:`OrderStatusMemory` in process memory (bounded, least recently used evicted)."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, tuple[int, OrderStatus, OrderStatus | None]] = OrderedDict()

    def observe(self, order_ref: str, version: int, status: OrderStatus) -> OrderStatus | None:
        entry = self._entries.get(order_ref)
        if entry is not None:
            self._entries.move_to_end(order_ref)
            known_version, known_status, known_previous = entry
            if version == known_version:
                return known_previous
            if version < known_version:
                return None  # an older update arriving late; consumers order by version
            previous: OrderStatus | None = known_status
        else:
            previous = None
        self._store(order_ref, (version, status, previous))
        return previous

    def created(self, order_ref: str, version: int, status: OrderStatus) -> None:
        entry = self._entries.get(order_ref)
        if entry is None or entry[0] <= version:
            self._store(order_ref, (version, status, status))

    def _store(self, order_ref: str, entry: tuple[int, OrderStatus, OrderStatus | None]) -> None:
        self._entries[order_ref] = entry
        self._entries.move_to_end(order_ref)
        if len(self._entries) > self.capacity:
            self._entries.popitem(last=False)


class ShopifyWebhookReceiver:
    """The :class:`~retailsync.connectors.webhook_protocol.WebhookReceiver` for Shopify."""

    name = "shopify"

    def __init__(
        self, settings: ShopifySettings, *, status_memory: OrderStatusMemory | None = None
    ) -> None:
        self._settings = settings
        self._memory = status_memory or InMemoryOrderStatusMemory()

    def verify(self, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        received = _header(headers, HMAC_HEADER)
        if not received:
            raise WebhookRejected(
                "missing-signature",
                f"the {HMAC_HEADER} header is missing; Shopify signs every HTTPS delivery",
                401,
            )
        try:
            received_digest = base64.b64decode(received.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise WebhookRejected(
                "bad-signature", f"the {HMAC_HEADER} header is not base64", 401
            ) from None
        secret = self._settings.webhook_secret.get_secret_value()
        expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, received_digest):
            raise WebhookRejected(
                "bad-signature",
                f"the {HMAC_HEADER} digest does not match the body and the app's client "
                "secret; check connectors.shopify.webhook_secret",
                401,
            )
        shop = _header(headers, SHOP_DOMAIN_HEADER)
        if shop is not None and shop.lower() != self._settings.shop_domain:
            raise WebhookRejected(
                "wrong-shop",
                f"the delivery comes from shop {shop!r}, not {self._settings.shop_domain!r}",
                403,
            )
        triggered = _header(headers, TRIGGERED_AT_HEADER)
        if not triggered:
            raise WebhookRejected(
                "bad-headers", f"the {TRIGGERED_AT_HEADER} header is missing", 400
            )
        try:
            triggered_at = parse_time(triggered, TRIGGERED_AT_HEADER)
        except ShopifyPayloadError:
            raise WebhookRejected(
                "bad-headers", f"the {TRIGGERED_AT_HEADER} header is not an ISO 8601 time", 400
            ) from None
        age = (now - triggered_at).total_seconds()
        tolerance = self._settings.webhook_tolerance_seconds
        if age > tolerance or age < -FUTURE_SKEW_SECONDS:
            direction = "old" if age > 0 else "in the future"
            raise WebhookRejected(
                "stale-timestamp",
                f"{TRIGGERED_AT_HEADER} {triggered} is {abs(int(age))} s {direction}; "
                f"deliveries are accepted for {tolerance} s (a replay, or a clock out of sync)",
                400,
            )

    def delivery_id(self, headers: Mapping[str, str], body: bytes) -> str:
        webhook_id = _header(headers, WEBHOOK_ID_HEADER)
        if not webhook_id:
            raise WebhookRejected("bad-headers", f"the {WEBHOOK_ID_HEADER} header is missing", 400)
        return webhook_id

    def to_events(self, headers: Mapping[str, str], body: bytes) -> list[CloudEvent]:
        topic = (_header(headers, TOPIC_HEADER) or "").strip()
        if not topic:
            raise WebhookUnmappable(f"the {TOPIC_HEADER} header is missing")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise WebhookUnmappable(f"the body is not JSON: {error}") from error
        if not isinstance(payload, dict):
            raise WebhookUnmappable("the body is not a JSON object")
        try:
            return self._map(topic, payload, headers)
        except ShopifyPayloadError as error:
            raise WebhookUnmappable(f"{topic}: {error}") from error

    def _map(
        self, topic: str, payload: dict[str, Any], headers: Mapping[str, str]
    ) -> list[CloudEvent]:
        settings = self._settings
        if topic == "orders/create":
            created = order_created_event(payload, settings)
            self._memory.created(
                str(payload.get("id")), order_version(payload), order_status(payload, settings)
            )
            return [created]
        if topic in ("orders/updated", "orders/cancelled"):
            status = order_status(payload, settings)
            previous = self._memory.observe(str(payload.get("id")), order_version(payload), status)
            changed = order_status_changed_event(payload, settings, previous)
            return [changed] if changed is not None else []
        if topic == "refunds/create":
            return refund_events(payload)
        if topic == "returns/request":
            triggered = _header(headers, TRIGGERED_AT_HEADER)
            return [
                return_requested_event(
                    payload,
                    settings,
                    triggered_at=parse_time(triggered, TRIGGERED_AT_HEADER),
                )
            ]
        return []
