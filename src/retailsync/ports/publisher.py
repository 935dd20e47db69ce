"""The one way the rest of the hub hands canonical events to the event bus."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from retailsync.domain.events import CloudEvent


class EventPublisher(Protocol):
    """Durably stores events; returns once they are committed (duplicates absorbed).

    Implementations may return per-event outcomes (the bus does); callers that only need the
    durability guarantee ignore the result.
    """

    async def publish(self, events: Sequence[CloudEvent]) -> object: ...
