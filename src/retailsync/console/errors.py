"""What can go wrong in the console, each with what to do about it."""

from __future__ import annotations


class ConsoleError(Exception):
    """Base class for console errors."""


class InvalidSession(ConsoleError):
    """The session cookie is missing, tampered with, expired or names a revoked client."""

    def __init__(self, why: str) -> None:
        super().__init__(f"the console session is not valid ({why}); sign in again")
        self.why = why


class CsrfRejected(ConsoleError):
    """A form came back without the token of this session (or with another one)."""

    def __init__(self) -> None:
        super().__init__(
            "the form's security token does not match this session; reload the page and "
            "submit it again"
        )


class ComponentUnavailable(ConsoleError):
    """A page needs a part of the hub that this process does not run."""

    def __init__(self, component: str, how: str) -> None:
        super().__init__(f"{component} is not available in this process: {how}")
        self.component = component
