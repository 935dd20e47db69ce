"""Translate HTTP outcomes (httpx) into the transient / business classification.

Connector clients call :func:`raise_for_downstream` on each response and wrap requests in
:func:`translate_transport_errors`; everything above them then sees only
:class:`~retailsync.resilience.errors.TransientError` or
:class:`~retailsync.resilience.errors.BusinessError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Self

import httpx

from retailsync.resilience.errors import (
    BusinessError,
    ConflictRejected,
    DownstreamThrottled,
    DownstreamTimeout,
    DownstreamUnavailable,
    PolicyRejected,
    TransientError,
    UnknownReference,
    ValidationRejected,
)

#: Statuses that mean "try again later"; everything else >= 400 is a business refusal.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

_BUSINESS_BY_STATUS: dict[int, type[BusinessError]] = {
    400: ValidationRejected,
    422: ValidationRejected,
    403: PolicyRejected,
    402: PolicyRejected,
    404: UnknownReference,
    410: UnknownReference,
    409: ConflictRejected,
    412: ConflictRejected,
}


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def error_for_status(
    status: int,
    *,
    downstream: str,
    operation: str,
    retry_after: float | None = None,
    detail: str = "",
) -> TransientError | BusinessError | None:
    """The classified error for an HTTP ``status``, or None for a success."""
    if status < 400:
        return None
    suffix = f": {detail}" if detail else ""
    if status in TRANSIENT_STATUSES:
        if status == 429:
            return DownstreamThrottled(
                f"{downstream} throttled {operation} (HTTP 429){suffix}",
                downstream=downstream,
                operation=operation,
                retry_after=retry_after,
                status=status,
            )
        if status in (408, 504):
            return DownstreamTimeout(
                f"{downstream} timed out on {operation} (HTTP {status}){suffix}",
                downstream=downstream,
                operation=operation,
                retry_after=retry_after,
                status=status,
            )
        return DownstreamUnavailable(
            f"{downstream} failed {operation} (HTTP {status}){suffix}",
            downstream=downstream,
            operation=operation,
            retry_after=retry_after,
            status=status,
        )
    if status >= 500:
        return DownstreamUnavailable(
            f"{downstream} failed {operation} (HTTP {status}){suffix}",
            downstream=downstream,
            operation=operation,
            retry_after=retry_after,
            status=status,
        )
    error_class = _BUSINESS_BY_STATUS.get(status, BusinessError)
    return error_class(
        f"{downstream} refused {operation} (HTTP {status}){suffix}",
        downstream=downstream,
        operation=operation,
        status=status,
    )


def raise_if_retryable(response: httpx.Response, *, downstream: str, operation: str) -> None:
    """Raise the classified error of a 429 or 5xx answer (``Retry-After`` honoured); a client
    that words its own refusals handles the other 4xx itself."""
    status = response.status_code
    if status == 429 or status >= 500:
        error = error_for_status(
            status,
            downstream=downstream,
            operation=operation,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
        assert error is not None
        raise error


def raise_for_downstream(response: httpx.Response, *, downstream: str, operation: str) -> None:
    """Raise the classified error for a non-2xx/3xx ``response``; return for a success."""
    if response.status_code < 400:
        return
    detail = response.text[:200] if response.content else ""
    error = error_for_status(
        response.status_code,
        downstream=downstream,
        operation=operation,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        detail=detail,
    )
    if error is not None:
        raise error


@contextmanager
def translate_transport_errors(*, downstream: str, operation: str) -> Iterator[None]:
    """Turn httpx timeouts and connection failures into transient errors."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise DownstreamTimeout(
            f"{downstream} did not answer {operation} in time ({type(exc).__name__})",
            downstream=downstream,
            operation=operation,
        ) from exc
    except httpx.TransportError as exc:
        raise DownstreamUnavailable(
            f"could not reach {downstream} for {operation} ({type(exc).__name__}: {exc})",
            downstream=downstream,
            operation=operation,
        ) from exc


class ClosingClient:
    """``async with`` for a connector client: the block's end calls :meth:`aclose`."""

    async def aclose(self) -> None:
        """Release the client's connections (subclasses close their HTTP client here)."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
