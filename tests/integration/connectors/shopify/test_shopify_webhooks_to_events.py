"""Shopify sandbox webhooks through the ingress: orders, refunds, returns -> canonical events."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from shopify_harness import RunningShopify

from retailsync.connectors.shopify import ShopifyWebhookReceiver
from retailsync.connectors.shopify.mapping import canonical_order_id
from retailsync.domain.catalogue import (
    OrderCreated,
    OrderStatusChanged,
    RefundCompleted,
    RefundRequested,
    ReturnRequested,
    parse_event,
)
from retailsync.domain.money import Money
from retailsync.domain.orders import OrderStatus
from retailsync.domain.returns import ReturnReason
from retailsync.sandbox.shopify import sign_shopify_payload
from retailsync.testing.ingress import Ingress, running_ingress

LINES = [
    {"sku": "TSHIRT-M", "quantity": 2, "price": "19.90"},
    {"sku": "CAP-1", "quantity": 1, "price": "12.00"},
]


@pytest.fixture
def ingress(shopify_sandbox: RunningShopify, sqlite_url: str) -> Iterator[Ingress]:
    receiver = ShopifyWebhookReceiver(shopify_sandbox.settings())
    with running_ingress(sqlite_url, [receiver]) as running:
        shopify_sandbox.state.webhook_url = f"{running.url}/shopify"
        yield running


@pytest.fixture
def control(shopify_sandbox: RunningShopify) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{shopify_sandbox.base_url}/_sandbox") as client:
        yield client


def place_order(control: httpx.Client) -> dict[str, Any]:
    answer = control.post("/orders", json={"lines": LINES, "tax_rate": "0.2"}).json()
    assert [w["status"] for w in answer["webhooks"]] == [200]
    order: dict[str, Any] = answer["order"]
    return order


def test_orders_create_becomes_order_created(ingress: Ingress, control: httpx.Client) -> None:
    """Shopify docs, "Webhooks reference" (orders/create: the REST Order payload)."""
    order = place_order(control)
    [event] = ingress.publisher.events
    payload = parse_event(event)
    assert isinstance(payload, OrderCreated)
    assert payload.order.id == canonical_order_id(order["id"])
    assert payload.order.status is OrderStatus.CONFIRMED
    assert payload.order.grand_total == Money.of(order["total_price"], "EUR")
    assert [line.sku for line in payload.order.lines] == ["TSHIRT-M", "CAP-1"]
    assert event.id == f"shopify:order:{order['id']}:created"


def test_fulfilment_and_cancellation_become_status_changes(
    ingress: Ingress, control: httpx.Client
) -> None:
    """Shopify docs, "Webhooks reference" (orders/updated, orders/cancelled): the payload
    is the whole order; the connector remembers the status it last saw."""
    order = place_order(control)
    shipped = control.post(
        f"/orders/{order['id']}/change", json={"fulfillment_status": "fulfilled"}
    )
    assert [w["status"] for w in shipped.json()["webhooks"]] == [200]
    cancelled = control.post(f"/orders/{order['id']}/change", json={"cancel_reason": "customer"})
    assert [w["topic"] for w in cancelled.json()["webhooks"]] == [
        "orders/cancelled",
        "orders/updated",
    ]
    changes = [parse_event(e) for e in ingress.publisher.events[1:]]
    assert all(isinstance(c, OrderStatusChanged) for c in changes)
    first, second = changes[0], changes[1]
    assert isinstance(first, OrderStatusChanged) and isinstance(second, OrderStatusChanged)
    assert (first.from_status, first.to_status) == (OrderStatus.CONFIRMED, OrderStatus.SHIPPED)
    assert (second.from_status, second.to_status) == (OrderStatus.SHIPPED, OrderStatus.CANCELLED)
    # orders/cancelled and orders/updated describe one change: same event id, stored once.
    assert len({e.id for e in ingress.publisher.events[1:]}) == 2


def test_a_refund_becomes_refund_completed_or_requested(
    ingress: Ingress, control: httpx.Client
) -> None:
    """Shopify docs, "Webhooks reference" (refunds/create, with its refund transactions)."""
    order = place_order(control)
    control.post(f"/orders/{order['id']}/refunds", json={"amount": "10.00", "note": "damaged"})
    control.post(f"/orders/{order['id']}/refunds", json={"amount": "5.00", "status": "pending"})
    completed, requested = (parse_event(e) for e in ingress.publisher.events[1:])
    assert isinstance(completed, RefundCompleted)
    assert completed.amount == Money.of("10.00", "EUR")
    assert isinstance(requested, RefundRequested)
    assert requested.refund.order_id == canonical_order_id(order["id"])
    assert requested.refund.amount == Money.of("5.00", "EUR")


def test_a_return_request_becomes_return_requested(ingress: Ingress, control: httpx.Client) -> None:
    """Shopify docs, "Webhooks reference" (returns/request)."""
    order = place_order(control)
    control.post(
        f"/orders/{order['id']}/returns",
        json={"lines": [{"sku": "CAP-1", "quantity": 1, "return_reason": "defective"}]},
    )
    payload = parse_event(ingress.publisher.events[-1])
    assert isinstance(payload, ReturnRequested)
    assert payload.rma.order_id == canonical_order_id(order["id"])
    [line] = payload.rma.lines
    assert (line.sku, line.quantity, line.reason) == ("CAP-1", 1, ReturnReason.DAMAGED)


def test_a_resent_delivery_produces_one_canonical_event(
    shopify_sandbox: RunningShopify, ingress: Ingress, control: httpx.Client
) -> None:
    """Shopify docs, "Verify webhook deliveries": retries keep X-Shopify-Webhook-Id, which
    identifies duplicates."""
    place_order(control)
    [webhook_id] = list(shopify_sandbox.state.deliveries)
    again = control.post(f"/webhooks/{webhook_id}/resend").json()
    assert again["status"] == 200
    assert len(ingress.publisher.events) == 1
    assert [row.delivery_id for row in ingress.deliveries()] == [webhook_id]


def test_forged_and_stale_deliveries_are_rejected_and_audited(
    shopify_sandbox: RunningShopify, ingress: Ingress, control: httpx.Client
) -> None:
    """Shopify docs, "Verify webhook deliveries": compare the base64 HMAC-SHA256 of the raw
    body (client secret) with X-Shopify-Hmac-SHA256; reject mismatches."""
    place_order(control)
    delivery = next(iter(shopify_sandbox.state.deliveries.values()))
    headers = shopify_sandbox.state.headers_for(delivery)
    forged = httpx.post(
        f"{ingress.url}/shopify",
        content=delivery.body.replace(b"19.90", b"0.01"),
        headers=headers,
    )
    assert forged.status_code == 401
    old = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    stale = httpx.post(
        f"{ingress.url}/shopify",
        content=delivery.body,
        headers={**headers, "X-Shopify-Triggered-At": old},
    )
    assert stale.status_code == 400
    other_secret = sign_shopify_payload(delivery.body, "not-the-client-secret")
    wrong = httpx.post(
        f"{ingress.url}/shopify",
        content=delivery.body,
        headers={**headers, "X-Shopify-Hmac-Sha256": other_secret},
    )
    assert wrong.status_code == 401
    assert [r.reason for r in ingress.rejections()] == [
        "bad-signature",
        "stale-timestamp",
        "bad-signature",
    ]
    assert len(ingress.publisher.events) == 1
