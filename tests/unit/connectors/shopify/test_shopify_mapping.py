"""Shopify payloads -> canonical events and port records (table-driven, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from retailsync.connectors.shopify import ShopifySettings, load_shopify_settings
from retailsync.connectors.shopify.errors import ShopifyConfigError, ShopifyPayloadError
from retailsync.connectors.shopify.mapping import (
    canonical_order,
    canonical_order_id,
    order_status,
    refund_events,
    return_requested_event,
    storefront_order,
)
from retailsync.domain.catalogue import RefundFailed, parse_event
from retailsync.domain.identifiers import EntityKind, is_valid_id
from retailsync.domain.money import Money
from retailsync.domain.orders import OrderStatus
from retailsync.domain.returns import ReturnReason

SETTINGS = load_shopify_settings(
    {"shop_domain": "acme.myshopify.com", "access_token": "shpat_x", "webhook_secret": "s"}
)


def order(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": 5001,
        "name": "#1001",
        "email": "sam@example.com",
        "currency": "EUR",
        "created_at": "2026-03-01T11:00:00+01:00",
        "updated_at": "2026-03-01T11:05:00+01:00",
        "financial_status": "paid",
        "fulfillment_status": None,
        "cancelled_at": None,
        "closed_at": None,
        "subtotal_price": "35.00",
        "total_tax": "7.00",
        "total_price": "46.95",
        "total_shipping_price_set": {"shop_money": {"amount": "4.95", "currency_code": "EUR"}},
        "customer": {"id": 77, "email": "sam@example.com"},
        "line_items": [
            {
                "id": 11,
                "sku": "TSHIRT-M",
                "title": "T-shirt",
                "quantity": 2,
                "price": "15.00",
                "total_discount": "0.00",
                "tax_lines": [{"price": "6.00"}],
            },
            {"id": 12, "sku": "", "variant_id": 999, "quantity": 1, "price": "5.00"},
        ],
        "shipping_address": {
            "first_name": "Sam",
            "last_name": "Doe",
            "address1": "1 Harbour St",
            "city": "Dublin",
            "zip": "D01",
            "country_code": "IE",
        },
    }
    base.update(changes)
    return base


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"financial_status": "pending"}, OrderStatus.PENDING),
        ({"financial_status": "authorized"}, OrderStatus.CONFIRMED),
        ({"financial_status": "paid"}, OrderStatus.CONFIRMED),
        ({"financial_status": "voided"}, OrderStatus.CANCELLED),
        ({"fulfillment_status": "partial"}, OrderStatus.PARTIALLY_SHIPPED),
        ({"fulfillment_status": "fulfilled"}, OrderStatus.SHIPPED),
        ({"fulfillment_status": "fulfilled", "closed_at": "2026-03-09T00:00:00Z"}, "completed"),
        ({"fulfillment_status": "fulfilled", "cancelled_at": "2026-03-02T00:00:00Z"}, "cancelled"),
        ({"financial_status": None}, OrderStatus.PENDING),
    ],
)
def test_order_status_table(changes: dict[str, Any], expected: str) -> None:
    assert order_status(order(**changes), SETTINGS) == OrderStatus(expected)


def test_the_status_tables_are_configurable_and_validated() -> None:
    custom = SETTINGS.model_copy(update={"financial_status_map": {"paid": "processing"}})
    assert order_status(order(), custom) is OrderStatus.PROCESSING
    with pytest.raises(ShopifyPayloadError, match="financial_status_map"):
        order_status(
            order(financial_status="paid"), SETTINGS.model_copy(update={"financial_status_map": {}})
        )
    with pytest.raises(ShopifyConfigError, match="shipping_soon"):
        load_shopify_settings(
            {
                "shop_domain": "acme.myshopify.com",
                "access_token": "shpat_x",
                "webhook_secret": "s",
                "fulfillment_status_map": {"fulfilled": "shipping_soon"},
            }
        )


def test_a_shopify_order_becomes_the_canonical_order() -> None:
    canonical = canonical_order(order(), SETTINGS)
    assert canonical.id == canonical_order_id(5001)
    assert is_valid_id(canonical.id, EntityKind.ORDER)
    assert canonical.id == canonical_order(order(), SETTINGS).id  # derived, stable
    assert canonical.status is OrderStatus.CONFIRMED
    assert canonical.version == int(datetime(2026, 3, 1, 10, 5, tzinfo=UTC).timestamp())
    assert canonical.grand_total == Money.of("46.95", "EUR")
    assert canonical.shipping_total == Money.of("4.95", "EUR")
    first, second = canonical.lines
    assert (first.sku, first.quantity, first.line_total, first.tax) == (
        "TSHIRT-M",
        2,
        Money.of("30.00", "EUR"),
        Money.of("6.00", "EUR"),
    )
    assert second.sku == "SHOPIFY-V999"  # no SKU: the variant stands in
    assert canonical.shipping_address is not None
    assert canonical.shipping_address.country == "IE"
    assert canonical.customer_id is not None


def test_the_port_record_keeps_shopify_ids() -> None:
    record = storefront_order(order(), SETTINGS)
    assert (record.order_ref, record.name, record.status) == ("5001", "#1001", "confirmed")
    assert record.total == Money.of("46.95", "EUR")
    assert [line.sku for line in record.lines] == ["TSHIRT-M", None]


@pytest.mark.parametrize(
    "broken",
    [
        {"currency": "XXX1"},
        {"total_price": "lots"},
        {"line_items": [{"id": 1, "sku": "A", "quantity": 0, "price": "1.00"}]},
        {"updated_at": "yesterday"},
    ],
)
def test_bad_orders_are_payload_errors(broken: dict[str, Any]) -> None:
    with pytest.raises(ShopifyPayloadError):
        canonical_order(order(**broken), SETTINGS)


def refund(*statuses: str) -> dict[str, Any]:
    return {
        "id": 909,
        "order_id": 5001,
        "created_at": "2026-03-02T10:00:00Z",
        "note": "arrived damaged",
        "transactions": [
            {"id": n, "kind": "refund", "status": status, "amount": "5.00", "currency": "EUR"}
            for n, status in enumerate(statuses)
        ]
        + [{"id": 99, "kind": "sale", "status": "success", "amount": "99.00", "currency": "EUR"}],
    }


def test_refund_outcome_follows_the_refund_transactions() -> None:
    [completed] = refund_events(refund("success", "success"))
    assert completed.type == "retailsync.refund.completed"
    assert completed.data["amount"] == {"amount": "10.00", "currency": "EUR"}
    assert completed.id == "shopify:refund:909:completed"
    [requested] = refund_events(refund("pending"))
    assert requested.type == "retailsync.refund.requested"
    assert requested.data["refund"]["reason"] == "arrived damaged"
    [failed] = refund_events(refund("failure"))
    payload = parse_event(failed)
    assert isinstance(payload, RefundFailed) and payload.retryable is False
    assert refund_events(refund()) == []  # restock only: no money moved


def test_a_return_request_maps_reasons_through_the_table() -> None:
    payload = {
        "id": "gid://shopify/Return/71",
        "order": {"id": "gid://shopify/Order/5001"},
        "created_at": "2026-03-03T09:00:00Z",
        "return_line_items": [
            {
                "id": 1,
                "quantity": 1,
                "return_reason": "SIZE_TOO_SMALL",
                "customer_note": "too tight",
                "fulfillment_line_item": {"line_item": {"sku": "TSHIRT-M"}},
            },
            {"id": 2, "quantity": 2, "return_reason": "defective", "line_item": {"sku": "CAP-1"}},
        ],
    }
    event = return_requested_event(payload, SETTINGS, triggered_at=datetime.now(UTC))
    rma = event.data["rma"]
    assert rma["order_id"] == canonical_order_id(5001)
    assert [(line["sku"], line["reason"]) for line in rma["lines"]] == [
        ("TSHIRT-M", ReturnReason.CHANGED_MIND.value),
        ("CAP-1", ReturnReason.DAMAGED.value),
    ]
    assert rma["lines"][0]["comment"] == "too tight"
    assert event.id == "shopify:return:71:requested"
    with pytest.raises(ShopifyPayloadError, match="no return line items"):
        return_requested_event(
            {**payload, "return_line_items": []}, SETTINGS, triggered_at=datetime.now(UTC)
        )


def test_settings_errors_name_the_bad_key() -> None:
    with pytest.raises(ShopifyConfigError) as raised:
        load_shopify_settings({"shop_domain": "https://acme.com", "access_token": "x"})
    message = str(raised.value)
    assert "connectors.shopify.webhook_secret" in message
    with pytest.raises(ShopifyConfigError, match="shop_domain"):
        load_shopify_settings(
            {"shop_domain": "https://acme.com", "access_token": "x", "webhook_secret": "s"}
        )
    with pytest.raises(ShopifyConfigError, match="api_version"):
        load_shopify_settings(
            {
                "shop_domain": "acme.myshopify.com",
                "access_token": "x",
                "webhook_secret": "s",
                "api_version": "latest",
            }
        )
    assert "shpat_x" not in repr(SETTINGS)
    assert isinstance(SETTINGS, ShopifySettings)
    assert SETTINGS.api_base == "https://acme.myshopify.com/admin/api/2024-10"
