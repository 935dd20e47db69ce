"""Fixtures: the Shopify sandbox on a loopback port and the connector pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from shopify_harness import RunningShopify

from retailsync.connectors.shopify import ShopifyCommerce
from retailsync.sandbox.server import SandboxServer
from retailsync.sandbox.shopify import ShopifySandbox, create_shopify_sandbox


@pytest.fixture
def shopify_sandbox() -> Iterator[RunningShopify]:
    state = ShopifySandbox()
    with SandboxServer(create_shopify_sandbox(state)) as server:
        yield RunningShopify(state, server.base_url)


@pytest.fixture
async def commerce(shopify_sandbox: RunningShopify) -> AsyncIterator[ShopifyCommerce]:
    async with ShopifyCommerce(shopify_sandbox.settings()) as adapter:
        yield adapter
