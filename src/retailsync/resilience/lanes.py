"""A priority waiting line: the waiter of the most urgent lane, then the oldest, goes first."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from retailsync.resilience.config import Lane


class LaneQueue:
    """Futures waiting for a resource, ordered by (lane, arrival)."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Lane, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def push(self, lane: Lane) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (int(lane), next(self._seq), lane, future))
        return future

    def head(self) -> tuple[Lane, asyncio.Future[None]] | None:
        """The next live waiter (cancelled ones are dropped), without removing it."""
        while self._heap:
            _, _, lane, future = self._heap[0]
            if not future.done():
                return lane, future
            heapq.heappop(self._heap)
        return None

    def pop(self) -> tuple[Lane, asyncio.Future[None]] | None:
        head = self.head()
        if head is not None:
            heapq.heappop(self._heap)
        return head

    def waiting(self) -> Counter[str]:
        """How many live waiters each lane has."""
        return Counter(lane.label for _, _, lane, future in self._heap if not future.done())

    def __bool__(self) -> bool:
        return self.head() is not None


current_lane: ContextVar[Lane] = ContextVar("current_lane", default=Lane.BATCH)


@contextmanager
def using_lane(lane: Lane) -> Iterator[None]:
    """Run the calls made inside the block in ``lane`` (e.g. ``Lane.AGENT`` for a person)."""
    token = current_lane.set(lane)
    try:
        yield
    finally:
        current_lane.reset(token)
