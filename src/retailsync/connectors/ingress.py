"""One webhook entry point for every vendor: ``POST /v1/webhooks/{connector}``.

The order of work is the contract with the vendor and with the rest of the hub:

1. the body is capped (413) and the connector looked up (404);
2. the receiver authenticates the delivery (signature and timestamp tolerance); a rejected
   delivery is written to ``webhook_rejections`` and nothing is published;
3. the delivery id is claimed in ``webhook_deliveries``; a delivery already published is
   answered 200 again without publishing (vendors retry; re-delivery is idempotent), while a
   replay that fails step 2 (stale timestamp, bad signature) never gets this far;
4. the payload is mapped to canonical events; an authentic payload that cannot be mapped is
   kept (raw body, status ``unmappable``), handed to ``on_unmappable`` and answered 422;
5. the events are published durably and only then is the vendor answered 2xx. If publishing
   fails the vendor gets a 503 and its retry goes through the same steps again.

Events the mapper built without a ``correlationid`` get the request's (the trace id of the
``traceparent`` the middleware accepted or started). Every authentic delivery is recorded as
an ``inbound`` hop of the trace (connector, topic, outcome, the order or case it names) when
observability is installed; rejected deliveries are audited in ``webhook_rejections`` only.

Every error is an RFC 9457 ``application/problem+json`` document.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from retailsync.connectors.webhook_protocol import (
    WebhookReceiver,
    WebhookRejected,
    WebhookUnmappable,
)
from retailsync.db import metadata
from retailsync.observability.correlation import correlate_events
from retailsync.observability.instrument import record_inbound
from retailsync.ports.publisher import EventPublisher

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "DeliveryStatus",
    "UnmappableHandler",
    "build_webhook_router",
    "problem_response",
    "webhook_deliveries",
    "webhook_rejections",
]

log = structlog.get_logger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "/problems/"
DEFAULT_MAX_BODY_BYTES = 1_048_576


class DeliveryStatus(StrEnum):
    """What became of one vendor delivery."""

    RECEIVED = "received"  # claimed; events not (yet) published
    PUBLISHED = "published"  # events stored by the bus; vendor answered 2xx
    IGNORED = "ignored"  # authentic, but nothing the hub listens to (no events)
    UNMAPPABLE = "unmappable"  # authentic, but the payload could not be mapped


webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("connector", sa.String(60), nullable=False),
    sa.Column("delivery_id", sa.String(200), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("event_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("body_sha256", sa.String(64), nullable=False),
    sa.Column("raw_body", sa.LargeBinary, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.UniqueConstraint(
        "connector", "delivery_id", name="uq_webhook_deliveries_connector_delivery"
    ),
    sa.Index("ix_webhook_deliveries_status", "status"),
)

webhook_rejections = sa.Table(
    "webhook_rejections",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("connector", sa.String(60), nullable=False),
    sa.Column("reason", sa.String(60), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("remote_addr", sa.String(100), nullable=True),
    sa.Column("headers_digest", sa.String(64), nullable=False),
    sa.Column("delivery_id", sa.String(200), nullable=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_webhook_rejections_at", "at"),
)

UnmappableHandler = Callable[[str, str, bytes, Exception], Awaitable[None] | None]
"""Called as ``on_unmappable(connector, delivery_id, raw_body, error)``."""


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """An RFC 9457 problem document: ``type``, ``title``, ``status``, ``detail`` (+ extras)."""
    body: dict[str, Any] = {
        "type": f"{PROBLEM_TYPE_BASE}{slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extensions)
    return JSONResponse(
        body, status_code=status, media_type=PROBLEM_CONTENT_TYPE, headers=dict(headers or {})
    )


def headers_digest(headers: Mapping[str, str]) -> str:
    """SHA-256 over the request headers (names lower-cased, sorted): auditable, not readable."""
    lines = sorted(f"{name.lower()}: {value}" for name, value in headers.items())
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


_REJECTION_TITLES = {
    "bad-signature": "Webhook signature is not valid",
    "missing-signature": "Webhook signature is missing",
    "stale-timestamp": "Webhook timestamp is outside the accepted window",
    "bad-headers": "Webhook headers are incomplete or malformed",
    "replayed": "Webhook delivery was replayed",
}


class _WebhookIngress:
    """The request handler and its bookkeeping; built by :func:`build_webhook_router`."""

    def __init__(
        self,
        receivers: Mapping[str, WebhookReceiver],
        publisher: EventPublisher,
        engine: Engine,
        on_unmappable: UnmappableHandler | None,
        max_body_bytes: int,
        clock: Callable[[], datetime],
    ) -> None:
        self.receivers = receivers
        self.publisher = publisher
        self.engine = engine
        self.on_unmappable = on_unmappable
        self.max_body_bytes = max_body_bytes
        self.clock = clock

    async def receive(self, connector: str, request: Request) -> JSONResponse:
        now = self.clock()
        headers = request.headers
        remote = request.client.host if request.client else None
        instance = request.url.path

        async def reject(
            reason: str, status: int, title: str, detail: str, delivery_id: str | None = None
        ) -> JSONResponse:
            await run_in_threadpool(
                self._audit_rejection, connector, reason, detail, remote, headers, delivery_id, now
            )
            log.warning(
                "webhook.rejected",
                connector=connector,
                reason=reason,
                remote_addr=remote,
                delivery_id=delivery_id,
            )
            return problem_response(
                status, f"webhook-{reason}", title, detail, instance=instance, reason=reason
            )

        receiver = self.receivers.get(connector)
        if receiver is None:
            known = ", ".join(sorted(self.receivers)) or "none configured"
            return await reject(
                "unknown-connector",
                404,
                "No webhook receiver for this connector",
                f"no webhook receiver is configured for {connector!r} (known: {known})",
            )

        body = await self._read_capped(request)
        if body is None:
            return await reject(
                "body-too-large",
                413,
                "Webhook body is too large",
                f"the request body exceeds the limit of {self.max_body_bytes} bytes",
            )

        try:
            receiver.verify(headers, body, now)
        except WebhookRejected as rejected:
            title = _REJECTION_TITLES.get(rejected.reason, "Webhook delivery rejected")
            return await reject(rejected.reason, rejected.status, title, rejected.detail)

        body_sha256 = hashlib.sha256(body).hexdigest()
        try:
            delivery_id = receiver.delivery_id(headers, body)
        except WebhookRejected as rejected:
            title = _REJECTION_TITLES.get(rejected.reason, "Webhook delivery rejected")
            return await reject(rejected.reason, rejected.status, title, rejected.detail)
        except WebhookUnmappable:
            delivery_id = f"sha256:{body_sha256}"

        topic = webhook_topic(headers, body)
        previous = await run_in_threadpool(self._claim, connector, delivery_id, body_sha256, now)
        if previous in (DeliveryStatus.PUBLISHED, DeliveryStatus.IGNORED):
            log.info("webhook.duplicate", connector=connector, delivery_id=delivery_id)
            await record_inbound(
                connector, topic, "duplicate", detail={"delivery_id": delivery_id}, at=now
            )
            return JSONResponse(
                {"status": previous.value, "delivery_id": delivery_id, "duplicate": True}
            )
        if previous == DeliveryStatus.UNMAPPABLE:
            return problem_response(
                422,
                "webhook-unmappable",
                "Webhook payload cannot be mapped",
                f"delivery {delivery_id!r} was already received and kept as unmappable; "
                "it is waiting in the exception queue",
                instance=instance,
                delivery_id=delivery_id,
            )

        try:
            events = receiver.to_events(headers, body)
        except Exception as error:  # a data error, whatever the mapper raised
            await record_inbound(
                connector,
                topic,
                DeliveryStatus.UNMAPPABLE.value,
                detail={"delivery_id": delivery_id, "error": type(error).__name__},
                at=now,
            )
            return await self._unmappable(connector, delivery_id, body, error, now, instance)

        if not events:
            await run_in_threadpool(
                self._mark, connector, delivery_id, DeliveryStatus.IGNORED, 0, now
            )
            await record_inbound(
                connector,
                topic,
                DeliveryStatus.IGNORED.value,
                detail={"delivery_id": delivery_id},
                at=now,
            )
            return JSONResponse(
                {"status": DeliveryStatus.IGNORED.value, "delivery_id": delivery_id, "events": []}
            )

        # Events the vendor sent without a correlation id join their order's trace when the
        # hub already has one, else this request's.
        events = await correlate_events(events)
        try:
            await self.publisher.publish(events)
        except Exception as error:
            log.error(
                "webhook.publish_failed",
                connector=connector,
                delivery_id=delivery_id,
                error=str(error),
            )
            await record_inbound(
                connector,
                topic,
                "not_stored",
                events=events,
                detail={"delivery_id": delivery_id, "error": type(error).__name__},
                at=now,
            )
            return problem_response(
                503,
                "webhook-not-stored",
                "Webhook could not be stored",
                "the events of this delivery could not be stored durably; retry later",
                instance=instance,
                headers={"Retry-After": "30"},
                delivery_id=delivery_id,
            )
        await run_in_threadpool(
            self._mark, connector, delivery_id, DeliveryStatus.PUBLISHED, len(events), now
        )
        await record_inbound(
            connector,
            topic,
            "accepted",
            events=events,
            detail={"delivery_id": delivery_id, "events": [event.type for event in events]},
            at=now,
        )
        log.info(
            "webhook.published", connector=connector, delivery_id=delivery_id, events=len(events)
        )
        return JSONResponse(
            {
                "status": DeliveryStatus.PUBLISHED.value,
                "delivery_id": delivery_id,
                "events": [event.id for event in events],
            }
        )

    async def _read_capped(self, request: Request) -> bytes | None:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
            return None
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def _unmappable(
        self,
        connector: str,
        delivery_id: str,
        body: bytes,
        error: Exception,
        now: datetime,
        instance: str,
    ) -> JSONResponse:
        detail = str(error) or type(error).__name__
        if not isinstance(error, WebhookUnmappable):
            detail = f"{type(error).__name__}: {detail}"
        await run_in_threadpool(self._store_unmappable, connector, delivery_id, body, detail, now)
        log.warning(
            "webhook.unmappable", connector=connector, delivery_id=delivery_id, error=detail
        )
        if self.on_unmappable is not None:
            outcome = self.on_unmappable(connector, delivery_id, body, error)
            if inspect.isawaitable(outcome):
                await outcome
        return problem_response(
            422,
            "webhook-unmappable",
            "Webhook payload cannot be mapped",
            f"the payload of delivery {delivery_id!r} cannot be turned into canonical events: "
            f"{detail}. It was kept and sent to the exception queue.",
            instance=instance,
            delivery_id=delivery_id,
        )

    # -- storage (synchronous; run in a worker thread) ------------------------------------

    def _claim(
        self, connector: str, delivery_id: str, body_sha256: str, now: datetime
    ) -> DeliveryStatus | None:
        """Insert the delivery as RECEIVED; return the earlier status if it already existed."""
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    webhook_deliveries.insert().values(
                        connector=connector,
                        delivery_id=delivery_id,
                        received_at=now,
                        updated_at=now,
                        status=DeliveryStatus.RECEIVED.value,
                        event_count=0,
                        body_sha256=body_sha256,
                    )
                )
            return None
        except IntegrityError:
            with self.engine.connect() as connection:
                status = connection.execute(
                    sa.select(webhook_deliveries.c.status).where(
                        webhook_deliveries.c.connector == connector,
                        webhook_deliveries.c.delivery_id == delivery_id,
                    )
                ).scalar_one()
            return DeliveryStatus(status)

    def _mark(
        self,
        connector: str,
        delivery_id: str,
        status: DeliveryStatus,
        event_count: int,
        now: datetime,
    ) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                webhook_deliveries.update()
                .where(
                    webhook_deliveries.c.connector == connector,
                    webhook_deliveries.c.delivery_id == delivery_id,
                )
                .values(status=status.value, event_count=event_count, updated_at=now)
            )

    def _store_unmappable(
        self, connector: str, delivery_id: str, body: bytes, error: str, now: datetime
    ) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                webhook_deliveries.update()
                .where(
                    webhook_deliveries.c.connector == connector,
                    webhook_deliveries.c.delivery_id == delivery_id,
                )
                .values(
                    status=DeliveryStatus.UNMAPPABLE.value,
                    raw_body=body,
                    error=error,
                    updated_at=now,
                )
            )

    def _audit_rejection(
        self,
        connector: str,
        reason: str,
        detail: str,
        remote: str | None,
        headers: Mapping[str, str],
        delivery_id: str | None,
        now: datetime,
    ) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                webhook_rejections.insert().values(
                    connector=connector[:60],
                    reason=reason[:60],
                    detail=detail,
                    remote_addr=remote,
                    headers_digest=headers_digest(headers),
                    delivery_id=delivery_id,
                    at=now,
                )
            )


def _utc_now() -> datetime:
    return datetime.now(UTC)


_TOPIC_HEADERS = ("x-shopify-topic", "x-github-event", "x-event-type")


def webhook_topic(headers: Mapping[str, str], body: bytes) -> str:
    """What a delivery is about, for its trace hop: the vendor's topic header, else the
    ``type`` of a JSON body (Stripe, Zendesk, WMS), else ``webhook``."""
    for name in _TOPIC_HEADERS:
        value = headers.get(name)
        if value:
            return value.strip()[:100]
    try:
        payload = json.loads(body)
    except ValueError:
        return "webhook"
    kind = payload.get("type") if isinstance(payload, dict) else None
    return kind[:100] if isinstance(kind, str) and kind else "webhook"


def build_webhook_router(
    receivers: Mapping[str, WebhookReceiver] | Iterable[WebhookReceiver],
    publisher: EventPublisher,
    engine: Engine,
    *,
    on_unmappable: UnmappableHandler | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    clock: Callable[[], datetime] = _utc_now,
    prefix: str = "/v1/webhooks",
) -> APIRouter:
    """The ``POST {prefix}/{connector}`` router serving every given webhook receiver.

    ``receivers`` is a mapping of path name to receiver, or receivers keyed by their
    ``name``. The tables ``webhook_deliveries`` and ``webhook_rejections`` must exist in
    ``engine``'s database (migration ``webhooks_0001``).
    """
    registry: dict[str, WebhookReceiver] = (
        dict(receivers)
        if isinstance(receivers, Mapping)
        else {receiver.name: receiver for receiver in receivers}
    )
    ingress = _WebhookIngress(registry, publisher, engine, on_unmappable, max_body_bytes, clock)
    router = APIRouter(prefix=prefix, tags=["webhooks"])
    problem: dict[str, Any] = {"content": {PROBLEM_CONTENT_TYPE: {}}}

    @router.post(
        "/{connector}",
        summary="Receive a vendor webhook",
        responses={
            200: {"description": "Stored (or already stored: idempotent re-delivery)"},
            400: {"description": "Stale timestamp or malformed headers", **problem},
            401: {"description": "Signature missing or not valid", **problem},
            404: {"description": "No receiver for this connector", **problem},
            413: {"description": "Body too large", **problem},
            422: {"description": "Authentic but unmappable (kept for review)", **problem},
            503: {"description": "Could not be stored durably; retry", **problem},
        },
    )
    async def receive_webhook(connector: str, request: Request) -> JSONResponse:
        return await ingress.receive(connector, request)

    return router
