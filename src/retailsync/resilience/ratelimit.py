"""Token buckets per downstream — in-process, or shared through PostgreSQL — with lanes.

:class:`LaneRateLimiter` sits in front of a bucket: waiters queue by lane and one pump per
process asks the bucket for a token on behalf of the most urgent waiter. Batch and backfill
waiters may not take the last ``reserve`` tokens, so an agent call finds a token at once
even when another process is flooding the same downstream with batch work.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from retailsync.resilience.config import Lane, RateLimitPolicy
from retailsync.resilience.errors import Overloaded
from retailsync.resilience.lanes import LaneQueue
from retailsync.resilience.tables import rate_buckets

#: Longest a pump sleeps before asking the bucket again (tokens may be freed elsewhere).
MAX_POLL_SECONDS = 0.25


class TokenBucket(Protocol):
    """Grants one token at a time; says how long to wait when it cannot."""

    @property
    def description(self) -> str: ...

    async def try_take(self, reserve: int) -> float:
        """Take one token if more than ``reserve`` are available: return 0.0, else the wait."""
        ...


class LocalTokenBucket:
    """A token bucket in this process's memory (embedded mode, one process)."""

    def __init__(
        self,
        policy: RateLimitPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = float(policy.capacity)
        self.rate = policy.refill_per_second
        self._clock = clock
        self._tokens = self.capacity
        self._updated = clock()

    @property
    def description(self) -> str:
        return "in-process token bucket"

    def take_now(self, reserve: int) -> float:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        need = 1.0 + reserve
        if self._tokens >= need - 1e-9:
            self._tokens -= 1.0
            return 0.0
        return max(1e-4, (need - self._tokens) / self.rate)

    async def try_take(self, reserve: int) -> float:
        return self.take_now(reserve)


_AVAILABLE = (
    "LEAST(capacity, tokens + rate * GREATEST(0.0, "
    "EXTRACT(EPOCH FROM (statement_timestamp() - updated_at))::float8))"
)

_TAKE_SQL = sa.text(
    f"""
    UPDATE resilience_rate_buckets SET
        tokens = CASE WHEN {_AVAILABLE} >= :need THEN {_AVAILABLE} - 1.0 ELSE {_AVAILABLE} END,
        granted = ({_AVAILABLE} >= :need),
        updated_at = GREATEST(updated_at, statement_timestamp())
    WHERE downstream = :downstream
    RETURNING tokens, granted, rate
    """
)

_ENSURE_SQL = sa.text(
    """
    INSERT INTO resilience_rate_buckets (downstream, tokens, capacity, rate, granted, updated_at)
    VALUES (:downstream, :capacity, :capacity, :rate, false, statement_timestamp())
    ON CONFLICT (downstream) DO UPDATE SET
        capacity = excluded.capacity,
        rate = excluded.rate,
        tokens = LEAST(resilience_rate_buckets.tokens, excluded.capacity)
    """
)


class PostgresTokenBucket:
    """One row per downstream in ``resilience_rate_buckets``, taken with a single UPDATE.

    The row's lock serialises concurrent takers across processes; the refill is computed
    from the database clock, so hosts with skewed clocks still share one limit.
    """

    def __init__(self, downstream: str, policy: RateLimitPolicy, engine: Engine) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError(
                f"a shared token bucket needs PostgreSQL, not {engine.dialect.name}: "
                "use LocalTokenBucket in embedded mode"
            )
        self.downstream = downstream
        self.policy = policy
        self.engine = engine
        self._ready = False

    @property
    def description(self) -> str:
        return "token bucket shared through PostgreSQL"

    def _ensure(self) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                _ENSURE_SQL,
                {
                    "downstream": self.downstream,
                    "capacity": float(self.policy.capacity),
                    "rate": self.policy.refill_per_second,
                },
            )
        self._ready = True

    def take_now(self, reserve: int) -> float:
        if not self._ready:
            self._ensure()
        with self.engine.begin() as connection:
            # A lost bucket update after a crash costs at most a burst: skip the WAL flush.
            connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            row = connection.execute(
                _TAKE_SQL, {"downstream": self.downstream, "need": 1.0 + reserve}
            ).one()
        tokens, granted, rate = float(row[0]), bool(row[1]), float(row[2])
        if granted:
            return 0.0
        return max(0.001, (1.0 + reserve - tokens) / rate)

    async def try_take(self, reserve: int) -> float:
        return await asyncio.to_thread(self.take_now, reserve)

    def tokens(self) -> float:
        """The stored token count (without refill), for diagnostics."""
        with self.engine.connect() as connection:
            value = connection.execute(
                sa.select(rate_buckets.c.tokens).where(rate_buckets.c.downstream == self.downstream)
            ).scalar_one_or_none()
        return float(value) if value is not None else float(self.policy.capacity)


class LaneRateLimiter:
    """Hands out a bucket's tokens to waiters in lane order, one pump per process."""

    def __init__(self, downstream: str, bucket: TokenBucket, reserve: int) -> None:
        self.downstream = downstream
        self.bucket = bucket
        self.reserve = reserve
        self._waiters = LaneQueue()
        self._pump: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._asking_for: Lane | None = None
        self.waited_seconds = 0.0

    def waiting(self) -> Counter[str]:
        return self._waiters.waiting()

    async def acquire(self, lane: Lane, max_wait: float) -> None:
        """Wait for a token for ``lane``; :class:`Overloaded` after ``max_wait`` seconds."""
        started = time.monotonic()
        if not self._waiters and await self.bucket.try_take(self._reserve_for(lane)) == 0.0:
            return
        future = self._waiters.push(lane)
        head = self._waiters.head()
        if head is not None and head[1] is future and self._asking_for is not lane:
            self._wake.set()
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._run_pump(), name=f"rate-{self.downstream}")
        try:
            async with asyncio.timeout(max_wait):
                await future
        except TimeoutError:
            raise Overloaded(
                f"{self.downstream}: the rate limit kept a {lane.label}-lane call waiting more "
                f"than {max_wait:g}s ({sum(self.waiting().values())} calls queued)",
                downstream=self.downstream,
            ) from None
        finally:
            self.waited_seconds += time.monotonic() - started

    def _reserve_for(self, lane: Lane) -> int:
        return 0 if lane is Lane.AGENT else self.reserve

    async def _run_pump(self) -> None:
        while True:
            head = self._waiters.head()
            if head is None:
                return
            lane, _ = head
            self._asking_for = lane
            wait = await self.bucket.try_take(self._reserve_for(lane))
            if wait == 0.0:
                granted = self._waiters.pop()  # the most urgent live waiter now
                if granted is not None:
                    granted[1].set_result(None)
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(wait, MAX_POLL_SECONDS)):
                    await self._wake.wait()

    async def close(self) -> None:
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
