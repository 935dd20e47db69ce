"""API versions: every route lives under ``/v1``; old routes announce their end.

A deprecated route (or a whole router) gets
``dependencies=[deprecation(deprecated_at=..., sunset=...)]``. Every response of it — errors
included — then carries ``Deprecation`` (RFC 9745), ``Sunset`` (RFC 8594) and ``Link``
headers, and its OpenAPI operation is marked ``deprecated: true``.
List it before ``require_scope(...)`` (or on ``include_router``, which runs first) so that
refused requests carry the headers as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from fastapi import Depends, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_PREFIX = "/v1"
_HEADERS_STATE = "extra_response_headers"


def add_response_header(request: Request, name: str, value: str) -> None:
    """Send ``name: value`` on whatever response this request ends with, errors included."""
    state = request.scope.setdefault("state", {})
    state.setdefault(_HEADERS_STATE, []).append((name, value))


@dataclass(frozen=True)
class DeprecationNotice:
    """When a route was deprecated, when it stops working, and where to read about it."""

    deprecated_at: datetime
    sunset: datetime
    link: str | None = None
    successor: str | None = None

    def headers(self) -> list[tuple[str, str]]:
        headers = [
            # RFC 9745: a structured-field Date (seconds since the epoch).
            ("Deprecation", f"@{int(self.deprecated_at.timestamp())}"),
            ("Sunset", format_datetime(self.sunset.astimezone(UTC), usegmt=True)),
        ]
        if self.link:
            headers.append(("Link", f'<{self.link}>; rel="deprecation"; type="text/html"'))
        if self.successor:
            headers.append(("Link", f'<{self.successor}>; rel="successor-version"'))
        return headers

    async def __call__(self, request: Request) -> None:
        for name, value in self.headers():
            add_response_header(request, name, value)


def deprecation(
    *,
    deprecated_at: datetime,
    sunset: datetime,
    link: str | None = None,
    successor: str | None = None,
) -> Any:
    """The dependency that marks a route or router deprecated since ``deprecated_at``, until
    ``sunset``; ``link`` points at the migration notes, ``successor`` at the new route."""
    if sunset.tzinfo is None or deprecated_at.tzinfo is None:
        raise ValueError("deprecation dates must be timezone-aware (use datetime(..., tzinfo=UTC))")
    if deprecated_at > sunset:
        raise ValueError("a route cannot be deprecated after its sunset")
    notice = DeprecationNotice(
        sunset=sunset, deprecated_at=deprecated_at, link=link, successor=successor
    )
    return Depends(notice)


class ResponseHeadersMiddleware:
    """Adds the headers routes asked for with :func:`add_response_header` to the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = scope.get("state", {}).get(_HEADERS_STATE)
                if extra:
                    headers = list(message.get("headers", []))
                    headers.extend((name.lower().encode(), value.encode()) for name, value in extra)
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
