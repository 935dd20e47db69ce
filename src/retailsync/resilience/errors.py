"""The failure vocabulary every connector speaks: transient (retry) versus business (people).

Connectors translate their vendor's errors into these classes; the resilience layer retries
only :class:`TransientError`, counts only transient failures against a circuit breaker, and
hands :class:`BusinessError` straight back to the caller so it can be routed to a person.
"""

from __future__ import annotations

from datetime import datetime


class TransientError(Exception):
    """The downstream could not answer now; the same call may succeed later.

    ``retry_after`` (seconds) is the earliest moment a retry makes sense, when the downstream
    said so (``Retry-After``) or the hub knows it (an open circuit).
    """

    def __init__(
        self,
        message: str,
        *,
        downstream: str | None = None,
        operation: str | None = None,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.downstream = downstream
        self.operation = operation
        self.retry_after = retry_after
        self.status = status


class DownstreamTimeout(TransientError):
    """The downstream did not answer within the configured timeout."""


class DownstreamUnavailable(TransientError):
    """The connection failed or the downstream answered with a 5xx status."""


class DownstreamThrottled(TransientError):
    """The downstream answered 429 (too many requests); honour ``retry_after``."""


class Overloaded(TransientError):
    """The hub's own limits (concurrency or rate) kept the call waiting past its lane's deadline.

    This is back-pressure: slow down the producer, or raise the downstream's limits if it can
    really take more.
    """


class CircuitOpen(TransientError):
    """The circuit breaker for this downstream is open; the call was not attempted.

    ``half_open_at`` is when the breaker lets a trial call through again and ``reason`` says
    why it opened.
    """

    def __init__(
        self,
        downstream: str,
        *,
        half_open_at: datetime,
        retry_after: float,
        reason: str,
        operation: str | None = None,
    ) -> None:
        super().__init__(
            f"circuit for {downstream!r} is open ({reason}); it half-opens at "
            f"{half_open_at.isoformat(timespec='seconds')}: serve stale data or defer the write",
            downstream=downstream,
            operation=operation,
            retry_after=retry_after,
        )
        self.half_open_at = half_open_at
        self.reason = reason


class BusinessError(Exception):
    """The downstream answered and refused the call; retrying the same call cannot help.

    ``code`` is a short machine-readable reason (``validation``, ``policy``, ``not-found``,
    ``conflict``); the message is for the person who resolves it.
    """

    code = "business"

    def __init__(
        self,
        message: str,
        *,
        downstream: str | None = None,
        operation: str | None = None,
        status: int | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.downstream = downstream
        self.operation = operation
        self.status = status
        self.details = details or {}


class ValidationRejected(BusinessError):
    """The downstream rejected the data (missing field, bad value, unknown currency, ...)."""

    code = "validation"


class PolicyRejected(BusinessError):
    """The downstream refused by rule (refund above limit, period closed, not permitted)."""

    code = "policy"


class UnknownReference(BusinessError):
    """The call names something the downstream does not know (order, product, customer)."""

    code = "not-found"


class ConflictRejected(BusinessError):
    """The downstream's current state conflicts with the call (already shipped, version moved)."""

    code = "conflict"


class UnknownDownstream(LookupError):
    """No resilience policy is configured for the named downstream system."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"no downstream named {name!r} is configured; known downstreams: "
            f"{', '.join(sorted(known)) or '(none)'} — add it under resilience.downstreams"
        )
        self.name = name


class UnknownWriteOperation(LookupError):
    """A deferred write names an operation no handler was registered for."""

    def __init__(self, downstream: str, operation: str) -> None:
        super().__init__(
            f"deferred write {operation!r} for {downstream!r} has no registered handler: "
            f"call register_write({operation!r}, handler) on the {downstream!r} downstream "
            "before draining"
        )
        self.downstream = downstream
        self.operation = operation


class ResilienceConfigError(ValueError):
    """A resilience policy is inconsistent (for example a reserve larger than the burst)."""


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` is a failure the same call may get past by waiting."""
    return isinstance(exc, TransientError)
