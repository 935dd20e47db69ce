"""Test harness: the Shopify sandbox handle and connector settings pointing at it."""

from __future__ import annotations

from dataclasses import dataclass

from retailsync.connectors.shopify import ShopifySettings, load_shopify_settings
from retailsync.sandbox.shopify import (
    SANDBOX_ACCESS_TOKEN,
    SANDBOX_SHOP_DOMAIN,
    SANDBOX_WEBHOOK_SECRET,
    ShopifySandbox,
)


@dataclass
class RunningShopify:
    """A running Shopify sandbox: its state and base URL, and connector settings for it."""

    state: ShopifySandbox
    base_url: str

    def settings(self, **overrides: object) -> ShopifySettings:
        values: dict[str, object] = {
            "shop_domain": SANDBOX_SHOP_DOMAIN,
            "access_token": SANDBOX_ACCESS_TOKEN,
            "webhook_secret": SANDBOX_WEBHOOK_SECRET,
            "base_url": self.base_url,
            "backoff_seconds": 0.01,
            "timeout_seconds": 5,
        }
        values.update(overrides)
        return load_shopify_settings(values)
