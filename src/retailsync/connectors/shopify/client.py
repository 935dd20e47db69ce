"""Shopify's Admin REST API over httpx: token auth, Link pagination, call limits, retries.

* Auth: ``X-Shopify-Access-Token``; every path is under ``/admin/api/<version>/``.
* Pagination: list endpoints answer a ``Link`` header with ``rel="next"`` / ``rel="previous"``
  URLs carrying ``page_info``; the next page is fetched by following that URL as given.
* Rate limits: the leaky bucket's fill is reported in ``X-Shopify-Shop-Api-Call-Limit``
  (``used/size``); when the bucket is full the client pauses before its next call, and a
  429 is retried after ``Retry-After`` seconds.
* Retries: given a :class:`~retailsync.resilience.guard.Downstream` (the ``commerce``
  downstream), every call runs under its policy (retries with jitter, circuit breaker, rate
  limit, lanes); without one a small built-in loop retries 429, 5xx and network failures
  with exponential backoff and full jitter. Every call the hub makes is safe to repeat
  (reads, and ``inventory_levels/set`` which sets an absolute quantity), so POSTs are
  retried too.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import httpx

from retailsync.connectors.shopify.config import ShopifySettings
from retailsync.connectors.shopify.errors import ShopifyAuthenticationFailed
from retailsync.observability.otel import traceparent_hooks
from retailsync.resilience.config import Lane
from retailsync.resilience.errors import BusinessError, DownstreamUnavailable, TransientError
from retailsync.resilience.guard import Downstream
from retailsync.resilience.http import ClosingClient, error_for_status, parse_retry_after

__all__ = ["CallLimit", "ShopifyApi", "next_page_url"]

DOWNSTREAM = "shopify"
JsonObject = dict[str, Any]
_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?([a-z]+)"?')


def next_page_url(link_header: str | None) -> str | None:
    """The ``rel="next"`` URL of a ``Link`` header, if any."""
    if not link_header:
        return None
    for url, rel in _LINK.findall(link_header):
        if rel == "next":
            return str(url)
    return None


class CallLimit:
    """The last ``X-Shopify-Shop-Api-Call-Limit`` seen: calls in the bucket, and its size."""

    def __init__(self) -> None:
        self.used = 0
        self.size = 0

    def update(self, header: str | None) -> None:
        if not header or "/" not in header:
            return
        used, _, size = header.partition("/")
        if used.strip().isdigit() and size.strip().isdigit():
            self.used, self.size = int(used), int(size)

    @property
    def full(self) -> bool:
        return self.size > 0 and self.used >= self.size


class ShopifyApi(ClosingClient):
    """A thin async client for the parts of the Shopify Admin REST API the hub uses."""

    #: How fast the REST bucket drains (calls per second, standard plan).
    leak_per_second = 2.0

    def __init__(
        self,
        settings: ShopifySettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        downstream: Downstream | None = None,
        lane: Lane = Lane.BATCH,
    ) -> None:
        self.settings = settings
        self.downstream = downstream
        self.lane = lane
        self._http = httpx.AsyncClient(
            base_url=settings.api_base + "/",
            headers={
                "X-Shopify-Access-Token": settings.access_token.get_secret_value(),
                "Accept": "application/json",
                "User-Agent": "retailsync-shopify-connector",
            },
            timeout=settings.timeout_seconds,
            transport=transport,
            event_hooks=traceparent_hooks(),
        )
        self._sleep = sleep
        self._jitter = jitter
        self.call_limit = CallLimit()
        #: Attempts made by the last call (1 when it succeeded first time).
        self.last_attempts = 0

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- resources -------------------------------------------------------------------------

    async def get_order(self, order_id: str) -> JsonObject:
        body, _ = await self.request("GET", f"orders/{order_id}.json", operation="read order")
        order = body.get("order")
        if not isinstance(order, dict):
            raise BusinessError(
                f"Shopify answered the order {order_id} read without an 'order' object",
                downstream=DOWNSTREAM,
                operation="read order",
            )
        return order

    async def iter_orders(self, params: Mapping[str, Any]) -> AsyncIterator[JsonObject]:
        """Every order matching ``params``, following the ``Link: rel="next"`` pages."""
        query: dict[str, Any] | None = {"limit": self.settings.page_size, **params}
        url = "orders.json"
        while True:
            body, headers = await self.request("GET", url, params=query, operation="list orders")
            for order in body.get("orders") or []:
                yield order
            following = next_page_url(headers.get("link"))
            if following is None:
                return
            url, query = following, None

    async def set_inventory_level(
        self, *, inventory_item_id: str, location_id: str, available: int
    ) -> JsonObject:
        body, _ = await self.request(
            "POST",
            "inventory_levels/set.json",
            json={
                "location_id": _numeric(location_id),
                "inventory_item_id": _numeric(inventory_item_id),
                "available": available,
            },
            operation="set inventory level",
        )
        level = body.get("inventory_level")
        if not isinstance(level, dict):
            raise BusinessError(
                "Shopify answered inventory_levels/set without an 'inventory_level' object",
                downstream=DOWNSTREAM,
                operation="set inventory level",
            )
        return level

    async def list_fulfillment_orders(self, order_id: str) -> list[JsonObject]:
        body, _ = await self.request(
            "GET",
            f"orders/{order_id}/fulfillment_orders.json",
            operation="list fulfillment orders",
        )
        return list(body.get("fulfillment_orders") or [])

    async def create_fulfillment(self, fulfillment: Mapping[str, Any]) -> JsonObject:
        body, _ = await self.request(
            "POST",
            "fulfillments.json",
            json={"fulfillment": dict(fulfillment)},
            operation="create fulfillment",
        )
        return dict(body.get("fulfillment") or {})

    async def cancel_order(self, order_id: str, *, reason: str, email: bool) -> JsonObject:
        body, _ = await self.request(
            "POST",
            f"orders/{order_id}/cancel.json",
            json={"reason": reason, "email": email},
            operation="cancel order",
        )
        return dict(body.get("order") or {})

    async def close_order(self, order_id: str) -> JsonObject:
        body, _ = await self.request(
            "POST", f"orders/{order_id}/close.json", json={}, operation="close order"
        )
        return dict(body.get("order") or {})

    async def update_order(self, order_id: str, fields: Mapping[str, Any]) -> JsonObject:
        body, _ = await self.request(
            "PUT",
            f"orders/{order_id}.json",
            json={"order": {"id": _numeric(order_id), **fields}},
            operation="update order",
        )
        return dict(body.get("order") or {})

    # -- transport -------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        url: str,
        *,
        operation: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> tuple[JsonObject, httpx.Headers]:
        """One API call with retries; returns the decoded body and the response headers."""
        self.last_attempts = 0

        async def once() -> tuple[JsonObject, httpx.Headers]:
            self.last_attempts += 1
            return await self._send_once(method, url, params, json, operation)

        if self.downstream is not None:
            # Every call the hub makes to Shopify is safe to repeat (reads, absolute sets).
            return await self.downstream.call(operation, once, lane=self.lane, mutating=False)
        while True:
            try:
                return await once()
            except TransientError as error:
                if self.last_attempts >= self.settings.max_attempts:
                    raise
                if (
                    error.retry_after is not None
                    and error.retry_after > self.settings.max_retry_after_seconds
                ):
                    raise
                await self._sleep(self._backoff(self.last_attempts, error.retry_after))

    async def _send_once(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        json: Any,
        operation: str,
    ) -> tuple[JsonObject, httpx.Headers]:
        """One attempt: body and headers, or a classified transient / business error."""
        if self.call_limit.full:
            await self._sleep(1.0 / self.leak_per_second)
        try:
            response = await self._http.request(
                method, url, params=dict(params) if params else None, json=json
            )
        except httpx.TransportError as transport_error:
            raise DownstreamUnavailable(
                f"could not reach Shopify for {operation} "
                f"({type(transport_error).__name__}: {transport_error})",
                downstream=DOWNSTREAM,
                operation=operation,
            ) from transport_error
        self.call_limit.update(response.headers.get("X-Shopify-Shop-Api-Call-Limit"))
        if response.status_code < 400:
            body: JsonObject = response.json() if response.content else {}
            return body, response.headers
        raise self._error(response, operation)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        ceiling = min(
            self.settings.max_retry_after_seconds,
            self.settings.backoff_seconds * 2.0 ** (attempt - 1),
        )
        return float(ceiling) * self._jitter()

    def _error(self, response: httpx.Response, operation: str) -> TransientError | BusinessError:
        try:
            errors = response.json().get("errors")
        except ValueError:
            errors = None
        detail = str(errors) if errors is not None else response.text[:200]
        request_id = response.headers.get("X-Request-Id")
        if request_id:
            detail += f" (request {request_id})"
        status = response.status_code
        if status in (401, 403):
            return ShopifyAuthenticationFailed(
                f"Shopify refused {operation} (HTTP {status}): {detail}; check "
                "connectors.shopify.access_token and the app's access scopes",
                downstream=DOWNSTREAM,
                operation=operation,
                status=status,
            )
        classified = error_for_status(
            status,
            downstream=DOWNSTREAM,
            operation=operation,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            detail=detail,
        )
        if classified is None:  # pragma: no cover - status >= 400 always classifies
            classified = BusinessError(detail, downstream=DOWNSTREAM, operation=operation)
        if isinstance(classified, BusinessError):
            classified.details = {"errors": errors, "request_id": request_id}
        return classified


def _numeric(value: str) -> int | str:
    """Shopify REST ids are integers; accept ``gid://shopify/Location/123`` too."""
    tail = value.rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else value
