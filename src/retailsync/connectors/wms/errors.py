"""Errors of the WMS connector, each saying what went wrong and what to do."""

from __future__ import annotations


class WmsError(Exception):
    """Base class for every WMS connector error."""


class WmsConfigError(WmsError, ValueError):
    """The connector settings are invalid; the message names the bad key."""


class WmsApiError(WmsError):
    """The WMS refused the call (4xx); retrying the same call will not help."""

    def __init__(self, method: str, path: str, status: int, code: str, message: str) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.code = code
        super().__init__(f"WMS {method} {path} refused with HTTP {status} {code}: {message}")


class WmsNotFound(WmsApiError):
    """The pick task, expectation or SKU does not exist in the WMS."""


class WmsUnavailable(WmsError):
    """The WMS kept failing (5xx, 429 or network errors) after every allowed attempt."""

    def __init__(self, method: str, path: str, attempts: int, last: str) -> None:
        self.attempts = attempts
        super().__init__(
            f"WMS {method} {path} still failing after {attempts} attempts (last: {last}); "
            "the call is safe to retry later (writes carry an Idempotency-Key)"
        )
