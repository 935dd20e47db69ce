"""Read the inventory levels a Shopify shop publishes (``GET inventory_levels.json``).

Shopify documents the endpoint as ``GET /admin/api/<version>/inventory_levels.json`` with
``location_ids`` and/or ``inventory_item_ids`` (comma-separated, at least one of them),
``updated_at_min`` and ``limit`` (1-250, default 50), paged with the ``Link`` header
(``rel="next"`` carries ``page_info``; the next page is fetched by following that URL as given).
An inventory level is one inventory item's ``available`` quantity at one location.

Calls go through :class:`~retailsync.connectors.shopify.client.ShopifyApi`, so they share its
auth, call-limit pacing and retries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from retailsync.connectors.shopify.client import ShopifyApi, next_page_url
from retailsync.connectors.shopify.mapping import stock_level
from retailsync.ports.commerce import StockLevel

__all__ = ["MAX_IDS_PER_CALL", "ShopifyLevels"]

MAX_IDS_PER_CALL = 50
"""Shopify accepts at most this many ids in ``location_ids`` / ``inventory_item_ids``."""


def _ids(values: Sequence[str]) -> str:
    return ",".join(value.rsplit("/", 1)[-1] for value in values)


class ShopifyLevels:
    """Every published inventory level of some locations (and optionally some items)."""

    def __init__(self, api: ShopifyApi, *, page_size: int = 250) -> None:
        if not 1 <= page_size <= 250:
            raise ValueError(f"page_size {page_size} must be between 1 and 250 (Shopify's limit)")
        self.api = api
        self.page_size = page_size

    async def iter_levels(
        self,
        *,
        location_ids: Sequence[str] = (),
        inventory_item_ids: Sequence[str] = (),
        updated_since: datetime | None = None,
    ) -> AsyncIterator[StockLevel]:
        """The levels at ``location_ids`` (of ``inventory_item_ids`` when given), all pages.

        More than 50 ids of either kind are asked for 50 at a time, as Shopify requires.
        """
        if not location_ids and not inventory_item_ids:
            raise ValueError("give location_ids or inventory_item_ids (Shopify requires one)")
        for locations in _chunks(location_ids):
            for items in _chunks(inventory_item_ids):
                params: dict[str, Any] = {"limit": self.page_size}
                if locations:
                    params["location_ids"] = _ids(locations)
                if items:
                    params["inventory_item_ids"] = _ids(items)
                if updated_since is not None:
                    params["updated_at_min"] = updated_since.isoformat()
                async for level in self._pages(params):
                    yield level

    async def _pages(self, params: dict[str, Any]) -> AsyncIterator[StockLevel]:
        url = "inventory_levels.json"
        query: dict[str, Any] | None = params
        while True:
            body, headers = await self.api.request(
                "GET", url, params=query, operation="list inventory levels"
            )
            for level in body.get("inventory_levels") or []:
                yield stock_level(level)
            following = next_page_url(headers.get("link"))
            if following is None:
                return
            url, query = following, None


def _chunks(values: Sequence[str]) -> list[Sequence[str]]:
    if not values:
        return [()]
    return [values[i : i + MAX_IDS_PER_CALL] for i in range(0, len(values), MAX_IDS_PER_CALL)]
