"""Token buckets, lane priority, the bulkhead, config validation and HTTP classification."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from retailsync.resilience import Lane, Overloaded, RateLimitPolicy
from retailsync.resilience.bulkhead import PriorityBulkhead
from retailsync.resilience.config import DEFAULT_POLICIES, ResilienceSettings
from retailsync.resilience.errors import (
    DownstreamThrottled,
    DownstreamTimeout,
    DownstreamUnavailable,
    UnknownReference,
    ValidationRejected,
)
from retailsync.resilience.http import error_for_status, parse_retry_after
from retailsync.resilience.ratelimit import LaneRateLimiter, LocalTokenBucket
from retailsync.resilience.stats import CallStats


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_holds_the_window_promise_and_keeps_the_agent_reserve() -> None:
    policy = RateLimitPolicy(limit=100, burst=10, agent_reserve=4, jitter_allowance_seconds=0)
    assert policy.refill_per_second == pytest.approx(90)
    clock = FakeClock()
    bucket = LocalTokenBucket(policy, clock=clock)
    granted = 0
    while bucket.take_now(reserve=4) == 0.0:
        granted += 1
    assert granted == 6  # batch may not touch the last 4 tokens
    assert sum(bucket.take_now(reserve=0) == 0.0 for _ in range(10)) == 4
    # Over a whole second: burst + refill never exceeds the limit.
    clock.now = 10.0
    bucket = LocalTokenBucket(policy, clock=clock)
    starts = 0
    while clock.now < 11.0:
        wait = bucket.take_now(reserve=0)
        if wait == 0.0:
            starts += 1
        else:
            clock.now += wait
    assert starts <= 100


def test_bad_rate_limits_are_refused_with_a_reason() -> None:
    with pytest.raises(ValidationError, match="burst"):
        RateLimitPolicy(limit=10, burst=10)
    with pytest.raises(ValidationError, match="agent_reserve"):
        RateLimitPolicy(limit=10, burst=3, agent_reserve=3)
    assert set(DEFAULT_POLICIES) == {"erp", "service_desk", "payments", "commerce", "wms"}
    settings = ResilienceSettings()
    assert settings.policy_for("erp").rate_limit.limit == 20
    assert settings.policy_for("loyalty").rate_limit.limit == 20  # generic default


async def test_waiting_agents_are_served_before_batch() -> None:
    bucket = LocalTokenBucket(RateLimitPolicy(limit=21, burst=1, jitter_allowance_seconds=0))
    limiter = LaneRateLimiter("erp", bucket, reserve=0)
    await limiter.acquire(Lane.BATCH, max_wait=1)  # takes the only token
    order: list[str] = []

    async def wait(lane: Lane, label: str) -> None:
        await limiter.acquire(lane, max_wait=5)
        order.append(label)

    tasks = [asyncio.create_task(wait(Lane.BATCH, f"batch-{n}")) for n in range(3)]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(wait(Lane.BACKFILL, "backfill")))
    tasks.append(asyncio.create_task(wait(Lane.AGENT, "agent")))
    await asyncio.gather(*tasks)
    await limiter.close()
    assert order[0] == "agent"
    assert order[1:4] == ["batch-0", "batch-1", "batch-2"]
    assert order[-1] == "backfill"


async def test_bulkhead_hands_slots_to_agents_first_and_refuses_after_max_wait() -> None:
    bulkhead = PriorityBulkhead("erp", max_concurrent=1)
    await bulkhead.acquire(Lane.BATCH, max_wait=1)
    order: list[str] = []

    async def use(lane: Lane, label: str) -> None:
        async with bulkhead.slot(lane, max_wait=5):
            order.append(label)

    tasks = [asyncio.create_task(use(Lane.BATCH, "batch"))]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(use(Lane.AGENT, "agent")))
    await asyncio.sleep(0)
    with pytest.raises(Overloaded, match="no free call slot"):
        await bulkhead.acquire(Lane.BACKFILL, max_wait=0.01)
    bulkhead.release()
    await asyncio.gather(*tasks)
    assert order == ["agent", "batch"]
    assert bulkhead.in_use == 0


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (429, DownstreamThrottled),
        (503, DownstreamUnavailable),
        (500, DownstreamUnavailable),
        (504, DownstreamTimeout),
        (400, ValidationRejected),
        (422, ValidationRejected),
        (404, UnknownReference),
    ],
)
def test_http_statuses_are_classified(status: int, expected: type[Exception]) -> None:
    error = error_for_status(status, downstream="erp", operation="get_order", retry_after=2)
    assert type(error) is expected
    assert error_for_status(200, downstream="erp", operation="get_order") is None


def test_retry_after_parses_seconds_and_http_dates() -> None:
    assert parse_retry_after("3") == 3
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_stats_percentiles_and_error_rate() -> None:
    clock = FakeClock()
    stats = CallStats(window_seconds=60, clock=clock)
    for n in range(1, 101):
        stats.record(n / 1000, outcome="ok" if n % 10 else "transient")
    window = stats.snapshot()
    assert window.calls == 100 and window.failures == 10
    assert window.p50_ms == pytest.approx(50) and window.p99_ms == pytest.approx(99)
    clock.now += 61
    assert stats.snapshot().calls == 0
