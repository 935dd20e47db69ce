"""Partition leases of the JetStream backend: a worker holds many events of a partition at
once, so the lease decides who pulls, a new holder waits for what a dead one held, and a
worker that lost its lease while its handlers ran commits nothing (fencing)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import nats
import pytest
import sqlalchemy as sa

from retailsync.bus import tables as t
from retailsync.bus.backend import BusOptions, DeliveryContext, Subscription
from retailsync.bus.consumer import utcnow
from retailsync.bus.testkit import RecordingHandler, effect_rows, ensure_effects_table
from retailsync.bus.testkit import keyed_event as event
from retailsync.domain.events import CloudEvent

pytestmark = pytest.mark.nats

ONE_PARTITION = BusOptions(poll_interval=0.01, lease_ttl=1.0, shards=1)


def _set_lease(engine: sa.Engine, namespace: str, owner: str, expires_in: float) -> None:
    """Give the single partition of subscription ``orders`` to ``owner``."""
    lc = t.partition_leases.c
    with engine.begin() as conn:
        conn.execute(
            t.partition_leases.delete().where(lc.namespace == namespace, lc.subscriber == "orders")
        )
        conn.execute(
            t.partition_leases.insert().values(
                namespace=namespace,
                subscriber="orders",
                partition=0,
                owner=owner,
                lease_expires_at=utcnow() + timedelta(seconds=expires_in),
            )
        )


async def _die_holding(bus: Any, nats_url: str, count: int, heartbeaten: int = 0) -> None:
    """A worker takes ``count`` events of the single partition, sends an ``in_progress``
    heartbeat for the oldest ``heartbeaten`` of them a moment later, and dies without
    answering; its lease has run out."""
    nc = await nats.connect(nats_url)
    try:
        dead = await nc.jetstream().pull_subscribe_bind(
            bus.layout.consumer_name("orders", 0), stream=bus.layout.stream
        )
        held = await dead.fetch(count, timeout=5)
        assert len(held) == count
        if heartbeaten:
            await asyncio.sleep(0.3)
            for msg in held[:heartbeaten]:  # their acknowledgement deadline moves later
                await msg.in_progress()
            await nc.flush()
    finally:
        await nc.close()
    _set_lease(bus.engine, bus.layout.namespace, "dead-worker", expires_in=0.0)


async def test_a_new_holder_gets_what_a_dead_one_held_before_anything_newer(
    nats_bus: Any, nats_url: str
) -> None:
    """A worker took a partition's events and died holding them; its lease ran out. The next
    holder must not pull at once: the server would hand it the newer events first and the
    dead worker's only after AckWait, out of order."""
    handler = RecordingHandler()
    bus = await nats_bus([Subscription("orders", handler)], options=ONE_PARTITION)
    await bus.publish([event("o1", n) for n in range(5)])
    await _die_holding(bus, nats_url, 5)
    await bus.publish([event("o1", n) for n in range(5, 10)])

    await bus.deliver_until_idle(timeout=20)

    assert [e.id for e in handler.handled] == [f"o1-{n}" for n in range(10)]
    redelivered = [attempt for (_, event_id, attempt) in handler.calls if event_id < "o1-5"]
    assert redelivered == [2] * 5  # the dead worker's events, each handed out a second time


async def test_what_a_dead_holder_kept_alive_comes_back_in_stream_order(
    nats_bus: Any, nats_url: str
) -> None:
    """A worker keeps the events it holds alive with ``in_progress`` heartbeats, and its
    newest ones may not have had one yet when it dies. The server hands events out again in
    the order their acknowledgement deadlines ran out: the newer, un-heartbeaten ones first.
    The next holder must still apply the key's events in stream order."""
    handler = RecordingHandler()
    bus = await nats_bus([Subscription("orders", handler)], options=ONE_PARTITION)
    await bus.publish([event("o1", n) for n in range(10)])
    await _die_holding(bus, nats_url, 10, heartbeaten=5)
    await bus.publish([event("o1", n) for n in range(10, 15)])

    await bus.deliver_until_idle(timeout=20)

    assert [e.id for e in handler.handled] == [f"o1-{n}" for n in range(15)]


async def test_a_worker_that_lost_its_lease_commits_nothing(pg_nats_bus: Any) -> None:
    """While a batch's handler runs, another worker takes the partition over (here: the
    lease row is given away, as a takeover after a long pause would). The batch must not
    commit; once the lease comes back the events are delivered again, each effect once,
    in order."""
    recorder = RecordingHandler(write_effects=True)
    taken_over = False

    async def handler(ev: CloudEvent, ctx: DeliveryContext) -> None:
        nonlocal taken_over
        await recorder(ev, ctx)
        if not taken_over:
            taken_over = True
            _set_lease(ctx_engine, namespace, "another-worker", expires_in=0.3)

    bus = await pg_nats_bus([Subscription("orders", handler)], options=ONE_PARTITION)
    ctx_engine, namespace = bus.engine, bus.layout.namespace
    ensure_effects_table(bus.engine)
    await bus.publish([event("o1", n) for n in range(6)])

    await bus.deliver_until_idle(timeout=20)

    assert taken_over
    rows = effect_rows(bus.engine, "orders")
    assert [r.event_id for r in rows] == [f"o1-{n}" for n in range(6)]  # once each, in order
    again = [event_id for (_, event_id, attempt) in recorder.calls if attempt == 2]
    assert again[:1] == ["o1-0"] and again == sorted(again)  # the fenced batch came back


async def test_two_workers_share_the_partitions(pg_nats_bus: Any) -> None:
    handlers = [RecordingHandler(write_effects=True), RecordingHandler(write_effects=True)]
    options = BusOptions(poll_interval=0.01, lease_ttl=0.6, shards=8)
    first = await pg_nats_bus([Subscription("orders", handlers[0])], options=options)
    second = await pg_nats_bus(
        [Subscription("orders", handlers[1])], options=options, worker_id="w2"
    )
    ensure_effects_table(first.engine)
    stop = asyncio.Event()
    runs = [asyncio.create_task(bus.run_delivery(stop)) for bus in (first, second)]
    events = [event(f"k{k}", n) for n in range(5) for k in range(40)]
    try:
        lc = t.partition_leases.c
        for _ in range(100):  # the second worker joins; the first hands over its surplus
            with first.engine.connect() as conn:
                owners = dict(
                    conn.execute(
                        sa.select(lc.owner, sa.func.count())
                        .where(lc.namespace == first.layout.namespace, lc.owner.is_not(None))
                        .group_by(lc.owner)
                    ).all()
                )
            if sorted(owners.values()) == [4, 4]:
                break
            await asyncio.sleep(0.1)
        assert sorted(owners.values()) == [4, 4]
        await first.publish(events)
        for _ in range(200):
            if len(effect_rows(first.engine, "orders")) >= len(events):
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*runs)
    assert all(h.handled for h in handlers)  # both did some of the work
    rows = effect_rows(first.engine, "orders")
    assert sorted(r.event_id for r in rows) == sorted(e.id for e in events)  # each once
    positions: dict[str, list[int]] = {}
    for row in rows:
        positions.setdefault(row.partition_key, []).append(row.position)
    assert all(p == sorted(p) for p in positions.values())  # order per key
