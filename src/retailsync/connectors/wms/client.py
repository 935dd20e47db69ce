"""HTTP client for the WMS contract in docs/connectors/wms.md.

Bearer-key auth; lists are paged with ``page_size`` and an opaque ``cursor`` (answer field
``next_cursor``, null on the last page); HTTP 429 is waited out per ``Retry-After``; 5xx and
network errors are retried with exponential back-off and jitter. Every write carries an
``Idempotency-Key``, so retrying a write is safe.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any

import httpx

from retailsync.connectors.wms.config import WmsSettings
from retailsync.connectors.wms.errors import WmsApiError, WmsNotFound, WmsUnavailable
from retailsync.observability.otel import traceparent_hooks
from retailsync.resilience.http import parse_retry_after

Sleep = Callable[[float], Awaitable[None]]


class WmsClient:
    """Async client for the WMS endpoints the hub uses."""

    def __init__(
        self,
        settings: WmsSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._settings = settings
        self._sleep = sleep
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

    async def __aenter__(self) -> WmsClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def iter_pages(
        self, path: str, filters: dict[str, str] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item of a paged list endpoint, following ``next_cursor``."""
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {**(filters or {}), "page_size": self._settings.page_size}
            if cursor:
                params["cursor"] = cursor
            body = await self.request("GET", path, params=params)
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
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
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
