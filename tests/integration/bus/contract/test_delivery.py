"""Contract: per-key ordered, at-least-once delivery with an idempotent consumer."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from retailsync.bus.backend import EventFilter, RetryPolicy, Subscription
from retailsync.bus.testkit import RecordingHandler, effect_rows, ensure_effects_table
from retailsync.bus.testkit import keyed_event as event
from retailsync.db import create_engine_for
from retailsync.domain.events import CloudEvent
from retailsync.resilience.errors import DownstreamUnavailable

FAST = RetryPolicy(max_attempts=4, initial_backoff=0.01, max_backoff=0.05, jitter=0.1)


def interleaved(keys: int, per_key: int) -> list[CloudEvent]:
    return [event(f"k{k}", n) for n in range(per_key) for k in range(keys)]


async def test_each_key_is_delivered_in_order_and_once(bus_backend_factory) -> None:
    handler = RecordingHandler(write_effects=True)
    bus = await bus_backend_factory([Subscription("orders", handler, retry=FAST)])
    engine = create_engine_for(bus_backend_factory.database_url)
    ensure_effects_table(engine)
    events = interleaved(keys=12, per_key=10)
    for start in range(0, len(events), 25):
        await bus.publish(events[start : start + 25])
    await bus.deliver_until_idle(timeout=20)
    order = handler.order_by_key()
    assert len(order) == 12
    for k in range(12):
        assert order[f"k{k}"] == [f"k{k}-{n}" for n in range(10)]
    rows = effect_rows(engine, "orders")
    assert len(rows) == len(events) == len({(r.event_id) for r in rows})
    engine.dispose()


async def test_a_failing_event_holds_back_only_its_own_key(bus_backend_factory) -> None:
    def fail(ev: CloudEvent, attempt: int) -> Exception | None:
        if ev.id == "slow-0" and attempt < 3:
            return DownstreamUnavailable("ERP answered 503", downstream="erp")
        return None

    handler = RecordingHandler(fail=fail)
    bus = await bus_backend_factory([Subscription("orders", handler, retry=FAST)])
    await bus.publish([event("slow", 0), event("fast", 0), event("slow", 1), event("fast", 1)])
    await bus.deliver_until_idle(timeout=20)
    ids = [e.id for e in handler.handled]
    assert ids.index("fast-1") < ids.index("slow-0")  # the other key did not wait
    assert handler.order_by_key()["slow"] == ["slow-0", "slow-1"]
    attempts = [a for (k, i, a) in handler.calls if i == "slow-0"]
    assert attempts == [1, 2, 3]
    assert await bus.exceptions.count() == 0


async def test_filters_select_types_and_subjects(bus_backend_factory) -> None:
    refunds = RecordingHandler()
    sku = RecordingHandler()
    bus = await bus_backend_factory(
        [
            Subscription("refunds", refunds, EventFilter(types=("retailsync.refund.*",))),
            Subscription("sku-a", sku, EventFilter(subjects=("sku/A-*",))),
        ]
    )
    await bus.publish(
        [
            event("o1", 1, "retailsync.refund.issued"),
            event("o1", 2, "retailsync.order.updated"),
            CloudEvent.new(
                type="retailsync.inventory.adjusted", source="wms", subject="sku/A-1", data={}
            ),
            CloudEvent.new(
                type="retailsync.inventory.adjusted", source="wms", subject="sku/B-1", data={}
            ),
        ]
    )
    await bus.deliver_until_idle(timeout=20)
    assert [e.type for e in refunds.handled] == ["retailsync.refund.issued"]
    assert [e.subject for e in sku.handled] == ["sku/A-1"]


async def test_a_handler_effect_rolls_back_with_a_failed_attempt(bus_backend_factory) -> None:
    calls = 0

    async def flaky(ev: CloudEvent, ctx) -> None:
        nonlocal calls
        calls += 1
        ctx.connection.execute(
            sa.text(
                "INSERT INTO bus_test_effects (subscriber, event_source, event_id, "
                "worker_pid) VALUES ('orders', :s, :i, 0)"
            ),
            {"s": ev.source, "i": ev.id},
        )
        if ctx.attempt == 1:
            raise TimeoutError("ERP did not answer within 5 s")

    bus = await bus_backend_factory([Subscription("orders", flaky, retry=FAST)])
    engine = create_engine_for(bus_backend_factory.database_url)
    ensure_effects_table(engine)
    await bus.publish([event("o1", 1)])
    await bus.deliver_until_idle(timeout=20)
    assert calls == 2
    assert len(effect_rows(engine, "orders")) == 1
    engine.dispose()


async def test_a_failing_statement_costs_only_its_own_handler(bus_backend_factory) -> None:
    """Handlers of a batch share its transaction: a statement that fails (on PostgreSQL it
    aborts the transaction until rolled back) or a savepoint a handler leaves open must cost
    the other events of the batch nothing."""

    async def project(ev: CloudEvent, ctx) -> None:
        conn = ctx.connection
        conn.execute(
            sa.text(
                "INSERT INTO bus_test_effects (subscriber, event_source, event_id, "
                "worker_pid) VALUES ('orders', :s, :i, 0)"
            ),
            {"s": ev.source, "i": ev.id},
        )
        if ev.data["position"] == 2:
            conn.exec_driver_sql("INSERT INTO bus_no_such_table VALUES (1)")
        if ev.data["position"] == 4:
            conn.begin_nested()  # never closed
            raise RuntimeError("gave up inside its own savepoint")

    bus = await bus_backend_factory(
        [Subscription("orders", project, retry=RetryPolicy(max_attempts=1))]
    )
    engine = create_engine_for(bus_backend_factory.database_url)
    ensure_effects_table(engine)
    await bus.publish([event(f"k{n}", n) for n in range(6)])
    await bus.deliver_until_idle(timeout=20)
    applied = sorted(r.event_id for r in effect_rows(engine, "orders"))
    assert applied == ["k0-0", "k1-1", "k3-3", "k5-5"]
    assert sorted(e.event_id for e in await bus.exceptions.list()) == ["k2-2", "k4-4"]
    engine.dispose()


async def test_a_restarted_worker_continues_without_redelivering(bus_backend_factory) -> None:
    first = RecordingHandler()
    bus = await bus_backend_factory([Subscription("orders", first)])
    await bus.publish([event("o1", n) for n in range(5)])
    await bus.deliver_until_idle(timeout=20)
    await bus.close()
    second = RecordingHandler()
    again = await bus_backend_factory([Subscription("orders", second)])
    await again.publish([event("o1", 5)])
    await again.deliver_until_idle(timeout=20)
    assert [e.id for e in first.handled] == [f"o1-{n}" for n in range(5)]
    assert [e.id for e in second.handled] == ["o1-5"]


async def test_run_delivery_delivers_until_stopped(bus_backend_factory) -> None:
    handler = RecordingHandler()
    bus = await bus_backend_factory([Subscription("orders", handler)])
    stop = asyncio.Event()
    runner = asyncio.create_task(bus.run_delivery(stop))
    await bus.publish([event("o1", 1), event("o2", 1)])
    for _ in range(500):
        if len(handler.handled) == 2:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(runner, 10)
    assert sorted(e.id for e in handler.handled) == ["o1-1", "o2-1"]


async def test_stale_entity_versions_are_skipped(bus_backend_factory) -> None:
    state: dict[str, int] = {}
    stale: list[int] = []

    async def apply_order_state(ev: CloudEvent, ctx) -> None:
        assert ev.entityversion is not None
        if ctx.apply_if_newer(f"order:{ev.subject}"):
            state[ev.subject or ""] = ev.entityversion
        else:
            stale.append(ev.entityversion)

    bus = await bus_backend_factory([Subscription("order-view", apply_order_state)])
    versions = [1, 3, 2, 5, 4]
    await bus.publish(
        [
            CloudEvent.new(
                type="retailsync.order.updated",
                source="test/shop",
                id=f"v{v}",
                subject="order/o1",
                partitionkey="order/o1",  # arrival order below is out of version order
                entityversion=v,
                data={},
            )
            for v in versions
        ]
    )
    await bus.deliver_until_idle(timeout=20)
    assert state == {"order/o1": 5}
    assert stale == [2, 4]
