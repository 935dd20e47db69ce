"""HTTP client for the WMS contract in docs/connectors/wms.md.

Bearer-key auth; lists are paged with ``page_size`` and an opaque ``cursor`` (answer field
``next_cursor``, null on the last page); HTTP 429 is waited out per ``Retry-After``; 5xx and
network errors are retried with exponential back-off and jitter. Every write carries an
``Idempotency-Key``, so retrying a write is safe.

Retries: given a :class:`~retailsync.resilience.guard.Downstream` (the hub's ``wms``
downstream, as ``bootstrap`` wires it), every request runs under its shared policy — retries
with jitter honouring ``Retry-After``, circuit breaker, rate limit, priority lanes — and each
attempt is an observed outbound call (an ``outbound_call`` hop in the trace, latency and
error metrics, a client span). Without one, a small built-in loop does the retrying with the
connector's own ``max_attempts`` / ``backoff_seconds``. Either way the errors are this
connector's (:mod:`~retailsync.connectors.wms.errors`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from retailsync.connectors.wms.config import WmsSettings
from retailsync.connectors.wms.errors import (
    DOWNSTREAM,
    WmsApiError,
    WmsNotFound,
    WmsUnavailable,
)
from retailsync.observability.otel import traceparent_hooks
from retailsync.resilience.errors import TransientError
from retailsync.resilience.guard import Downstream
from retailsync.resilience.http import ClosingClient, parse_retry_after, raise_if_retryable
from retailsync.resilience.lanes import current_lane

Sleep = Callable[[float], Awaitable[None]]


class WmsClient(ClosingClient):
    """Async client for the WMS endpoints the hub uses."""

    def __init__(
        self,
        settings: WmsSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        downstream: Downstream | None = None,
    ) -> None:
        self._settings = settings
        self._sleep = sleep
        self.downstream = downstream
        self._http = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {settings.api_key.get_secret_value()}",
                "Accept": "application/json",
                "User-Agent": "retailsync-wms/1",
            },
            timeout=settings.timeout_seconds,
            transport=transport,
            event_hooks=traceparent_hooks(),
        )
        self.waits: list[float] = []

    async def aclose(self) -> None:
        await self._http.aclose()

    async def iter_pages(
        self, path: str, filters: dict[str, str] | None = None, *, operation: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item of a paged list endpoint, following ``next_cursor``."""
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {**(filters or {}), "page_size": self._settings.page_size}
            if cursor:
                params["cursor"] = cursor
            body = await self.request("GET", path, params=params, operation=operation)
            for item in body.get("items") or []:
                yield item
            cursor = body.get("next_cursor")
            if not cursor:
                return

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        operation: str | None = None,
    ) -> dict[str, Any]:
        """One API call; ``operation`` names it in traces and metrics (default: method path)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        if self.downstream is not None:
            return await self._request_guarded(
                self.downstream,
                method,
                path,
                params,
                json,
                headers,
                idempotency_key,
                operation or f"{method} {path}",
            )
        last = ""
        for attempt in range(1, self._settings.max_attempts + 1):
            try:
                response = await self._http.request(
                    method, path, params=params, json=json, headers=headers
                )
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                await self._wait(self._backoff(attempt))
                continue
            if response.status_code == 429:
                last = "HTTP 429"
                wait = parse_retry_after(response.headers.get("Retry-After"))
                await self._wait(
                    min(
                        wait if wait is not None else self._backoff(attempt),
                        self._settings.max_retry_after_seconds,
                    )
                )
                continue
            if response.status_code >= 500:
                last = f"HTTP {response.status_code}"
                await self._wait(self._backoff(attempt))
                continue
            if response.status_code >= 400:
                raise _refusal(method, path, response)
            data = response.json() if response.content else {}
            return data if isinstance(data, dict) else {"items": data}
        raise WmsUnavailable(method, path, self._settings.max_attempts, last)

    async def _request_guarded(
        self,
        downstream: Downstream,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        json: dict[str, Any] | None,
        headers: dict[str, str] | None,
        idempotency_key: str | None,
        operation: str,
    ) -> dict[str, Any]:
        """One call under the downstream's policy; each attempt is one request."""
        attempts = 0

        async def once() -> dict[str, Any]:
            nonlocal attempts
            attempts += 1
            response = await self._http.request(
                method, path, params=params, json=json, headers=headers
            )
            status = response.status_code
            raise_if_retryable(response, downstream=DOWNSTREAM, operation=operation)
            if status >= 400:
                raise _refusal(method, path, response)
            data = response.json() if response.content else {}
            return data if isinstance(data, dict) else {"items": data}

        try:
            # Writes are retried only because they carry an Idempotency-Key.
            return await downstream.call(
                operation,
                once,
                lane=current_lane.get(),
                idempotency_key=idempotency_key,
                mutating=method != "GET",
            )
        except TransientError as exc:
            raise WmsUnavailable(
                method, path, attempts, f"{type(exc).__name__}: {exc}", retry_after=exc.retry_after
            ) from exc

    def _backoff(self, attempt: int) -> float:
        base = self._settings.backoff_seconds * float(2 ** (attempt - 1))
        return base * (0.5 + random.random() / 2)

    async def _wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        await self._sleep(seconds)


def _refusal(method: str, path: str, response: httpx.Response) -> WmsApiError:
    code, message = "error", response.text[:300]
    try:
        error = response.json().get("error", {})
        code, message = str(error.get("code", code)), str(error.get("message", message))
    except (ValueError, AttributeError):
        pass
    error_class = WmsNotFound if response.status_code == 404 else WmsApiError
    return error_class(method, path, response.status_code, code, message)
