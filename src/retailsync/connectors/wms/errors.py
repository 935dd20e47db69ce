"""Errors of the WMS connector, each saying what went wrong and what to do.

They speak the resilience layer's vocabulary as well: a refusal is a
:class:`~retailsync.resilience.errors.BusinessError` (routed to a person, never retried) and
"still failing" a :class:`~retailsync.resilience.errors.TransientError` (retried later), so
workflows and the bus classify them without knowing the WMS.
"""

from __future__ import annotations

from retailsync.resilience.errors import BusinessError, TransientError, UnknownReference

DOWNSTREAM = "wms"
"""The resilience downstream (and trace system) WMS calls belong to."""


class WmsError(Exception):
    """Base class for every WMS connector error."""


class WmsConfigError(WmsError, ValueError):
    """The connector settings are invalid; the message names the bad key."""


class WmsApiError(WmsError, BusinessError):
    """The WMS refused the call (4xx); retrying the same call will not help.

    ``code`` is the WMS's own error code (``already_picked``, ``unknown_sku`` …).
    """

    def __init__(self, method: str, path: str, status: int, code: str, message: str) -> None:
        super().__init__(
            f"WMS {method} {path} refused with HTTP {status} {code}: {message}",
            downstream=DOWNSTREAM,
            operation=f"{method} {path}",
            status=status,
        )
        self.method = method
        self.path = path
        self.code = code


class WmsNotFound(WmsApiError, UnknownReference):
    """The pick task, expectation or SKU does not exist in the WMS."""


class WmsUnavailable(WmsError, TransientError):
    """The WMS kept failing (5xx, 429 or network errors) after every allowed attempt."""

    def __init__(
        self,
        method: str,
        path: str,
        attempts: int,
        last: str,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            f"WMS {method} {path} still failing after {attempts} attempts (last: {last}); "
            "the call is safe to retry later (writes carry an Idempotency-Key)",
            downstream=DOWNSTREAM,
            operation=f"{method} {path}",
            retry_after=retry_after,
        )
        self.attempts = attempts
