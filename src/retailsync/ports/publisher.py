"""The one way the rest of the hub hands canonical events to the event bus."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from retailsync.domain.events import CloudEvent


class EventPublisher(Protocol):
    """Durably stores events; returns once they are committed (duplicates absorbed)."""

    async def publish(self, events: Sequence[CloudEvent]) -> None: ...
