"""Orders through the Tryton adapter: submit, ship, invoice, cancel, and change capture."""

from __future__ import annotations

from typing import Any

import pytest
from erp_e2e_support import ADA, SqlRecordingPublisher, make_order
from sqlalchemy.engine import Engine

from retailsync.connectors.erp.adapter import TrytonErpAdapter
from retailsync.connectors.erp.client import TrytonClient
from retailsync.connectors.erp.poller import ErpChangePoller
from retailsync.domain.finance import PostingKind, PostingStatus
from retailsync.domain.orders import OrderStatus
from retailsync.domain.shipments import ShipmentStatus

pytestmark = [pytest.mark.erp, pytest.mark.slow]


async def test_order_is_confirmed_shipped_invoiced_and_each_change_is_published_once(
    erp_adapter: TrytonErpAdapter,
    erp_engine: Engine,
    recording_publisher: SqlRecordingPublisher,
) -> None:
    order = make_order(("RS-TSHIRT-M", 2), ("RS-CAP", 1))
    poller = ErpChangePoller(erp_adapter, erp_engine, recording_publisher)
    await poller.poll_once()  # catch up with everything before this order

    submitted = await erp_adapter.submit_order(order, ADA)
    assert submitted.status is OrderStatus.PROCESSING
    assert submitted.total.amount == order.grand_total.amount
    assert [s.status for s in submitted.shipments] == [ShipmentStatus.PENDING]
    assert [p.status for p in submitted.postings] == [PostingStatus.DRAFT]

    first = await poller.poll_once()
    assert [e.type for e in first.events if e.subject == order.id] == [
        "retailsync.order.status_changed"
    ]

    await erp_adapter.record_dispatch(order.id)
    invoiced = await erp_adapter.post_invoices(order.id)
    assert invoiced.status is OrderStatus.SHIPPED
    (shipment,) = invoiced.shipments
    assert shipment.status is ShipmentStatus.DISPATCHED
    assert sorted((line.sku, line.quantity) for line in shipment.lines) == [
        ("RS-CAP", 1),
        ("RS-TSHIRT-M", 2),
    ]
    (invoice,) = invoiced.postings
    assert (invoice.kind, invoice.status) == (PostingKind.INVOICE, PostingStatus.POSTED)
    assert invoice.amount == order.grand_total

    second = await poller.poll_once()
    # A new poller on the same cursor table (a restart) finds nothing new.
    restarted = ErpChangePoller(erp_adapter, erp_engine, recording_publisher)
    third = await restarted.poll_once()
    assert not [e for e in third.events if e.subject in {order.id, shipment.id, invoice.id}]

    mine = [
        e for e in first.events + second.events if e.subject in {order.id, shipment.id, invoice.id}
    ]
    types = sorted(e.type for e in mine)
    assert types == [
        "retailsync.invoice.posted",
        "retailsync.order.status_changed",
        "retailsync.order.status_changed",
        "retailsync.shipment.dispatched",
    ]
    changes = [(e.data["from_status"], e.data["to_status"]) for e in mine if "to_status" in e.data]
    assert changes == [("pending", "processing"), ("processing", "shipped")]
    assert len({e.id for e in mine}) == len(mine)
    stored = recording_publisher.recorded(order.id) + recording_publisher.recorded(shipment.id)
    stored += recording_publisher.recorded(invoice.id)
    assert len(stored) == 4


async def test_same_canonical_order_twice_yields_one_erp_sale(
    erp_adapter: TrytonErpAdapter, erp_client: TrytonClient, erp_engine: Engine
) -> None:
    order = make_order(("RS-TSHIRT-L", 1))
    first = await erp_adapter.create_order(order, ADA)
    second = await erp_adapter.create_order(order, ADA)
    assert first.erp_id == second.erp_id
    # Even without the cross-reference (lost or another hub instance) the reference finds it.
    fresh = TrytonErpAdapter(erp_client, _empty_hub_engine(erp_engine))
    third = await fresh.create_order(order, ADA)
    assert third.erp_id == first.erp_id
    assert await erp_client.search("sale.sale", [("reference", "=", order.id)]) == [
        int(first.erp_id)
    ]


def _empty_hub_engine(like: Engine) -> Engine:
    import tempfile

    from retailsync.db import create_engine_for, upgrade_database

    url = f"sqlite:///{tempfile.mkdtemp(prefix='hub-')}/hub.sqlite"
    upgrade_database(url, "erp_0001")
    return create_engine_for(url)


async def test_unshipped_order_is_cancelled_and_its_stock_released(
    erp_adapter: TrytonErpAdapter,
) -> None:
    before = await erp_adapter.get_stock("RS-SNEAKER-42", "STO")
    order = make_order(("RS-SNEAKER-42", 2))
    submitted = await erp_adapter.submit_order(order, ADA)
    reserved = await erp_adapter.get_stock("RS-SNEAKER-42", "STO")
    assert reserved.reserved == before.reserved + 2
    assert submitted.cancellable

    cancelled = await erp_adapter.cancel_order(order.id)
    assert cancelled.status is OrderStatus.CANCELLED
    after = await erp_adapter.get_stock("RS-SNEAKER-42", "STO")
    assert (after.on_hand, after.reserved) == (before.on_hand, before.reserved)
    assert (await erp_adapter.cancel_order(order.id)).status is OrderStatus.CANCELLED


async def test_order_state_with_shipments_and_invoices_is_one_erp_request(
    erp_adapter: TrytonErpAdapter, erp_client: TrytonClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The order 360's freshness check spends one rate-limit token per order, not five."""
    order = make_order(("RS-TSHIRT-M", 1), ("RS-CAP", 2))
    await erp_adapter.submit_order(order, ADA)
    await erp_adapter.record_dispatch(order.id)
    await erp_adapter.post_invoices(order.id)
    await erp_adapter.company()  # read once per adapter, not per order
    methods = count_requests(erp_client, monkeypatch)
    state = await erp_adapter.get_order(order.id)

    assert methods == ["model.sale.sale.read"]
    (shipment,) = state.shipments
    assert sorted((line.sku, line.quantity) for line in shipment.lines) == [
        ("RS-CAP", 2),
        ("RS-TSHIRT-M", 1),
    ]
    (invoice,) = state.postings
    assert invoice.amount == order.grand_total
    assert state.status is OrderStatus.SHIPPED


async def test_many_orders_states_are_one_erp_request(
    erp_adapter: TrytonErpAdapter, erp_client: TrytonClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The order 360 groups its freshness checks: the states of several orders in one read,
    equal to reading each alone; an order the ERP does not have is left out."""
    shipped = make_order(("RS-CAP", 1))
    open_order = make_order(("RS-TSHIRT-M", 3))
    for order in (shipped, open_order):
        await erp_adapter.submit_order(order, ADA)
    await erp_adapter.record_dispatch(shipped.id)
    unknown = make_order(("RS-CAP", 1)).id
    alone = {oid: await erp_adapter.get_order(oid) for oid in (shipped.id, open_order.id)}
    methods = count_requests(erp_client, monkeypatch)
    together = await erp_adapter.get_orders([shipped.id, open_order.id])
    assert methods == ["model.sale.sale.read"]
    assert together == alone
    assert together[shipped.id].status is OrderStatus.SHIPPED

    methods.clear()
    assert set(await erp_adapter.get_orders([unknown, open_order.id])) == {open_order.id}
    assert methods == ["model.sale.sale.search", "model.sale.sale.read"]


def count_requests(client: TrytonClient, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The JSON-RPC methods ``client`` sends from now on (the calls still reach the ERP)."""
    methods: list[str] = []
    real_call = client.call

    async def counting_call(method: str, params: Any, *, context: bool = True) -> Any:
        methods.append(method)
        return await real_call(method, params, context=context)

    monkeypatch.setattr(client, "call", counting_call)
    return methods
