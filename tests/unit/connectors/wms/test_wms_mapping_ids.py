"""WMS references that already are canonical ids stay as they are."""

from __future__ import annotations

from retailsync.connectors.wms.config import WmsSettings
from retailsync.connectors.wms.mapping import (
    canonical_ref,
    return_inspected,
    return_received,
    shipment_confirmed,
)
from retailsync.domain.catalogue import ReturnInspected, ReturnReceived, ShipmentDispatched
from retailsync.domain.identifiers import EntityKind, derive_id, new_id

SETTINGS = WmsSettings(base_url="https://wms.example.com", api_key="k", webhook_secret="s")


def test_a_canonical_rma_id_is_kept_and_an_erp_number_is_derived() -> None:
    rma = new_id(EntityKind.RETURN)
    assert canonical_ref(EntityKind.RETURN, "erp", rma) == rma
    assert canonical_ref(EntityKind.RETURN, "erp", "RMA-7") == derive_id(
        EntityKind.RETURN, "erp", "RMA-7"
    )
    # A canonical id of another kind is an opaque reference, not this kind's id.
    order = new_id(EntityKind.ORDER)
    assert canonical_ref(EntityKind.RETURN, "erp", order) != order


def test_receipt_and_inspection_of_a_hub_rma_name_that_rma() -> None:
    """The return workflow tells the warehouse its canonical RMA and order ids; the receipt
    must come back under the same ids or no workflow would find it."""
    rma, order = new_id(EntityKind.RETURN), new_id(EntityKind.ORDER)
    lines = [{"sku": "MUG-1", "quantity": 1, "inspection": "resaleable"}]
    received = return_received(
        {
            "rma_ref": rma,
            "order_ref": order,
            "location": "WH1",
            "received_at": "2026-03-01T10:00:00+00:00",
            "lines": lines,
        },
        SETTINGS,
    )
    assert isinstance(received[0], ReturnReceived)
    assert (received[0].rma_id, received[0].order_id) == (rma, order)
    assert isinstance(received[1], ReturnInspected) and received[1].rma_id == rma
    (inspected,) = return_inspected(
        {"rma_ref": rma, "inspected_at": "2026-03-01T11:00:00+00:00", "lines": lines}, SETTINGS
    )
    assert isinstance(inspected, ReturnInspected) and inspected.rma_id == rma
    (dispatched,) = shipment_confirmed(
        {
            "shipment_ref": "SHP-1",
            "order_ref": order,
            "carrier": "DHL",
            "dispatched_at": "2026-03-01T12:00:00+00:00",
            "lines": [{"sku": "MUG-1", "quantity": 1}],
        },
        SETTINGS,
    )
    assert isinstance(dispatched, ShipmentDispatched)
    assert dispatched.shipment.order_id == order
    (legacy,) = return_inspected(
        {"rma_ref": "RMA-7", "inspected_at": "2026-03-01T11:00:00+00:00", "lines": lines},
        SETTINGS,
    )
    assert isinstance(legacy, ReturnInspected)
    assert legacy.rma_id == derive_id(EntityKind.RETURN, "erp", "RMA-7")
