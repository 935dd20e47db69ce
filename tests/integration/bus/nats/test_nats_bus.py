"""The JetStream backend beyond the shared contract: partitions, dedup window, poison events,
replay by sequence / time / type / key / correlation id, lookups and configuration errors."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from typing import Any

import nats
import pytest

from retailsync.bus.backend import (
    BusOptions,
    Classification,
    ExceptionStatus,
    PublishStatus,
    ReplayRequest,
    RetryPolicy,
    Subscription,
)
from retailsync.bus.backends.nats_errors import (
    MaxDeliveriesExceeded,
    NatsSettingInvalid,
    NatsUnavailable,
    StreamLayoutMismatch,
)
from retailsync.bus.backends.nats_layout import NatsSettings, StreamLayout
from retailsync.bus.testkit import RecordingHandler
from retailsync.bus.testkit import keyed_event as event
from retailsync.domain.events import CloudEvent
from retailsync.resilience.errors import DownstreamUnavailable

pytestmark = pytest.mark.nats

FAST = RetryPolicy(max_attempts=4, initial_backoff=0.05, max_backoff=0.1, jitter=0.1)


async def test_a_failing_key_holds_back_only_itself_inside_one_partition(
    nats_bus: Any,
) -> None:
    """With a single partition every key shares one consumer: the retries of one key must
    still not hold the others (they wait in SQL, not in JetStream)."""

    def fail(ev: CloudEvent, attempt: int) -> Exception | None:
        if ev.id == "slow-0" and attempt < 3:
            return DownstreamUnavailable("ERP answered 503", downstream="erp")
        return None

    handler = RecordingHandler(fail=fail)
    one_partition = BusOptions(poll_interval=0.01, lease_ttl=1.0, shards=1)
    patient = RetryPolicy(max_attempts=4, initial_backoff=0.4, max_backoff=0.4, jitter=0.0)
    bus = await nats_bus([Subscription("orders", handler, retry=patient)], options=one_partition)
    await bus.publish(
        [event("slow", 0), event("slow", 1)]
        + [event(f"fast{k}", n) for n in range(3) for k in range(3)]
        + [event("slow", 2)]
    )
    await bus.deliver_until_idle(timeout=20)
    ids = [e.id for e in handler.handled]
    assert ids.index("fast2-2") < ids.index("slow-0")
    assert handler.order_by_key()["slow"] == ["slow-0", "slow-1", "slow-2"]
    for k in range(3):
        assert handler.order_by_key()[f"fast{k}"] == [f"fast{k}-{n}" for n in range(3)]
    assert [a for (_, i, a) in handler.calls if i == "slow-0"] == [1, 2, 3]
    assert await bus.exceptions.count() == 0


async def test_a_repeat_after_the_duplicate_window_is_stored_but_handled_once(
    nats_bus: Any,
) -> None:
    handler = RecordingHandler()
    bus = await nats_bus([Subscription("orders", handler)], duplicate_window=0.5)
    first = await bus.publish([event("o1", 0)])
    again = await bus.publish([event("o1", 0)])
    assert first[0].status is PublishStatus.ACCEPTED
    assert again[0].status is PublishStatus.DUPLICATE
    assert again[0].sequence == first[0].sequence
    await asyncio.sleep(0.8)  # the server forgets the message id
    late = await bus.publish([event("o1", 0)])
    assert late[0].status is PublishStatus.ACCEPTED and late[0].sequence != first[0].sequence
    await bus.deliver_until_idle(timeout=20)
    assert [e.id for e in handler.handled] == ["o1-0"]  # the SQL inbox absorbed the copy


async def test_an_event_that_keeps_killing_workers_becomes_an_exception(
    nats_bus: Any, nats_url: str
) -> None:
    """A worker that takes an event and dies never answers; after ``max_deliver`` such
    deliveries JetStream gives up and the advisory becomes an exception entry."""
    handler = RecordingHandler()
    bus = await nats_bus([Subscription("orders", handler)], max_deliver=2)
    await bus.publish([event("doomed", 0), event("doomed", 1)])
    layout = bus.layout
    partition = layout.partition_of_key("doomed")
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        crashing = await js.pull_subscribe_bind(
            layout.consumer_name("orders", partition), stream=layout.stream
        )
        for delivery in (1, 2):  # two workers take it and die without answering
            [msg] = await crashing.fetch(1, timeout=5)
            assert msg.metadata.num_delivered == delivery
            assert msg.metadata.sequence.stream == 1
            await asyncio.sleep(bus.ack_wait + 0.3)  # handed out again once AckWait is over
        await crashing.unsubscribe()
    finally:
        await nc.close()
    await bus.deliver_until_idle(timeout=20)
    [entry] = await bus.exceptions.list()
    assert entry.event_id == "doomed-0"
    assert entry.classification is Classification.UNKNOWN
    assert entry.error_type.endswith(MaxDeliveriesExceeded.__name__)
    assert entry.history[0].attempt == 2
    assert [e.id for e in handler.handled] == ["doomed-1"]  # the key moved on

    await bus.exceptions.retry(entry.id, actor="ops", reason="worker fixed")
    await bus.deliver_until_idle(timeout=20)
    assert [e.id for e in handler.handled] == ["doomed-1", "doomed-0"]
    assert (await bus.exceptions.get(entry.id)).status is ExceptionStatus.RESOLVED


async def test_replay_by_time_type_key_correlation_and_sequence(nats_bus: Any) -> None:
    handler = RecordingHandler()
    bus = await nats_bus([Subscription("orders", handler)])
    early = [event("o1", 0), event("o2", 0, "retailsync.refund.issued", correlationid="c-9")]
    await bus.publish(early)
    await asyncio.sleep(0.05)
    boundary = datetime.now(UTC)
    await asyncio.sleep(0.05)
    late = [
        event("o1", 1),
        event("o2", 1, "retailsync.refund.issued", correlationid="c-9"),
        event("o3", 0),
    ]
    outcomes = await bus.publish(late)
    await bus.deliver_until_idle(timeout=20)
    assert len(handler.handled) == 5

    async def replay(**criteria: object) -> list[str]:
        handler.handled.clear()
        tally = await bus.replay(ReplayRequest(subscriber="orders", force=True, **criteria))
        assert tally.delivered == tally.total
        return [e.id for e in handler.handled]

    assert await replay(since=boundary) == ["o1-1", "o2-1", "o3-0"]
    assert await replay(until=boundary) == ["o1-0", "o2-0"]
    assert await replay(event_types=("retailsync.refund.*",)) == ["o2-0", "o2-1"]
    assert await replay(partition_key="o1") == ["o1-0", "o1-1"]
    assert await replay(correlation_id="c-9", since=boundary) == ["o2-1"]

    handler.handled.clear()
    unforced = await bus.replay(ReplayRequest(subscriber="orders", partition_key="o3"))
    assert (unforced.total, unforced.skipped, handler.handled) == (1, 1, [])

    from_sequence = [
        msg.metadata.sequence.stream async for msg in bus.scan(start_sequence=outcomes[1].sequence)
    ]
    assert from_sequence == [o.sequence for o in outcomes[1:]]
    handler.handled.clear()
    by_sequence = await bus.replay(
        ReplayRequest(subscriber="orders", force=True),
        start_sequence=outcomes[0].sequence,
        end_sequence=outcomes[1].sequence,
    )
    assert by_sequence.delivered == 2
    assert [e.id for e in handler.handled] == ["o1-1", "o2-1"]


async def test_get_event_and_durability_on_return(nats_bus: Any, nats_url: str) -> None:
    bus = await nats_bus()
    events = [event(f"o{k}", 0) for k in range(20)]
    outcomes = await bus.publish(events)
    nc = await nats.connect(nats_url)  # another client sees every event once publish returned
    try:
        info = await nc.jetstream().stream_info(bus.layout.stream)
        assert info.state.messages == 20
        assert info.config.storage == "file"
    finally:
        await nc.close()
    found = await bus.get_event("test/shop", "o7-0")
    assert found is not None and found.event == events[7]
    assert found.sequence == outcomes[7].sequence
    assert await bus.get_event("test/shop", "missing") is None
    assert await bus.get_event("other/source", "o7-0") is None


async def test_scan_leaves_no_consumer_behind(nats_bus: Any, nats_url: str) -> None:
    bus = await nats_bus([Subscription("orders", RecordingHandler())])
    await bus.publish([event("o1", 0)])
    await bus.get_event("test/shop", "o1-0")
    await bus.replay(ReplayRequest(subscriber="orders"))
    nc = await nats.connect(nats_url)
    try:
        names = [c.name for c in await nc.jetstream().consumers_info(bus.layout.stream)]
    finally:
        await nc.close()
    assert sorted(names) == sorted(
        bus.layout.consumer_name("orders", p) for p in range(bus.options.shards)
    )


async def test_a_stream_partitioned_differently_is_refused(nats_bus: Any) -> None:
    first = await nats_bus([Subscription("orders", RecordingHandler())])
    assert first.options.shards == 4
    other = BusOptions(poll_interval=0.01, lease_ttl=1.0, shards=8)
    with pytest.raises(StreamLayoutMismatch, match="set shards=4"):
        await nats_bus([Subscription("orders", RecordingHandler())], options=other)


async def test_an_unreachable_server_is_reported(nats_bus: Any) -> None:
    nowhere = dataclasses.replace(nats_bus, nats_url="nats://127.0.0.1:1", made=[])
    with pytest.raises(NatsUnavailable, match="cannot reach NATS JetStream"):
        await nowhere(connect_timeout=0.5)


def test_settings_are_checked() -> None:
    with pytest.raises(NatsSettingInvalid, match="max_age"):
        NatsSettings.from_extra({"duplicate_window": 3600, "max_age": 60})
    with pytest.raises(NatsSettingInvalid, match="max_deliver"):
        NatsSettings.from_extra({"max_deliver": 1})
    assert NatsSettings.from_extra({"delete_on_close": True}).duplicate_window == 2 * 86_400


def test_layout_names_and_partitions_are_stable() -> None:
    layout = StreamLayout("RS", 16)
    ev = event("order-42", 0)
    assert layout.subject_for(ev).startswith(f"RS.events.{layout.partition_of(ev)}.")
    assert layout.partition_of(ev) == layout.partition_of_key("order-42")
    assert layout.consumer_name("erp-sync", 3) == "erp-sync-p3"
    dotted = layout.consumer_name("erp.sync", 3)
    assert "." not in dotted and dotted != layout.consumer_name("erp_sync", 3)
