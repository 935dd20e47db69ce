"""Shopify payloads -> canonical events and port records (pure functions).

What goes where, at a glance:

===========================================  ================================================
Shopify                                      hub
===========================================  ================================================
order.id                                     ``Order.id`` = derive_id(order, "shopify", id)
customer.id                                  ``customer_id`` = derive_id(customer, ...)
cancelled_at / fulfillment_status /          ``OrderStatus`` via :func:`order_status` and the
financial_status                             settings' status tables (cancelled first, then
                                             fulfillment, then financial status)
line_items[].price x quantity - discount     ``OrderLine.line_total``; tax from tax_lines
subtotal_price / total_tax / total_price     subtotal / tax_total / grand_total
total_shipping_price_set (or shipping_lines) shipping_total
updated_at                                   entity version (Unix seconds) and event time
refund.transactions[kind=refund]             success -> ``refund.completed``; pending ->
                                             ``refund.requested``; failure -> ``refund.failed``
return.return_line_items[].return_reason     ``ReturnReason`` via the settings' reason table
===========================================  ================================================

Canonical ids are derived from Shopify's ids (``derive_id``), so the same Shopify order always
maps to the same ``ord_...`` id without a lookup; event ids are derived from Shopify's ids
and the change, so a re-delivered webhook yields the same event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from retailsync.connectors.shopify.config import ShopifySettings
from retailsync.connectors.shopify.errors import ShopifyPayloadError
from retailsync.domain.catalogue import (
    OrderCreated,
    OrderStatusChanged,
    RefundCompleted,
    RefundFailed,
    RefundRequested,
    ReturnRequested,
    build_event,
)
from retailsync.domain.customers import Address, AddressRole
from retailsync.domain.errors import DomainError
from retailsync.domain.events import CloudEvent
from retailsync.domain.identifiers import EntityKind, derive_id
from retailsync.domain.money import Money
from retailsync.domain.orders import Order, OrderLine, OrderStatus
from retailsync.domain.refunds import Refund, RefundStatus
from retailsync.domain.returns import ReturnAuthorization, ReturnLine, ReturnReason
from retailsync.ports.commerce import StockLevel, StorefrontOrder, StorefrontOrderLine

__all__ = [
    "EVENT_SOURCE",
    "SYSTEM",
    "canonical_order",
    "canonical_order_id",
    "order_status",
    "order_version",
    "refund_events",
    "return_requested_event",
    "stock_level",
    "storefront_order",
]

SYSTEM = "shopify"
EVENT_SOURCE = "retailsync/connectors/shopify"
JsonObject = Mapping[str, Any]


# -- small readers ----------------------------------------------------------------------------


def _get(obj: JsonObject, key: str, what: str) -> Any:
    value = obj.get(key)
    if value is None or value == "":
        raise ShopifyPayloadError(f"{what} has no {key!r}")
    return value


def parse_time(value: Any, what: str) -> datetime:
    """Shopify's ISO 8601 timestamps (with offset) as aware datetimes."""
    if not isinstance(value, str):
        raise ShopifyPayloadError(f"{what} must be an ISO 8601 timestamp, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise ShopifyPayloadError(f"{what} {value!r} is not an ISO 8601 timestamp") from error
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def money(amount: Any, currency: str, what: str) -> Money:
    """A Shopify decimal string (``"12.30"``) as canonical money."""
    try:
        return Money.of(Decimal(str(amount)), currency)
    except (InvalidOperation, DomainError, ValueError) as error:
        raise ShopifyPayloadError(f"{what} {amount!r} {currency}: {error}") from error


def canonical_order_id(shopify_order_id: Any) -> str:
    return derive_id(EntityKind.ORDER, SYSTEM, str(shopify_order_id))


def order_version(order: JsonObject) -> int:
    """The order's version: its ``updated_at`` in Unix seconds (later changes win)."""
    updated = parse_time(_get(order, "updated_at", "order"), "order updated_at")
    return max(int(updated.timestamp()), 1)


def order_status(order: JsonObject, settings: ShopifySettings) -> OrderStatus:
    """Cancelled first, then the fulfillment table, then the financial table."""
    if order.get("cancelled_at"):
        return OrderStatus.CANCELLED
    fulfillment = order.get("fulfillment_status")
    if fulfillment and fulfillment in settings.fulfillment_status_map:
        status = OrderStatus(settings.fulfillment_status_map[fulfillment])
        if status is OrderStatus.SHIPPED and order.get("closed_at"):
            return OrderStatus.COMPLETED
        return status
    financial = order.get("financial_status") or "pending"
    if financial not in settings.financial_status_map:
        raise ShopifyPayloadError(
            f"order {order.get('id')} has financial_status {financial!r}, which has no entry "
            "in connectors.shopify.financial_status_map"
        )
    return OrderStatus(settings.financial_status_map[financial])


def _sku(line: JsonObject) -> str:
    sku = line.get("sku")
    if sku:
        return str(sku)
    if line.get("variant_id"):
        return f"SHOPIFY-V{line['variant_id']}"
    return f"SHOPIFY-L{_get(line, 'id', 'line item')}"


def _sum(items: Sequence[JsonObject], key: str, currency: str, what: str) -> Money:
    total = Money.zero(currency)
    for item in items:
        total = total + money(item.get(key) or "0", currency, what)
    return total


def _shipping_total(order: JsonObject, currency: str) -> Money:
    price_set = order.get("total_shipping_price_set") or {}
    shop_money = price_set.get("shop_money") or {}
    if shop_money.get("amount") is not None:
        return money(shop_money["amount"], currency, "order shipping total")
    return _sum(order.get("shipping_lines") or [], "price", currency, "shipping line price")


def _address(raw: Any, role: AddressRole) -> Address | None:
    if not isinstance(raw, Mapping) or not raw.get("address1") or not raw.get("city"):
        return None
    if not raw.get("country_code"):
        return None
    name = raw.get("name") or " ".join(
        part for part in (raw.get("first_name"), raw.get("last_name")) if part
    )
    return Address(
        role=role,
        name=name or None,
        line1=raw["address1"],
        line2=raw.get("address2") or None,
        city=raw["city"],
        region=raw.get("province_code") or raw.get("province") or None,
        postal_code=raw.get("zip") or None,
        country=raw["country_code"],
    )


# -- orders -----------------------------------------------------------------------------------


def canonical_order(order: JsonObject, settings: ShopifySettings) -> Order:
    """A Shopify order as the canonical :class:`Order`."""
    order_ref = _get(order, "id", "order")
    currency = str(_get(order, "currency", f"order {order_ref}"))
    lines: list[OrderLine] = []
    for number, raw in enumerate(order.get("line_items") or [], start=1):
        what = f"order {order_ref} line {number}"
        quantity = raw.get("quantity")
        if not isinstance(quantity, int) or quantity < 1:
            raise ShopifyPayloadError(f"{what} has quantity {quantity!r}")
        unit_price = money(_get(raw, "price", what), currency, f"{what} price")
        discount = money(raw.get("total_discount") or "0", currency, f"{what} discount")
        lines.append(
            OrderLine(
                line_no=number,
                sku=_sku(raw),
                description=(str(raw.get("title"))[:200] or None) if raw.get("title") else None,
                quantity=quantity,
                unit_price=unit_price,
                discount=None if discount.is_zero() else discount,
                line_total=unit_price * quantity - discount,
                tax=_sum(raw.get("tax_lines") or [], "price", currency, f"{what} tax"),
            )
        )
    if not lines:
        raise ShopifyPayloadError(f"order {order_ref} has no line items")
    customer = order.get("customer") or {}
    try:
        return Order(
            id=canonical_order_id(order_ref),
            version=order_version(order),
            customer_id=(
                derive_id(EntityKind.CUSTOMER, SYSTEM, str(customer["id"]))
                if customer.get("id")
                else None
            ),
            channel=settings.channel,
            status=order_status(order, settings),
            currency=currency,
            lines=lines,
            subtotal=money(
                order.get("subtotal_price") or "0", currency, f"order {order_ref} subtotal"
            ),
            shipping_total=_shipping_total(order, currency),
            tax_total=money(order.get("total_tax") or "0", currency, f"order {order_ref} tax"),
            grand_total=money(_get(order, "total_price", f"order {order_ref}"), currency, "total"),
            placed_at=parse_time(
                order.get("processed_at") or _get(order, "created_at", f"order {order_ref}"),
                f"order {order_ref} placed at",
            ),
            shipping_address=_address(order.get("shipping_address"), AddressRole.SHIPPING),
            billing_address=_address(order.get("billing_address"), AddressRole.BILLING),
        )
    except (DomainError, ValueError) as error:
        if isinstance(error, ShopifyPayloadError):
            raise
        raise ShopifyPayloadError(f"order {order_ref}: {error}") from error


def order_created_event(order: JsonObject, settings: ShopifySettings) -> CloudEvent:
    canonical = canonical_order(order, settings)
    return build_event(
        OrderCreated(order=canonical),
        source=EVENT_SOURCE,
        id=f"shopify:order:{order['id']}:created",
        time=parse_time(order.get("created_at"), "order created_at"),
    )


def order_status_changed_event(
    order: JsonObject,
    settings: ShopifySettings,
    previous: OrderStatus | None,
) -> CloudEvent | None:
    """``order.status_changed`` for an ``orders/updated`` delivery, or None if unchanged.

    Shopify does not send the previous status; ``previous`` is what the receiver last saw
    for this order. When it is unknown the event carries the current status as both ends and
    says so in ``reason``, so consumers still learn the current status with its version.
    """
    order_ref = _get(order, "id", "order")
    status = order_status(order, settings)
    if previous is status:
        return None
    version = order_version(order)
    changed_at = parse_time(order.get("updated_at"), f"order {order_ref} updated_at")
    reason = None
    if previous is None:
        reason = "previous status not known to the Shopify connector"
    elif status is OrderStatus.CANCELLED and order.get("cancel_reason"):
        reason = f"cancelled in Shopify: {order['cancel_reason']}"
    payload = OrderStatusChanged(
        order_id=canonical_order_id(order_ref),
        version=version,
        from_status=previous or status,
        to_status=status,
        changed_at=changed_at,
        reason=reason,
    )
    return build_event(
        payload,
        source=EVENT_SOURCE,
        id=f"shopify:order:{order_ref}:{status.value}:{version}",
        time=changed_at,
    )


def storefront_order(order: JsonObject, settings: ShopifySettings) -> StorefrontOrder:
    """A Shopify order as the port's :class:`StorefrontOrder`."""
    order_ref = str(_get(order, "id", "order"))
    currency = str(_get(order, "currency", f"order {order_ref}"))
    customer = order.get("customer") or {}
    return StorefrontOrder(
        order_ref=order_ref,
        name=str(order.get("name") or order_ref),
        status=order_status(order, settings).value,
        financial_status=order.get("financial_status"),
        fulfillment_status=order.get("fulfillment_status"),
        total=money(_get(order, "total_price", f"order {order_ref}"), currency, "total"),
        created_at=parse_time(order.get("created_at"), f"order {order_ref} created_at"),
        updated_at=parse_time(order.get("updated_at"), f"order {order_ref} updated_at"),
        customer_ref=str(customer["id"]) if customer.get("id") else None,
        customer_email=order.get("email") or customer.get("email"),
        lines=tuple(
            StorefrontOrderLine(
                line_ref=str(line.get("id")),
                sku=line.get("sku") or None,
                title=str(line.get("title") or ""),
                quantity=int(line.get("quantity") or 0),
                unit_price=money(line.get("price") or "0", currency, "line price"),
            )
            for line in order.get("line_items") or []
        ),
    )


def stock_level(level: JsonObject) -> StockLevel:
    """A Shopify InventoryLevel as the port's :class:`StockLevel`."""
    updated = level.get("updated_at")
    return StockLevel(
        inventory_item_ref=str(_get(level, "inventory_item_id", "inventory level")),
        location_ref=str(_get(level, "location_id", "inventory level")),
        available=int(level.get("available") or 0),
        updated_at=parse_time(updated, "inventory level updated_at") if updated else None,
    )


# -- refunds ----------------------------------------------------------------------------------


def refund_events(refund: JsonObject) -> list[CloudEvent]:
    """``refunds/create``: completed, requested or failed by the refund transactions' status."""
    refund_ref = _get(refund, "id", "refund")
    order_ref = _get(refund, "order_id", f"refund {refund_ref}")
    created_at = parse_time(
        refund.get("processed_at") or refund.get("created_at"), f"refund {refund_ref} created_at"
    )
    version = max(int(created_at.timestamp()), 1)
    transactions = [t for t in refund.get("transactions") or [] if t.get("kind") == "refund"]
    by_status: dict[str, list[JsonObject]] = {}
    for transaction in transactions:
        by_status.setdefault(str(transaction.get("status")), []).append(transaction)
    refund_id = derive_id(EntityKind.REFUND, SYSTEM, str(refund_ref))

    def total(items: list[JsonObject]) -> Money:
        currency = str(_get(items[0], "currency", f"refund {refund_ref} transaction"))
        return _sum(items, "amount", currency, f"refund {refund_ref} transaction amount")

    payload: RefundCompleted | RefundRequested | RefundFailed
    try:
        if by_status.get("success"):
            outcome = "completed"
            payload = RefundCompleted(
                refund_id=refund_id,
                version=version,
                amount=total(by_status["success"]),
                payment_reference=f"shopify-refund-{refund_ref}",
                completed_at=created_at,
            )
        elif by_status.get("pending"):
            outcome = "requested"
            payload = RefundRequested(
                refund=Refund(
                    id=refund_id,
                    version=version,
                    status=RefundStatus.REQUESTED,
                    amount=total(by_status["pending"]),
                    reason=str(refund.get("note") or "refund created in Shopify")[:200],
                    order_id=canonical_order_id(order_ref),
                    requested_at=created_at,
                    payment_reference=f"shopify-refund-{refund_ref}",
                )
            )
        elif by_status.get("failure") or by_status.get("error"):
            outcome = "failed"
            failed = (by_status.get("failure") or []) + (by_status.get("error") or [])
            message = failed[0].get("message") or failed[0].get("error_code") or "declined"
            payload = RefundFailed(
                refund_id=refund_id,
                version=version,
                reason=f"Shopify refund {refund_ref} failed: {message}",
                retryable=False,
                failed_at=created_at,
            )
        else:
            return []  # a restock-only refund moves no money
    except (DomainError, ValueError) as error:
        if isinstance(error, ShopifyPayloadError):
            raise
        raise ShopifyPayloadError(f"refund {refund_ref}: {error}") from error
    return [
        build_event(
            payload,
            source=EVENT_SOURCE,
            id=f"shopify:refund:{refund_ref}:{outcome}",
            time=created_at,
        )
    ]


# -- returns ----------------------------------------------------------------------------------


def _return_line_sku(line: JsonObject) -> str:
    fulfillment_line = line.get("fulfillment_line_item") or {}
    line_item = fulfillment_line.get("line_item") or line.get("line_item") or {}
    for candidate in (line_item, line):
        if candidate.get("sku"):
            return str(candidate["sku"])
    if line_item.get("variant_id"):
        return f"SHOPIFY-V{line_item['variant_id']}"
    raise ShopifyPayloadError(f"return line {line.get('id')} names no SKU or variant")


def return_requested_event(
    payload: JsonObject, settings: ShopifySettings, *, triggered_at: datetime
) -> CloudEvent:
    """``returns/request`` as ``return.requested`` (an RMA in status requested)."""
    return_ref = _get(payload, "id", "return")
    order = payload.get("order") or {}
    order_ref = order.get("id") or payload.get("order_id")
    if not order_ref:
        raise ShopifyPayloadError(f"return {return_ref} names no order")
    lines: list[ReturnLine] = []
    for raw in payload.get("return_line_items") or []:
        shopify_reason = str(raw.get("return_reason") or "unknown").lower()
        reason = settings.return_reason_map.get(shopify_reason, ReturnReason.OTHER.value)
        comment = raw.get("customer_note") or raw.get("return_reason_note") or None
        quantity = raw.get("quantity")
        if not isinstance(quantity, int) or quantity < 1:
            raise ShopifyPayloadError(f"return {return_ref} line has quantity {quantity!r}")
        lines.append(
            ReturnLine(
                sku=_return_line_sku(raw),
                quantity=quantity,
                reason=ReturnReason(reason),
                comment=str(comment)[:4000] if comment else None,
            )
        )
    if not lines:
        raise ShopifyPayloadError(f"return {return_ref} has no return line items")
    requested_at = (
        parse_time(payload["created_at"], f"return {return_ref} created_at")
        if payload.get("created_at")
        else triggered_at
    )
    try:
        rma = ReturnAuthorization(
            id=derive_id(EntityKind.RETURN, SYSTEM, str(return_ref)),
            version=max(int(requested_at.timestamp()), 1),
            order_id=canonical_order_id(_numeric_id(order_ref)),
            lines=lines,
            requested_at=requested_at,
        )
    except (DomainError, ValueError) as error:
        raise ShopifyPayloadError(f"return {return_ref}: {error}") from error
    return build_event(
        ReturnRequested(rma=rma),
        source=EVENT_SOURCE,
        id=f"shopify:return:{_numeric_id(return_ref)}:requested",
        time=requested_at,
    )


def _numeric_id(value: Any) -> str:
    """``gid://shopify/Order/123`` and ``123`` both as ``"123"``."""
    return str(value).rsplit("/", 1)[-1]
