"""Errors of the Zendesk connector, each saying what went wrong and what to do."""

from __future__ import annotations


class ZendeskError(Exception):
    """Base class for every Zendesk connector error."""


class ZendeskConfigError(ZendeskError, ValueError):
    """The connector settings are invalid; the message names the bad key."""


class ZendeskApiError(ZendeskError):
    """Zendesk answered with an error status that retrying will not fix."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.body = body
        super().__init__(
            f"Zendesk {method} {path} failed with HTTP {status}: {body[:300]}; check the "
            "request and the API user's permissions"
        )


class ZendeskTicketNotFound(ZendeskApiError):
    """The ticket does not exist (or the API user cannot see it)."""


class ZendeskUnavailable(ZendeskError):
    """Zendesk kept failing (5xx, 429 or network errors) after every allowed attempt."""

    def __init__(self, method: str, path: str, attempts: int, last: str) -> None:
        self.method = method
        self.path = path
        self.attempts = attempts
        super().__init__(
            f"Zendesk {method} {path} still failing after {attempts} attempts (last: {last}); "
            "the call is safe to retry later"
        )


class ZendeskPayloadInvalid(ZendeskError):
    """A ticket or webhook payload lacks a field the mapping needs."""


class ZendeskServerError(ZendeskUnavailable):
    """A 5xx or network error on a call that must not be repeated blindly (adds a comment)."""


class ZendeskTicketNotLinked(ZendeskError, LookupError):
    """A case id with no Zendesk ticket in the cross-reference table."""
