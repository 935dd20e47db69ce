"""The :class:`~retailsync.ports.commerce.CommercePort` adapter for Shopify (Admin REST).

Order status goes to Shopify through its documented endpoints: ``shipped`` / ``delivered``
create a fulfillment for the open fulfillment orders (with the tracking number),
``cancelled`` cancels the order, ``completed`` closes it; every status also sets the
``retailsync:<status>`` tag, and a note is appended to the order note once. Shopify's REST API
has no idempotency keys, so each call reads the order first and changes only what is not yet
so: a repeated call (a retried workflow step) finds the work done and does nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from retailsync.connectors.shopify.client import ShopifyApi
from retailsync.connectors.shopify.config import ShopifySettings
from retailsync.connectors.shopify.mapping import stock_level, storefront_order
from retailsync.ports.commerce import StockLevel, StorefrontOrder
from retailsync.resilience.errors import BusinessError, ValidationRejected
from retailsync.resilience.guard import Downstream
from retailsync.resilience.http import ClosingClient

STATUS_TAG_PREFIX = "retailsync:"
FULFILLED_STATUSES = frozenset({"partially_shipped", "shipped", "delivered"})
KNOWN_STATUSES = frozenset(
    {
        "pending",
        "on_hold",
        "confirmed",
        "processing",
        "partially_shipped",
        "shipped",
        "delivered",
        "completed",
        "cancelled",
    }
)


class ShopifyCommerce(ClosingClient):
    """Orders from, and available-to-sell quantities to, one Shopify shop."""

    def __init__(
        self,
        settings: ShopifySettings,
        *,
        api: ShopifyApi | None = None,
        downstream: Downstream | None = None,
    ) -> None:
        """``downstream`` is the resilience layer's ``commerce`` downstream (recommended)."""
        self.settings = settings
        self.api = api or ShopifyApi(settings, downstream=downstream)

    async def aclose(self) -> None:
        await self.api.aclose()

    async def get_order(self, order_ref: str) -> StorefrontOrder:
        return storefront_order(await self.api.get_order(order_ref), self.settings)

    async def iter_orders(
        self, *, updated_since: datetime | None = None, page_size: int = 50
    ) -> AsyncIterator[StorefrontOrder]:
        params: dict[str, str | int] = {"status": "any", "limit": page_size}
        if updated_since is not None:
            params["updated_at_min"] = updated_since.isoformat()
        async for order in self.api.iter_orders(params):
            yield storefront_order(order, self.settings)

    async def update_order_status(
        self,
        order_ref: str,
        status: str,
        *,
        idempotency_key: str,
        tracking_number: str | None = None,
        note: str | None = None,
    ) -> None:
        if status not in KNOWN_STATUSES:
            raise ValidationRejected(
                f"{status!r} is not an order status; use one of {sorted(KNOWN_STATUSES)}",
                downstream="shopify",
                operation="update order status",
            )
        order = await self.api.get_order(order_ref)
        if status in FULFILLED_STATUSES:
            await self._fulfil(order_ref, tracking_number)
        elif status == "cancelled" and not order.get("cancelled_at"):
            await self._cancel(order_ref, note)
        elif status == "completed" and not order.get("closed_at"):
            await self.api.close_order(order_ref)
        fields = _status_fields(await self.api.get_order(order_ref), status, note)
        if fields:
            await self.api.update_order(order_ref, fields)

    async def _fulfil(self, order_ref: str, tracking_number: str | None) -> None:
        """Fulfil every open fulfillment order (nothing left open: already fulfilled)."""
        open_orders = [
            fo
            for fo in await self.api.list_fulfillment_orders(order_ref)
            if fo.get("status") in {"open", "in_progress"}
        ]
        if not open_orders:
            return
        fulfillment: dict[str, object] = {
            "line_items_by_fulfillment_order": [
                {"fulfillment_order_id": fo["id"]} for fo in open_orders
            ],
            "notify_customer": self.settings.notify_customer_on_fulfillment,
        }
        if tracking_number:
            fulfillment["tracking_info"] = {"number": tracking_number}
        try:
            await self.api.create_fulfillment(fulfillment)
        except BusinessError:
            # A retry after a lost answer finds the fulfillment orders closed: that is done.
            still_open = [
                fo
                for fo in await self.api.list_fulfillment_orders(order_ref)
                if fo.get("status") in {"open", "in_progress"}
            ]
            if still_open:
                raise

    async def _cancel(self, order_ref: str, note: str | None) -> None:
        try:
            await self.api.cancel_order(order_ref, reason="customer", email=False)
        except BusinessError:
            if not (await self.api.get_order(order_ref)).get("cancelled_at"):
                raise

    async def set_available(
        self, *, inventory_item_ref: str, location_ref: str, available: int
    ) -> StockLevel:
        level = await self.api.set_inventory_level(
            inventory_item_id=inventory_item_ref, location_id=location_ref, available=available
        )
        return stock_level(level)


def _status_fields(order: dict[str, object], status: str, note: str | None) -> dict[str, str]:
    """The ``tags`` / ``note`` changes that show ``status`` (empty when already shown)."""
    fields: dict[str, str] = {}
    tags = [t.strip() for t in str(order.get("tags") or "").split(",") if t.strip()]
    wanted = [t for t in tags if not t.startswith(STATUS_TAG_PREFIX)]
    wanted.append(f"{STATUS_TAG_PREFIX}{status}")
    if wanted != tags:
        fields["tags"] = ", ".join(wanted)
    current = str(order.get("note") or "")
    if note and note not in current:
        fields["note"] = f"{current}\n{note}" if current else note
    return fields
