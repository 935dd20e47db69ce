"""``Downstream``: the one door every outbound call to a system passes through.

``await erp.call("get_order", fetch, lane=Lane.AGENT)`` applies, in order: the breaker's
fast refusal, the lane-ordered concurrency limit, the lane-ordered (possibly shared) rate
limit, the per-attempt timeout, and tenacity's retries for transient failures. ``read`` adds
the stale fallback; ``write`` adds the durable deferral of writes the downstream cannot take.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

import httpx
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from retailsync.observability.instrument import observe_outbound
from retailsync.resilience.breaker import BreakerTransition, CircuitBreaker
from retailsync.resilience.bulkhead import PriorityBulkhead
from retailsync.resilience.config import Lane, ResiliencePolicy
from retailsync.resilience.deferred import DeferredWrite, DeferredWriteQueue
from retailsync.resilience.errors import (
    BusinessError,
    CircuitOpen,
    DownstreamTimeout,
    DownstreamUnavailable,
    Overloaded,
    TransientError,
    UnknownWriteOperation,
)
from retailsync.resilience.ratelimit import LaneRateLimiter, TokenBucket
from retailsync.resilience.stats import CallStats

T = TypeVar("T")
WriteHandler = Callable[[dict[str, Any], str], Awaitable[Any]]

log = structlog.get_logger("retailsync.resilience")


@dataclass(frozen=True)
class StaleValue(Generic[T]):
    """What a read model returns for a read the downstream cannot serve now."""

    value: T
    as_of: datetime


@dataclass(frozen=True)
class ReadResult(Generic[T]):
    """A read's value; ``stale`` says it came from a read model, ``age_seconds`` how old."""

    value: T
    stale: bool
    as_of: datetime
    age_seconds: float
    reason: str | None = None


@dataclass(frozen=True)
class WriteOutcome:
    """``sent`` (the downstream took it now) or ``deferred`` (queued durably, sent later)."""

    status: Literal["sent", "deferred"]
    idempotency_key: str
    result: Any = None
    reason: str | None = None

    @property
    def deferred(self) -> bool:
        return self.status == "deferred"


@dataclass
class DrainReport:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    retry_later: int = 0
    stopped_reason: str | None = None


def _retryable(exc: BaseException) -> bool:
    # An open circuit and our own back-pressure are answered by degrading, not by waiting.
    return isinstance(exc, TransientError) and not isinstance(exc, CircuitOpen | Overloaded)


class _BackoffHonouringRetryAfter(wait_base):
    """Full-jitter exponential backoff, but never sooner than the downstream's Retry-After.

    ``offset`` counts attempts made before tenacity took over (the untimed first attempt).
    """

    def __init__(self, initial: float, maximum: float, offset: int = 1) -> None:
        self.initial = initial
        self.maximum = maximum
        self.offset = offset

    def wait_for(self, attempt_number: int, exc: BaseException | None) -> float:
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return float(retry_after) + random.uniform(0, self.initial)
        ceiling = min(self.maximum, self.initial * 2 ** (attempt_number - 1))
        return random.uniform(0, ceiling)

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        return self.wait_for(retry_state.attempt_number + self.offset, exc)


class _StopOnLongRetryAfter(stop_base):
    """Stop when the downstream asks us to come back later than we are willing to wait."""

    def __init__(self, maximum: float) -> None:
        self.maximum = maximum

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        retry_after = getattr(exc, "retry_after", None)
        return retry_after is not None and float(retry_after) > self.maximum


class Downstream:
    """Resilience for one downstream system (ERP, service desk, payments, commerce, WMS)."""

    def __init__(
        self,
        name: str,
        policy: ResiliencePolicy,
        *,
        bucket: TokenBucket,
        deferred: DeferredWriteQueue | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.name = name
        self.policy = policy
        self.breaker = CircuitBreaker(name, policy.breaker)
        self.bulkhead = PriorityBulkhead(name, policy.bulkhead.max_concurrent)
        self.limiter = LaneRateLimiter(name, bucket, policy.rate_limit.reserve)
        self.stats = CallStats(window_seconds=policy.stats_window_seconds)
        self.deferred = deferred
        self._sleep = sleep
        self._write_handlers: dict[str, WriteHandler] = {}
        self._backlog = False
        self._on_write_failed: list[Callable[[DeferredWrite, BusinessError], Any]] = []
        self.breaker.on_transition(self._log_transition)
        self._wait = _BackoffHonouringRetryAfter(
            policy.retry.initial_backoff_seconds, policy.retry.max_backoff_seconds
        )
        self._stop_on_long_retry_after = _StopOnLongRetryAfter(policy.retry.max_retry_after_seconds)

    # -- the one entry point ---------------------------------------------------------------

    async def call(
        self,
        operation: str,
        fn: Callable[[], Awaitable[T]],
        *,
        lane: Lane = Lane.BATCH,
        idempotency_key: str | None = None,
        mutating: bool = False,
    ) -> T:
        """Run ``fn`` (one request to the downstream) under this downstream's policy.

        Transient failures are retried with backoff — a mutating call only when it carries an
        ``idempotency_key``, so the downstream can absorb a repeat. Business errors, an open
        circuit and exhausted waiting lines are raised at once.
        """
        retry_allowed = not mutating or idempotency_key is not None
        attempts = self.policy.retry.max_attempts if retry_allowed else 1
        # The first attempt runs without tenacity: most calls succeed and pay nothing more.
        try:
            return await self._attempt(operation, fn, lane, 1)
        except TransientError as exc:
            if attempts == 1 or not _retryable(exc) or self._stop_for(exc):
                raise
            first_wait = self._wait.wait_for(1, exc)
        self.stats.retries += 1
        await self._sleep(first_wait)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts - 1) | self._stop_on_long_retry_after,
            wait=self._wait,
            retry=retry_if_exception(_retryable),
            reraise=True,
            sleep=self._sleep,
            before_sleep=self._count_retry,
        )
        async for attempt in retrying:
            with attempt:
                number = attempt.retry_state.attempt_number + 1  # after the untimed first
                result = await self._attempt(operation, fn, lane, number)
        return result

    def _stop_for(self, exc: TransientError) -> bool:
        return (
            exc.retry_after is not None and exc.retry_after > self._stop_on_long_retry_after.maximum
        )

    def _count_retry(self, retry_state: RetryCallState) -> None:
        self.stats.retries += 1

    async def _attempt(
        self, operation: str, fn: Callable[[], Awaitable[T]], lane: Lane, attempt: int
    ) -> T:
        self.breaker.check(operation)
        deadline = time.monotonic() + self.policy.lanes.max_wait(lane)
        async with self.bulkhead.slot(lane, self.policy.lanes.max_wait(lane)):
            await self.limiter.acquire(lane, max(0.001, deadline - time.monotonic()))
            permit = self.breaker.acquire(operation)
            # Observed once the attempt is let through: latency and outcome metrics, a client
            # span and an outbound_call hop in the current trace (refusals are not calls).
            async with observe_outbound(self.name, operation, attempt=attempt):
                return await self._send(operation, fn, permit)

    async def _send(self, operation: str, fn: Callable[[], Awaitable[T]], permit: Any) -> T:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.policy.timeout_seconds):
                result = await fn()
        except BusinessError as exc:
            self._fill(exc, operation)
            self.breaker.record_success(permit)
            self.stats.record(time.perf_counter() - started, outcome="business")
            raise
        except TransientError as exc:
            self._fill(exc, operation)
            self._failed(permit, exc, started, "transient")
            raise
        except TimeoutError as exc:
            error = DownstreamTimeout(
                f"{self.name} did not answer {operation} within {self.policy.timeout_seconds:g}s",
                downstream=self.name,
                operation=operation,
            )
            self._failed(permit, error, started, "timeout")
            raise error from exc
        except httpx.TransportError as exc:
            transport_error: TransientError
            if isinstance(exc, httpx.TimeoutException):
                transport_error = DownstreamTimeout(
                    f"{self.name} timed out on {operation} ({type(exc).__name__})",
                    downstream=self.name,
                    operation=operation,
                )
            else:
                transport_error = DownstreamUnavailable(
                    f"could not reach {self.name} for {operation} ({type(exc).__name__})",
                    downstream=self.name,
                    operation=operation,
                )
            self._failed(permit, transport_error, started, "transient")
            raise transport_error from exc
        except BaseException as exc:
            self.breaker.release(permit)
            if isinstance(exc, Exception):
                self.stats.record(time.perf_counter() - started, outcome="error")
                self.stats.last_error = f"{operation}: {type(exc).__name__}: {exc}"
            raise
        self.breaker.record_success(permit)
        self.stats.record(time.perf_counter() - started, outcome="ok")
        return result

    def _fill(self, exc: TransientError | BusinessError, operation: str) -> None:
        if exc.downstream is None:
            exc.downstream = self.name
        if exc.operation is None:
            exc.operation = operation

    def _failed(self, permit: Any, error: TransientError, started: float, outcome: str) -> None:
        self.breaker.record_failure(permit, error)
        self.stats.record(time.perf_counter() - started, outcome=outcome)
        self.stats.last_error = f"{error.operation}: {error}"

    # -- reads: fall back to a read model ---------------------------------------------------

    async def read(
        self,
        operation: str,
        fn: Callable[[], Awaitable[T]],
        *,
        stale: Callable[[], StaleValue[T] | Awaitable[StaleValue[T] | None] | None] | None = None,
        lane: Lane = Lane.AGENT,
    ) -> ReadResult[T]:
        """Read from the downstream; while it fails, serve ``stale()`` flagged ``stale=True``."""
        try:
            value = await self.call(operation, fn, lane=lane)
        except TransientError as exc:
            if stale is None:
                raise
            fallback = stale()
            cached = await fallback if inspect.isawaitable(fallback) else fallback
            if cached is None:
                raise
            self.stats.stale_reads += 1
            age = max(0.0, (datetime.now(UTC) - cached.as_of).total_seconds())
            return ReadResult(
                cached.value, stale=True, as_of=cached.as_of, age_seconds=age, reason=str(exc)
            )
        return ReadResult(value, stale=False, as_of=datetime.now(UTC), age_seconds=0.0)

    # -- writes: defer durably while the downstream cannot take them ------------------------

    def register_write(self, operation: str, handler: WriteHandler) -> None:
        """``handler(payload, idempotency_key)`` performs ``operation`` on the downstream."""
        self._write_handlers[operation] = handler

    def on_write_failed(self, listener: Callable[[DeferredWrite, BusinessError], Any]) -> None:
        """Called when a drained write is refused (route it to the exception queue)."""
        self._on_write_failed.append(listener)

    def _handler(self, operation: str) -> WriteHandler:
        try:
            return self._write_handlers[operation]
        except KeyError:
            raise UnknownWriteOperation(self.name, operation) from None

    async def write(
        self,
        operation: str,
        payload: dict[str, Any],
        *,
        idempotency_key: str,
        lane: Lane = Lane.BATCH,
        correlation_id: str | None = None,
    ) -> WriteOutcome:
        """Send a write now, or queue it durably when the downstream is failing.

        Queued writes keep their order behind one another: while this process knows of
        queued writes, new ones join the queue instead of overtaking them.
        """
        handler = self._handler(operation)
        deferral = self.deferred is not None and self.policy.deferred_writes.enabled
        if deferral and self._backlog:
            return await self._defer(
                operation,
                payload,
                idempotency_key,
                lane,
                correlation_id,
                "earlier writes to this system are still queued",
            )
        try:
            result = await self.call(
                operation,
                lambda: handler(payload, idempotency_key),
                lane=lane,
                idempotency_key=idempotency_key,
                mutating=True,
            )
        except TransientError as exc:
            if not deferral:
                raise
            return await self._defer(
                operation, payload, idempotency_key, lane, correlation_id, str(exc)
            )
        return WriteOutcome("sent", idempotency_key, result=result)

    async def _defer(
        self,
        operation: str,
        payload: dict[str, Any],
        idempotency_key: str,
        lane: Lane,
        correlation_id: str | None,
        reason: str,
    ) -> WriteOutcome:
        assert self.deferred is not None
        await asyncio.to_thread(
            self.deferred.defer,
            downstream=self.name,
            operation=operation,
            idempotency_key=idempotency_key,
            payload=payload,
            lane=lane.label,
            reason=reason,
            correlation_id=correlation_id,
        )
        self._backlog = True
        self.stats.deferred_writes += 1
        log.info("write deferred", downstream=self.name, operation=operation, reason=reason)
        return WriteOutcome("deferred", idempotency_key, reason=reason)

    async def drain_deferred(self) -> DrainReport:
        """Send one batch of queued writes, oldest first; stop at the first open circuit."""
        report = DrainReport()
        if self.deferred is None:
            return report
        try:
            self.breaker.check()
        except CircuitOpen as exc:
            report.stopped_reason = exc.message
            return report
        policy = self.policy.deferred_writes
        writes = await asyncio.to_thread(
            self.deferred.claim,
            self.name,
            limit=policy.drain_batch_size,
            lease_seconds=policy.claim_lease_seconds,
        )
        report.claimed = len(writes)
        if not writes:
            self._backlog = False
            return report
        # The first write alone: in half-open it is the trial call that decides the rest.
        await self._drain_one(writes[0], report)
        gate = asyncio.Semaphore(policy.drain_concurrency)

        async def drain(write: DeferredWrite) -> None:
            async with gate:
                await self._drain_one(write, report)

        await asyncio.gather(*(drain(write) for write in writes[1:]))
        return report

    async def _drain_one(self, write: DeferredWrite, report: DrainReport) -> None:
        queue = self.deferred
        assert queue is not None
        if report.stopped_reason is not None:
            await asyncio.to_thread(queue.release, write)
            return
        try:
            handler = self._handler(write.operation)
            lane = (
                Lane[write.lane.upper()] if write.lane.upper() in Lane.__members__ else Lane.BATCH
            )
            await self.call(
                write.operation,
                lambda: handler(write.payload, write.idempotency_key),
                lane=lane,
                idempotency_key=write.idempotency_key,
                mutating=True,
            )
        except CircuitOpen as exc:
            report.stopped_reason = exc.message
            await asyncio.to_thread(queue.release, write)
        except TransientError as exc:
            report.retry_later += 1
            await asyncio.to_thread(
                queue.release,
                write,
                error=str(exc),
                backoff_seconds=self.policy.deferred_writes.retry_backoff_seconds,
            )
        except (BusinessError, UnknownWriteOperation) as exc:
            report.failed += 1
            await asyncio.to_thread(queue.mark_failed, write, str(exc))
            if isinstance(exc, BusinessError):
                for listener in self._on_write_failed:
                    listener(write, exc)
        else:
            report.sent += 1
            await asyncio.to_thread(queue.mark_sent, write)

    async def drain_until_empty(self, *, max_rounds: int = 1000) -> DrainReport:
        """Drain batch after batch until nothing is due or the circuit stops it."""
        total = DrainReport()
        for _ in range(max_rounds):
            report = await self.drain_deferred()
            total.claimed += report.claimed
            total.sent += report.sent
            total.failed += report.failed
            total.retry_later += report.retry_later
            if report.stopped_reason is not None or report.claimed == 0:
                total.stopped_reason = report.stopped_reason
                break
        return total

    async def run_drainer(self, stop: asyncio.Event) -> None:
        """Drain queued writes every ``drain_interval_seconds`` until ``stop`` is set."""
        interval = self.policy.deferred_writes.drain_interval_seconds
        while not stop.is_set():
            try:
                await self.drain_until_empty()
            except Exception:
                log.exception("draining deferred writes failed", downstream=self.name)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await stop.wait()

    # -- observation -----------------------------------------------------------------------

    def _log_transition(self, transition: BreakerTransition) -> None:
        log.warning(
            "circuit breaker changed state",
            downstream=transition.downstream,
            old=transition.old.value,
            new=transition.new.value,
            reason=transition.reason,
        )

    async def close(self) -> None:
        await self.limiter.close()
