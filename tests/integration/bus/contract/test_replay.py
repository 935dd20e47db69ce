"""Contract: replay re-delivers to one subscriber by criteria, without repeating effects
unless forced."""

from __future__ import annotations

import pytest

from retailsync.bus.backend import ReplayProgress, ReplayRequest, Subscription
from retailsync.bus.errors import UnknownSubscriber
from retailsync.bus.testkit import RecordingHandler, effect_rows, ensure_effects_table
from retailsync.bus.testkit import keyed_event as event
from retailsync.db import create_engine_for


async def test_replay_by_criteria_without_and_with_force(bus_backend_factory) -> None:
    views = RecordingHandler(write_effects=True)
    other = RecordingHandler()
    bus = await bus_backend_factory(
        [Subscription("order-view", views), Subscription("other", other)]
    )
    engine = create_engine_for(bus_backend_factory.database_url)
    ensure_effects_table(engine)
    await bus.publish(
        [event("o1", n, correlationid="corr-1") for n in range(3)]
        + [event("o2", n, "retailsync.refund.issued") for n in range(2)]
    )
    await bus.deliver_until_idle(timeout=20)
    assert len(effect_rows(engine, "order-view")) == 5

    seen: list[ReplayProgress] = []
    tally = await bus.replay(ReplayRequest("order-view", correlation_id="corr-1"), seen.append)
    assert (tally.total, tally.delivered, tally.skipped) == (3, 0, 3)
    assert seen[0].total == 3 and seen[-1] == tally
    assert len(effect_rows(engine, "order-view")) == 5  # nothing applied twice

    forced = await bus.replay(ReplayRequest("order-view", partition_key="o1", force=True))
    assert (forced.total, forced.delivered) == (3, 3)
    assert len(effect_rows(engine, "order-view")) == 8
    assert [e.id for e in views.handled[-3:]] == ["o1-0", "o1-1", "o1-2"]

    by_type = await bus.replay(
        ReplayRequest("order-view", event_types=("retailsync.refund.*",), force=True)
    )
    assert by_type.delivered == 2
    stored = await bus.get_event("test/shop", "o2-1")
    assert stored is not None
    window = await bus.replay(
        ReplayRequest("order-view", since=stored.stored_at, until=stored.stored_at)
    )
    assert window.total == 0
    assert len(other.handled) == 5  # the other subscriber saw no replay
    with pytest.raises(UnknownSubscriber):
        await bus.replay(ReplayRequest("nobody"))
    engine.dispose()
