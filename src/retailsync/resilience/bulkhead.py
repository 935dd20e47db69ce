"""A concurrency limit per downstream whose free slots go to the most urgent lane first."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from retailsync.resilience.config import Lane
from retailsync.resilience.errors import Overloaded
from retailsync.resilience.lanes import LaneQueue


class PriorityBulkhead:
    """At most ``max_concurrent`` calls in flight in this process; waiters queue by lane."""

    def __init__(self, downstream: str, max_concurrent: int) -> None:
        self.downstream = downstream
        self.max_concurrent = max_concurrent
        self.in_use = 0
        self._waiters = LaneQueue()

    def waiting(self) -> Counter[str]:
        return self._waiters.waiting()

    async def acquire(self, lane: Lane, max_wait: float) -> None:
        if self.in_use < self.max_concurrent and not self._waiters:
            self.in_use += 1
            return
        future = self._waiters.push(lane)
        try:
            async with asyncio.timeout(max_wait):
                await future
        except TimeoutError:
            raise Overloaded(
                f"{self.downstream}: no free call slot for the {lane.label} lane within "
                f"{max_wait:g}s ({self.in_use} calls in flight, limit {self.max_concurrent})",
                downstream=self.downstream,
            ) from None
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # the slot was handed over just as the caller gave up
            raise

    def release(self) -> None:
        nxt = self._waiters.pop()
        if nxt is not None:
            nxt[1].set_result(None)  # the slot passes straight to the next waiter
            return
        self.in_use = max(0, self.in_use - 1)

    @asynccontextmanager
    async def slot(self, lane: Lane, max_wait: float) -> AsyncIterator[None]:
        await self.acquire(lane, max_wait)
        try:
            yield
        finally:
            self.release()
