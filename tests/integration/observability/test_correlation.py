"""New work about a journey the hub already traces joins its correlation id.

A webhook or a change-capture event without a correlation id, and a process started without
a ``traceparent``, continue the trace of the order (case, return, refund, shipment) they are
about; work that brings its own correlation keeps it; work about nothing known starts its
own. Against a real SQLite database and the SQL event bus.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from retailsync.api.middleware import TraceContextMiddleware
from retailsync.bus.backend import BackendConfig, EventBusBackend
from retailsync.bus.backends.sql import create_backend
from retailsync.connectors.ingress import build_webhook_router
from retailsync.db import create_engine_for, upgrade_database
from retailsync.domain.events import CloudEvent
from retailsync.domain.orders import OrderStatus
from retailsync.observability.correlation import (
    CorrelatingPublisher,
    correlate_events,
    joined_correlation,
    journey_keys,
    known_correlations,
)
from retailsync.observability.instrument import record_inbound, set_trace_store
from retailsync.observability.testkit import RetailJourney
from retailsync.observability.tracecontext import TraceParent, continue_trace, current_trace
from retailsync.observability.traces import load_trace

ORDER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    upgrade_database(sqlite_url)
    engine = create_engine_for(sqlite_url)
    set_trace_store(engine)
    yield engine
    set_trace_store(None)
    engine.dispose()


@pytest.fixture
async def bus(engine: Engine, sqlite_url: str) -> AsyncIterator[EventBusBackend]:
    backend = create_backend(BackendConfig(database_url=sqlite_url, worker_id="corr-test"))
    await backend.start()
    yield backend
    await backend.close()


async def a_traced_order(bus: EventBusBackend) -> RetailJourney:
    """An order whose creation came in with ``ORDER_TRACE`` (an inbound hop, an event);
    the journey builds its next events without a correlation id."""
    journey = RetailJourney(correlation_id=ORDER_TRACE)
    created = journey.order_created(NOW)
    arrived = datetime.now(UTC)
    await bus.publish([created])
    await record_inbound("shopify", "orders/create", "accepted", events=[created], at=arrived)
    return replace(journey, correlation_id=None)


def started_here() -> TraceParent:
    """The trace the API middleware starts for a request that brought none."""
    return TraceParent.generate()


async def test_the_lookup_finds_the_first_correlation_of_an_order_a_case_or_a_key(
    engine: Engine, bus: EventBusBackend
) -> None:
    journey = await a_traced_order(bus)
    case = journey.case_opened(NOW)
    await record_inbound(
        "zendesk", "ticket.created", "accepted", events=[case], correlation=ORDER_TRACE
    )
    later = journey.status_changed(NOW, to=OrderStatus.CONFIRMED, correlationid=CALLER_TRACE)
    refund = journey.refund_requested(NOW).model_copy(update={"correlationid": ORDER_TRACE})
    await record_inbound("erp", "later", "accepted", events=[later])
    await bus.publish([later, refund])
    assert journey.case_id is not None
    found = known_correlations(
        engine, [journey.order_id, journey.case_id, journey.refund_id, "SKU-1@WH1"]
    )
    assert found == {
        journey.order_id: ORDER_TRACE,  # the first, not the later one
        journey.case_id: ORDER_TRACE,
        journey.refund_id: ORDER_TRACE,  # the refund.requested keyed by it
    }


async def test_events_without_a_correlation_join_their_journey(
    engine: Engine, bus: EventBusBackend
) -> None:
    journey = await a_traced_order(bus)
    await bus.publish(
        [journey.refund_requested(NOW).model_copy(update={"correlationid": ORDER_TRACE})]
    )
    shipped = journey.shipment_dispatched(NOW)  # names the order
    refunded = journey.refund_completed(NOW)  # keyed by the refund only
    stock = journey.stock_adjusted(NOW)  # about a SKU: no journey
    mine = RetailJourney(correlation_id=CALLER_TRACE).order_created(NOW)
    assert journey_keys(shipped) == (journey.order_id, shipped.partitionkey)
    assert journey_keys(refunded) == (journey.refund_id,)
    assert journey_keys(stock) == ()

    # A request that brought no trace: known journeys are joined, the rest stays in the
    # request's trace; an event with its own correlation keeps it.
    request = started_here()
    token = current_trace.set(request)
    try:
        stamped = await correlate_events([shipped, refunded, stock, mine])
    finally:
        current_trace.reset(token)
    assert [e.correlationid for e in stamped] == [
        ORDER_TRACE,
        ORDER_TRACE,
        request.trace_id,
        CALLER_TRACE,
    ]

    # Work handed a correlation (a caller's traceparent, an event being handled) keeps it.
    with continue_trace(CALLER_TRACE):
        handed = await correlate_events([shipped, stock])
    assert {e.correlationid for e in handed} == {CALLER_TRACE}

    # Outside any trace (change capture): known journeys joined; unknown ones get a new
    # correlation, one per entity, shared by the batch's events about it.
    other = RetailJourney()
    first = other.status_changed(NOW, to=OrderStatus.CONFIRMED)
    second = other.shipment_dispatched(NOW)
    background = await correlate_events([shipped, first, second, stock, stock])
    assert background[0].correlationid == ORDER_TRACE
    assert background[1].correlationid == background[2].correlationid
    assert background[1].correlationid not in {ORDER_TRACE, None}
    assert background[3].correlationid and background[4].correlationid
    assert len({e.correlationid for e in background}) == 4  # each SKU change its own


async def test_a_correlating_publisher_stores_change_capture_in_the_order_trace(
    engine: Engine, bus: EventBusBackend
) -> None:
    journey = await a_traced_order(bus)
    await CorrelatingPublisher(bus).publish([journey.shipment_dispatched(NOW)])
    trace = load_trace(engine, order_id=journey.order_id)
    assert [(e.kind.value, e.operation) for e in trace.entries] == [
        ("inbound", "orders/create"),
        ("event", "retailsync.order.created"),
        ("event", "retailsync.shipment.dispatched"),
    ]
    assert trace.correlation_ids == (ORDER_TRACE,)


async def test_a_process_joins_the_order_trace_unless_the_caller_brings_one(
    engine: Engine, bus: EventBusBackend
) -> None:
    journey = await a_traced_order(bus)
    request = started_here()
    token = current_trace.set(request)
    try:
        assert await joined_correlation(order_id=journey.order_id) == ORDER_TRACE
        assert await joined_correlation(order_id=RetailJourney().order_id) == request.trace_id
    finally:
        current_trace.reset(token)
    caller = TraceParent.parse(f"00-{CALLER_TRACE}-00f067aa0ba902b7-01")
    assert caller is not None
    token = current_trace.set(caller.child())
    try:
        assert await joined_correlation(order_id=journey.order_id) == CALLER_TRACE
    finally:
        current_trace.reset(token)
    assert await joined_correlation() is None  # outside any trace, nothing known


# --------------------------------------------------------------------------------------------
# Through the webhook ingress
# --------------------------------------------------------------------------------------------


class ShipmentWebhooks:
    """A minimal warehouse: unsigned, one ``shipment.dispatched`` per delivery."""

    name = "warehouse"

    def __init__(self, journey: RetailJourney) -> None:
        self.journey = journey

    def verify(self, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        return None

    def delivery_id(self, headers: Mapping[str, str], body: bytes) -> str:
        return str(json.loads(body)["delivery"])

    def to_events(self, headers: Mapping[str, str], body: bytes) -> list[CloudEvent]:
        event = self.journey.shipment_dispatched(NOW)
        return [event.model_copy(update={"id": f"warehouse:{json.loads(body)['delivery']}"})]


async def test_a_webhook_about_a_known_order_joins_its_trace_unless_it_brings_one(
    engine: Engine, bus: EventBusBackend
) -> None:
    journey = await a_traced_order(bus)
    app = FastAPI()
    app.include_router(build_webhook_router([ShipmentWebhooks(journey)], bus, engine))
    app.add_middleware(TraceContextMiddleware)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub"
    ) as client:
        plain = await client.post("/v1/webhooks/warehouse", json={"delivery": "d-1"})
        traced = await client.post(
            "/v1/webhooks/warehouse",
            json={"delivery": "d-2"},
            headers={"traceparent": f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"},
        )
    assert plain.status_code == 200 and traced.status_code == 200, traced.text
    trace = load_trace(engine, order_id=journey.order_id)
    hops = [(e.kind.value, e.system, e.correlation_id) for e in trace.entries]
    assert hops == [
        ("inbound", "shopify", ORDER_TRACE),
        ("event", "retailsync/connectors/shopify", ORDER_TRACE),
        ("inbound", "warehouse", ORDER_TRACE),  # no traceparent: the order's trace
        ("event", "urn:retailsync:erp:tryton", ORDER_TRACE),
        ("inbound", "warehouse", CALLER_TRACE),  # the sender's own trace wins
        ("event", "urn:retailsync:erp:tryton", CALLER_TRACE),
    ]
