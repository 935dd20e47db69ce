"""How the bus maps onto JetStream: stream, subject and consumer names, and their settings.

One stream per namespace holds every canonical event; an event's subject carries its
partition (a stable hash of its partition key); one durable pull consumer per
(subscription, partition), pulled only by the worker holding its lease, gives per-key order
across any number of worker processes. A second, small stream captures the server's
MAX_DELIVERIES advisories so an event that kept killing workers becomes an exception entry
even if no worker was listening.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from retailsync.bus.backend import BackendConfig
from retailsync.bus.backends.nats_errors import NatsSettingInvalid, StreamLayoutMismatch
from retailsync.bus.backends.sql import shard_of
from retailsync.bus.consumer import dedup_hash
from retailsync.bus.validation import partition_key_of
from retailsync.domain.events import CloudEvent

DAY = 86_400.0
DEFAULT_DUPLICATE_WINDOW = 2 * DAY
DEFAULT_MAX_DELIVER = 5
ADVISORY_RETENTION = 14 * DAY
MSG_ID_HEADER = "Nats-Msg-Id"
_NAMESPACE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DESCRIPTION = re.compile(r"partitions=(\d+)")
_CONSUMER_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def identity_hash(source: str, id: str) -> str:
    """The ``Nats-Msg-Id`` (and inbox key) of the event with this ``source`` and ``id``."""
    probe = CloudEvent.model_construct(
        id=id, source=source, type="", time=datetime(1970, 1, 1, tzinfo=UTC)
    )
    return dedup_hash(probe)


@dataclass(frozen=True, slots=True)
class NatsSettings:
    """JetStream-specific tuning, read from ``BackendConfig.extra`` (all optional).

    ``duplicate_window`` (seconds, default two days) is how long the server remembers a
    ``Nats-Msg-Id``: a repeat inside it is answered DUPLICATE and not stored; a repeat after it
    is stored again and absorbed by the SQL inbox at delivery. ``max_age`` (seconds, 0 = keep
    forever) is the stream's retention and must be at least the duplicate window.
    ``max_deliver`` is how many times JetStream hands an event to workers that never answer
    (crash, kill) before it gives up and the event becomes an exception entry.
    ``fetch_timeout`` is the long-poll length of one pull request; ``connect_timeout`` bounds
    the first connection (later disconnects are retried for ever). ``batch_linger`` is how
    long the processor waits for more events to share one SQL transaction.
    ``max_in_flight`` is how many events of one partition a worker may hold unacknowledged
    (the consumer's ``MaxAckPending``).
    """

    duplicate_window: float = DEFAULT_DUPLICATE_WINDOW
    max_age: float = 0.0
    replicas: int = 1
    max_deliver: int = DEFAULT_MAX_DELIVER
    fetch_timeout: float | None = None
    publish_timeout: float = 10.0
    connect_timeout: float = 5.0
    batch_linger: float = 0.002
    max_in_flight: int = 1000
    delete_on_close: bool = False

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> NatsSettings:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in extra.items() if k in known}
        settings = cls(**values)
        if settings.duplicate_window <= 0:
            raise NatsSettingInvalid("duplicate_window", "must be more than 0 seconds")
        if settings.max_age and settings.max_age < settings.duplicate_window:
            raise NatsSettingInvalid(
                "max_age",
                f"({settings.max_age:g} s) must be at least duplicate_window "
                f"({settings.duplicate_window:g} s), or 0 to keep events forever",
            )
        if settings.max_deliver < 2:
            raise NatsSettingInvalid("max_deliver", "must be at least 2")
        if settings.max_in_flight < 1:
            raise NatsSettingInvalid("max_in_flight", "must be at least 1")
        return settings


@dataclass(frozen=True, slots=True)
class StreamLayout:
    """Names and subjects of one namespace's streams."""

    namespace: str
    partitions: int

    @classmethod
    def for_config(cls, config: BackendConfig) -> StreamLayout:
        if not _NAMESPACE.match(config.namespace):
            raise NatsSettingInvalid(
                "namespace",
                f"{config.namespace!r} must be 1-64 characters of [A-Za-z0-9_-] "
                "(it becomes the stream name prefix and the subject root)",
            )
        if config.options.shards < 1:
            raise NatsSettingInvalid("shards", "must be at least 1")
        return cls(config.namespace, config.options.shards)

    @property
    def stream(self) -> str:
        return f"{self.namespace}_EVENTS"

    @property
    def advisory_stream(self) -> str:
        return f"{self.namespace}_ADVISORIES"

    @property
    def subjects(self) -> str:
        return f"{self.namespace}.events.>"

    @property
    def advisory_subjects(self) -> str:
        return f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{self.stream}.*"

    @property
    def description(self) -> str:
        return f"retailsync canonical events; partitions={self.partitions}"

    def partition_of(self, event: CloudEvent) -> int:
        return shard_of(partition_key_of(event), self.partitions)

    def partition_of_key(self, partition_key: str) -> int:
        return shard_of(partition_key, self.partitions)

    def subject_for(self, event: CloudEvent, digest: str | None = None) -> str:
        """``<ns>.events.<partition>.<hh>``: ``hh`` narrows a lookup by source + id (the
        first two digits of ``digest``, the event's ``dedup_hash``, computed when not given)."""
        digest = digest if digest is not None else dedup_hash(event)
        return f"{self.namespace}.events.{self.partition_of(event)}.{digest[:2]}"

    def partition_filter(self, partition: int) -> str:
        return f"{self.namespace}.events.{partition}.*"

    def lookup_filter(self, source: str, id: str) -> str:
        return f"{self.namespace}.events.*.{identity_hash(source, id)[:2]}"

    def consumer_name(self, subscriber: str, partition: int) -> str:
        """A durable name per (subscription, partition); '.' is not allowed in it."""
        safe = _CONSUMER_SAFE.sub("_", subscriber)
        if safe != subscriber:
            safe += "-" + hashlib.blake2b(subscriber.encode(), digest_size=4).hexdigest()
        return f"{safe}-p{partition}"

    def stream_config(self, settings: NatsSettings) -> StreamConfig:
        return StreamConfig(
            name=self.stream,
            description=self.description,
            subjects=[self.subjects],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            num_replicas=settings.replicas,
            duplicate_window=settings.duplicate_window,
            max_age=settings.max_age,
            max_msgs=-1,
            max_bytes=-1,
        )

    def advisory_stream_config(self, settings: NatsSettings) -> StreamConfig:
        return StreamConfig(
            name=self.advisory_stream,
            description=f"max-deliveries advisories of {self.stream}",
            subjects=[self.advisory_subjects],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=settings.replicas,
            max_age=ADVISORY_RETENTION,
            duplicate_window=60.0,
        )

    def check_partitions(self, description: str | None) -> None:
        """Refuse to run against a stream partitioned differently (per-key order would break)."""
        match = _DESCRIPTION.search(description or "")
        if match is None:
            raise StreamLayoutMismatch(self.stream, "it was not created by retailsync")
        found = int(match.group(1))
        if found != self.partitions:
            raise StreamLayoutMismatch(
                self.stream,
                f"it has {found} partitions and this process is configured with "
                f"{self.partitions} (bus shards); set shards={found}, or replay into a new "
                "namespace",
            )

    def consumer_config(
        self,
        subscriber: str,
        partition: int,
        *,
        ack_wait: float,
        settings: NatsSettings,
        start_latest: bool,
    ) -> ConsumerConfig:
        name = self.consumer_name(subscriber, partition)
        return ConsumerConfig(
            name=name,
            durable_name=name,
            description=f"retailsync subscription {subscriber} partition {partition}",
            deliver_policy=DeliverPolicy.NEW if start_latest else DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_deliver=settings.max_deliver,
            max_ack_pending=settings.max_in_flight,
            filter_subject=self.partition_filter(partition),
        )
