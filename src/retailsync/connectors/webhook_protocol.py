"""What every inbound webhook connector implements, so one ingress route serves them all."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from retailsync.domain.events import CloudEvent


class WebhookRejected(Exception):
    """The delivery is not authentic or not acceptable; nothing may be published.

    ``status`` is the HTTP status to answer (401 bad signature, 400 stale timestamp or bad
    headers, 409 replayed delivery); ``reason`` is a short machine code such as
    ``bad-signature``, ``stale-timestamp``, ``replayed``.
    """

    def __init__(self, reason: str, detail: str, status: int = 401) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.status = status


class WebhookUnmappable(Exception):
    """Authentic, but the payload cannot be turned into canonical events (a data error)."""


class WebhookReceiver(Protocol):
    """A vendor's webhook scheme: authenticate, identify the delivery, map to events."""

    name: str  # path segment in POST /v1/webhooks/{name}

    def verify(self, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        """Raise :class:`WebhookRejected` unless the signature and timestamp are valid."""
        ...

    def delivery_id(self, headers: Mapping[str, str], body: bytes) -> str:
        """The vendor's unique id for this delivery (used for replay protection)."""
        ...

    def to_events(self, headers: Mapping[str, str], body: bytes) -> list[CloudEvent]:
        """Canonical events for this delivery; raise :class:`WebhookUnmappable` if impossible.

        Event ids must be derived from the vendor's own ids so that the same vendor change
        delivered twice yields the same event id (the bus then stores it once).
        """
        ...
