"""A local stand-in for the part of the Stripe API the hub uses (for tests and the demo).

It reproduces, in memory, what Stripe documents for:

* payment intents and charges (``/v1/payment_intents``, ``/v1/charges``), cancelling a
  payment intent (``/v1/payment_intents/{id}/cancel``: only from the cancellable statuses, an
  uncaptured authorization is released) and refunds (``/v1/refunds``): form-encoded
  requests, object shapes, list objects with ``has_more`` and ``starting_after`` /
  ``ending_before`` (newest first, ``limit`` 1-100, default 10);
* errors: ``{"error": {"type", "code", "message", "param"}}`` with Stripe's status codes
  (400 invalid request, 401 bad key, 404 missing object, 429 rate limit, 500 api error) and a
  ``Request-Id`` header on every answer;
* idempotent requests: a POST with an ``Idempotency-Key`` seen before with the same parameters
  gets the saved answer again (``Idempotent-Replayed: true``); with other parameters a 400
  ``idempotency_error``; results are saved only once the endpoint starts executing, so a
  request that failed validation or an injected outage can be retried with the same key;
* rate limiting: more than ``burst`` requests within ``window_seconds`` get 429 with
  ``Retry-After``;
* webhooks: ``refund.created`` / ``refund.updated`` / ``refund.failed`` events POSTed to
  ``webhook_url`` with ``Stripe-Signature: t=...,v1=HMAC-SHA256("{t}.{body}")``.

A control API under ``/_sandbox`` seeds payment intents, settles pending refunds, injects
faults (``fail_next``, ``rate_limit_next``, ``lose_response_next``) and lists or re-sends webhook
deliveries. Nothing here talks to the real Stripe.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import math
import secrets
import string
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

__all__ = [
    "SANDBOX_API_KEY",
    "SANDBOX_WEBHOOK_SECRET",
    "StripeSandbox",
    "create_stripe_sandbox",
    "sign_stripe_payload",
]

SANDBOX_API_KEY = "sk_test_sandbox"
SANDBOX_WEBHOOK_SECRET = "whsec_sandbox"
API_VERSION = "2024-06-20"
_ALPHABET = string.ascii_letters + string.digits
CANCELLABLE_STATUSES = frozenset(
    {
        "requires_payment_method",
        "requires_capture",
        "requires_confirmation",
        "requires_action",
        "processing",
    }
)
CANCELLATION_REASONS = frozenset({"abandoned", "duplicate", "fraudulent", "requested_by_customer"})


def _new_id(prefix: str) -> str:
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(24))


def sign_stripe_payload(body: bytes, secret: str, timestamp: int) -> str:
    """The ``Stripe-Signature`` value Stripe sends for ``body`` at ``timestamp``."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def parse_stripe_form(body: bytes) -> dict[str, Any]:
    """Stripe's form encoding back into nested dicts/lists (``metadata[k]``, ``expand[0]``)."""
    result: dict[str, Any] = {}
    for raw_key, value in parse_qsl(body.decode("utf-8"), keep_blank_values=True):
        parts = raw_key.replace("]", "").split("[")
        target: Any = result
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if last:
                target[part] = value
            else:
                target = target.setdefault(part, {})
    parsed: dict[str, Any] = _lists(result)
    return parsed


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        converted = {key: _lists(item) for key, item in value.items()}
        if converted and all(key.isdigit() for key in converted):
            return [converted[key] for key in sorted(converted, key=int)]
        return converted
    return value


class StripeApiFailure(Exception):
    """An error answer in Stripe's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"type": type, "message": message}
        if code:
            self.body["code"] = code
        if param:
            self.body["param"] = param
        self.headers = dict(headers or {})


@dataclass
class SavedResult:
    """The first answer to an idempotent request."""

    endpoint: str
    fingerprint: str
    status: int
    body: dict[str, Any]
    request_id: str


@dataclass
class WebhookDelivery:
    """One attempt to POST an event to the configured webhook URL."""

    event_id: str
    event_type: str
    attempt: int
    status: int | None
    error: str | None = None


@dataclass
class StripeSandbox:
    """All sandbox state and knobs (one Stripe account)."""

    api_key: str = SANDBOX_API_KEY
    webhook_secret: str = SANDBOX_WEBHOOK_SECRET
    webhook_url: str | None = None
    burst: int = 1000
    window_seconds: float = 1.0
    retry_after_seconds: float = 1.0
    fail_next: int = 0
    fail_status: int = 500
    rate_limit_next: int = 0
    lose_response_next: int = 0
    payment_intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    deliveries: list[WebhookDelivery] = field(default_factory=list)
    idempotency: dict[tuple[str, str], SavedResult] = field(default_factory=dict)
    requests_seen: int = 0
    refund_behaviour: dict[str, str] = field(default_factory=dict)  # charge id -> behaviour
    _order: dict[str, int] = field(default_factory=dict)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    _recent: deque[float] = field(default_factory=deque)

    # -- objects ---------------------------------------------------------------------------

    def _remember(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._order[obj["id"]] = next(self._seq)
        return obj

    def seed_payment_intent(
        self,
        *,
        amount: int,
        currency: str = "eur",
        metadata: Mapping[str, str] | None = None,
        refund_behaviour: str = "succeed",
        status: str = "succeeded",
    ) -> dict[str, Any]:
        """A payment intent (succeeded: captured with one charge) ready to be refunded;
        ``requires_capture``: an authorized, uncaptured charge (manual capture) to be voided.

        ``refund_behaviour``: ``succeed`` (refunds succeed at once), ``pending`` (refunds stay
        pending until settled through the control API) or ``fail`` (refunds fail with
        ``declined``, as Stripe reports for some cards after the refund was created).
        """
        now = int(time.time())
        intent_id = _new_id("pi")
        charge_id = None
        captured = status == "succeeded"
        if status in {"succeeded", "requires_capture"}:
            charge_id = _new_id("ch")
            self.charges[charge_id] = self._remember(
                {
                    "id": charge_id,
                    "object": "charge",
                    "amount": amount,
                    "amount_captured": amount if captured else 0,
                    "amount_refunded": 0,
                    "captured": captured,
                    "created": now,
                    "currency": currency.lower(),
                    "livemode": False,
                    "metadata": dict(metadata or {}),
                    "paid": True,
                    "payment_intent": intent_id,
                    "refunded": False,
                    "status": "succeeded",
                }
            )
            self.refund_behaviour[charge_id] = refund_behaviour
        self.payment_intents[intent_id] = self._remember(
            {
                "id": intent_id,
                "object": "payment_intent",
                "amount": amount,
                "amount_capturable": amount if status == "requires_capture" else 0,
                "amount_received": amount if captured else 0,
                "canceled_at": None,
                "cancellation_reason": None,
                "capture_method": "automatic" if captured else "manual",
                "created": now,
                "currency": currency.lower(),
                "latest_charge": charge_id,
                "livemode": False,
                "metadata": dict(metadata or {}),
                "payment_method_types": ["card"],
                "status": status,
            }
        )
        return self.payment_intents[intent_id]

    def list_page(
        self, objects: list[dict[str, Any]], url: str, query: Mapping[str, str]
    ) -> dict[str, Any]:
        """A Stripe list object, newest first, honouring limit / starting_after / ending_before."""
        raw_limit = query.get("limit", "10")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
            raise StripeApiFailure(
                400,
                f"Invalid integer: {raw_limit}; limit must be between 1 and 100",
                code="parameter_invalid_integer",
                param="limit",
            )
        limit = int(raw_limit)
        ordered = sorted(objects, key=lambda obj: self._order[obj["id"]], reverse=True)
        ids = [obj["id"] for obj in ordered]
        after, before = query.get("starting_after"), query.get("ending_before")
        if after and before:
            raise StripeApiFailure(
                400,
                "You may only specify one of these parameters: ending_before, starting_after.",
                param="starting_after",
            )
        if after or before:
            cursor = after or before
            if cursor not in ids:
                raise StripeApiFailure(
                    400,
                    f"No such object: '{cursor}'",
                    code="resource_missing",
                    param="starting_after" if after else "ending_before",
                )
            position = ids.index(str(cursor))
            if after:
                window = ordered[position + 1 :]
                page, more = window[:limit], len(window) > limit
            else:
                window = ordered[:position]
                page, more = window[-limit:], len(window) > limit
        else:
            page, more = ordered[:limit], len(ordered) > limit
        return {"object": "list", "url": url, "has_more": more, "data": page}

    def cancel_payment_intent(self, intent_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Stripe's "Cancel a PaymentIntent": only from a cancellable status; the remaining
        ``amount_capturable`` of an uncaptured authorization is released (refunded)."""
        intent = self.payment_intents.get(intent_id)
        if intent is None:
            raise StripeApiFailure(
                404,
                f"No such payment_intent: '{intent_id}'",
                code="resource_missing",
                param="intent",
            )
        reason = params.get("cancellation_reason")
        if reason is not None and reason not in CANCELLATION_REASONS:
            raise StripeApiFailure(
                400,
                "Invalid cancellation_reason: must be one of abandoned, duplicate, fraudulent, "
                f"or requested_by_customer (got {reason!r})",
                code="parameter_invalid_string",
                param="cancellation_reason",
            )
        if intent["status"] not in CANCELLABLE_STATUSES:
            raise StripeApiFailure(
                400,
                "You cannot cancel this PaymentIntent because it has a status of "
                f"{intent['status']}. Only a PaymentIntent with one of the following statuses "
                "may be canceled: " + ", ".join(sorted(CANCELLABLE_STATUSES)) + ".",
                code="payment_intent_unexpected_state",
            )
        charge = self.charges.get(str(intent.get("latest_charge")))
        if charge is not None and not charge["captured"]:
            charge["amount_refunded"] = charge["amount"]
            charge["refunded"] = True
        intent["status"] = "canceled"
        intent["canceled_at"] = int(time.time())
        intent["cancellation_reason"] = reason
        intent["amount_capturable"] = 0
        return intent

    # -- refunds ---------------------------------------------------------------------------

    def create_refund(self, params: Mapping[str, Any]) -> dict[str, Any]:
        charge_id = params.get("charge")
        intent_id = params.get("payment_intent")
        if not charge_id and not intent_id:
            raise StripeApiFailure(
                400,
                "One of the following parameters is required: charge, payment_intent.",
                code="parameter_missing",
                param="charge",
            )
        if intent_id:
            intent = self.payment_intents.get(str(intent_id))
            if intent is None:
                raise StripeApiFailure(
                    400,
                    f"No such payment_intent: '{intent_id}'",
                    code="resource_missing",
                    param="payment_intent",
                )
            charge_id = intent.get("latest_charge")
            if not charge_id:
                raise StripeApiFailure(
                    400,
                    f"This PaymentIntent ({intent_id}) does not have a successful charge to "
                    "refund.",
                    code="charge_not_refundable",
                    param="payment_intent",
                )
        charge = self.charges.get(str(charge_id))
        if charge is None:
            raise StripeApiFailure(
                400, f"No such charge: '{charge_id}'", code="resource_missing", param="charge"
            )
        remaining = charge["amount_captured"] - charge["amount_refunded"]
        if remaining <= 0:
            raise StripeApiFailure(
                400,
                f"Charge {charge['id']} has already been refunded.",
                code="charge_already_refunded",
            )
        raw_amount = params.get("amount", str(remaining))
        if not str(raw_amount).isdigit() or int(raw_amount) <= 0:
            raise StripeApiFailure(
                400,
                f"Invalid positive integer: {raw_amount}",
                code="parameter_invalid_integer",
                param="amount",
            )
        amount = int(raw_amount)
        if amount > remaining:
            raise StripeApiFailure(
                400,
                f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                f"({remaining})",
                code="amount_too_large",
                param="amount",
            )
        reason = params.get("reason")
        if reason is not None and reason not in (
            "duplicate",
            "fraudulent",
            "requested_by_customer",
        ):
            raise StripeApiFailure(
                400,
                f"Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer "
                f"(got {reason!r})",
                code="parameter_invalid_string",
                param="reason",
            )
        behaviour = self.refund_behaviour.get(charge["id"], "succeed")
        status = {"succeed": "succeeded", "pending": "pending", "fail": "pending"}[behaviour]
        refund = self._remember(
            {
                "id": _new_id("re"),
                "object": "refund",
                "amount": amount,
                "balance_transaction": _new_id("txn"),
                "charge": charge["id"],
                "created": int(time.time()),
                "currency": charge["currency"],
                "metadata": dict(params.get("metadata") or {}),
                "payment_intent": charge.get("payment_intent"),
                "reason": reason,
                "receipt_number": None,
                "source_transfer_reversal": None,
                "status": status,
                "transfer_reversal": None,
            }
        )
        self.refunds[refund["id"]] = refund
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
        return refund

    def settle_refund(
        self, refund_id: str, status: str, failure_reason: str | None = None
    ) -> list[dict[str, Any]]:
        """Move a pending refund to ``succeeded`` or ``failed``; return the events raised."""
        refund = self.refunds.get(refund_id)
        if refund is None:
            raise StripeApiFailure(
                404, f"No such refund: '{refund_id}'", code="resource_missing", param="id"
            )
        if refund["status"] != "pending":
            raise StripeApiFailure(
                400, f"Refund {refund_id} is {refund['status']}, not pending", param="status"
            )
        previous = {"status": refund["status"]}
        refund["status"] = status
        events = []
        if status == "failed":
            refund["failure_reason"] = failure_reason or "declined"
            refund["failure_balance_transaction"] = _new_id("txn")
            charge = self.charges[refund["charge"]]
            charge["amount_refunded"] -= refund["amount"]
            charge["refunded"] = False
            events.append(self.new_event("refund.failed", refund, previous))
        events.append(self.new_event("refund.updated", refund, previous))
        return events

    # -- events and webhooks ---------------------------------------------------------------

    def new_event(
        self,
        event_type: str,
        obj: Mapping[str, Any],
        previous: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"object": json.loads(json.dumps(obj))}
        if previous:
            data["previous_attributes"] = dict(previous)
        event = self._remember(
            {
                "id": _new_id("evt"),
                "object": "event",
                "api_version": API_VERSION,
                "created": int(time.time()),
                "data": data,
                "livemode": False,
                "pending_webhooks": 1 if self.webhook_url else 0,
                "request": {"id": _new_id("req"), "idempotency_key": idempotency_key},
                "type": event_type,
            }
        )
        self.events[event["id"]] = event
        return event

    def signed_delivery(
        self, event: Mapping[str, Any], timestamp: int | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """The exact body and headers Stripe would POST for ``event``."""
        body = json.dumps(event, indent=2).encode()
        stamp = int(time.time()) if timestamp is None else timestamp
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": sign_stripe_payload(body, self.webhook_secret, stamp),
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        return body, headers

    async def deliver(self, event_ids: list[str]) -> None:
        """POST each event to ``webhook_url`` (newly signed each attempt, like Stripe)."""
        if not self.webhook_url:
            return
        async with httpx.AsyncClient(timeout=10.0) as client:
            for event_id in event_ids:
                event = self.events[event_id]
                attempt = 1 + sum(1 for d in self.deliveries if d.event_id == event_id)
                body, headers = self.signed_delivery(event)
                try:
                    response = await client.post(self.webhook_url, content=body, headers=headers)
                    self.deliveries.append(
                        WebhookDelivery(event_id, event["type"], attempt, response.status_code)
                    )
                except httpx.HTTPError as error:
                    self.deliveries.append(
                        WebhookDelivery(event_id, event["type"], attempt, None, str(error))
                    )

    # -- request gates ---------------------------------------------------------------------

    def gate(self) -> None:
        """Injected faults and the rate limiter, checked before an endpoint executes."""
        self.requests_seen += 1
        now = time.monotonic()
        if self.rate_limit_next > 0:
            self.rate_limit_next -= 1
            raise self._rate_limited(self.retry_after_seconds)
        while self._recent and now - self._recent[0] > self.window_seconds:
            self._recent.popleft()
        if len(self._recent) >= self.burst:
            wait = self.window_seconds - (now - self._recent[0])
            raise self._rate_limited(max(wait, 0.0))
        self._recent.append(now)
        if self.fail_next > 0:
            self.fail_next -= 1
            raise StripeApiFailure(
                self.fail_status,
                "An unknown error occurred (sandbox fault injection).",
                type="api_error",
                headers={"Stripe-Should-Retry": "true"},
            )

    @staticmethod
    def _rate_limited(wait: float) -> StripeApiFailure:
        return StripeApiFailure(
            429,
            "Request rate limit exceeded. Learn more about rate limits here "
            "https://stripe.com/docs/rate-limits.",
            code="rate_limit",
            headers={"Retry-After": f"{math.ceil(wait * 100) / 100:g}"},
        )


class _PaymentIntentSeed(BaseModel):
    amount: int = Field(gt=0)
    currency: str = "eur"
    metadata: dict[str, str] = Field(default_factory=dict)
    refund_behaviour: str = Field(default="succeed", pattern="^(succeed|pending|fail)$")
    status: str = Field(
        default="succeeded", pattern="^(succeeded|requires_capture|requires_payment_method)$"
    )


class _Faults(BaseModel):
    fail_next: int | None = Field(default=None, ge=0)
    fail_status: int | None = Field(default=None, ge=500, le=599)
    rate_limit_next: int | None = Field(default=None, ge=0)
    lose_response_next: int | None = Field(default=None, ge=0)
    burst: int | None = Field(default=None, ge=1)
    window_seconds: float | None = Field(default=None, gt=0)
    retry_after_seconds: float | None = Field(default=None, ge=0)
    webhook_url: str | None = None


class _Settle(BaseModel):
    status: str = Field(pattern="^(succeeded|failed)$")
    failure_reason: str | None = None


def create_stripe_sandbox(sandbox: StripeSandbox | None = None) -> FastAPI:
    """The sandbox as a FastAPI app; its state is ``app.state.sandbox``."""
    state = sandbox or StripeSandbox()
    app = FastAPI(title="Stripe sandbox", docs_url=None, redoc_url=None)
    app.state.sandbox = state

    def answer(
        status: int, body: Mapping[str, Any], request_id: str, headers: Mapping[str, str] = {}
    ) -> JSONResponse:
        return JSONResponse(
            dict(body), status_code=status, headers={"Request-Id": request_id, **headers}
        )

    def authenticate(request: Request) -> None:
        header = request.headers.get("authorization", "")
        key = None
        if header.startswith("Bearer "):
            key = header.removeprefix("Bearer ").strip()
        elif header.startswith("Basic "):
            key = base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")[0]
        if not key:
            raise StripeApiFailure(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY').",
            )
        if key != state.api_key:
            masked = key[:8] + "*" * max(len(key) - 12, 0) + key[-4:]
            raise StripeApiFailure(401, f"Invalid API Key provided: {masked}")

    async def run(
        request: Request,
        action: Any,
        *,
        background: BackgroundTasks | None = None,
    ) -> Response:
        """Auth, faults, rate limit, idempotency, then the endpoint; Stripe-shaped errors."""
        request_id = _new_id("req")
        body = await request.body()
        params = parse_stripe_form(body) if body else {}
        key = request.headers.get("idempotency-key")
        endpoint = f"{request.method} {request.url.path}"
        try:
            authenticate(request)
            state.gate()
            if request.method == "POST" and key:
                saved = state.idempotency.get((state.api_key, key))
                fingerprint = _fingerprint(params)
                if saved is not None:
                    if saved.endpoint != endpoint or saved.fingerprint != fingerprint:
                        raise StripeApiFailure(
                            400,
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with. Try using a key other than "
                            f"'{key}' if you meant to execute a different request.",
                            type="idempotency_error",
                        )
                    return answer(
                        saved.status,
                        saved.body,
                        request_id,
                        {"Idempotent-Replayed": "true", "Original-Request": saved.request_id},
                    )
            status, result, events = action(params)
        except StripeApiFailure as failure:
            if failure.status >= 500 or failure.status == 429 or failure.status == 401:
                return answer(failure.status, {"error": failure.body}, request_id, failure.headers)
            if (
                request.method == "POST"
                and key
                and failure.body.get("code")
                in (
                    "amount_too_large",
                    "charge_already_refunded",
                    "payment_intent_unexpected_state",
                )
            ):
                # The endpoint ran and refused: Stripe saves that answer for the key.
                state.idempotency[(state.api_key, key)] = SavedResult(
                    endpoint,
                    _fingerprint(params),
                    failure.status,
                    {"error": failure.body},
                    request_id,
                )
            return answer(failure.status, {"error": failure.body}, request_id, failure.headers)
        if request.method == "POST" and key:
            state.idempotency[(state.api_key, key)] = SavedResult(
                endpoint, _fingerprint(params), status, result, request_id
            )
            for event in events:
                event["request"]["idempotency_key"] = key
        if events and background is not None:
            background.add_task(state.deliver, [event["id"] for event in events])
        if request.method == "POST" and state.lose_response_next > 0:
            state.lose_response_next -= 1
            lost = StripeApiFailure(
                500,
                "An unknown error occurred (sandbox: the result was saved, the answer lost).",
                type="api_error",
            )
            return answer(500, {"error": lost.body}, request_id)
        return answer(status, result, request_id)

    def not_found(kind: str, object_id: str) -> StripeApiFailure:
        return StripeApiFailure(
            404, f"No such {kind}: '{object_id}'", code="resource_missing", param="id"
        )

    # -- payment intents -------------------------------------------------------------------

    @app.post("/v1/payment_intents")
    async def create_payment_intent(request: Request) -> Response:
        def action(params: dict[str, Any]) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
            amount = str(params.get("amount", ""))
            if not amount.isdigit() or int(amount) <= 0:
                raise StripeApiFailure(
                    400,
                    "Missing required param: amount.",
                    code="parameter_missing",
                    param="amount",
                )
            if not params.get("currency"):
                raise StripeApiFailure(
                    400,
                    "Missing required param: currency.",
                    code="parameter_missing",
                    param="currency",
                )
            confirmed = params.get("confirm") == "true"
            intent = state.seed_payment_intent(
                amount=int(amount),
                currency=str(params["currency"]),
                metadata=params.get("metadata") or {},
                status="succeeded" if confirmed else "requires_payment_method",
            )
            return 200, intent, []

        return await run(request, action)

    @app.get("/v1/payment_intents/{intent_id}")
    async def retrieve_payment_intent(intent_id: str, request: Request) -> Response:
        def action(_: dict[str, Any]) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
            intent = state.payment_intents.get(intent_id)
            if intent is None:
                raise not_found("payment_intent", intent_id)
            return 200, intent, []

        return await run(request, action)

    @app.post("/v1/payment_intents/{intent_id}/cancel")
    async def cancel_payment_intent(intent_id: str, request: Request) -> Response:
        def action(params: dict[str, Any]) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
            return 200, state.cancel_payment_intent(intent_id, params), []

        return await run(request, action)

    @app.get("/v1/payment_intents")
    async def list_payment_intents(request: Request) -> Response:
        query = dict(request.query_params)
        return await run(
            request,
            lambda _: (
                200,
                state.list_page(list(state.payment_intents.values()), "/v1/payment_intents", query),
                [],
            ),
        )

    # -- charges ---------------------------------------------------------------------------

    @app.get("/v1/charges/{charge_id}")
    async def retrieve_charge(charge_id: str, request: Request) -> Response:
        def action(_: dict[str, Any]) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
            charge = state.charges.get(charge_id)
            if charge is None:
                raise not_found("charge", charge_id)
            return 200, charge, []

        return await run(request, action)

    @app.get("/v1/charges")
    async def list_charges(request: Request) -> Response:
        query = dict(request.query_params)
        charges = [
            charge
            for charge in state.charges.values()
            if "payment_intent" not in query or charge["payment_intent"] == query["payment_intent"]
        ]
        return await run(
            request, lambda _: (200, state.list_page(charges, "/v1/charges", query), [])
        )

    # -- refunds ---------------------------------------------------------------------------

    @app.post("/v1/refunds")
    async def create_refund(request: Request, background: BackgroundTasks) -> Response:
        def action(params: dict[str, Any]) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
            refund = state.create_refund(params)
            as_created = json.loads(json.dumps(refund))
            events = [state.new_event("refund.created", refund)]
            if state.refund_behaviour.get(refund["charge"]) == "fail":
                # Stripe accepts the refund, then reports the failure asynchronously.
                events.extend(state.settle_refund(refund["id"], "failed", "declined"))
            return 200, as_created, events

        return await run(request, action, background=background)

    @app.get("/v1/refunds/{refund_id}")
    async def retrieve_refund(refund_id: str, request: Request) -> Response:
        def action(_: dict[str, Any]) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
            refund = state.refunds.get(refund_id)
            if refund is None:
                raise not_found("refund", refund_id)
            return 200, refund, []

        return await run(request, action)

    @app.get("/v1/refunds")
    async def list_refunds(request: Request) -> Response:
        query = dict(request.query_params)
        refunds = [
            refund
            for refund in state.refunds.values()
            if (
                "payment_intent" not in query or refund["payment_intent"] == query["payment_intent"]
            )
            and ("charge" not in query or refund["charge"] == query["charge"])
        ]
        return await run(
            request, lambda _: (200, state.list_page(refunds, "/v1/refunds", query), [])
        )

    @app.get("/v1/events/{event_id}")
    async def retrieve_event(event_id: str, request: Request) -> Response:
        def action(_: dict[str, Any]) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
            event = state.events.get(event_id)
            if event is None:
                raise not_found("event", event_id)
            return 200, event, []

        return await run(request, action)

    # -- control API -----------------------------------------------------------------------

    @app.post("/_sandbox/payment_intents")
    async def seed(seed: _PaymentIntentSeed) -> dict[str, Any]:
        return state.seed_payment_intent(
            amount=seed.amount,
            currency=seed.currency,
            metadata=seed.metadata,
            refund_behaviour=seed.refund_behaviour,
            status=seed.status,
        )

    @app.post("/_sandbox/faults")
    async def faults(faults: _Faults) -> dict[str, Any]:
        for name, value in faults.model_dump(exclude_none=True).items():
            setattr(state, name, value)
        return {
            "fail_next": state.fail_next,
            "rate_limit_next": state.rate_limit_next,
            "lose_response_next": state.lose_response_next,
            "burst": state.burst,
            "window_seconds": state.window_seconds,
        }

    @app.post("/_sandbox/refunds/{refund_id}/settle")
    async def settle(refund_id: str, settle: _Settle) -> Response:
        try:
            events = state.settle_refund(refund_id, settle.status, settle.failure_reason)
        except StripeApiFailure as failure:
            return JSONResponse({"error": failure.body}, status_code=failure.status)
        await state.deliver([event["id"] for event in events])
        return JSONResponse(state.refunds[refund_id])

    @app.get("/_sandbox/webhooks")
    async def deliveries() -> list[dict[str, Any]]:
        return [delivery.__dict__ for delivery in state.deliveries]

    @app.post("/_sandbox/webhooks/{event_id}/resend")
    async def resend(event_id: str) -> Response:
        if event_id not in state.events:
            return JSONResponse({"error": {"message": f"No such event: {event_id}"}}, 404)
        await state.deliver([event_id])
        return JSONResponse(state.deliveries[-1].__dict__)

    @app.get("/_sandbox/state")
    async def summary() -> dict[str, Any]:
        return {
            "payment_intents": len(state.payment_intents),
            "charges": len(state.charges),
            "refunds": len(state.refunds),
            "events": len(state.events),
            "requests_seen": state.requests_seen,
        }

    return app


def _fingerprint(params: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
