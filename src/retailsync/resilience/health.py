"""The connector health snapshot shown to operators (API, console, metrics)."""

from __future__ import annotations

import asyncio
from datetime import datetime

from pydantic import BaseModel

from retailsync.resilience.guard import Downstream


class LatencyPercentiles(BaseModel):
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class DeferredQueueDepth(BaseModel):
    pending: int
    sending: int
    failed: int
    sent: int


class RateLimitView(BaseModel):
    limit: int
    period_seconds: float
    burst: int
    agent_reserve: int
    shared: str


class ConnectorHealth(BaseModel):
    """One downstream's state and why it is in that state."""

    name: str
    breaker_state: str
    breaker_reason: str
    breaker_changed_at: datetime
    half_open_at: datetime | None
    consecutive_failures: int
    times_opened: int
    window_seconds: float
    calls_in_window: int
    failures_in_window: int
    error_rate: float
    latency: LatencyPercentiles
    in_flight: int
    waiting: dict[str, int]
    deferred_writes: DeferredQueueDepth | None
    rate_limit: RateLimitView
    totals: dict[str, int]
    retries: int
    stale_reads: int
    last_error: str | None


def snapshot(downstream: Downstream, depth: dict[str, int] | None) -> ConnectorHealth:
    """Build the health view from the live objects (``depth`` from the deferred queue)."""
    window = downstream.stats.snapshot()
    waiting = downstream.bulkhead.waiting() + downstream.limiter.waiting()
    rate = downstream.policy.rate_limit
    return ConnectorHealth(
        name=downstream.name,
        breaker_state=downstream.breaker.state.value,
        breaker_reason=downstream.breaker.reason,
        breaker_changed_at=downstream.breaker.changed_at,
        half_open_at=downstream.breaker.half_open_at(),
        consecutive_failures=downstream.breaker.consecutive_failures,
        times_opened=downstream.breaker.opened_count,
        window_seconds=downstream.stats.window_seconds,
        calls_in_window=window.calls,
        failures_in_window=window.failures,
        error_rate=round(window.error_rate, 4),
        latency=LatencyPercentiles(
            p50_ms=window.p50_ms, p95_ms=window.p95_ms, p99_ms=window.p99_ms
        ),
        in_flight=downstream.bulkhead.in_use,
        waiting={lane: waiting.get(lane, 0) for lane in ("agent", "batch", "backfill")},
        deferred_writes=DeferredQueueDepth(**depth) if depth is not None else None,
        rate_limit=RateLimitView(
            limit=rate.limit,
            period_seconds=rate.period_seconds,
            burst=rate.capacity,
            agent_reserve=rate.reserve,
            shared=downstream.limiter.bucket.description,
        ),
        totals=dict(downstream.stats.totals),
        retries=downstream.stats.retries,
        stale_reads=downstream.stats.stale_reads,
        last_error=downstream.stats.last_error,
    )


def queue_depth(downstream: Downstream) -> dict[str, int] | None:
    if downstream.deferred is None:
        return None
    return downstream.deferred.depth(downstream.name)


async def connector_health(downstream: Downstream) -> ConnectorHealth:
    depth = await asyncio.to_thread(queue_depth, downstream)
    return snapshot(downstream, depth)
