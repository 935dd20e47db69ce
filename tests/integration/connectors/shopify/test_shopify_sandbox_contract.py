"""Our Shopify connector against the Shopify sandbox: orders, pages, stock, 429, 5xx."""

from __future__ import annotations

from decimal import Decimal

import pytest
from shopify_harness import RunningShopify

from retailsync.connectors.shopify import ShopifyCommerce
from retailsync.connectors.shopify.errors import ShopifyAuthenticationFailed
from retailsync.domain.money import Money
from retailsync.resilience.errors import UnknownReference, ValidationRejected

LINES = [{"sku": "TSHIRT-M", "quantity": 2, "price": "19.90"}]


async def test_an_order_is_read_by_its_id(
    shopify_sandbox: RunningShopify, commerce: ShopifyCommerce
) -> None:
    """Shopify REST Admin API, "Order > Retrieve a specific order"
    (GET /admin/api/2024-10/orders/{order_id}.json answers {"order": {...}})."""
    created = shopify_sandbox.state.create_order(lines=LINES, tax_rate=Decimal("0.1"))
    order = await commerce.get_order(str(created["id"]))
    assert order.name == created["name"]
    assert order.status == "confirmed"  # paid, not fulfilled
    assert order.total == Money.of("43.78", "EUR")
    assert [(line.sku, line.quantity) for line in order.lines] == [("TSHIRT-M", 2)]


async def test_a_missing_order_is_unknown(commerce: ShopifyCommerce) -> None:
    """Shopify REST Admin API, "Status and error codes": 404 {"errors": "Not Found"}."""
    with pytest.raises(UnknownReference) as raised:
        await commerce.get_order("123")
    assert raised.value.details["errors"] == "Not Found"


async def test_listing_orders_follows_the_link_header(
    shopify_sandbox: RunningShopify,
) -> None:
    """Shopify docs, "Make paginated requests to the REST Admin API": the Link header carries
    rel="next" with page_info; the next page is that URL as given."""
    made = [shopify_sandbox.state.create_order(lines=LINES)["id"] for _ in range(5)]
    async with ShopifyCommerce(shopify_sandbox.settings()) as adapter:
        before = shopify_sandbox.state.requests_seen
        listed = [order.order_ref async for order in adapter.iter_orders(page_size=2)]
        assert shopify_sandbox.state.requests_seen - before == 3
    assert listed == [str(order_id) for order_id in made]


async def test_stock_is_set_at_a_location(
    shopify_sandbox: RunningShopify, commerce: ShopifyCommerce
) -> None:
    """Shopify REST Admin API, "InventoryLevel > Sets the inventory level for an inventory item
    at a location" (POST inventory_levels/set.json with location_id, inventory_item_id,
    available)."""
    shopify_sandbox.state.seed_level(808950810, 655441491, 3)
    level = await commerce.set_available(
        inventory_item_ref="808950810",
        location_ref="gid://shopify/Location/655441491",
        available=42,
    )
    assert (level.inventory_item_ref, level.location_ref, level.available) == (
        "808950810",
        "655441491",
        42,
    )
    assert shopify_sandbox.state.inventory_levels[(808950810, 655441491)]["available"] == 42
    with pytest.raises(ValidationRejected):
        await commerce.set_available(inventory_item_ref="1", location_ref="2", available=1)


async def test_429_is_retried_after_retry_after(
    shopify_sandbox: RunningShopify, commerce: ShopifyCommerce
) -> None:
    """Shopify docs, "REST Admin API rate limits": over the limit the API answers 429 Too Many
    Requests with a Retry-After header (seconds to wait)."""
    created = shopify_sandbox.state.create_order(lines=LINES)
    shopify_sandbox.state.retry_after_seconds = 0.05
    shopify_sandbox.state.rate_limit_next = 2
    order = await commerce.get_order(str(created["id"]))
    assert order.order_ref == str(created["id"])
    assert commerce.api.last_attempts == 3


async def test_a_full_bucket_makes_the_client_wait_instead_of_hitting_429(
    shopify_sandbox: RunningShopify, commerce: ShopifyCommerce
) -> None:
    """Shopify docs, "REST Admin API rate limits": X-Shopify-Shop-Api-Call-Limit reports the
    leaky bucket's fill (used/size); a client that waits for it to leak avoids 429s."""
    created = shopify_sandbox.state.create_order(lines=LINES)
    shopify_sandbox.state.bucket_size = 2
    shopify_sandbox.state.leak_per_second = 10.0
    commerce.api.leak_per_second = 5.0  # pause 0.2 s whenever the bucket reads full
    before = shopify_sandbox.state.requests_seen
    for _ in range(5):
        await commerce.get_order(str(created["id"]))
    assert shopify_sandbox.state.requests_seen - before == 5  # no 429 was needed
    assert commerce.api.call_limit.size == 2


async def test_5xx_answers_are_retried(
    shopify_sandbox: RunningShopify, commerce: ShopifyCommerce
) -> None:
    """Shopify REST Admin API, "Status and error codes": 5xx are server errors to retry."""
    created = shopify_sandbox.state.create_order(lines=LINES)
    shopify_sandbox.state.fail_next = 2
    shopify_sandbox.state.fail_status = 503
    order = await commerce.get_order(str(created["id"]))
    assert order.order_ref == str(created["id"])
    assert commerce.api.last_attempts == 3


async def test_a_wrong_token_is_an_authentication_error(shopify_sandbox: RunningShopify) -> None:
    """Shopify REST Admin API, "Status and error codes": 401 Unauthorized."""
    settings = shopify_sandbox.settings(access_token="shpat_wrong")
    async with ShopifyCommerce(settings) as adapter:
        with pytest.raises(ShopifyAuthenticationFailed, match="access_token"):
            await adapter.get_order("1")
