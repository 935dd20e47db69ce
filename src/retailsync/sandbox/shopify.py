"""A local stand-in for the part of Shopify's Admin REST API and webhooks the hub uses.

It reproduces, in memory, what Shopify documents for:

* ``GET /admin/api/<version>/orders/<id>.json`` and ``orders.json`` with cursor pagination:
  a ``Link`` header with ``rel="next"`` / ``rel="previous"`` URLs carrying ``page_info``
  (``limit`` 1-250, default 50; with ``page_info`` only ``limit`` and ``fields`` may be sent);
* ``POST /admin/api/<version>/inventory_levels/set.json`` and ``GET inventory_levels.json``;
* order status from an app: ``GET orders/<id>/fulfillment_orders.json`` (one fulfillment order
  per order, at the shop's location), ``POST fulfillments.json`` (``line_items_by_fulfillment_
  order``, ``tracking_info``; 422 once a fulfillment order is closed), ``POST orders/<id>/
  cancel.json`` (422 when cancelled already or fulfilled), ``POST orders/<id>/close.json`` and
  ``PUT orders/<id>.json`` (``note``, ``tags``), each emitting the webhooks Shopify sends;
* auth with ``X-Shopify-Access-Token`` (401 ``{"errors": "[API] Invalid API key or access
  token ..."}``), 404 ``{"errors": "Not Found"}``, 400/422 ``{"errors": {...}}``;
* the REST leaky bucket: ``X-Shopify-Shop-Api-Call-Limit: used/size`` on every answer, and
  429 with ``Retry-After`` when the bucket is full (size and leak rate configurable);
* webhooks POSTed to ``webhook_url`` with ``X-Shopify-Topic``, ``X-Shopify-Hmac-Sha256``
  (base64 HMAC-SHA256 of the raw body under the app's client secret),
  ``X-Shopify-Shop-Domain``, ``X-Shopify-API-Version``, ``X-Shopify-Webhook-Id``,
  ``X-Shopify-Event-Id`` and ``X-Shopify-Triggered-At``; a re-sent delivery keeps its
  webhook id, body and trigger time, as Shopify's retries do.

A control API under ``/_sandbox`` creates and changes orders (emitting ``orders/create``,
``orders/updated``, ``orders/cancelled``, ``refunds/create``, ``returns/request``), seeds
inventory levels, injects faults and lists or re-sends deliveries. Nothing here talks to the
real Shopify.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

__all__ = [
    "SANDBOX_ACCESS_TOKEN",
    "SANDBOX_SHOP_DOMAIN",
    "SANDBOX_WEBHOOK_SECRET",
    "ShopifySandbox",
    "create_shopify_sandbox",
    "sign_shopify_payload",
]

SANDBOX_ACCESS_TOKEN = "shpat_sandbox"
SANDBOX_WEBHOOK_SECRET = "shopify-sandbox-client-secret"
SANDBOX_SHOP_DOMAIN = "sandbox-shop.myshopify.com"
API_VERSION = "2024-10"


def sign_shopify_payload(body: bytes, secret: str) -> str:
    """The ``X-Shopify-Hmac-Sha256`` value Shopify sends for ``body``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'))}"


class ShopifyFailure(Exception):
    """An error answer in Shopify's shape: ``{"errors": ...}``."""

    def __init__(self, status: int, errors: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(str(errors))
        self.status = status
        self.errors = errors
        self.headers = headers or {}


@dataclass
class WebhookDelivery:
    """One webhook as sent (kept for re-sending and inspection)."""

    webhook_id: str
    topic: str
    body: bytes
    triggered_at: str
    event_id: str
    attempts: list[int | None] = field(default_factory=list)


@dataclass
class ShopifySandbox:
    """All sandbox state and knobs (one shop)."""

    shop_domain: str = SANDBOX_SHOP_DOMAIN
    access_token: str = SANDBOX_ACCESS_TOKEN
    webhook_secret: str = SANDBOX_WEBHOOK_SECRET
    webhook_url: str | None = None
    bucket_size: int = 40
    leak_per_second: float = 2.0
    retry_after_seconds: float = 2.0
    fail_next: int = 0
    fail_status: int = 500
    rate_limit_next: int = 0
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    inventory_levels: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    fulfillment_orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    location_id: int = 655441491
    deliveries: dict[str, WebhookDelivery] = field(default_factory=dict)
    requests_seen: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(450789469))
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))
    _bucket: float = 0.0
    _bucket_at: float = field(default_factory=time.monotonic)
    _last_update: datetime = field(default_factory=lambda: datetime(2000, 1, 1, tzinfo=UTC))

    # -- clock and ids ---------------------------------------------------------------------

    def _next_id(self) -> int:
        return next(self._ids)

    def _tick(self) -> datetime:
        """Now, but strictly after the previous change (Shopify's updated_at only grows)."""
        now = datetime.now(UTC).replace(microsecond=0)
        if now <= self._last_update:
            now = self._last_update + timedelta(seconds=1)
        self._last_update = now
        return now

    # -- rate limit and faults -------------------------------------------------------------

    def gate(self) -> dict[str, str]:
        """Leak the bucket, refuse when full, count this call; the call-limit header."""
        self.requests_seen += 1
        now = time.monotonic()
        self._bucket = max(0.0, self._bucket - (now - self._bucket_at) * self.leak_per_second)
        self._bucket_at = now
        limit_header = {"X-Shopify-Shop-Api-Call-Limit": f"{int(self._bucket)}/{self.bucket_size}"}
        if self.rate_limit_next > 0 or self._bucket + 1 > self.bucket_size:
            if self.rate_limit_next > 0:
                self.rate_limit_next -= 1
            raise ShopifyFailure(
                429,
                f"Exceeded {self.leak_per_second:g} calls per second for api client. "
                "Reduce request rates to resume uninterrupted service.",
                {"Retry-After": f"{self.retry_after_seconds:.1f}", **limit_header},
            )
        self._bucket += 1
        limit_header["X-Shopify-Shop-Api-Call-Limit"] = f"{round(self._bucket)}/{self.bucket_size}"
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ShopifyFailure(
                self.fail_status,
                "Internal Server Error" if self.fail_status == 500 else "Service Unavailable",
                limit_header,
            )
        return limit_header

    # -- orders ----------------------------------------------------------------------------

    def create_order(
        self,
        *,
        lines: list[dict[str, Any]],
        currency: str = "EUR",
        email: str | None = "customer@example.com",
        customer_id: int | None = None,
        financial_status: str = "paid",
        shipping: Decimal = Decimal("0"),
        tax_rate: Decimal = Decimal("0"),
    ) -> dict[str, Any]:
        """A new order with computed totals (Shopify's REST order shape)."""
        now = self._tick()
        order_id = self._next_id()
        number = next(self._numbers)
        line_items = []
        subtotal = Decimal("0")
        total_tax = Decimal("0")
        for raw in lines:
            price = Decimal(str(raw["price"]))
            quantity = int(raw.get("quantity", 1))
            tax = (price * quantity * tax_rate).quantize(Decimal("0.01"))
            subtotal += price * quantity
            total_tax += tax
            line_id = self._next_id()
            line_items.append(
                {
                    "id": line_id,
                    "admin_graphql_api_id": f"gid://shopify/LineItem/{line_id}",
                    "variant_id": raw.get("variant_id", self._next_id()),
                    "product_id": raw.get("product_id", self._next_id()),
                    "sku": raw.get("sku", ""),
                    "title": raw.get("title", raw.get("sku", "Item")),
                    "quantity": quantity,
                    "price": _money(price),
                    "total_discount": "0.00",
                    "tax_lines": (
                        [{"price": _money(tax), "rate": float(tax_rate), "title": "VAT"}]
                        if tax
                        else []
                    ),
                }
            )
        customer_ref = customer_id or self._next_id()
        order = {
            "id": order_id,
            "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
            "name": f"#{number}",
            "order_number": number,
            "email": email,
            "created_at": _iso(now),
            "updated_at": _iso(now),
            "processed_at": _iso(now),
            "cancelled_at": None,
            "cancel_reason": None,
            "closed_at": None,
            "currency": currency,
            "presentment_currency": currency,
            "financial_status": financial_status,
            "fulfillment_status": None,
            "subtotal_price": _money(subtotal),
            "total_tax": _money(total_tax),
            "total_discounts": "0.00",
            "total_price": _money(subtotal + total_tax + shipping),
            "total_shipping_price_set": {
                "shop_money": {"amount": _money(shipping), "currency_code": currency},
                "presentment_money": {"amount": _money(shipping), "currency_code": currency},
            },
            "line_items": line_items,
            "customer": {
                "id": customer_ref,
                "email": email,
                "first_name": "Sam",
                "last_name": "Doe",
            },
            "shipping_address": {
                "first_name": "Sam",
                "last_name": "Doe",
                "address1": "1 Harbour Street",
                "city": "Dublin",
                "zip": "D01 F5P2",
                "country_code": "IE",
            },
            "refunds": [],
            "fulfillments": [],
            "note": None,
            "tags": "",
        }
        self.orders[order_id] = order
        fulfillment_order_id = self._next_id()
        self.fulfillment_orders[fulfillment_order_id] = {
            "id": fulfillment_order_id,
            "order_id": order_id,
            "assigned_location_id": self.location_id,
            "status": "open",
            "request_status": "unsubmitted",
            "supported_actions": ["create_fulfillment", "move"],
            "line_items": [
                {
                    "id": self._next_id(),
                    "fulfillment_order_id": fulfillment_order_id,
                    "line_item_id": line["id"],
                    "variant_id": line["variant_id"],
                    "quantity": line["quantity"],
                    "fulfillable_quantity": line["quantity"],
                }
                for line in line_items
            ],
        }
        return order

    # -- order status from an app -------------------------------------------------------------

    def fulfillment_orders_of(self, order_id: int) -> list[dict[str, Any]]:
        self.order(order_id)
        return [fo for fo in self.fulfillment_orders.values() if fo["order_id"] == order_id]

    def create_fulfillment(self, body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Shopify's "Create a fulfillment for one or many fulfillment orders"."""
        request = body.get("fulfillment")
        if not isinstance(request, dict):
            raise ShopifyFailure(400, {"fulfillment": "Required parameter missing or invalid"})
        groups = request.get("line_items_by_fulfillment_order")
        if not isinstance(groups, list) or not groups:
            raise ShopifyFailure(
                400, {"line_items_by_fulfillment_order": "Required parameter missing or invalid"}
            )
        picked: list[tuple[dict[str, Any], dict[str, Any], int]] = []
        for group in groups:
            fo = self.fulfillment_orders.get(int(group.get("fulfillment_order_id") or 0))
            if fo is None:
                raise ShopifyFailure(404, "Not Found")
            if fo["status"] not in {"open", "in_progress"}:
                raise ShopifyFailure(
                    422,
                    [f"Fulfillment order {fo['id']} has an unfulfillable status= {fo['status']}."],
                )
            wanted = {
                int(item["id"]): int(item["quantity"])
                for item in group.get("fulfillment_order_line_items") or []
            }
            for line in fo["line_items"]:
                units = (
                    wanted.get(line["id"], line["fulfillable_quantity"])
                    if wanted
                    else (line["fulfillable_quantity"])
                )
                if units > line["fulfillable_quantity"]:
                    raise ShopifyFailure(
                        422, ["Invalid fulfillment order line item quantity requested."]
                    )
                if units:
                    picked.append((fo, line, units))
        if not picked:
            raise ShopifyFailure(422, ["There are no line items to fulfill."])
        order = self.order(picked[0][0]["order_id"])
        now = self._tick()
        tracking = request.get("tracking_info") or {}
        fulfillment_id = self._next_id()
        by_line = {line["id"]: line for line in order["line_items"]}
        fulfillment = {
            "id": fulfillment_id,
            "admin_graphql_api_id": f"gid://shopify/Fulfillment/{fulfillment_id}",
            "order_id": order["id"],
            "name": f"{order['name']}.{len(order['fulfillments']) + 1}",
            "status": "success",
            "location_id": picked[0][0]["assigned_location_id"],
            "created_at": _iso(now),
            "updated_at": _iso(now),
            "tracking_company": tracking.get("company"),
            "tracking_number": tracking.get("number"),
            "tracking_numbers": [tracking["number"]] if tracking.get("number") else [],
            "tracking_url": tracking.get("url"),
            "tracking_urls": [tracking["url"]] if tracking.get("url") else [],
            "notify_customer": bool(request.get("notify_customer", False)),
            "line_items": [
                {**by_line[line["line_item_id"]], "quantity": units} for _fo, line, units in picked
            ],
        }
        for fo, line, units in picked:
            line["fulfillable_quantity"] -= units
            fo["status"] = (
                "closed"
                if all(x["fulfillable_quantity"] == 0 for x in fo["line_items"])
                else "in_progress"
            )
        order["fulfillments"].append(fulfillment)
        done = all(fo["status"] == "closed" for fo in self.fulfillment_orders_of(order["id"]))
        order["fulfillment_status"] = "fulfilled" if done else "partial"
        order["updated_at"] = _iso(now)
        topics = ["fulfillments/create", "orders/updated"]
        if done:
            topics.insert(1, "orders/fulfilled")
        return fulfillment, topics

    def cancel_order(self, order_id: int, body: dict[str, Any]) -> list[str]:
        """Shopify's "Cancel an order": refused once cancelled or fulfilled."""
        order = self.order(order_id)
        reason = body.get("reason", "other")
        if reason not in {"customer", "declined", "fraud", "inventory", "other", "staff"}:
            raise ShopifyFailure(422, {"reason": ["is not included in the list"]})
        if order["cancelled_at"]:
            raise ShopifyFailure(422, {"base": ["Order has already been cancelled"]})
        if order["fulfillments"]:
            raise ShopifyFailure(
                422, {"base": ["Cannot cancel an order that has fulfillments; cancel them first"]}
            )
        now = self._tick()
        order["cancelled_at"] = _iso(now)
        order["cancel_reason"] = reason
        order["closed_at"] = order["closed_at"] or _iso(now)
        order["updated_at"] = _iso(now)
        for fo in self.fulfillment_orders_of(order_id):
            fo["status"] = "cancelled"
        return ["orders/cancelled", "orders/updated"]

    def close_order(self, order_id: int) -> list[str]:
        """Shopify's "Close an order" (archive); closing a closed order changes nothing."""
        order = self.order(order_id)
        if order["closed_at"]:
            return []
        now = self._tick()
        order["closed_at"] = _iso(now)
        order["updated_at"] = _iso(now)
        return ["orders/updated"]

    def update_order(self, order_id: int, body: dict[str, Any]) -> list[str]:
        """Shopify's "Update an order" for the fields an app may set (note, tags, email)."""
        order = self.order(order_id)
        fields = body.get("order")
        if not isinstance(fields, dict):
            raise ShopifyFailure(400, {"order": "Required parameter missing or invalid"})
        unknown = set(fields) - {"id", "note", "tags", "email"}
        if unknown:
            raise ShopifyFailure(422, {name: ["cannot be changed"] for name in sorted(unknown)})
        changed = False
        for name in ("note", "tags", "email"):
            if name in fields and fields[name] != order[name]:
                order[name] = fields[name]
                changed = True
        if not changed:
            return []
        order["updated_at"] = _iso(self._tick())
        return ["orders/updated"]

    def order(self, order_id: int) -> dict[str, Any]:
        if order_id not in self.orders:
            raise ShopifyFailure(404, "Not Found")
        return self.orders[order_id]

    def change_order(
        self,
        order_id: int,
        *,
        financial_status: str | None = None,
        fulfillment_status: str | None = None,
        cancel_reason: str | None = None,
        close: bool = False,
    ) -> list[str]:
        """Apply a change; return the webhook topics Shopify would emit for it."""
        order = self.order(order_id)
        now = self._tick()
        topics = ["orders/updated"]
        if financial_status is not None:
            order["financial_status"] = financial_status
        if fulfillment_status is not None:
            order["fulfillment_status"] = fulfillment_status
        if cancel_reason is not None:
            order["cancelled_at"] = _iso(now)
            order["cancel_reason"] = cancel_reason
            topics.insert(0, "orders/cancelled")
        if close:
            order["closed_at"] = _iso(now)
        order["updated_at"] = _iso(now)
        return topics

    def create_refund(
        self, order_id: int, *, amount: Decimal, note: str | None, status: str
    ) -> dict[str, Any]:
        order = self.order(order_id)
        now = self._tick()
        refund_id = self._next_id()
        transaction_id = self._next_id()
        refund = {
            "id": refund_id,
            "admin_graphql_api_id": f"gid://shopify/Refund/{refund_id}",
            "order_id": order_id,
            "created_at": _iso(now),
            "processed_at": _iso(now),
            "note": note,
            "restock": False,
            "refund_line_items": [],
            "transactions": [
                {
                    "id": transaction_id,
                    "admin_graphql_api_id": f"gid://shopify/OrderTransaction/{transaction_id}",
                    "order_id": order_id,
                    "kind": "refund",
                    "gateway": "bogus",
                    "status": status,
                    "amount": _money(amount),
                    "currency": order["currency"],
                    "created_at": _iso(now),
                }
            ],
        }
        order["refunds"].append(refund)
        refunded = sum(
            Decimal(t["amount"])
            for r in order["refunds"]
            for t in r["transactions"]
            if t["status"] == "success"
        )
        if refunded:
            total = Decimal(order["total_price"])
            order["financial_status"] = "refunded" if refunded >= total else "partially_refunded"
        order["updated_at"] = _iso(now)
        return refund

    def request_return(self, order_id: int, lines: list[dict[str, Any]]) -> dict[str, Any]:
        order = self.order(order_id)
        now = self._tick()
        return_id = self._next_id()
        by_sku = {line["sku"]: line for line in order["line_items"]}
        items = []
        for raw in lines:
            line_item = by_sku.get(raw["sku"])
            if line_item is None:
                raise ShopifyFailure(422, {"return_line_items": [f"unknown sku {raw['sku']}"]})
            fulfillment_line_id = self._next_id()
            item_id = self._next_id()
            items.append(
                {
                    "id": item_id,
                    "admin_graphql_api_id": f"gid://shopify/ReturnLineItem/{item_id}",
                    "fulfillment_line_item": {
                        "id": fulfillment_line_id,
                        "admin_graphql_api_id": (
                            f"gid://shopify/FulfillmentLineItem/{fulfillment_line_id}"
                        ),
                        "line_item": {
                            "id": line_item["id"],
                            "admin_graphql_api_id": line_item["admin_graphql_api_id"],
                            "sku": line_item["sku"],
                            "variant_id": line_item["variant_id"],
                        },
                    },
                    "quantity": int(raw.get("quantity", 1)),
                    "return_reason": raw.get("return_reason", "unwanted"),
                    "return_reason_note": raw.get("note", ""),
                    "customer_note": raw.get("customer_note"),
                }
            )
        return {
            "id": return_id,
            "admin_graphql_api_id": f"gid://shopify/Return/{return_id}",
            "name": f"{order['name']}-R1",
            "status": "requested",
            "created_at": _iso(now),
            "order": {"id": order_id, "admin_graphql_api_id": order["admin_graphql_api_id"]},
            "total_return_line_items": len(items),
            "return_line_items": items,
        }

    def list_orders(
        self, base_url: str, query: dict[str, str]
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of orders (ascending id) and its ``Link`` header."""
        raw_limit = query.get("limit", "50")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 250:
            raise ShopifyFailure(400, {"limit": "must be between 1 and 250"})
        limit = int(raw_limit)
        page_info = query.get("page_info")
        if page_info:
            extra = set(query) - {"page_info", "limit", "fields"}
            if extra:
                raise ShopifyFailure(
                    400,
                    {
                        "page_info": "When page_info is present, the only other parameters "
                        "allowed are limit and fields (got " + ", ".join(sorted(extra)) + ")"
                    },
                )
            try:
                cursor = json.loads(base64.urlsafe_b64decode(page_info.encode()))
            except ValueError:
                raise ShopifyFailure(400, {"page_info": "Invalid value."}) from None
            filters = cursor["filters"]
        else:
            cursor = None
            filters = {k: v for k, v in query.items() if k not in ("limit", "fields")}
        orders = sorted(self.orders.values(), key=lambda order: order["id"])
        status = filters.get("status", "open")
        if status == "open":
            orders = [o for o in orders if not o["cancelled_at"] and not o["closed_at"]]
        elif status == "cancelled":
            orders = [o for o in orders if o["cancelled_at"]]
        elif status == "closed":
            orders = [o for o in orders if o["closed_at"]]
        if filters.get("updated_at_min"):
            floor = datetime.fromisoformat(filters["updated_at_min"])
            orders = [o for o in orders if datetime.fromisoformat(o["updated_at"]) >= floor]
        if cursor is None:
            start = 0
        elif cursor["direction"] == "next":
            start = next((i for i, o in enumerate(orders) if o["id"] > cursor["id"]), len(orders))
        else:
            end = next((i for i, o in enumerate(orders) if o["id"] >= cursor["id"]), len(orders))
            start = max(0, end - limit)
        page = orders[start : start + limit]
        links = []

        def link(direction: str, anchor: int) -> str:
            token = base64.urlsafe_b64encode(
                json.dumps({"direction": direction, "id": anchor, "filters": filters}).encode()
            ).decode()
            return f'<{base_url}orders.json?limit={limit}&page_info={token}>; rel="{direction}"'

        if page and start > 0:
            links.append(link("previous", page[0]["id"]))
        if page and start + limit < len(orders):
            links.append(link("next", page[-1]["id"]))
        return page, ", ".join(links) or None

    # -- inventory -------------------------------------------------------------------------

    def set_level(self, body: dict[str, Any]) -> dict[str, Any]:
        missing = {
            key: "Required parameter missing or invalid"
            for key in ("location_id", "inventory_item_id", "available")
            if not isinstance(body.get(key), int) or isinstance(body.get(key), bool)
        }
        if missing:
            raise ShopifyFailure(400, missing)
        key = (body["inventory_item_id"], body["location_id"])
        if key not in self.inventory_levels:
            raise ShopifyFailure(
                422,
                ["Inventory item does not have inventory tracking enabled at this location"],
            )
        level = self.inventory_levels[key]
        level["available"] = body["available"]
        level["updated_at"] = _iso(self._tick())
        return level

    def seed_level(
        self, inventory_item_id: int, location_id: int, available: int
    ) -> dict[str, Any]:
        level = {
            "inventory_item_id": inventory_item_id,
            "location_id": location_id,
            "available": available,
            "updated_at": _iso(self._tick()),
            "admin_graphql_api_id": (
                f"gid://shopify/InventoryLevel/{location_id}?inventory_item_id={inventory_item_id}"
            ),
        }
        self.inventory_levels[(inventory_item_id, location_id)] = level
        return level

    # -- webhooks --------------------------------------------------------------------------

    def new_delivery(self, topic: str, payload: dict[str, Any]) -> WebhookDelivery:
        delivery = WebhookDelivery(
            webhook_id=str(uuid.uuid4()),
            topic=topic,
            body=json.dumps(payload).encode(),
            triggered_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
            event_id=str(uuid.uuid4()),
        )
        self.deliveries[delivery.webhook_id] = delivery
        return delivery

    def headers_for(self, delivery: WebhookDelivery) -> dict[str, str]:
        """The exact headers Shopify sends with ``delivery``."""
        return {
            "Content-Type": "application/json",
            "X-Shopify-Topic": delivery.topic,
            "X-Shopify-Hmac-Sha256": sign_shopify_payload(delivery.body, self.webhook_secret),
            "X-Shopify-Shop-Domain": self.shop_domain,
            "X-Shopify-API-Version": API_VERSION,
            "X-Shopify-Webhook-Id": delivery.webhook_id,
            "X-Shopify-Event-Id": delivery.event_id,
            "X-Shopify-Triggered-At": delivery.triggered_at,
        }

    async def deliver(self, delivery: WebhookDelivery) -> int | None:
        """POST ``delivery`` to ``webhook_url``; the HTTP status (None when unreachable)."""
        if not self.webhook_url:
            return None
        try:
            async with httpx.AsyncClient(timeout=10.0) as client:
                response = await client.post(
                    self.webhook_url, content=delivery.body, headers=self.headers_for(delivery)
                )
            status: int | None = response.status_code
        except httpx.HTTPError:
            status = None
        delivery.attempts.append(status)
        return status

    async def emit(self, topic: str, payload: dict[str, Any]) -> dict[str, Any]:
        delivery = self.new_delivery(topic, payload)
        status = await self.deliver(delivery)
        return {"webhook_id": delivery.webhook_id, "topic": topic, "status": status}


class _Line(BaseModel):
    sku: str
    quantity: int = Field(default=1, ge=1)
    price: Decimal = Field(gt=0)
    title: str | None = None


class _OrderSeed(BaseModel):
    lines: list[_Line] = Field(min_length=1)
    currency: str = "EUR"
    email: str | None = "customer@example.com"
    financial_status: str = "paid"
    shipping: Decimal = Decimal("0")
    tax_rate: Decimal = Decimal("0")


class _OrderChange(BaseModel):
    financial_status: str | None = None
    fulfillment_status: str | None = None
    cancel_reason: str | None = None
    close: bool = False


class _RefundSeed(BaseModel):
    amount: Decimal = Field(gt=0)
    note: str | None = None
    status: str = Field(default="success", pattern="^(success|pending|failure|error)$")


class _ReturnLine(BaseModel):
    sku: str
    quantity: int = Field(default=1, ge=1)
    return_reason: str = "unwanted"
    customer_note: str | None = None


class _ReturnSeed(BaseModel):
    lines: list[_ReturnLine] = Field(min_length=1)


class _LevelSeed(BaseModel):
    inventory_item_id: int
    location_id: int
    available: int = 0


class _Faults(BaseModel):
    fail_next: int | None = Field(default=None, ge=0)
    fail_status: int | None = Field(default=None, ge=500, le=599)
    rate_limit_next: int | None = Field(default=None, ge=0)
    bucket_size: int | None = Field(default=None, ge=1)
    leak_per_second: float | None = Field(default=None, gt=0)
    retry_after_seconds: float | None = Field(default=None, ge=0)
    webhook_url: str | None = None


def create_shopify_sandbox(sandbox: ShopifySandbox | None = None) -> FastAPI:
    """The sandbox as a FastAPI app; its state is ``app.state.sandbox``."""
    state = sandbox or ShopifySandbox()
    app = FastAPI(title="Shopify sandbox", docs_url=None, redoc_url=None)
    app.state.sandbox = state

    def answer(status: int, body: Any, headers: dict[str, str]) -> JSONResponse:
        return JSONResponse(
            body, status_code=status, headers={"X-Request-Id": str(uuid.uuid4()), **headers}
        )

    async def run(request: Request, version: str, action: Any) -> Response:
        headers: dict[str, str] = {}
        try:
            if request.headers.get("x-shopify-access-token") != state.access_token:
                raise ShopifyFailure(
                    401,
                    "[API] Invalid API key or access token (unrecognized login or wrong password)",
                )
            if not version[:4].isdigit() and version != "unstable":
                raise ShopifyFailure(404, "Not Found")
            headers = state.gate()
            result = await action()
        except ShopifyFailure as failure:
            return answer(
                failure.status, {"errors": failure.errors}, {**headers, **failure.headers}
            )
        if isinstance(result, tuple):
            body, extra = result
            return answer(200, body, {**headers, **extra})
        return answer(200, result, headers)

    @app.get("/admin/api/{version}/orders/{order_id}.json")
    async def get_order(version: str, order_id: str, request: Request) -> Response:
        async def action() -> dict[str, Any]:
            if not order_id.isdigit():
                raise ShopifyFailure(404, "Not Found")
            return {"order": state.order(int(order_id))}

        return await run(request, version, action)

    @app.get("/admin/api/{version}/orders/{order_id}/fulfillment_orders.json")
    async def list_fulfillment_orders(version: str, order_id: int, request: Request) -> Response:
        async def action() -> dict[str, Any]:
            return {"fulfillment_orders": state.fulfillment_orders_of(order_id)}

        return await run(request, version, action)

    async def _json_body(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise ShopifyFailure(400, {"base": ["Request body is not valid JSON"]}) from None
        if not isinstance(body, dict):
            raise ShopifyFailure(400, {"base": ["Request body must be an object"]})
        return body

    @app.post("/admin/api/{version}/fulfillments.json")
    async def create_fulfillment(version: str, request: Request) -> Response:
        async def action() -> tuple[dict[str, Any], dict[str, str]]:
            fulfillment, topics = state.create_fulfillment(await _json_body(request))
            order = state.orders[fulfillment["order_id"]]
            for topic in topics:
                await state.emit(topic, fulfillment if topic.startswith("fulfillments") else order)
            return {"fulfillment": fulfillment}, {}

        return await run(request, version, action)

    @app.post("/admin/api/{version}/orders/{order_id}/cancel.json")
    async def cancel_order(version: str, order_id: int, request: Request) -> Response:
        async def action() -> dict[str, Any]:
            topics = state.cancel_order(order_id, await _json_body(request))
            for topic in topics:
                await state.emit(topic, state.orders[order_id])
            return {"order": state.orders[order_id]}

        return await run(request, version, action)

    @app.post("/admin/api/{version}/orders/{order_id}/close.json")
    async def close_order(version: str, order_id: int, request: Request) -> Response:
        async def action() -> dict[str, Any]:
            for topic in state.close_order(order_id):
                await state.emit(topic, state.orders[order_id])
            return {"order": state.orders[order_id]}

        return await run(request, version, action)

    @app.put("/admin/api/{version}/orders/{order_id}.json")
    async def update_order(version: str, order_id: int, request: Request) -> Response:
        async def action() -> dict[str, Any]:
            for topic in state.update_order(order_id, await _json_body(request)):
                await state.emit(topic, state.orders[order_id])
            return {"order": state.orders[order_id]}

        return await run(request, version, action)

    @app.get("/admin/api/{version}/orders.json")
    async def list_orders(version: str, request: Request) -> Response:
        async def action() -> tuple[dict[str, Any], dict[str, str]]:
            base = str(request.base_url) + f"admin/api/{version}/"
            page, link = state.list_orders(base, dict(request.query_params))
            return {"orders": page}, ({"Link": link} if link else {})

        return await run(request, version, action)

    @app.post("/admin/api/{version}/inventory_levels/set.json")
    async def set_level(version: str, request: Request) -> Response:
        async def action() -> dict[str, Any]:
            try:
                body = json.loads(await request.body())
            except ValueError:
                raise ShopifyFailure(400, {"base": ["Request body is not valid JSON"]}) from None
            if not isinstance(body, dict):
                raise ShopifyFailure(400, {"base": ["Request body must be an object"]})
            return {"inventory_level": state.set_level(body)}

        return await run(request, version, action)

    @app.get("/admin/api/{version}/inventory_levels.json")
    async def list_levels(version: str, request: Request) -> Response:
        async def action() -> tuple[dict[str, Any], dict[str, str]]:
            # Pages in (location_id, inventory_item_id) order; ``page_info`` carries the
            # filters and the last key of the page, and then only ``limit`` may be sent.
            query = dict(request.query_params)
            raw_limit = query.get("limit", "50")
            if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 250:
                raise ShopifyFailure(400, {"limit": "must be between 1 and 250"})
            limit, after = int(raw_limit), None
            if query.get("page_info"):
                if set(query) - {"page_info", "limit"}:
                    raise ShopifyFailure(
                        400, {"page_info": "When page_info is present, only limit is allowed"}
                    )
                try:
                    cursor = json.loads(base64.urlsafe_b64decode(query["page_info"].encode()))
                except ValueError:
                    raise ShopifyFailure(400, {"page_info": "Invalid value."}) from None
                query, after = cursor["filters"], tuple(cursor["after"])
            items = {int(v) for v in query.get("inventory_item_ids", "").split(",") if v}
            locations = {int(v) for v in query.get("location_ids", "").split(",") if v}
            if not items and not locations:
                raise ShopifyFailure(
                    422, {"base": ["inventory_item_ids or location_ids is required"]}
                )
            floor = query.get("updated_at_min")
            levels = [
                level
                for (item, location), level in sorted(
                    state.inventory_levels.items(), key=lambda kv: (kv[0][1], kv[0][0])
                )
                if (not items or item in items)
                and (not locations or location in locations)
                and (after is None or (location, item) > after)
                and (not floor or level["updated_at"] >= floor)
            ]
            page = levels[:limit]
            if len(levels) <= limit:
                return {"inventory_levels": page}, {}
            filters = {k: v for k, v in query.items() if k != "limit"}
            last = [page[-1]["location_id"], page[-1]["inventory_item_id"]]
            token = base64.urlsafe_b64encode(
                json.dumps({"filters": filters, "after": last}).encode()
            ).decode()
            base = str(request.base_url) + f"admin/api/{version}/"
            link = f'<{base}inventory_levels.json?limit={limit}&page_info={token}>; rel="next"'
            return {"inventory_levels": page}, {"Link": link}

        return await run(request, version, action)

    # -- control API -----------------------------------------------------------------------

    @app.post("/_sandbox/orders")
    async def seed_order(seed: _OrderSeed) -> dict[str, Any]:
        order = state.create_order(
            lines=[line.model_dump() for line in seed.lines],
            currency=seed.currency,
            email=seed.email,
            financial_status=seed.financial_status,
            shipping=seed.shipping,
            tax_rate=seed.tax_rate,
        )
        webhooks = [await state.emit("orders/create", order)]
        return {"order": order, "webhooks": webhooks}

    @app.post("/_sandbox/orders/{order_id}/change")
    async def change_order(order_id: int, change: _OrderChange) -> Response:
        try:
            topics = state.change_order(order_id, **change.model_dump())
        except ShopifyFailure as failure:
            return JSONResponse({"errors": failure.errors}, failure.status)
        order = state.orders[order_id]
        webhooks = [await state.emit(topic, order) for topic in topics]
        return JSONResponse({"order": order, "webhooks": webhooks})

    @app.post("/_sandbox/orders/{order_id}/refunds")
    async def refund(order_id: int, seed: _RefundSeed) -> Response:
        try:
            created = state.create_refund(
                order_id, amount=seed.amount, note=seed.note, status=seed.status
            )
        except ShopifyFailure as failure:
            return JSONResponse({"errors": failure.errors}, failure.status)
        webhooks = [await state.emit("refunds/create", created)]
        return JSONResponse({"refund": created, "webhooks": webhooks})

    @app.post("/_sandbox/orders/{order_id}/returns")
    async def request_return(order_id: int, seed: _ReturnSeed) -> Response:
        try:
            created = state.request_return(order_id, [line.model_dump() for line in seed.lines])
        except ShopifyFailure as failure:
            return JSONResponse({"errors": failure.errors}, failure.status)
        webhooks = [await state.emit("returns/request", created)]
        return JSONResponse({"return": created, "webhooks": webhooks})

    @app.post("/_sandbox/inventory_levels")
    async def seed_level(seed: _LevelSeed) -> dict[str, Any]:
        return state.seed_level(seed.inventory_item_id, seed.location_id, seed.available)

    @app.post("/_sandbox/faults")
    async def faults(faults: _Faults) -> dict[str, Any]:
        for name, value in faults.model_dump(exclude_none=True).items():
            setattr(state, name, value)
        return {"fail_next": state.fail_next, "rate_limit_next": state.rate_limit_next}

    @app.get("/_sandbox/webhooks")
    async def deliveries() -> list[dict[str, Any]]:
        return [
            {
                "webhook_id": d.webhook_id,
                "topic": d.topic,
                "triggered_at": d.triggered_at,
                "attempts": d.attempts,
            }
            for d in state.deliveries.values()
        ]

    @app.post("/_sandbox/webhooks/{webhook_id}/resend")
    async def resend(webhook_id: str) -> Response:
        delivery = state.deliveries.get(webhook_id)
        if delivery is None:
            return JSONResponse({"errors": "Not Found"}, 404)
        status = await state.deliver(delivery)
        return JSONResponse({"webhook_id": webhook_id, "status": status})

    @app.get("/_sandbox/state")
    async def summary() -> dict[str, Any]:
        return {
            "orders": len(state.orders),
            "inventory_levels": len(state.inventory_levels),
            "deliveries": len(state.deliveries),
            "requests_seen": state.requests_seen,
        }

    return app
