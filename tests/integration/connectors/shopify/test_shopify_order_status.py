"""Order status from the hub to Shopify: fulfil with tracking, cancel, close, tag and note."""

from __future__ import annotations

import httpx
import pytest
from shopify_harness import RunningShopify

from retailsync.connectors.shopify import ShopifyCommerce
from retailsync.resilience.errors import BusinessError, ValidationRejected
from retailsync.sandbox.shopify import SANDBOX_ACCESS_TOKEN


def _order(shopify: RunningShopify) -> int:
    order = shopify.state.create_order(
        lines=[
            {"sku": "MUG-1", "quantity": 2, "price": "12.50"},
            {"sku": "TEE-M", "quantity": 1, "price": "20.00"},
        ]
    )
    return int(order["id"])


async def test_shipped_creates_one_fulfillment_with_tracking(
    shopify_sandbox: RunningShopify, commerce: ShopifyCommerce
) -> None:
    """Shopify REST "Fulfillment > Create a fulfillment for one or many fulfillment orders":
    every open fulfillment order is fulfilled with the tracking number; a repeat (a retried
    workflow step) finds nothing open and creates no second fulfillment."""
    order_id = _order(shopify_sandbox)
    for _ in range(2):
        await commerce.update_order_status(
            str(order_id), "shipped", idempotency_key="wf-1:ship", tracking_number="1Z999"
        )
    order = shopify_sandbox.state.orders[order_id]
    (fulfillment,) = order["fulfillments"]
    assert fulfillment["tracking_number"] == "1Z999"
    assert fulfillment["notify_customer"] is True
    assert sorted(line["quantity"] for line in fulfillment["line_items"]) == [1, 2]
    assert order["fulfillment_status"] == "fulfilled"
    assert order["tags"] == "retailsync:shipped"
    assert (await commerce.get_order(str(order_id))).status == "shipped"


async def test_cancelled_cancels_once_and_notes_the_reason(
    shopify_sandbox: RunningShopify, commerce: ShopifyCommerce
) -> None:
    """Shopify REST "Order > Cancel an order" (422 for an order already cancelled): the
    adapter checks first, so the second call changes nothing; the note is appended once."""
    order_id = _order(shopify_sandbox)
    shopify_sandbox.state.orders[order_id]["note"] = "gift wrap"
    for _ in range(2):
        await commerce.update_order_status(
            str(order_id), "cancelled", idempotency_key="wf-2:cancel", note="customer request"
        )
    order = shopify_sandbox.state.orders[order_id]
    assert order["cancelled_at"] is not None and order["cancel_reason"] == "customer"
    assert order["note"] == "gift wrap\ncustomer request"
    assert order["tags"] == "retailsync:cancelled"
    assert (await commerce.get_order(str(order_id))).status == "cancelled"
    topics = [d.topic for d in shopify_sandbox.state.deliveries.values()]
    assert topics.count("orders/cancelled") == 1


async def test_completed_closes_and_other_statuses_only_tag(
    shopify_sandbox: RunningShopify, commerce: ShopifyCommerce
) -> None:
    order_id = _order(shopify_sandbox)
    shopify_sandbox.state.orders[order_id]["tags"] = "vip, retailsync:pending"
    await commerce.update_order_status(str(order_id), "confirmed", idempotency_key="k1")
    order = shopify_sandbox.state.orders[order_id]
    assert order["tags"] == "vip, retailsync:confirmed"
    assert order["closed_at"] is None and not order["fulfillments"]
    await commerce.update_order_status(str(order_id), "completed", idempotency_key="k2")
    assert order["closed_at"] is not None
    with pytest.raises(ValidationRejected):
        await commerce.update_order_status(str(order_id), "teleported", idempotency_key="k3")


async def test_a_fulfilled_order_cannot_be_cancelled(
    shopify_sandbox: RunningShopify, commerce: ShopifyCommerce
) -> None:
    order_id = _order(shopify_sandbox)
    await commerce.update_order_status(str(order_id), "shipped", idempotency_key="k")
    with pytest.raises(BusinessError, match="fulfillments"):
        await commerce.update_order_status(str(order_id), "cancelled", idempotency_key="k2")


async def test_the_sandbox_refuses_fulfilling_a_closed_fulfillment_order(
    shopify_sandbox: RunningShopify,
) -> None:
    """Shopify answers 422 when a fulfillment order has nothing left to fulfil."""
    order_id = _order(shopify_sandbox)
    base = f"{shopify_sandbox.base_url}/admin/api/2024-10"
    headers = {"X-Shopify-Access-Token": SANDBOX_ACCESS_TOKEN}
    async with httpx.AsyncClient(headers=headers) as http:
        listed = await http.get(f"{base}/orders/{order_id}/fulfillment_orders.json")
        (fo,) = listed.json()["fulfillment_orders"]
        body = {
            "fulfillment": {"line_items_by_fulfillment_order": [{"fulfillment_order_id": fo["id"]}]}
        }
        first = await http.post(f"{base}/fulfillments.json", json=body)
        again = await http.post(f"{base}/fulfillments.json", json=body)
        cancel = await http.post(f"{base}/orders/{order_id}/cancel.json", json={"reason": "x"})
    assert first.status_code == 200 and first.json()["fulfillment"]["status"] == "success"
    assert again.status_code == 422 and "unfulfillable" in str(again.json()["errors"])
    assert cancel.status_code == 422
