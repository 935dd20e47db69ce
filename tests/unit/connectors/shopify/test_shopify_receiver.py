"""Shopify webhook receiver: headers, time window, shop, delivery id, topics."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from retailsync.connectors.shopify import ShopifyWebhookReceiver, load_shopify_settings
from retailsync.connectors.shopify.inbound import InMemoryOrderStatusMemory
from retailsync.connectors.webhook_protocol import WebhookRejected, WebhookUnmappable
from retailsync.domain.orders import OrderStatus
from retailsync.sandbox.shopify import sign_shopify_payload

SHOP = "acme.myshopify.com"
SECRET = "client-secret"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SETTINGS = load_shopify_settings(
    {"shop_domain": SHOP, "access_token": "shpat_x", "webhook_secret": SECRET}
)


def delivery(
    body: bytes, *, topic: str = "orders/create", at: datetime = NOW, **extra: str
) -> dict[str, str]:
    headers = {
        "X-Shopify-Hmac-Sha256": sign_shopify_payload(body, SECRET),
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "X-Shopify-Triggered-At": at.isoformat(),
    }
    headers.update(extra)
    return headers


def reason(receiver: ShopifyWebhookReceiver, headers: dict[str, str], body: bytes) -> str:
    with pytest.raises(WebhookRejected) as rejected:
        receiver.verify(headers, body, NOW)
    return rejected.value.reason


def test_authentic_recent_deliveries_pass() -> None:
    receiver = ShopifyWebhookReceiver(SETTINGS)
    body = b"{}"
    receiver.verify(delivery(body, at=NOW - timedelta(hours=47)), body, NOW)
    headers = {k.lower(): v for k, v in delivery(body).items()}  # any header case
    receiver.verify(headers, body, NOW)
    assert receiver.delivery_id(headers, body) == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"


def test_rejections_name_their_reason() -> None:
    receiver = ShopifyWebhookReceiver(SETTINGS)
    body = b"{}"
    missing = delivery(body)
    del missing["X-Shopify-Hmac-Sha256"]
    assert reason(receiver, missing, body) == "missing-signature"
    assert reason(receiver, delivery(body, **{"X-Shopify-Hmac-Sha256": "%%%"}), body) == (
        "bad-signature"
    )
    assert reason(receiver, delivery(body, at=NOW - timedelta(hours=49)), body) == (
        "stale-timestamp"
    )
    assert reason(receiver, delivery(body, at=NOW + timedelta(hours=1)), body) == (
        "stale-timestamp"
    )
    other_shop = delivery(body, **{"X-Shopify-Shop-Domain": "evil.myshopify.com"})
    assert reason(receiver, other_shop, body) == "wrong-shop"
    no_time = delivery(body)
    del no_time["X-Shopify-Triggered-At"]
    assert reason(receiver, no_time, body) == "bad-headers"
    no_id = delivery(body)
    del no_id["X-Shopify-Webhook-Id"]
    with pytest.raises(WebhookRejected):
        receiver.delivery_id(no_id, body)


def order(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": 450789469,
        "name": "#1001",
        "currency": "EUR",
        "created_at": "2026-03-01T11:00:00+01:00",
        "updated_at": "2026-03-01T11:00:00+01:00",
        "financial_status": "paid",
        "fulfillment_status": None,
        "cancelled_at": None,
        "subtotal_price": "20.00",
        "total_tax": "0.00",
        "total_price": "20.00",
        "line_items": [{"id": 1, "sku": "A-1", "quantity": 2, "price": "10.00"}],
    }
    base.update(changes)
    return base


def test_order_topics_map_to_created_then_status_changes() -> None:
    receiver = ShopifyWebhookReceiver(SETTINGS)
    created = json.dumps(order()).encode()
    [event] = receiver.to_events(delivery(created), created)
    assert event.type == "retailsync.order.created"
    # orders/updated at the same version (Shopify sends it right after create): no change.
    assert receiver.to_events(delivery(created, topic="orders/updated"), created) == []
    shipped = json.dumps(
        order(fulfillment_status="fulfilled", updated_at="2026-03-01T12:00:00+01:00")
    ).encode()
    [change] = receiver.to_events(delivery(shipped, topic="orders/updated"), shipped)
    assert change.type == "retailsync.order.status_changed"
    assert change.data["from_status"] == "confirmed" and change.data["to_status"] == "shipped"
    # Re-processing the same delivery yields the same event (same id).
    [again] = receiver.to_events(delivery(shipped, topic="orders/updated"), shipped)
    assert again.id == change.id and again.data == change.data


def test_unknown_previous_status_is_said_not_invented() -> None:
    receiver = ShopifyWebhookReceiver(SETTINGS)
    body = json.dumps(order(fulfillment_status="partial")).encode()
    [change] = receiver.to_events(delivery(body, topic="orders/updated"), body)
    assert change.data["from_status"] == change.data["to_status"] == "partially_shipped"
    assert "not known" in change.data["reason"]


def test_other_topics_map_to_nothing_and_bad_payloads_are_unmappable() -> None:
    receiver = ShopifyWebhookReceiver(SETTINGS)
    body = json.dumps(order()).encode()
    assert receiver.to_events(delivery(body, topic="products/update"), body) == []
    assert receiver.to_events(delivery(body, topic="returns/approve"), body) == []
    broken = json.dumps(order(line_items=[])).encode()
    with pytest.raises(WebhookUnmappable, match="no line items"):
        receiver.to_events(delivery(broken), broken)
    with pytest.raises(WebhookUnmappable, match="not JSON"):
        receiver.to_events(delivery(b"<xml/>"), b"<xml/>")


def test_status_memory_ignores_late_older_versions_and_is_bounded() -> None:
    memory = InMemoryOrderStatusMemory(capacity=2)
    assert memory.observe("1", 10, OrderStatus.CONFIRMED) is None
    assert memory.observe("1", 20, OrderStatus.SHIPPED) is OrderStatus.CONFIRMED
    assert memory.observe("1", 20, OrderStatus.SHIPPED) is OrderStatus.CONFIRMED
    assert memory.observe("1", 15, OrderStatus.PROCESSING) is None
    memory.observe("2", 1, OrderStatus.PENDING)
    memory.observe("3", 1, OrderStatus.PENDING)
    assert memory.observe("1", 30, OrderStatus.DELIVERED) is None  # evicted
