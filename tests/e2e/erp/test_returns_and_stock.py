"""Returns with credit notes, stock readings and inventory adjustments against the live ERP."""

from __future__ import annotations

import datetime as dt

import pytest
from erp_e2e_support import ADA, SqlRecordingPublisher, make_order
from sqlalchemy.engine import Engine

from retailsync.connectors.erp.adapter import TrytonErpAdapter
from retailsync.connectors.erp.poller import ErpChangePoller
from retailsync.domain.finance import PostingKind, PostingStatus
from retailsync.domain.identifiers import EntityKind, new_id
from retailsync.domain.inventory import AdjustmentReason, InventoryAdjustment
from retailsync.domain.returns import ReturnAuthorization, ReturnLine, ReturnReason, ReturnStatus

pytestmark = [pytest.mark.erp, pytest.mark.slow]


async def test_return_moves_stock_back_and_posts_the_credit_note(
    erp_adapter: TrytonErpAdapter,
    erp_engine: Engine,
    recording_publisher: SqlRecordingPublisher,
) -> None:
    order = make_order(("RS-HOODIE-M", 3))
    await erp_adapter.submit_order(order, ADA)
    await erp_adapter.record_dispatch(order.id)
    await erp_adapter.post_invoices(order.id)
    shipped = await erp_adapter.get_stock("RS-HOODIE-M", "STO")
    poller = ErpChangePoller(erp_adapter, erp_engine, recording_publisher, name="returns")
    await poller.poll_once()

    rma = ReturnAuthorization(
        id=new_id(EntityKind.RETURN),
        order_id=order.id,
        customer_id=ADA.id,
        status=ReturnStatus.AUTHORIZED,
        lines=[ReturnLine(sku="RS-HOODIE-M", quantity=2, reason=ReturnReason.DAMAGED)],
        requested_at=dt.datetime.now(dt.UTC),
    )
    created = await erp_adapter.create_return(rma)
    assert (await erp_adapter.create_return(rma)).erp_id == created.erp_id  # idempotent
    assert created.order_id == order.id
    assert not created.received
    (draft,) = created.credit_notes
    assert (draft.kind, draft.status) == (PostingKind.CREDIT_NOTE, PostingStatus.DRAFT)

    received = await erp_adapter.receive_return(rma.id)
    assert received.received
    back = await erp_adapter.get_stock("RS-HOODIE-M", "STO")
    assert back.on_hand == shipped.on_hand + 2

    credited = await erp_adapter.post_credit_note(rma.id)
    (note,) = credited.credit_notes
    assert note.status is PostingStatus.POSTED
    assert note.amount.amount == 2 * order.lines[0].unit_price.amount
    assert credited.credited

    events = (await poller.poll_once()).events
    mine = [e for e in events if e.subject in {rma.id, note.id}]
    assert sorted(e.type for e in mine) == [
        "retailsync.credit_note.posted",
        "retailsync.return.received",
    ]
    credit = next(e for e in mine if e.type == "retailsync.credit_note.posted")
    assert (credit.data["rma_id"], credit.data["order_id"]) == (rma.id, order.id)
    assert credit.data["amount"]["amount"] == str(note.amount.amount)
    restocked = [
        e
        for e in events
        if e.type == "retailsync.inventory.adjusted"
        and e.data["adjustment"]["reason"] == "returned_to_stock"
        and e.data["adjustment"]["sku"] == "RS-HOODIE-M"
    ]
    assert [e.data["adjustment"]["delta"] for e in restocked] == [2]
    assert not [e for e in (await poller.poll_once()).events if e.subject in {rma.id, note.id}]


async def test_inventory_adjustment_is_applied_once_and_read_back(
    erp_adapter: TrytonErpAdapter,
) -> None:
    before = await erp_adapter.get_stock("RS-CAP", "STO")
    adjustment = InventoryAdjustment(
        id=new_id(EntityKind.INVENTORY_ADJUSTMENT),
        sku="RS-CAP",
        location="STO",
        delta=-3,
        reason=AdjustmentReason.DAMAGED,
        occurred_at=dt.datetime.now(dt.UTC),
    )
    after = await erp_adapter.adjust_inventory(adjustment)
    assert after.on_hand == before.on_hand - 3
    again = await erp_adapter.adjust_inventory(adjustment)
    assert again.on_hand == after.on_hand
