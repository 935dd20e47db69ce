"""Settling a return against the live ERP: credit only the units inspection accepted."""

from __future__ import annotations

import datetime as dt

import pytest
from erp_e2e_support import ADA, make_order

from retailsync.connectors.erp.adapter import TrytonErpAdapter
from retailsync.connectors.erp.errors import ErpBusinessError
from retailsync.domain.finance import PostingStatus
from retailsync.domain.identifiers import EntityKind, new_id
from retailsync.domain.orders import Order
from retailsync.domain.returns import ReturnAuthorization, ReturnLine, ReturnReason, ReturnStatus

pytestmark = [pytest.mark.erp, pytest.mark.slow]


async def _returned(adapter: TrytonErpAdapter, *items: tuple[str, int]) -> tuple[Order, str]:
    order = make_order(*items)
    await adapter.submit_order(order, ADA)
    await adapter.record_dispatch(order.id)
    await adapter.post_invoices(order.id)
    rma = ReturnAuthorization(
        id=new_id(EntityKind.RETURN),
        order_id=order.id,
        customer_id=ADA.id,
        status=ReturnStatus.AUTHORIZED,
        lines=[ReturnLine(sku=sku, quantity=q, reason=ReturnReason.DAMAGED) for sku, q in items],
        requested_at=dt.datetime.now(dt.UTC),
    )
    await adapter.create_return(rma)
    await adapter.receive_return(rma.id)
    return order, rma.id


def _drafts(state: object) -> list[object]:
    return [n for n in state.credit_notes if n.status is PostingStatus.DRAFT]  # type: ignore[attr-defined]


async def test_a_partial_acceptance_credits_only_the_accepted_units(
    erp_adapter: TrytonErpAdapter,
) -> None:
    order, rma_id = await _returned(erp_adapter, ("RS-HOODIE-M", 3), ("RS-CAP", 2))
    hoodie = order.lines[0].unit_price.amount
    settled = await erp_adapter.settle_return(rma_id, {"RS-HOODIE-M": 1, "RS-CAP": 0})
    (draft,) = _drafts(settled)
    assert draft.amount.amount == hoodie  # type: ignore[attr-defined]
    again = await erp_adapter.settle_return(rma_id, {"RS-HOODIE-M": 1, "RS-CAP": 0})
    assert [n.amount for n in _drafts(again)] == [draft.amount]  # type: ignore[attr-defined]

    posted = await erp_adapter.post_credit_note(rma_id)
    notes = [n for n in posted.credit_notes if n.status is PostingStatus.POSTED]
    assert [n.amount.amount for n in notes] == [hoodie]
    # Posting re-runs the ERP's sale processing: it must not invoice the uncredited units again.
    assert _drafts(await erp_adapter.get_return(rma_id)) == []
    with pytest.raises(ErpBusinessError, match="already posted"):
        await erp_adapter.settle_return(rma_id, {"RS-HOODIE-M": 0, "RS-CAP": 0})


async def test_nothing_accepted_cancels_the_draft_credit_note(
    erp_adapter: TrytonErpAdapter,
) -> None:
    _order, rma_id = await _returned(erp_adapter, ("RS-CAP", 1))
    settled = await erp_adapter.settle_return(rma_id, {"RS-CAP": 0})
    assert _drafts(settled) == [] and not settled.credited
    assert (await erp_adapter.settle_return(rma_id, {"RS-CAP": 0})).credited is False
    after = await erp_adapter.post_credit_note(rma_id)
    assert not after.credited and _drafts(after) == []


async def test_crediting_more_than_authorized_is_refused(erp_adapter: TrytonErpAdapter) -> None:
    _order, rma_id = await _returned(erp_adapter, ("RS-CAP", 1))
    with pytest.raises(ErpBusinessError, match="more units than it authorized"):
        await erp_adapter.settle_return(rma_id, {"RS-CAP": 2})
