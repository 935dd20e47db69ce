"""Contract: publishing is durable, deduplicated and reports each event's outcome."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from retailsync.bus.backend import BusOptions, PublishStatus
from retailsync.bus.errors import BatchTooLarge
from retailsync.domain.events import CloudEvent


def order_event(n: int, key: str = "order-1", **kw: Any) -> CloudEvent:
    return CloudEvent.new(
        type="retailsync.order.updated",
        source="test/shop",
        id=f"evt-{n}",
        subject=f"order/{key}",
        partitionkey=key,
        data={"position": n},
        **kw,
    )


async def test_accepted_events_are_stored_before_publish_returns(bus_backend_factory) -> None:
    bus = await bus_backend_factory()
    outcomes = await bus.publish([order_event(1), order_event(2)])
    assert [o.status for o in outcomes] == [PublishStatus.ACCEPTED] * 2
    assert [o.index for o in outcomes] == [0, 1]
    stored = await bus.get_event("test/shop", "evt-2")
    assert stored is not None
    assert stored.event == order_event(2).model_copy(update={"time": stored.event.time})
    assert stored.sequence == outcomes[1].sequence


async def test_a_repeated_event_is_acknowledged_and_stored_once(bus_backend_factory) -> None:
    bus = await bus_backend_factory()
    first = await bus.publish([order_event(1)])
    again = await bus.publish([order_event(1), order_event(2), order_event(2)])
    assert first[0].status is PublishStatus.ACCEPTED
    assert [o.status for o in again] == [
        PublishStatus.DUPLICATE,
        PublishStatus.ACCEPTED,
        PublishStatus.DUPLICATE,
    ]
    assert all(o.ok for o in again)
    # a second process (same database) sees the same store
    other = await bus_backend_factory(worker_id="w2")
    assert (await other.publish([order_event(1)]))[0].status is PublishStatus.DUPLICATE


async def test_invalid_events_are_rejected_by_index_and_valid_ones_kept(
    bus_backend_factory,
) -> None:
    bus = await bus_backend_factory()
    good = order_event(7).to_json_dict()
    batch: list[dict[str, Any]] = [
        {"id": "x1", "source": "test/shop", "type": "retailsync.order.created"},  # no time
        good,
        {**good, "id": "x3", "time": "2026-01-01T10:00:00"},  # naive time
        {**good, "id": "x4", "entityversion": -1, "unknown": 1},
    ]
    outcomes = await bus.publish(batch)
    assert [o.status for o in outcomes] == [
        PublishStatus.REJECTED,
        PublishStatus.ACCEPTED,
        PublishStatus.REJECTED,
        PublishStatus.REJECTED,
    ]
    assert [o.index for o in outcomes] == [0, 1, 2, 3]
    assert {e.location for e in outcomes[0].errors} == {"time"}
    assert "timezone" in outcomes[2].errors[0].message
    assert {e.location for e in outcomes[3].errors} == {"entityversion", "unknown"}
    assert await bus.get_event("test/shop", "evt-7") is not None
    assert await bus.get_event("test/shop", "x3") is None


async def test_batches_above_the_limit_are_refused(bus_backend_factory) -> None:
    bus = await bus_backend_factory(options=BusOptions(max_batch_size=3))
    with pytest.raises(BatchTooLarge, match="at most 3"):
        await bus.publish([order_event(n) for n in range(4)])


async def test_event_time_keeps_its_instant(bus_backend_factory) -> None:
    bus = await bus_backend_factory()
    moment = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    await bus.publish([order_event(1, time=moment)])
    stored = await bus.get_event("test/shop", "evt-1")
    assert stored is not None and stored.event.time == moment
