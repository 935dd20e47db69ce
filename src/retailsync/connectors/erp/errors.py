"""What can go wrong when the hub talks to the ERP, split the way callers must react.

* :class:`ErpBusinessError` — the ERP refused the request for a business or data reason
  (Tryton ``UserError``/``UserWarning``, a validation error, an unknown product). Retrying will
  not help; a person must fix the data. Carries the ERP's own message.
* :class:`ErpOperationNotCarriedOut` — a business error found *after* the ERP accepted a call:
  it answered success but the record did not reach the expected state (Tryton processes a
  confirmed sale after the commit and swallows failures there).
* :class:`ErpTransientError` — the ERP could not be reached or was overloaded (connection
  refused or reset, timeout, HTTP 5xx/429, a concurrent-update conflict). Safe to retry.
* :class:`ErpAuthenticationError` — the login itself was rejected; fix the credentials.
* :class:`ErpProtocolError` — the ERP answered with something that is neither a result nor a
  known error (a bug on one side); not retried.
"""

from __future__ import annotations

from retailsync.resilience.errors import BusinessError, TransientError

ERP_DOWNSTREAM = "erp"


class ErpError(Exception):
    """Base class for every ERP connector error."""


class ErpBusinessError(ErpError, BusinessError):
    """The ERP rejected the request for a business or data reason; do not retry as-is."""

    def __init__(self, message: str, *, description: str = "", operation: str = "") -> None:
        self.erp_message = message
        self.description = description
        self.operation = operation
        text = message if not description else f"{message} ({description})"
        where = f"{operation}: " if operation else ""
        super().__init__(
            f"{where}the ERP refused the request: {text}",
            downstream=ERP_DOWNSTREAM,
            operation=operation,
        )


class ErpOperationNotCarriedOut(ErpBusinessError):
    """The ERP accepted a call but the record did not reach the state the call should give it."""

    def __init__(
        self,
        message: str,
        *,
        description: str = "",
        operation: str = "",
        expected_state: str = "",
        actual_state: str = "",
    ) -> None:
        self.expected_state = expected_state
        self.actual_state = actual_state
        super().__init__(message, description=description, operation=operation)
        self.args = (
            f"{operation}: the ERP accepted the call but the record is {actual_state!r}, "
            f"not {expected_state!r}; the ERP's reason: {message}"
            + (f" ({description})" if description else ""),
        )


class ErpTransientError(ErpError, TransientError):
    """The ERP could not be reached or answered with a temporary failure; retry later."""

    def __init__(self, message: str, *, operation: str = "", status_code: int | None = None):
        self.status_code = status_code
        where = f"{operation}: " if operation else ""
        super().__init__(
            f"{where}{message}; the call may be retried",
            downstream=ERP_DOWNSTREAM,
            operation=operation,
            status=status_code,
        )


class ErpAuthenticationError(ErpError):
    """The ERP rejected the login; check the ERP user name and password in the settings."""


class ErpProtocolError(ErpError):
    """The ERP answered with something the connector does not understand."""


class ErpNotFound(ErpBusinessError):
    """A record the hub refers to does not exist in the ERP (or no longer does)."""
