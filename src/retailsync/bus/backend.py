"""The backend-neutral event bus interface: what every bus backend implements.

A backend stores canonical events durably (deduplicated on ``source`` + ``id``), delivers them
to named subscriptions in per-partition-key order with at-least-once semantics, keeps an
idempotent-consumer record so each handler's effect is applied once, parks failing events with
backoff, moves exhausted ones to the exception queue and re-delivers on request (replay).

Two backends implement :class:`EventBusBackend`: ``retailsync.bus.backends.sql`` (SQLite or
PostgreSQL, a transactional outbox/inbox) and ``retailsync.bus.backends.nats`` (JetStream).
Whatever the transport, the *consumer side* — the inbox, entity versions, the exception queue
and its audit trail — lives in the hub's SQL database, so a handler's SQL effects commit in
the same transaction as its inbox record on every backend (see :mod:`retailsync.bus.consumer`).

Each backend module exposes ``create_backend(config: BackendConfig) -> EventBusBackend``.
"""

from __future__ import annotations

import abc
import builtins
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Literal, Protocol

from retailsync.domain.events import CloudEvent

if TYPE_CHECKING:
    import asyncio

    import sqlalchemy as sa

# --------------------------------------------------------------------------------------------
# Publishing
# --------------------------------------------------------------------------------------------


class PublishStatus(StrEnum):
    """What happened to one event of a published batch."""

    ACCEPTED = "accepted"  # stored now (committed before publish() returned)
    DUPLICATE = "duplicate"  # same source + id was stored before (or earlier in this batch)
    REJECTED = "rejected"  # invalid; not stored; see PublishOutcome.errors


@dataclass(frozen=True, slots=True)
class FieldError:
    """One reason an event was rejected: JSON-pointer-like location and a human message."""

    location: str  # e.g. "time", "data", "entityversion", "" for the whole event
    message: str


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    """The per-event result of :meth:`EventBusBackend.publish`, in input order.

    ``index`` is the event's position in the batch given to ``publish``. ``sequence`` is the
    backend's position of the stored event (SQL: global sequence; NATS: stream sequence); for
    DUPLICATE it is the position of the first copy when the backend knows it, else None.
    """

    index: int
    status: PublishStatus
    source: str | None = None
    id: str | None = None
    sequence: int | None = None
    errors: tuple[FieldError, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the event is durably stored (accepted now or before)."""
        return self.status is not PublishStatus.REJECTED


# --------------------------------------------------------------------------------------------
# Subscriptions and delivery
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a subscription receives. Empty tuples mean "any".

    Patterns are shell-style globs matched case-sensitively (``fnmatch``):
    ``types=("retailsync.order.*",)``, ``subjects=("order/*", "sku/ABC-*")``. An event with no
    subject never matches a non-empty ``subjects`` filter.
    """

    types: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()

    def matches(self, event: CloudEvent) -> bool:
        if self.types and not any(fnmatchcase(event.type, p) for p in self.types):
            return False
        if self.subjects:
            if event.subject is None:
                return False
            return any(fnmatchcase(event.subject, p) for p in self.subjects)
        return True


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how fast a failing delivery is retried before it becomes an exception.

    ``max_attempts`` applies to transient and unclassified errors; ``business_max_attempts``
    to :class:`~retailsync.resilience.errors.BusinessError` (a data error rarely fixes itself,
    so the default is one attempt). Delay before attempt ``n+1`` is
    ``min(max_backoff, initial_backoff * multiplier**(n-1))`` scaled by a random factor in
    ``[1 - jitter, 1 + jitter]``; a ``retry_after`` carried by a TransientError wins when
    larger.
    """

    max_attempts: int = 5
    business_max_attempts: int = 1
    initial_backoff: float = 0.5
    max_backoff: float = 60.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def attempts_for(self, classification: Classification) -> int:
        if classification is Classification.BUSINESS:
            return max(1, self.business_max_attempts)
        return max(1, self.max_attempts)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** max(0, attempt - 1))
        factor = 1.0 + (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base * factor)


Handler = Callable[[CloudEvent, "DeliveryContext"], Awaitable[None]]
"""``async def handler(event, ctx) -> None``; raise to fail the attempt (see errors)."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """A named subscriber: a filter, a handler and its retry policy.

    ``name`` is stable (it keys cursors, the inbox and exceptions): 1-100 chars of
    ``[a-z0-9_.-]``. ``downstream`` names the system the handler writes to (``"erp"``,
    ``"zendesk"``) and is recorded on exceptions for filtering and for automatic retry once
    that downstream is healthy again. ``start_from`` applies when the subscription is first
    registered: ``"earliest"`` delivers every stored event, ``"latest"`` only later ones.
    """

    name: str
    handler: Handler
    filter: EventFilter = EventFilter()
    retry: RetryPolicy = RetryPolicy()
    downstream: str | None = None
    start_from: Literal["earliest", "latest"] = "earliest"


class DeliveryContext(Protocol):
    """What a handler gets besides the event.

    ``connection`` is the open SQL transaction in which the idempotent-consumer (inbox) record
    for this delivery is written: effects a handler writes through it commit atomically with
    that record (and roll back with it when the handler raises), so they happen exactly once.
    Effects outside the hub's database must be idempotent themselves (derive idempotency keys
    from ``idempotency_key``).
    """

    @property
    def subscriber(self) -> str: ...
    @property
    def attempt(self) -> int:
        """1 for the first delivery; counts up across retries (reset by a manual retry)."""
        ...

    @property
    def sequence(self) -> int:
        """The backend's position of the event (see PublishOutcome.sequence)."""
        ...

    @property
    def forced(self) -> bool:
        """True for a forced replay: the inbox check was bypassed on purpose."""
        ...

    @property
    def replay(self) -> bool: ...
    @property
    def connection(self) -> sa.Connection: ...
    @property
    def idempotency_key(self) -> str:
        """Stable per (subscriber, event): ``"<subscriber>:<source>:<id>"``."""
        ...

    def apply_if_newer(self, entity_key: str, version: int | datetime | None = None) -> bool:
        """Claim ``version`` of ``entity_key`` for this subscriber, in this transaction.

        ``version`` defaults to the event's ``entityversion`` (or its ``time`` when it has
        none); a datetime is compared by its UTC microseconds. Returns True when it is newer
        than the last applied version (which is then recorded) and False when it is not — the
        handler must then skip applying state; the delivery is recorded as ``stale``.
        Under a forced replay an equal version counts as newer.
        """
        ...


# --------------------------------------------------------------------------------------------
# Exception queue
# --------------------------------------------------------------------------------------------


class Classification(StrEnum):
    """Why a delivery failed, which decides who deals with it."""

    TRANSIENT = "transient"  # timeouts, 5xx, connection: retried automatically when healthy
    BUSINESS = "business"  # validation, policy, unknown reference: routed to people
    UNKNOWN = "unknown"  # an unclassified exception that outlived its attempts


class ExceptionStatus(StrEnum):
    OPEN = "open"
    RETRYING = "retrying"  # a redelivery is durably queued; back to OPEN if it fails again
    RESOLVED = "resolved"
    DISCARDED = "discarded"
    PERMANENTLY_FAILED = "permanently_failed"  # manual retries exhausted (poison guard)


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One failed delivery attempt, as kept in an exception's history."""

    attempt: int
    at: datetime
    error_type: str  # qualified class name, e.g. "retailsync.resilience.errors.UnknownReference"
    message: str
    classification: Classification


@dataclass(frozen=True, slots=True)
class ExceptionEntry:
    """An event that a subscriber could not handle, waiting for a person or a healthy system."""

    id: int
    subscriber: str
    event_source: str
    event_id: str
    event_type: str
    partition_key: str | None
    correlation_id: str | None
    sequence: int
    system: str | None  # the downstream (error's ``downstream`` or Subscription.downstream)
    classification: Classification
    status: ExceptionStatus
    error_type: str
    error_message: str
    history: tuple[AttemptRecord, ...]
    manual_retry_count: int
    created_at: datetime
    updated_at: datetime
    event: CloudEvent | None = None  # filled by ExceptionQueue.get


@dataclass(frozen=True, slots=True)
class ExceptionFilter:
    """Selects exception entries; every given field must match (AND). None means "any".

    ``event_type`` is a glob; ``older_than`` / ``newer_than`` compare ``created_at``.
    ``statuses`` defaults to open entries only.
    """

    subscriber: str | None = None
    event_type: str | None = None
    system: str | None = None
    classification: Classification | None = None
    statuses: tuple[ExceptionStatus, ...] = (ExceptionStatus.OPEN,)
    older_than: datetime | None = None
    newer_than: datetime | None = None
    partition_key: str | None = None
    correlation_id: str | None = None


@dataclass(frozen=True, slots=True)
class ExceptionAction:
    """One audited operator (or automatic) action on an exception entry."""

    entry_id: int
    action: Literal["retry", "resolve", "discard", "auto_retry", "permanently_failed", "reopen"]
    actor: str
    reason: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class BulkOutcome:
    """What a retry/resolve/discard did: ids changed and ids skipped with the reason."""

    changed: tuple[int, ...] = ()
    skipped: tuple[tuple[int, str], ...] = ()


ExceptionSelection = int | Sequence[int] | ExceptionFilter


class ExceptionQueue(Protocol):
    """Operator actions on the exception queue; every change is audited (who, when, why).

    ``retry`` queues a redelivery and marks the entry RETRYING in one durable step (an
    interrupted bulk retry loses nothing: entries not yet processed stay OPEN). Each retry
    increments ``manual_retry_count``; when it would exceed the configured limit the entry is
    marked PERMANENTLY_FAILED instead. Only OPEN entries can be retried; OPEN or RETRYING or
    PERMANENTLY_FAILED ones can be resolved or discarded. Selections by filter are processed
    in chunks. ``reason`` is required for discard and ``note`` for resolve.
    """

    async def list(
        self, filter: ExceptionFilter = ExceptionFilter(), *, limit: int = 100, offset: int = 0
    ) -> builtins.list[ExceptionEntry]: ...
    async def count(self, filter: ExceptionFilter = ExceptionFilter()) -> int: ...
    async def get(self, entry_id: int) -> ExceptionEntry:
        """Raises :class:`retailsync.bus.errors.ExceptionNotFound`."""
        ...

    async def retry(
        self, selection: ExceptionSelection, *, actor: str, reason: str | None = None
    ) -> BulkOutcome: ...
    async def resolve(
        self, selection: ExceptionSelection, *, actor: str, note: str
    ) -> BulkOutcome: ...
    async def discard(
        self, selection: ExceptionSelection, *, actor: str, reason: str
    ) -> BulkOutcome: ...
    async def actions(self, entry_id: int) -> builtins.list[ExceptionAction]: ...


# --------------------------------------------------------------------------------------------
# Replay
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """Re-deliver stored events to one subscriber. Every given criterion must match (AND).

    ``since``/``until`` compare the event's stored time (``stored_at``, half-open
    ``[since, until)``). Without ``force`` events the subscriber already handled (inbox) are
    skipped; with ``force`` the handler runs again (``ctx.forced`` is True).
    """

    subscriber: str
    since: datetime | None = None
    until: datetime | None = None
    event_types: tuple[str, ...] = ()  # globs
    partition_key: str | None = None
    correlation_id: str | None = None
    force: bool = False


@dataclass(frozen=True, slots=True)
class ReplayProgress:
    total: int  # events selected
    delivered: int  # handler ran and succeeded
    skipped: int  # already handled (no force) or not matching the subscription filter
    failed: int  # failed; parked for retry / exception queue as for live delivery


ProgressCallback = Callable[[ReplayProgress], None]


# --------------------------------------------------------------------------------------------
# Stored events and the backend itself
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredEvent:
    sequence: int
    stored_at: datetime
    event: CloudEvent


@dataclass(frozen=True, slots=True)
class BusOptions:
    """Tuning shared by all backends (tests shrink the timings)."""

    max_batch_size: int = 500  # POST /v1/events and publish() reject bigger batches
    delivery_batch_size: int = 200  # events fetched per delivery round
    poll_interval: float = 0.05  # idle sleep between rounds (seconds)
    lease_ttl: float = 10.0  # a worker that stops renewing loses its keys after this
    max_manual_retries: int = 3  # poison guard for ExceptionQueue.retry
    auto_retry_interval: float = 5.0  # how often healthy downstreams' transient entries retry
    auto_retry_rate: float = 10.0  # automatic retries per second at most
    shards: int = 16  # SQL: partition-key hash buckets (leases, cursors); fixed per database
    # SQL: a delivery batch starts no further handler once its transaction is this old
    # (seconds); the rest of the batch goes in the next one. On SQLite the transaction holds
    # the database's only write lock: publishing and every other writer wait for it.
    delivery_hold_limit: float = 0.05


@dataclass(frozen=True, slots=True)
class BackendConfig:
    """Everything needed to construct a backend; ``create_backend(config)`` takes it.

    ``database_url`` is the hub's SQL database (consumer side for every backend; the whole bus
    for the SQL backend). ``namespace`` isolates streams/subjects (NATS: stream name prefix
    and subject root) so tests can run side by side. ``worker_id`` must be stable per process.
    """

    database_url: str
    nats_url: str | None = None
    namespace: str = "RETAILSYNC"
    worker_id: str = "local"
    options: BusOptions = BusOptions()
    health_probe: HealthProbe | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


HealthProbe = Callable[[str], Awaitable[bool]]
"""``await probe("erp")`` is True when that downstream is healthy (auto-retry gate)."""


class EventBusBackend(abc.ABC):
    """A durable event bus. Lifecycle: construct -> subscribe(...) -> start() -> ... close().

    All methods are safe to call from one asyncio event loop; ``publish`` may run concurrently
    with delivery. Handlers registered with ``subscribe`` run inside ``run_delivery`` /
    ``deliver_until_idle`` / ``replay`` of the same process.
    """

    name: str  # "sql" or "nats"

    @abc.abstractmethod
    def subscribe(self, subscription: Subscription) -> None:
        """Register a handler (before ``start``); a second registration of a name replaces it."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect, verify the schema/streams and register subscriptions durably."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop delivery started here, release leases and connections. Idempotent."""

    @abc.abstractmethod
    async def publish(
        self, events: Sequence[CloudEvent | Mapping[str, Any]]
    ) -> builtins.list[PublishOutcome]:
        """Validate and durably store a batch; returns one outcome per input, in order.

        Mappings are validated as CloudEvents (invalid ones become REJECTED with field errors,
        the rest are still stored). Returns only after every ACCEPTED event is committed.
        Raises :class:`retailsync.bus.errors.BatchTooLarge` above ``options.max_batch_size``.
        """

    @abc.abstractmethod
    async def run_delivery(self, stop: asyncio.Event) -> None:
        """Deliver to every registered subscription until ``stop`` is set; then return.

        Also runs the automatic retry of transient exceptions for healthy downstreams.
        """

    @abc.abstractmethod
    async def deliver_until_idle(self, *, timeout: float = 30.0) -> int:  # noqa: ASYNC109
        """Deliver until no work is left (waiting out retry backoff); returns handler runs.

        "No work" means every stored event is handled, skipped, or in the exception queue for
        every subscription. Raises TimeoutError after ``timeout`` seconds. For tests, the
        bench and one-shot tools.
        """

    @property
    @abc.abstractmethod
    def exceptions(self) -> ExceptionQueue: ...

    @abc.abstractmethod
    async def replay(
        self, request: ReplayRequest, progress: ProgressCallback | None = None
    ) -> ReplayProgress:
        """Re-deliver matching events to ``request.subscriber`` now; returns the final tally.

        Raises :class:`retailsync.bus.errors.UnknownSubscriber` when it is not registered.
        """

    @abc.abstractmethod
    async def get_event(self, source: str, id: str) -> StoredEvent | None: ...
