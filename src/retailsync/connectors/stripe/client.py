"""Stripe's REST API over httpx: auth, form encoding, idempotency keys, pagination, retries.

We call the API with ``httpx.AsyncClient`` rather than the ``stripe`` SDK because the hub is
async end to end, classifies every failure into the resilience layer's transient / business
errors, and needs the retry to stay under its own control (an idempotent POST is retried with
the *same* key; a POST without one never is). The official SDK is still what verifies webhook
signatures (:mod:`retailsync.connectors.stripe.inbound`), and the contract tests drive the
same sandbox with the SDK to prove both speak the same API.

Retries: given a :class:`~retailsync.resilience.guard.Downstream` (the ``payments`` downstream
of the resilience layer), every call runs under its policy: retries with jitter, circuit
breaker, rate limit and priority lanes. Without one, a small built-in loop retries 429, 5xx
and network failures with exponential backoff and full jitter, honouring ``Retry-After``. In
both cases a POST is retried only when it carries an ``Idempotency-Key`` (Stripe then replays
the first result instead of acting twice), and an answer with ``Stripe-Should-Retry: false``
is never retried.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import httpx

from retailsync.connectors.stripe.config import StripeSettings
from retailsync.connectors.stripe.errors import (
    StripeAuthenticationFailed,
    StripeIdempotencyMismatch,
)
from retailsync.observability.otel import traceparent_hooks
from retailsync.resilience.config import Lane
from retailsync.resilience.errors import (
    BusinessError,
    DownstreamThrottled,
    DownstreamUnavailable,
    TransientError,
)
from retailsync.resilience.guard import Downstream
from retailsync.resilience.http import ClosingClient, error_for_status, parse_retry_after

__all__ = ["StripeApi", "encode_form"]

DOWNSTREAM = "stripe"
JsonObject = dict[str, Any]


def encode_form(params: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's form encoding: ``metadata[order_id]=..``, ``expand[0]=..``, booleans lower."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if value is None:
            continue
        if isinstance(value, Mapping):
            pairs.extend(encode_form(value, name))
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                if isinstance(item, Mapping):
                    pairs.extend(encode_form(item, f"{name}[{index}]"))
                else:
                    pairs.append((f"{name}[{index}]", _scalar(item)))
        else:
            pairs.append((name, _scalar(value)))
    return pairs


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class StripeApi(ClosingClient):
    """A thin async client for the parts of the Stripe API the hub uses."""

    def __init__(
        self,
        settings: StripeSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        downstream: Downstream | None = None,
        lane: Lane = Lane.BATCH,
    ) -> None:
        self.settings = settings
        self.downstream = downstream
        self.lane = lane
        headers = {
            "Authorization": f"Bearer {settings.api_key.get_secret_value()}",
            "User-Agent": "retailsync-stripe-connector",
        }
        if settings.api_version:
            headers["Stripe-Version"] = settings.api_version
        self._http = httpx.AsyncClient(
            base_url=settings.base_url,
            headers=headers,
            timeout=settings.timeout_seconds,
            transport=transport,
            event_hooks=traceparent_hooks(),
        )
        self._sleep = sleep
        self._jitter = jitter
        #: Attempts made by the last call (1 when it succeeded first time).
        self.last_attempts = 0

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- resources -------------------------------------------------------------------------

    async def retrieve_payment_intent(self, payment_intent_id: str) -> JsonObject:
        return await self.request(
            "GET", f"/v1/payment_intents/{payment_intent_id}", operation="retrieve payment intent"
        )

    async def retrieve_charge(self, charge_id: str) -> JsonObject:
        return await self.request("GET", f"/v1/charges/{charge_id}", operation="retrieve charge")

    async def list_charges(self, *, payment_intent: str | None = None) -> list[JsonObject]:
        params = {"payment_intent": payment_intent} if payment_intent else {}
        return [charge async for charge in self.iter_list("/v1/charges", params, "list charges")]

    async def create_refund(self, params: Mapping[str, Any], *, idempotency_key: str) -> JsonObject:
        return await self.request(
            "POST",
            "/v1/refunds",
            form=params,
            idempotency_key=idempotency_key,
            operation="create refund",
        )

    async def cancel_payment_intent(
        self, payment_intent_id: str, params: Mapping[str, Any], *, idempotency_key: str
    ) -> JsonObject:
        return await self.request(
            "POST",
            f"/v1/payment_intents/{payment_intent_id}/cancel",
            form=params,
            idempotency_key=idempotency_key,
            operation="cancel payment intent",
        )

    async def retrieve_refund(self, refund_id: str) -> JsonObject:
        return await self.request("GET", f"/v1/refunds/{refund_id}", operation="retrieve refund")

    def iter_refunds(
        self, *, payment_intent: str | None = None, charge: str | None = None
    ) -> AsyncIterator[JsonObject]:
        params = {"payment_intent": payment_intent, "charge": charge}
        return self.iter_list("/v1/refunds", params, "list refunds")

    async def iter_list(
        self, path: str, params: Mapping[str, Any], operation: str
    ) -> AsyncIterator[JsonObject]:
        """Every object of a list endpoint, following ``has_more`` / ``starting_after``."""
        query: dict[str, Any] = {k: v for k, v in params.items() if v is not None}
        query["limit"] = self.settings.page_size
        while True:
            page = await self.request("GET", path, params=query, operation=operation)
            data: Sequence[JsonObject] = page.get("data") or []
            for item in data:
                yield item
            if not page.get("has_more") or not data:
                return
            query["starting_after"] = data[-1]["id"]

    # -- transport -------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        params: Mapping[str, Any] | None = None,
        form: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> JsonObject:
        """One API call with retries; returns the decoded JSON object."""
        headers: dict[str, str] = {}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        content = None
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            content = urlencode(encode_form(form)).encode("ascii")
        query = urlencode(encode_form(params)) if params else None
        self.last_attempts = 0

        async def once() -> JsonObject:
            self.last_attempts += 1
            return await self._send_once(method, path, query, content, headers, operation)

        if self.downstream is not None:
            return await self.downstream.call(
                operation,
                once,
                lane=self.lane,
                idempotency_key=idempotency_key,
                mutating=method != "GET",
            )
        retry_safe = method == "GET" or idempotency_key is not None
        while True:
            try:
                return await once()
            except TransientError as error:
                retryable = retry_safe or error.status == 429
                if not retryable or self.last_attempts >= self.settings.max_attempts:
                    raise
                if (
                    error.retry_after is not None
                    and error.retry_after > self.settings.max_retry_after_seconds
                ):
                    raise
                await self._sleep(self._backoff(self.last_attempts, error.retry_after))

    async def _send_once(
        self,
        method: str,
        path: str,
        query: str | None,
        content: bytes | None,
        headers: Mapping[str, str],
        operation: str,
    ) -> JsonObject:
        """One attempt: the decoded body, or a classified transient / business error."""
        try:
            response = await self._http.request(
                method, path, params=query, content=content, headers=headers
            )
        except httpx.TransportError as transport_error:
            raise DownstreamUnavailable(
                f"could not reach Stripe for {operation} "
                f"({type(transport_error).__name__}: {transport_error})",
                downstream=DOWNSTREAM,
                operation=operation,
            ) from transport_error
        if response.status_code < 400:
            body: JsonObject = response.json()
            return body
        error = self._error(response, operation)
        if isinstance(error, TransientError) and (
            response.headers.get("Stripe-Should-Retry") == "false"
        ):
            # Stripe says a retry cannot succeed: hand it up as a refusal, not a blip.
            raise BusinessError(
                f"{error.message} (Stripe-Should-Retry: false)",
                downstream=DOWNSTREAM,
                operation=operation,
                status=response.status_code,
            )
        raise error

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        ceiling = min(
            self.settings.max_retry_after_seconds,
            self.settings.backoff_seconds * 2.0 ** (attempt - 1),
        )
        return float(ceiling) * self._jitter()

    def _error(self, response: httpx.Response, operation: str) -> TransientError | BusinessError:
        try:
            payload = response.json().get("error") or {}
        except ValueError:
            payload = {}
        message = str(payload.get("message") or response.text[:200])
        request_id = response.headers.get("Request-Id")
        detail = message + (f" (request {request_id})" if request_id else "")
        details: dict[str, object] = {
            "type": payload.get("type"),
            "code": payload.get("code"),
            "param": payload.get("param"),
            "request_id": request_id,
        }
        status = response.status_code
        if payload.get("type") == "idempotency_error":
            return StripeIdempotencyMismatch(
                f"Stripe refused {operation}: {detail}; the idempotency key was already used "
                "with other parameters: derive one key per distinct refund",
                downstream=DOWNSTREAM,
                operation=operation,
                status=status,
                details=details,
            )
        if status == 401:
            return StripeAuthenticationFailed(
                f"Stripe refused the API key for {operation}: {detail}; "
                "check connectors.stripe.api_key",
                downstream=DOWNSTREAM,
                operation=operation,
                status=status,
                details=details,
            )
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        classified = error_for_status(
            status,
            downstream=DOWNSTREAM,
            operation=operation,
            retry_after=retry_after,
            detail=detail,
        )
        if classified is None:  # pragma: no cover - status >= 400 always classifies
            classified = BusinessError(detail, downstream=DOWNSTREAM, operation=operation)
        if isinstance(classified, BusinessError):
            classified.details = details
        if status == 409 and payload.get("code") == "lock_timeout":
            return DownstreamThrottled(
                f"Stripe is still processing a request with the same key for {operation}",
                downstream=DOWNSTREAM,
                operation=operation,
                retry_after=retry_after,
                status=status,
            )
        return classified
