"""Contract: exhausted deliveries land in the exception queue; operators act on it, audited."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from retailsync.bus.backend import (
    BusOptions,
    Classification,
    ExceptionFilter,
    ExceptionStatus,
    RetryPolicy,
    Subscription,
)
from retailsync.bus.errors import ExceptionNotFound
from retailsync.bus.testkit import RecordingHandler
from retailsync.bus.testkit import keyed_event as event
from retailsync.domain.events import CloudEvent
from retailsync.resilience.errors import DownstreamUnavailable, UnknownReference

FAST = RetryPolicy(
    max_attempts=3, business_max_attempts=2, initial_backoff=0.01, max_backoff=0.02, jitter=0.1
)


def poison_ids(*ids: str, error=None):
    def fail(ev: CloudEvent, attempt: int) -> Exception | None:
        if ev.id in ids:
            return error or UnknownReference(
                f"SKU of {ev.id} is unknown to the ERP", downstream="erp"
            )
        return None

    return fail


async def test_poison_event_goes_to_the_exception_queue_without_blocking(
    bus_backend_factory,
) -> None:
    handler = RecordingHandler(fail=poison_ids("bad-0"))
    bus = await bus_backend_factory([Subscription("erp-sync", handler, retry=FAST)])
    await bus.publish(
        [event("bad", 0), event("good", 0), event("bad", 1), event("good", 1)]
        + [event(f"k{i}", 0) for i in range(5)]
    )
    await bus.deliver_until_idle(timeout=20)
    handled = {e.id for e in handler.handled}
    assert handled == {"good-0", "good-1", "bad-1"} | {f"k{i}-0" for i in range(5)}
    assert [a for (_, i, a) in handler.calls if i == "bad-0"] == [1, 2]
    [entry] = await bus.exceptions.list()
    assert entry.event_id == "bad-0"
    assert entry.subscriber == "erp-sync"
    assert entry.classification is Classification.BUSINESS
    assert entry.status is ExceptionStatus.OPEN
    assert entry.system == "erp"
    assert entry.error_type.endswith("UnknownReference")
    assert "unknown to the ERP" in entry.error_message
    assert [h.attempt for h in entry.history] == [1, 2]
    full = await bus.exceptions.get(entry.id)
    assert full.event is not None and full.event.id == "bad-0"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (DownstreamUnavailable("ERP answered 503", downstream="erp"), Classification.TRANSIENT),
        (RuntimeError("unexpected"), Classification.UNKNOWN),
    ],
)
async def test_exhausted_failures_are_classified(bus_backend_factory, error, expected) -> None:
    handler = RecordingHandler(fail=poison_ids("x-0", error=error))
    bus = await bus_backend_factory([Subscription("erp-sync", handler, retry=FAST)])
    await bus.publish([event("x", 0)])
    await bus.deliver_until_idle(timeout=20)
    [entry] = await bus.exceptions.list()
    assert entry.classification is expected
    assert len(entry.history) == 3  # max_attempts for transient / unclassified


async def test_retry_resolve_discard_are_audited(bus_backend_factory) -> None:
    broken = {"a-0", "b-0", "c-0"}

    def fail(ev: CloudEvent, attempt: int) -> Exception | None:
        return UnknownReference("unknown SKU") if ev.id in broken else None

    handler = RecordingHandler(fail=fail)
    bus = await bus_backend_factory([Subscription("erp-sync", handler, retry=FAST)])
    await bus.publish([event("a", 0), event("b", 0), event("c", 0)])
    await bus.deliver_until_idle(timeout=20)
    entries = {e.event_id: e for e in await bus.exceptions.list()}
    assert set(entries) == broken

    broken.discard("a-0")  # the master data was fixed
    outcome = await bus.exceptions.retry(entries["a-0"].id, actor="ops@shop", reason="SKU added")
    assert outcome.changed == (entries["a-0"].id,)
    await bus.deliver_until_idle(timeout=20)
    assert "a-0" in {e.id for e in handler.handled}
    assert (await bus.exceptions.get(entries["a-0"].id)).status is ExceptionStatus.RESOLVED

    await bus.exceptions.resolve(entries["b-0"].id, actor="ops@shop", note="fixed in ERP by hand")
    await bus.exceptions.discard([entries["c-0"].id], actor="ops@shop", reason="test order")
    assert (await bus.exceptions.get(entries["b-0"].id)).status is ExceptionStatus.RESOLVED
    assert (await bus.exceptions.get(entries["c-0"].id)).status is ExceptionStatus.DISCARDED
    assert await bus.exceptions.count() == 0

    actions = await bus.exceptions.actions(entries["a-0"].id)
    assert [(a.action, a.actor, a.reason) for a in actions] == [
        ("retry", "ops@shop", "SKU added"),
        ("resolve", "system", "redelivery succeeded"),
    ]
    [discard] = await bus.exceptions.actions(entries["c-0"].id)
    assert (discard.action, discard.reason) == ("discard", "test order")
    assert discard.at > datetime.now(UTC) - timedelta(minutes=1)

    with pytest.raises(ValueError, match="reason"):
        await bus.exceptions.discard(entries["b-0"].id, actor="ops@shop", reason=" ")
    with pytest.raises(ExceptionNotFound):
        await bus.exceptions.get(10_000_000)
    skipped = await bus.exceptions.retry(entries["b-0"].id, actor="ops@shop")
    assert skipped.changed == () and "resolved" in skipped.skipped[0][1]


async def test_bulk_actions_by_filter(bus_backend_factory) -> None:
    def fail(ev: CloudEvent, attempt: int) -> Exception | None:
        if ev.type.endswith("refund.issued"):
            return DownstreamUnavailable("payments 502", downstream="payments")
        return UnknownReference("unknown order", downstream="erp")

    handler = RecordingHandler(fail=fail)
    bus = await bus_backend_factory([Subscription("sync", handler, retry=FAST)])
    await bus.publish(
        [event(f"r{i}", 0, "retailsync.refund.issued") for i in range(4)]
        + [event(f"o{i}", 0, "retailsync.order.updated") for i in range(3)]
    )
    await bus.deliver_until_idle(timeout=20)
    assert await bus.exceptions.count() == 7
    by_system = ExceptionFilter(system="payments", classification=Classification.TRANSIENT)
    assert await bus.exceptions.count(by_system) == 4
    assert await bus.exceptions.count(ExceptionFilter(event_type="retailsync.order.*")) == 3
    future = datetime.now(UTC) + timedelta(hours=1)
    assert await bus.exceptions.count(ExceptionFilter(older_than=future)) == 7
    assert await bus.exceptions.count(ExceptionFilter(newer_than=future)) == 0

    outcome = await bus.exceptions.discard(
        ExceptionFilter(event_type="retailsync.order.*"), actor="ops", reason="cancelled orders"
    )
    assert len(outcome.changed) == 3
    await bus.exceptions.retry(by_system, actor="ops", reason="payments back")
    assert await bus.exceptions.count(ExceptionFilter(statuses=(ExceptionStatus.RETRYING,))) in (
        0,
        4,
    )
    await bus.deliver_until_idle(timeout=20)  # still failing: back to open with more history
    reopened = await bus.exceptions.list(by_system)
    assert len(reopened) == 4
    assert all(e.manual_retry_count == 1 and len(e.history) == 6 for e in reopened)


async def test_retry_limit_marks_poison_permanently_failed(bus_backend_factory) -> None:
    handler = RecordingHandler(fail=poison_ids("p-0"))
    options = BusOptions(poll_interval=0.01, shards=4, max_manual_retries=2)
    bus = await bus_backend_factory([Subscription("sync", handler, retry=FAST)], options=options)
    await bus.publish([event("p", 0)])
    await bus.deliver_until_idle(timeout=20)
    [entry] = await bus.exceptions.list()
    for _ in range(2):
        assert (await bus.exceptions.retry(entry.id, actor="ops")).changed == (entry.id,)
        await bus.deliver_until_idle(timeout=20)
    final = await bus.exceptions.retry(entry.id, actor="ops")
    assert final.changed == ()
    assert (await bus.exceptions.get(entry.id)).status is ExceptionStatus.PERMANENTLY_FAILED
    actions = [a.action for a in await bus.exceptions.actions(entry.id)]
    assert actions.count("retry") == 2 and actions[-1] == "permanently_failed"


async def test_transient_exceptions_retry_when_the_downstream_is_healthy(
    bus_backend_factory,
) -> None:
    erp_up = False

    def fail(ev: CloudEvent, attempt: int) -> Exception | None:
        return None if erp_up else DownstreamUnavailable("ERP 503", downstream="erp")

    async def probe(system: str) -> bool:
        return system == "erp" and erp_up

    handler = RecordingHandler(fail=fail)
    bus = await bus_backend_factory(
        [Subscription("sync", handler, retry=FAST, downstream="erp")], health_probe=probe
    )
    await bus.publish([event(f"o{i}", 0) for i in range(3)])
    await bus.deliver_until_idle(timeout=20)
    assert await bus.exceptions.count() == 3
    erp_up = True
    stop = asyncio.Event()
    runner = asyncio.create_task(bus.run_delivery(stop))
    for _ in range(300):
        if len(handler.handled) == 3:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(runner, 10)
    assert sorted(e.id for e in handler.handled) == ["o0-0", "o1-0", "o2-0"]
    assert await bus.exceptions.count() == 0
    [entry] = await bus.exceptions.list(
        ExceptionFilter(statuses=(ExceptionStatus.RESOLVED,)), limit=1
    )
    first_action = (await bus.exceptions.actions(entry.id))[0]
    assert first_action.actor == "system:auto-retry"
