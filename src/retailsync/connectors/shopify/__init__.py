"""Shopify: order, refund and return webhooks in; orders and stock levels over Admin REST.

``config`` (settings and mapping tables), ``client`` (Admin REST: token auth, Link-header
pagination, call-limit header, 429 Retry-After, retries), ``mapping`` (Shopify payloads ->
canonical events and port records, pure), ``inbound`` (the webhook receiver, HMAC-SHA256) and
``outbound`` (the ``CommercePort`` adapter). May import ``domain``, ``ports``, ``resilience``.
"""

from retailsync.connectors.shopify.config import ShopifySettings, load_shopify_settings
from retailsync.connectors.shopify.inbound import ShopifyWebhookReceiver
from retailsync.connectors.shopify.outbound import ShopifyCommerce

__all__ = [
    "ShopifyCommerce",
    "ShopifySettings",
    "ShopifyWebhookReceiver",
    "load_shopify_settings",
]
