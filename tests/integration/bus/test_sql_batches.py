"""SQL backend: how delivery batches are read and how far the cursors move.

A batch is read after each shard's cursor (one range scan of the store when the cursors are
close together, a merge of per-shard scans otherwise) and every cursor of the batch's shards
then moves to the batch's last sequence. These tests use batches much smaller than the
backlog and cursors left at different places, and check that nothing is skipped or repeated
and that each key keeps its order.
"""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from retailsync.bus import tables as t
from retailsync.bus.backend import BusOptions, DeliveryContext, RetryPolicy, Subscription
from retailsync.bus.backends.sql import shard_of
from retailsync.bus.testkit import RecordingHandler, effect_rows, ensure_effects_table
from retailsync.bus.testkit import keyed_event as event
from retailsync.bus.validation import partition_key_of
from retailsync.db import create_engine_for
from retailsync.domain.events import CloudEvent
from retailsync.resilience.errors import DownstreamUnavailable

SMALL = BusOptions(poll_interval=0.01, lease_ttl=2.0, delivery_batch_size=7, shards=8)
SQL_BACKENDS = pytest.mark.parametrize("bus_backend_factory", ["sqlite", "postgres"], indirect=True)


def in_order_per_key(handler: RecordingHandler) -> bool:
    return all(
        ids == sorted(ids, key=lambda i: int(i.rsplit("-", 1)[1]))
        for ids in handler.order_by_key().values()
    )


@SQL_BACKENDS
async def test_many_small_batches_keep_order_and_deliver_once(bus_backend_factory) -> None:
    handler = RecordingHandler(write_effects=True)
    bus = await bus_backend_factory([Subscription("orders", handler)], options=SMALL)
    engine = create_engine_for(bus_backend_factory.database_url)
    ensure_effects_table(engine)
    events = [event(f"k{k}", n) for n in range(10) for k in range(15)]
    for start in range(0, len(events), 40):
        await bus.publish(events[start : start + 40])
    await bus.deliver_until_idle(timeout=30)
    handled = [e.id for e in handler.handled]
    assert sorted(handled) == sorted(e.id for e in events)
    assert in_order_per_key(handler)
    assert len(effect_rows(engine, "orders")) == len(events)
    engine.dispose()


@SQL_BACKENDS
@pytest.mark.parametrize("ahead_by", [3, 80], ids=["close", "far-apart"])
async def test_cursors_at_different_places_are_caught_up_without_gaps_or_repeats(
    bus_backend_factory, ahead_by: int
) -> None:
    """As left by a worker that owned only some shards, or by a version that moved each
    cursor only to its own shard's last event: half the shards' cursors are ahead."""
    handler = RecordingHandler()
    bus = await bus_backend_factory([Subscription("orders", handler)], options=SMALL)
    events = [event(f"k{k}", n) for n in range(10) for k in range(16)]
    outcomes = await bus.publish(events)
    sequence = {e.id: o.sequence for e, o in zip(events, outcomes, strict=True)}
    ahead = sorted(s for s in sequence.values() if s is not None)[ahead_by - 1]
    front = {s for s in range(SMALL.shards) if s % 2 == 0}
    engine = create_engine_for(bus_backend_factory.database_url)
    with engine.begin() as conn:
        conn.execute(
            t.cursors.update()
            .where(t.cursors.c.subscriber == "orders", t.cursors.c.shard.in_(front))
            .values(last_seq=ahead)
        )
    engine.dispose()
    await bus.deliver_until_idle(timeout=30)
    expected = [
        e.id
        for e in events
        if not (shard_of(partition_key_of(e), SMALL.shards) in front and sequence[e.id] <= ahead)
    ]
    handled = [e.id for e in handler.handled]
    assert len(handled) == len(set(handled))
    assert sorted(handled) == sorted(expected)
    assert in_order_per_key(handler)
    later = event("k1", 99)
    await bus.publish([later])
    await bus.deliver_until_idle(timeout=30)
    assert [e.id for e in handler.handled[len(handled) :]] == [later.id]


@SQL_BACKENDS
async def test_a_delivery_moves_every_cursor_to_the_batch_end(bus_backend_factory) -> None:
    """Also shards without events in the batch: the cursors stay level, so the next batch is
    read with one range scan."""
    handler = RecordingHandler()
    bus = await bus_backend_factory([Subscription("orders", handler)], options=SMALL)
    await bus.publish([event("only-key", n) for n in range(3)])
    await bus.deliver_until_idle(timeout=30)
    engine = create_engine_for(bus_backend_factory.database_url)
    with engine.connect() as conn:
        cursors = set(
            conn.execute(
                sa.select(t.cursors.c.last_seq).where(t.cursors.c.subscriber == "orders")
            ).scalars()
        )
        last = conn.execute(sa.select(sa.func.max(t.events.c.seq))).scalar_one()
    engine.dispose()
    assert cursors == {last}
    assert [e.id for e in handler.handled] == [f"only-key-{n}" for n in range(3)]


@SQL_BACKENDS
async def test_a_batch_out_of_time_leaves_the_rest_to_the_next_one(bus_backend_factory) -> None:
    """With no time to spare every batch delivers its first event and defers the others: the
    deferred ones are delivered later, once each, in order per key, their effects once."""
    handler = RecordingHandler(write_effects=True)
    no_time = BusOptions(
        poll_interval=0.01, lease_ttl=2.0, delivery_batch_size=50, shards=8, delivery_hold_limit=0
    )
    bus = await bus_backend_factory([Subscription("orders", handler)], options=no_time)
    engine = create_engine_for(bus_backend_factory.database_url)
    ensure_effects_table(engine)
    events = [event(f"k{k}", n) for n in range(6) for k in range(5)]
    await bus.publish(events)
    await bus.deliver_until_idle(timeout=30)
    assert [e.id for e in handler.handled] == [e.id for e in events]
    assert len(effect_rows(engine, "orders")) == len(events)
    engine.dispose()


@pytest.mark.parametrize("bus_backend_factory", ["sqlite"], indirect=True)
async def test_slow_handlers_do_not_hold_publishing_for_a_whole_batch(bus_backend_factory) -> None:
    """SQLite has one write lock and a delivery batch holds it while its handlers run (a
    handler may wait on a downstream's HTTP answer): the batch stops after its time limit so a
    publish waits for one handler, not for all of them."""
    log: list[str] = []
    first_running = asyncio.Event()
    all_handled = asyncio.Event()

    async def slow(event_: CloudEvent, ctx: DeliveryContext) -> None:
        log.append(event_.id)
        first_running.set()
        await asyncio.sleep(0.05)
        if len([entry for entry in log if entry != "published"]) == 11:
            all_handled.set()

    options = BusOptions(
        poll_interval=0.01, lease_ttl=2.0, delivery_batch_size=50, delivery_hold_limit=0.01
    )
    bus = await bus_backend_factory([Subscription("slow", slow)], options=options)
    await bus.publish([event("k", n) for n in range(10)])
    stop = asyncio.Event()
    delivery = asyncio.create_task(bus.run_delivery(stop))
    await first_running.wait()
    await bus.publish([event("other", 0)])
    log.append("published")
    await asyncio.wait_for(all_handled.wait(), 10)
    stop.set()
    await delivery
    # Before the limit the publish waited for all ten handlers (log index 10).
    assert log.index("published") <= 3, log


@SQL_BACKENDS
async def test_parked_keys_out_of_time_stay_parked_for_the_next_batch(bus_backend_factory) -> None:
    """Every key's first event fails once; with no time to spare each batch retries one
    parked key and leaves the others parked: all are delivered once, in order per key."""

    def fail_first_try(ev: CloudEvent, attempt: int) -> Exception | None:
        if ev.id.endswith("-0") and attempt == 1:
            return DownstreamUnavailable("ERP answered 503", downstream="erp")
        return None

    handler = RecordingHandler(fail=fail_first_try, write_effects=True)
    no_time = BusOptions(
        poll_interval=0.01, lease_ttl=2.0, delivery_batch_size=50, shards=8, delivery_hold_limit=0
    )
    fast_retry = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02, jitter=0.1)
    bus = await bus_backend_factory(
        [Subscription("orders", handler, retry=fast_retry)], options=no_time
    )
    engine = create_engine_for(bus_backend_factory.database_url)
    ensure_effects_table(engine)
    events = [event(f"k{k}", n) for n in range(3) for k in range(6)]
    await bus.publish(events)
    await bus.deliver_until_idle(timeout=30)
    assert sorted(e.id for e in handler.handled) == sorted(e.id for e in events)
    assert in_order_per_key(handler)
    assert len(effect_rows(engine, "orders")) == len(events)
    assert await bus.exceptions.count() == 0
    engine.dispose()


def count_inbox_deletes(engine: sa.Engine) -> None:
    """A trigger that counts deleted inbox records (a record is deleted again when its event
    was claimed but not delivered in that batch)."""
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE inbox_deletes (n INTEGER NOT NULL)")
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(
                "CREATE FUNCTION count_inbox_delete() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN INSERT INTO inbox_deletes VALUES (1); RETURN OLD; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER inbox_deleted AFTER DELETE ON bus_inbox "
                "FOR EACH ROW EXECUTE FUNCTION count_inbox_delete()"
            )
        else:
            conn.exec_driver_sql(
                "CREATE TRIGGER inbox_deleted AFTER DELETE ON bus_inbox "
                "BEGIN INSERT INTO inbox_deletes VALUES (1); END"
            )


@SQL_BACKENDS
async def test_slow_handlers_make_batches_claim_only_what_they_run(bus_backend_factory) -> None:
    """Handlers of ~10 ms and a 0.1 s time limit: a batch of 80 runs ~10 handlers. The first
    batch claims all 80 and releases the ~70 it had no time for; the later ones take on
    only as many events as their handlers ran in time before (without that, each batch
    claims and releases everything still waiting: ~280 records deleted again)."""
    handler = RecordingHandler(write_effects=True)

    async def slow(event_: CloudEvent, ctx: DeliveryContext) -> None:
        await asyncio.sleep(0.01)
        await handler(event_, ctx)

    options = BusOptions(
        poll_interval=0.01,
        lease_ttl=5.0,
        delivery_batch_size=80,
        shards=8,
        delivery_hold_limit=0.1,
    )
    bus = await bus_backend_factory([Subscription("orders", slow)], options=options)
    engine = create_engine_for(bus_backend_factory.database_url)
    ensure_effects_table(engine)
    count_inbox_deletes(engine)
    events = [event(f"k{k}", n) for n in range(10) for k in range(8)]
    await bus.publish(events)
    await bus.deliver_until_idle(timeout=60)
    assert [e.id for e in handler.handled] == [e.id for e in events]
    assert len(effect_rows(engine, "orders")) == len(events)
    with engine.connect() as conn:
        released = conn.exec_driver_sql("SELECT count(*) FROM inbox_deletes").scalar_one()
    engine.dispose()
    assert released < 100, f"{released} inbox records claimed and released again"
