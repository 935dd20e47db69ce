"""Errors of the Zendesk connector, each saying what went wrong and what to do.

They speak the resilience layer's vocabulary as well: a refusal is a
:class:`~retailsync.resilience.errors.BusinessError` (routed to a person, never retried) and
"still failing" a :class:`~retailsync.resilience.errors.TransientError` (retried later), so
workflows and the bus classify them without knowing Zendesk.
"""

from __future__ import annotations

from retailsync.resilience.errors import BusinessError, TransientError, UnknownReference

DOWNSTREAM = "service_desk"
"""The resilience downstream (and trace system) Zendesk calls belong to."""


class ZendeskError(Exception):
    """Base class for every Zendesk connector error."""


class ZendeskConfigError(ZendeskError, ValueError):
    """The connector settings are invalid; the message names the bad key."""


class ZendeskApiError(ZendeskError, BusinessError):
    """Zendesk answered with an error status that retrying will not fix."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(
            f"Zendesk {method} {path} failed with HTTP {status}: {body[:300]}; check the "
            "request and the API user's permissions",
            downstream=DOWNSTREAM,
            operation=f"{method} {path}",
            status=status,
        )
        self.method = method
        self.path = path
        self.body = body


class ZendeskTicketNotFound(ZendeskApiError, UnknownReference):
    """The ticket does not exist (or the API user cannot see it)."""


class ZendeskUnavailable(ZendeskError, TransientError):
    """Zendesk kept failing (5xx, 429 or network errors) after every allowed attempt."""

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
            f"Zendesk {method} {path} still failing after {attempts} attempts (last: {last}); "
            "the call is safe to retry later",
            downstream=DOWNSTREAM,
            operation=f"{method} {path}",
            retry_after=retry_after,
        )
        self.method = method
        self.path = path
        self.attempts = attempts


class ZendeskPayloadInvalid(ZendeskError):
    """A ticket or webhook payload lacks a field the mapping needs."""


class ZendeskServerError(ZendeskUnavailable):
    """A 5xx or network error on a call that must not be repeated blindly (adds a comment)."""


class ZendeskTicketNotLinked(ZendeskError, LookupError):
    """A case id with no Zendesk ticket in the cross-reference table."""
