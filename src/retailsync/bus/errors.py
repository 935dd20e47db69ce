"""Bus errors, and the classification of handler failures (transient vs business)."""

from __future__ import annotations

import asyncio

from retailsync.bus.backend import Classification
from retailsync.resilience.errors import BusinessError, TransientError


class BusError(Exception):
    """Base class of the bus's own errors."""


class BatchTooLarge(BusError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"batch of {size} events is larger than the limit of {limit}: split it into "
            f"batches of at most {limit} (setting bus max_batch_size)"
        )
        self.size = size
        self.limit = limit


class UnknownSubscriber(BusError, LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"no subscription named {name!r} is registered in this process; known: "
            f"{', '.join(sorted(known)) or '(none)'}"
        )
        self.name = name


class ExceptionNotFound(BusError, LookupError):
    def __init__(self, entry_id: int) -> None:
        super().__init__(
            f"exception entry {entry_id} does not exist; list entries with "
            "`retailsync exceptions list`"
        )
        self.entry_id = entry_id


class InvalidSubscriptionName(BusError, ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"subscription name {name!r} is invalid: use 1-100 characters of [a-z0-9_.-]"
        )


class ScaleOutNotSupported(BusError):
    """Several worker processes on SQLite: refused, SQLite allows one writer process."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "scale-out (more than one worker process) is not supported on SQLite: "
            "SQLite allows one writing process. Run a single `retailsync worker` (or "
            "`retailsync serve`), or set RETAILSYNC_DATABASE_URL to a PostgreSQL database "
            "(postgresql+psycopg://...) to run several workers." + (f" {detail}" if detail else "")
        )


class BusNotMigrated(BusError):
    def __init__(self, url: str) -> None:
        super().__init__(
            f"the bus tables are missing in {url.split('@')[-1]!r}: run `retailsync migrate` "
            "(alembic upgrade heads) first"
        )


_TRANSIENT_BUILTINS: tuple[type[BaseException], ...] = (
    TimeoutError,
    asyncio.TimeoutError,
    ConnectionError,
)


def classify(exc: BaseException, *, exhausted: bool = False) -> Classification:
    """Classify a handler failure.

    :class:`TransientError`, timeouts, connection errors and HTTP 5xx/429 are transient;
    :class:`BusinessError` and HTTP 4xx are business/data errors. Anything else counts as
    transient while attempts remain and as ``unknown`` once they are ``exhausted``.
    """
    if isinstance(exc, TransientError):
        return Classification.TRANSIENT
    if isinstance(exc, BusinessError):
        return Classification.BUSINESS
    if isinstance(exc, _TRANSIENT_BUILTINS):
        return Classification.TRANSIENT
    status = _http_status(exc)
    if status is not None:
        if status >= 500 or status in (408, 429):
            return Classification.TRANSIENT
        if 400 <= status < 500:
            return Classification.BUSINESS
    if _is_httpx_transport_error(exc):
        return Classification.TRANSIENT
    return Classification.UNKNOWN if exhausted else Classification.TRANSIENT


def downstream_of(exc: BaseException) -> str | None:
    """The downstream system an error names, when it names one."""
    value = getattr(exc, "downstream", None)
    return value if isinstance(value, str) and value else None


def retry_after_of(exc: BaseException) -> float | None:
    value = getattr(exc, "retry_after", None)
    return float(value) if isinstance(value, int | float) and value > 0 else None


def _http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        return status
    return None


def _is_httpx_transport_error(exc: BaseException) -> bool:
    try:
        import httpx
    except ImportError:  # pragma: no cover - httpx is a dependency
        return False
    return isinstance(exc, httpx.TransportError)


def qualified_name(exc: BaseException) -> str:
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"
