"""Errors of the Shopify connector, each saying what went wrong and what to do.

Failures of calls to Shopify are the resilience layer's classes
(:class:`~retailsync.resilience.errors.TransientError` to retry,
:class:`~retailsync.resilience.errors.BusinessError` for people) carrying Shopify's
``errors`` body in ``details``; the classes here are what only Shopify can say.
"""

from __future__ import annotations

from retailsync.resilience.errors import BusinessError


class ShopifyConfigError(ValueError):
    """The connector settings are invalid; the message names the bad key."""


class ShopifyAuthenticationFailed(BusinessError):
    """Shopify refused the access token (HTTP 401/403): check ``connectors.shopify.access_token``
    and the app's access scopes (read_orders, write_inventory)."""

    code = "authentication"


class ShopifyPayloadError(ValueError):
    """A Shopify payload lacks a field the mapping needs, or has one it cannot read."""
