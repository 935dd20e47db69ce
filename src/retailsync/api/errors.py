"""Errors of the API's governance; routes turn them into problem+json answers."""

from __future__ import annotations


class UnknownScope(ValueError):
    """A scope that the hub does not define was asked for."""

    def __init__(self, scope: str, known: list[str]) -> None:
        super().__init__(f"unknown scope {scope!r}: use one of {', '.join(known)}")
        self.scope = scope


class UnknownApiClient(LookupError):
    """No API client has this id."""

    def __init__(self, client_id: str) -> None:
        super().__init__(
            f"no API client with id {client_id!r}: `retailsync clients list` shows the ids"
        )
        self.client_id = client_id


class InvalidCredentials(Exception):
    """The presented API key or bearer token does not authenticate anyone (the message says
    why, without repeating the credential)."""


class TokenKeysUnavailable(Exception):
    """The keys that verify bearer tokens could not be fetched from the configured JWKS URL."""
