"""The Shopify connector under the resilience layer's ``commerce`` downstream."""

from __future__ import annotations

from shopify_harness import RunningShopify

from retailsync.connectors.shopify import ShopifyCommerce
from retailsync.resilience import Downstreams, ResiliencePolicy, ResilienceSettings, RetryPolicy


async def test_429_and_5xx_are_retried_by_the_resilience_layer(
    shopify_sandbox: RunningShopify,
) -> None:
    """Shopify docs, "REST Admin API rate limits" (429 + Retry-After) and "Status and error
    codes" (5xx): retried under the commerce downstream's policy."""
    policy = ResiliencePolicy(
        retry=RetryPolicy(max_attempts=4, initial_backoff_seconds=0.01, max_backoff_seconds=0.05)
    )
    downstream = Downstreams(ResilienceSettings(downstreams={"commerce": policy}), engine=None)[
        "commerce"
    ]
    created = shopify_sandbox.state.create_order(lines=[{"sku": "A-1", "price": "5.00"}])
    shopify_sandbox.state.retry_after_seconds = 0.02
    shopify_sandbox.state.rate_limit_next = 1
    shopify_sandbox.state.fail_next = 1
    async with ShopifyCommerce(shopify_sandbox.settings(), downstream=downstream) as commerce:
        order = await commerce.get_order(str(created["id"]))
        assert commerce.api.last_attempts == 3
    assert order.order_ref == str(created["id"])
    assert downstream.stats.retries == 2
