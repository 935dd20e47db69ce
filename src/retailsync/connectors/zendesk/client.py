"""HTTP client for the Zendesk Support API: auth, cursor pagination, 429 and 5xx back-off.

Follows Zendesk's documented behaviour: API-token auth as ``<email>/token:<token>`` (basic),
cursor pagination with ``page[size]`` and ``links.next`` / ``meta.has_more``, and on HTTP 429
waiting the ``Retry-After`` seconds before the next call. Server errors and network failures
are retried with exponential back-off and jitter, unless the caller says the call must not be
repeated blindly (a comment could be added twice).

Retries: given a :class:`~retailsync.resilience.guard.Downstream` (the hub's
``service_desk`` downstream, as ``bootstrap`` wires it), every request runs under its shared
policy — retries with jitter honouring ``Retry-After``, circuit breaker, rate limit, priority
lanes — and each attempt is an observed outbound call (an ``outbound_call`` hop in the trace,
latency and error metrics, a client span). Without one, a small built-in loop does the
retrying with the connector's own ``max_attempts`` / ``backoff_seconds``. Either way the
errors are this connector's (:mod:`~retailsync.connectors.zendesk.errors`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from retailsync.connectors.zendesk.config import ZendeskSettings
from retailsync.connectors.zendesk.errors import (
    DOWNSTREAM,
    ZendeskApiError,
    ZendeskPayloadInvalid,
    ZendeskServerError,
    ZendeskTicketNotFound,
    ZendeskUnavailable,
)
from retailsync.observability.otel import traceparent_hooks
from retailsync.resilience.errors import TransientError
from retailsync.resilience.guard import Downstream
from retailsync.resilience.http import ClosingClient, parse_retry_after, raise_if_retryable
from retailsync.resilience.lanes import current_lane

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RateLimitStatus:
    """The account's per-minute budget as last reported (``X-Rate-Limit`` headers)."""

    limit: int | None
    remaining: int | None


class ZendeskClient(ClosingClient):
    """Thin async client for the ticket endpoints the hub uses."""

    def __init__(
        self,
        settings: ZendeskSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        downstream: Downstream | None = None,
    ) -> None:
        self._settings = settings
        self._sleep = sleep
        self.downstream = downstream
        self._http = httpx.AsyncClient(
            base_url=settings.api_root,
            auth=httpx.BasicAuth(f"{settings.email}/token", settings.api_token.get_secret_value()),
            timeout=settings.timeout_seconds,
            transport=transport,
            event_hooks=traceparent_hooks(),
            headers={"Accept": "application/json", "User-Agent": "retailsync-zendesk/1"},
        )
        self.rate_limit = RateLimitStatus(limit=None, remaining=None)
        self.calls = 0
        self.waited_seconds = 0.0

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- tickets -----------------------------------------------------------------------------

    async def get_ticket(self, ticket_id: int) -> dict[str, Any]:
        """``GET /api/v2/tickets/{id}.json`` -> the ticket object."""
        body = await self._json("GET", f"/api/v2/tickets/{ticket_id}.json", operation="show ticket")
        return _field(body, "ticket")

    async def get_ticket_and_users(
        self, ticket_id: int
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The ticket with its users sideloaded (``?include=users``): requester name, email."""
        body = await self._json(
            "GET",
            f"/api/v2/tickets/{ticket_id}.json",
            params={"include": "users"},
            operation="show ticket",
        )
        users = body.get("users")
        return _field(body, "ticket"), users if isinstance(users, list) else []

    async def update_ticket(
        self, ticket_id: int, changes: dict[str, Any], *, repeatable: bool = True
    ) -> dict[str, Any]:
        """``PUT /api/v2/tickets/{id}.json`` with ``{"ticket": changes}``.

        ``repeatable=False`` (a comment is part of ``changes``) turns a 5xx into
        :class:`ZendeskServerError` instead of a blind retry, so the caller can check first.
        """
        body = await self._json(
            "PUT",
            f"/api/v2/tickets/{ticket_id}.json",
            json={"ticket": changes},
            repeatable=repeatable,
            operation="update ticket",
        )
        return _field(body, "ticket")

    async def iter_tickets(self, *, page_size: int | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every ticket, following cursor pagination (``links.next`` while ``has_more``)."""
        size = page_size or self._settings.page_size
        async for item in self._paginate("/api/v2/tickets.json", "tickets", size, "list tickets"):
            yield item

    async def iter_comments(
        self, ticket_id: int, *, page_size: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every comment on a ticket, oldest first, following cursor pagination."""
        size = page_size or self._settings.page_size
        path = f"/api/v2/tickets/{ticket_id}/comments.json"
        async for item in self._paginate(path, "comments", size, "list comments"):
            yield item

    # -- plumbing ----------------------------------------------------------------------------

    async def _paginate(
        self, path: str, key: str, size: int, operation: str
    ) -> AsyncIterator[dict[str, Any]]:
        url: str | None = path
        params: dict[str, Any] | None = {"page[size]": size}
        while url is not None:
            body = await self._json("GET", url, params=params, operation=operation)
            items = body.get(key)
            if not isinstance(items, list):
                raise ZendeskPayloadInvalid(f"Zendesk GET {path} answered without a {key!r} list")
            for item in items:
                yield item
            meta = body.get("meta") or {}
            links = body.get("links") or {}
            url = links.get("next") if meta.get("has_more") else None
            params = None  # the next link carries the cursor and the page size

    async def _json(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        repeatable: bool = True,
        operation: str,
    ) -> dict[str, Any]:
        if self.downstream is not None:
            response = await self._send_guarded(
                self.downstream, method, url, params, json, repeatable, operation
            )
        else:
            response = await self._send(
                method, url, params=params, json=json, repeatable=repeatable
            )
        try:
            data = response.json()
        except ValueError as exc:
            raise ZendeskPayloadInvalid(
                f"Zendesk {method} {url} answered HTTP {response.status_code} without JSON"
            ) from exc
        if not isinstance(data, dict):
            raise ZendeskPayloadInvalid(f"Zendesk {method} {url} answered a non-object JSON body")
        return data

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None,
        json: dict[str, Any] | None,
        repeatable: bool,
    ) -> httpx.Response:
        settings = self._settings
        last = ""
        for attempt in range(1, settings.max_attempts + 1):
            self.calls += 1
            try:
                response = await self._http.request(method, url, params=params, json=json)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                if not repeatable:
                    raise ZendeskServerError(method, url, attempt, last) from exc
                await self._backoff(attempt)
                continue
            self._note_rate_limit(response)
            status = response.status_code
            if status == 429:
                last = "HTTP 429"
                await self._wait(self._retry_after(response, attempt))
                continue
            if status >= 500:
                last = f"HTTP {status}"
                if not repeatable:
                    raise ZendeskServerError(method, url, attempt, last)
                await self._backoff(attempt)
                continue
            if status == 404:
                raise ZendeskTicketNotFound(method, url, status, response.text)
            if status >= 400:
                raise ZendeskApiError(method, url, status, response.text)
            return response
        raise ZendeskUnavailable(method, url, settings.max_attempts, last)

    async def _send_guarded(
        self,
        downstream: Downstream,
        method: str,
        url: str,
        params: dict[str, Any] | None,
        json: dict[str, Any] | None,
        repeatable: bool,
        operation: str,
    ) -> httpx.Response:
        """One call under the downstream's policy; each attempt is one request."""
        attempts = 0

        async def once() -> httpx.Response:
            nonlocal attempts
            attempts += 1
            self.calls += 1
            response = await self._http.request(method, url, params=params, json=json)
            self._note_rate_limit(response)
            status = response.status_code
            raise_if_retryable(response, downstream=DOWNSTREAM, operation=operation)
            if status == 404:
                raise ZendeskTicketNotFound(method, url, status, response.text)
            if status >= 400:
                raise ZendeskApiError(method, url, status, response.text)
            return response

        try:
            # A call that adds a comment is a write the guard must not repeat on its own.
            return await downstream.call(
                operation, once, lane=current_lane.get(), mutating=not repeatable
            )
        except TransientError as exc:
            last = f"{type(exc).__name__}: {exc}"
            if not repeatable:
                raise ZendeskServerError(
                    method, url, attempts, last, retry_after=exc.retry_after
                ) from exc
            raise ZendeskUnavailable(
                method, url, attempts, last, retry_after=exc.retry_after
            ) from exc

    def _note_rate_limit(self, response: httpx.Response) -> None:
        limit = _int_header(response, "X-Rate-Limit")
        remaining = _int_header(response, "X-Rate-Limit-Remaining")
        if limit is not None or remaining is not None:
            self.rate_limit = RateLimitStatus(limit=limit, remaining=remaining)

    def _retry_after(self, response: httpx.Response, attempt: int) -> float:
        seconds = parse_retry_after(response.headers.get("Retry-After"))
        if seconds is None:
            seconds = self._backoff_seconds(attempt)
        return min(seconds, self._settings.max_retry_after_seconds)

    def _backoff_seconds(self, attempt: int) -> float:
        base = self._settings.backoff_seconds * float(2 ** (attempt - 1))
        return base * (0.5 + random.random() / 2)

    async def _backoff(self, attempt: int) -> None:
        await self._wait(self._backoff_seconds(attempt))

    async def _wait(self, seconds: float) -> None:
        self.waited_seconds += seconds
        await self._sleep(seconds)


def _field(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    if not isinstance(value, dict):
        raise ZendeskPayloadInvalid(f"Zendesk answered without a {key!r} object")
    return value


def _int_header(response: httpx.Response, name: str) -> int | None:
    value = response.headers.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None
