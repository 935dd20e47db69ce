"""Errors of the NATS JetStream bus backend; each message says what to do."""

from __future__ import annotations

from retailsync.bus.errors import BusError


class NatsBusError(BusError):
    """Base class of the JetStream backend's errors."""


class NatsUnavailable(NatsBusError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"cannot reach NATS JetStream at {url}: {reason}. Start nats-server with -js "
            "(JetStream enabled) or set RETAILSYNC_NATS__URL to a reachable server"
        )
        self.url = url


class NatsSettingInvalid(NatsBusError, ValueError):
    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"NATS bus setting {setting!r} {problem}")
        self.setting = setting


class StreamLayoutMismatch(NatsBusError):
    def __init__(self, stream: str, problem: str) -> None:
        super().__init__(f"JetStream stream {stream!r} cannot be used: {problem}")
        self.stream = stream


class PublishNotAcknowledged(NatsBusError):
    """JetStream did not confirm storing an event; nothing may be assumed stored."""

    def __init__(self, count: int, reason: str) -> None:
        super().__init__(
            f"{count} event(s) were not confirmed as stored by JetStream ({reason}); publish "
            "the batch again: events already stored are answered as duplicates"
        )
        self.count = count


class MaxDeliveriesExceeded(NatsBusError):
    """A worker took the event and never answered, ``deliveries`` times (crash, kill, hang)."""

    def __init__(self, deliveries: int) -> None:
        super().__init__(
            f"the event was handed to a worker {deliveries} times and no worker finished it "
            "(the process died or hung each time); inspect the event and the worker logs, "
            "then retry or discard it"
        )
        self.deliveries = deliveries


class EventNoLongerStored(NatsBusError):
    def __init__(self, stream: str, sequence: int) -> None:
        super().__init__(
            f"event {sequence} is no longer in stream {stream!r} (removed by the stream's "
            "retention, max_age); it cannot be delivered again: resolve or discard the entry"
        )
        self.sequence = sequence
