"""Folding an order's canonical events into the agent panel's view."""

from __future__ import annotations

from datetime import UTC, datetime

from retailsync.console.order360 import Order360, _fold, _system_of

AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def fold(*events: tuple[str, dict]) -> Order360:
    view = Order360(order_id="ord_1", found=False)
    for event_type, data in events:
        _fold(view, event_type, data, AT)
    return view


def test_the_newest_status_shipments_returns_and_refunds_are_shown() -> None:
    view = fold(
        (
            "retailsync.order.created",
            {
                "order": {
                    "id": "ord_1",
                    "status": "confirmed",
                    "channel": "web",
                    "currency": "EUR",
                    "grand_total": {"amount": "200.00", "currency": "EUR"},
                    "lines": [{"line_no": 1, "sku": "MUG-1", "quantity": 2}],
                }
            },
        ),
        ("retailsync.order.status_changed", {"order_id": "ord_1", "to_status": "shipped"}),
        (
            "retailsync.shipment.dispatched",
            {"shipment": {"id": "shp_1", "carrier": "DHL", "tracking_number": "JD01"}},
        ),
        ("retailsync.shipment.delivered", {"shipment_id": "shp_1", "order_id": "ord_1"}),
        ("retailsync.return.requested", {"rma": {"id": "rma_1"}}),
        ("retailsync.return.authorized", {"rma_id": "rma_1", "order_id": "ord_1"}),
        (
            "retailsync.refund.requested",
            {"refund": {"id": "rfd_1", "amount": {"amount": "20.00", "currency": "EUR"}}},
        ),
        ("retailsync.refund.completed", {"refund_id": "rfd_1", "payment_ref": "pi_9"}),
    )
    assert view.found and view.status == "shipped"
    assert view.grand_total == "200.00 EUR"
    assert view.lines[0]["sku"] == "MUG-1"
    assert view.shipments["shp_1"]["status"] == "delivered"
    assert view.shipments["shp_1"]["carrier"] == "DHL"
    assert view.returns == {"rma_1": {"id": "rma_1", "status": "authorized", "at": AT}}
    assert view.refunds["rfd_1"]["status"] == "completed"
    assert view.refunds["rfd_1"]["amount"] == "20.00 EUR"
    assert view.payment["refs"] == ["pi_9"]


def test_a_cancellation_wins_over_the_created_status() -> None:
    view = fold(
        ("retailsync.order.created", {"order": {"id": "ord_1", "status": "confirmed"}}),
        ("retailsync.order.cancelled", {"order_id": "ord_1", "reason": "customer"}),
    )
    assert view.status == "cancelled"


def test_system_names_come_from_the_event_source() -> None:
    assert _system_of("/retailsync/connectors/shopify") == "shopify"
    assert _system_of("urn:retailsync:erp") == "erp"
    assert _system_of("zendesk") == "zendesk"
