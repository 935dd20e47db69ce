"""The order 360 read model from events: in order, out of order, twice, through the real bus."""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from views_support import OrderStory

from retailsync.bus.backend import BusOptions
from retailsync.bus.runtime import create_bus
from retailsync.config import Settings
from retailsync.db import create_engine_for, upgrade_database
from retailsync.domain.orders import OrderStatus
from retailsync.views import apply_event, order_360, order_360_subscription
from retailsync.views.models import Order360View, PaymentStatus
from retailsync.views.read import load_order_360_rows


def _apply_all(engine: Engine, events: list) -> None:
    for event in events:
        with engine.begin() as connection:
            apply_event(connection, event)


def _content(view: Order360View) -> dict:
    return view.model_dump(mode="json", exclude={"as_of", "age_seconds"})


def test_a_whole_order_story_becomes_one_order_360(engine: Engine) -> None:
    story = OrderStory()
    _apply_all(engine, story.all_events())

    view = order_360(engine, story.order.id)

    assert view.stale is False
    assert view.status is OrderStatus.SHIPPED
    assert view.order.grand_total == story.order.grand_total
    assert [(line.sku, line.shipped_quantity, line.returned_quantity) for line in view.lines] == [
        ("RS-TSHIRT-M", 2, 1),
        ("RS-CAP", 1, 0),
    ]
    (shipment,) = view.shipments
    assert shipment.status == "delivered" and shipment.carrier == "DHL"
    assert view.open_exceptions == []  # the delay was resolved by the delivery
    assert [r.status for r in view.returns] == ["authorized"]
    (refund,) = view.refunds  # linked through the return, not by order id
    assert refund.status == "completed" and refund.payment_reference == "re_1"
    assert [c.subject for c in view.cases] == ["Where is my parcel?"]
    assert view.payment is not None
    assert view.payment.status is PaymentStatus.PARTIALLY_REFUNDED
    assert str(view.payment.refunded.amount) == "19.90"
    assert [p.document_number for p in view.postings] == ["INV-1"]


def test_any_order_of_arrival_and_duplicates_give_the_same_answer(sqlite_url: str) -> None:
    story = OrderStory()
    events = story.all_events()
    upgrade_database(sqlite_url)
    engine = create_engine_for(sqlite_url)
    try:
        _apply_all(engine, events)
        expected = _content(order_360(engine, story.order.id))
        for seed in range(4):
            shuffled = events + events[:5]
            random.Random(seed).shuffle(shuffled)
            with engine.begin() as connection:
                connection.execute(sa.text("DELETE FROM views_orders"))
                connection.execute(sa.text("DELETE FROM views_order_parts"))
            _apply_all(engine, shuffled)
            assert _content(order_360(engine, story.order.id)) == expected, f"seed {seed}"
    finally:
        engine.dispose()


def test_a_late_older_event_never_takes_the_status_back(engine: Engine) -> None:
    story = OrderStory()
    _apply_all(engine, [story.shipped_status(), story.delivered(), story.carrier_exception()])
    early = order_360(engine, story.order.id)
    assert early.status is OrderStatus.SHIPPED
    assert early.lines == []  # the order itself has not arrived yet
    assert early.shipments[0].status == "delivered"

    _apply_all(engine, [story.confirmed(), story.placed()])  # versions 2 and 1, late
    view = order_360(engine, story.order.id)
    assert view.status is OrderStatus.SHIPPED
    assert [line.line_no for line in view.lines] == [1, 2]


def test_an_open_carrier_exception_is_listed(engine: Engine) -> None:
    story = OrderStory()
    _apply_all(engine, [story.placed(), story.dispatched(), story.carrier_exception()])
    (problem,) = order_360(engine, story.order.id).open_exceptions
    assert (problem.kind, problem.reference, problem.code) == (
        "shipment",
        story.shipment_id,
        "delayed",
    )


async def test_the_subscription_keeps_the_read_model_current_through_the_bus(
    sqlite_url: str,
) -> None:
    settings = Settings(database_url=sqlite_url)
    upgrade_database(sqlite_url)
    bus = create_bus(settings, [order_360_subscription()], options=BusOptions(poll_interval=0.01))
    await bus.start()
    story = OrderStory()
    try:
        events = story.all_events()
        outcomes = await bus.publish(list(reversed(events)))
        assert all(outcome.ok for outcome in outcomes)
        await bus.publish(events[:3])  # duplicates are absorbed
        await bus.deliver_until_idle(timeout=30)
    finally:
        await bus.close()
    engine = create_engine_for(sqlite_url)
    try:
        view = order_360(engine, story.order.id)
    finally:
        engine.dispose()
    assert view.status is OrderStatus.SHIPPED
    assert len(view.refunds) == 1 and view.refunds[0].status == "completed"


@pytest.mark.postgres
def test_the_read_model_works_on_postgresql(postgres_url: str) -> None:
    upgrade_database(postgres_url)
    engine = create_engine_for(postgres_url)
    story = OrderStory()
    try:
        _apply_all(engine, list(reversed(story.all_events())))
        view = order_360(engine, story.order.id)
    finally:
        engine.dispose()
    assert view.status is OrderStatus.SHIPPED
    assert view.payment is not None and view.payment.status is PaymentStatus.PARTIALLY_REFUNDED


def test_an_orders_open_exceptions_are_found_by_key_not_by_walking_the_queue(
    engine: Engine,
) -> None:
    story = OrderStory()
    _apply_all(engine, story.all_events())
    executed: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, parameters, _context, _many) -> None:
        if "bus_exceptions" in statement:
            executed.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        with engine.connect() as connection:
            load_order_360_rows(connection, story.order.id)
            ((statement, parameters),) = executed
            plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert "ix_bus_exceptions_partition_key" in " ".join(str(row[-1]) for row in plan), plan
