"""WMS webhook signatures and the mapping of WMS payloads to canonical events."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from retailsync.connectors.webhook_protocol import WebhookRejected, WebhookUnmappable
from retailsync.connectors.wms.config import WmsSettings, load_wms_settings
from retailsync.connectors.wms.errors import WmsConfigError
from retailsync.connectors.wms.inbound import WmsWebhookReceiver
from retailsync.domain.catalogue import (
    InventoryPositionReported,
    ReturnInspected,
    ReturnReceived,
    ShipmentDispatched,
    parse_event,
)
from retailsync.domain.identifiers import EntityKind, derive_id
from retailsync.domain.returns import InspectionOutcome

SECRET = "wms-shared-secret"
SETTINGS = WmsSettings(
    base_url="http://wms.local", api_key=SecretStr("k"), webhook_secret=SecretStr(SECRET)
)
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def signed(body: bytes, timestamp: int, secret: str = SECRET) -> dict[str, str]:
    """Signs per docs/connectors/wms.md ("Webhook signature"), independently of the code."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-WMS-Signature": f"sha256={digest}", "X-WMS-Timestamp": str(timestamp)}


def body(event_type: str, data: dict[str, object]) -> bytes:
    return json.dumps(
        {
            "id": "evt_1",
            "type": event_type,
            "occurred_at": "2025-03-01T12:00:00+00:00",
            "data": data,
        }
    ).encode()


RECEIPT = {
    "receipt_id": "rcpt_1",
    "rma_ref": "RMA-9",
    "order_ref": "SO-1",
    "location": "WH1",
    "received_at": "2025-03-01T11:59:00+00:00",
    "lines": [
        {"sku": "SKU-1", "quantity": 2, "inspection": "resaleable"},
        {"sku": "SKU-2", "quantity": 1, "inspection": "damaged"},
        {"sku": "SKU-3", "quantity": 1, "inspection": "missing"},
    ],
}


def test_valid_signature_passes_forged_and_stale_do_not() -> None:
    receiver = WmsWebhookReceiver(SETTINGS)
    payload = body("return_receipt.received", RECEIPT)
    stamp = int(NOW.timestamp())
    receiver.verify(signed(payload, stamp), payload, NOW)
    with pytest.raises(WebhookRejected) as forged:
        receiver.verify(signed(payload, stamp, "not-the-secret"), payload, NOW)
    assert (forged.value.reason, forged.value.status) == ("bad-signature", 401)
    with pytest.raises(WebhookRejected) as tampered:
        receiver.verify(signed(payload, stamp), payload.replace(b"SKU-1", b"SKU-7"), NOW)
    assert tampered.value.reason == "bad-signature"
    with pytest.raises(WebhookRejected) as stale:
        receiver.verify(signed(payload, stamp - 301), payload, NOW)
    assert (stale.value.reason, stale.value.status) == ("stale-timestamp", 400)
    lenient = WmsWebhookReceiver(SETTINGS.model_copy(update={"webhook_tolerance_seconds": 600}))
    lenient.verify(signed(payload, stamp - 301), payload, NOW)
    with pytest.raises(WebhookRejected, match="Unix seconds"):
        receiver.verify({"X-WMS-Signature": "sha256=00", "X-WMS-Timestamp": "soon"}, payload, NOW)


def test_receipt_with_inspection_gives_received_and_inspected() -> None:
    events = WmsWebhookReceiver(SETTINGS).to_events({}, body("return_receipt.received", RECEIPT))
    received, inspected = (parse_event(e) for e in events)
    assert isinstance(received, ReturnReceived) and isinstance(inspected, ReturnInspected)
    assert received.rma_id == derive_id(EntityKind.RETURN, "erp", "RMA-9") == inspected.rma_id
    assert [(line.sku, line.quantity) for line in received.lines] == [
        ("SKU-1", 2),
        ("SKU-2", 1),
        ("SKU-3", 1),
    ]
    assert [(line.result.outcome, line.result.accepted_quantity) for line in inspected.lines] == [
        (InspectionOutcome.RESTOCK, 2),
        (InspectionOutcome.SCRAP, 0),
        (InspectionOutcome.NOT_RECEIVED, 0),
    ]
    assert inspected.version > received.version
    assert [e.id for e in events] == ["wms:evt_1:0", "wms:evt_1:1"]


def test_allocation_and_shipment() -> None:
    receiver = WmsWebhookReceiver(SETTINGS)
    [allocation] = receiver.to_events(
        {},
        body(
            "allocation.changed",
            {
                "sku": "SKU-1",
                "location": "WH1",
                "on_hand": 10,
                "allocated": 3,
                "as_of": "2025-03-01T11:00:00+00:00",
            },
        ),
    )
    position = parse_event(allocation)
    assert isinstance(position, InventoryPositionReported)
    assert (position.position.allocated, position.position.available_to_sell) == (3, 7)
    [shipment] = receiver.to_events(
        {},
        body(
            "shipment.confirmed",
            {
                "shipment_ref": "SH-1",
                "order_ref": "SO-1",
                "carrier": "DHL",
                "tracking_number": "JD0001",
                "location": "WH1",
                "dispatched_at": "2025-03-01T10:00:00+00:00",
                "lines": [{"sku": "SKU-1", "quantity": 1}],
            },
        ),
    )
    dispatched = parse_event(shipment)
    assert isinstance(dispatched, ShipmentDispatched)
    assert dispatched.shipment.order_id == derive_id(EntityKind.ORDER, "erp", "SO-1")


@pytest.mark.parametrize(
    ("event_type", "data", "reason"),
    [
        ("pallet.dropped", {}, "not one of"),
        (
            "return_receipt.inspected",
            {
                "rma_ref": "R",
                "inspected_at": "2025-03-01T10:00:00+00:00",
                "lines": [{"sku": "S", "quantity": 1, "inspection": "wet"}],
            },
            "wet",
        ),
        ("return_receipt.received", {**RECEIPT, "received_at": "yesterday"}, "received_at"),
    ],
)
def test_unmappable_payloads_say_why(event_type: str, data: dict[str, object], reason: str) -> None:
    with pytest.raises(WebhookUnmappable, match=reason):
        WmsWebhookReceiver(SETTINGS).to_events({}, body(event_type, data))


def test_config_error_names_the_key() -> None:
    with pytest.raises(WmsConfigError, match=r"wms\.base_url"):
        load_wms_settings({"base_url": "wms.local", "api_key": "k", "webhook_secret": "s"})
    with pytest.raises(WmsConfigError, match=r"wms\.inspection_map\.wet"):
        load_wms_settings(
            {
                "base_url": "http://w",
                "api_key": "k",
                "webhook_secret": "s",
                "inspection_map": {"wet": "dry"},
            }
        )
