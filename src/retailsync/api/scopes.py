"""Scopes a client may hold, the route class (for rate limits) each guards, and the
authenticated caller (:class:`Principal`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from retailsync.api.errors import UnknownScope


class Scope(StrEnum):
    """One permission; a route requires exactly one, a client holds any number."""

    SYSTEM_READ = "system:read"
    SYSTEM_WRITE = "system:write"
    PROCESS_WRITE = "process:write"
    PROCESS_APPROVE = "process:approve"
    EXPERIENCE_READ = "experience:read"
    ADMIN = "admin"

    @classmethod
    def parse(cls, value: str) -> Scope:
        try:
            return cls(value)
        except ValueError:
            raise UnknownScope(value, [scope.value for scope in cls]) from None


class RouteClass(StrEnum):
    """Routes that share a rate limit per client."""

    READ = "read"
    WRITE = "write"
    PROCESS = "process"
    ADMIN = "admin"


ROUTE_CLASS_OF: dict[Scope, RouteClass] = {
    Scope.SYSTEM_READ: RouteClass.READ,
    Scope.EXPERIENCE_READ: RouteClass.READ,
    Scope.SYSTEM_WRITE: RouteClass.WRITE,
    Scope.PROCESS_WRITE: RouteClass.PROCESS,
    Scope.PROCESS_APPROVE: RouteClass.PROCESS,
    Scope.ADMIN: RouteClass.ADMIN,
}


@dataclass(frozen=True)
class Principal:
    """Who is calling: the client, its scopes, and how it proved it (``api_key`` or ``jwt``)."""

    client_id: str
    name: str
    scopes: frozenset[Scope]
    auth_method: str

    @property
    def actor(self) -> str:
        """How the audit log names this caller: ``apikey:<id>`` or ``jwt:<client>``."""
        prefix = "apikey" if self.auth_method == "api_key" else self.auth_method
        return f"{prefix}:{self.client_id}"

    @property
    def rate_limit_key(self) -> str:
        return self.actor
