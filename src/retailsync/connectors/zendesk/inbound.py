"""Zendesk webhooks in: verify the signature, then ticket events become case events.

Zendesk's event-subscription webhooks (``zen:event-type:ticket.*``) arrive signed with
``X-Zendesk-Webhook-Signature`` over the ``X-Zendesk-Webhook-Signature-Timestamp`` plus the
raw body. ``ticket.created`` becomes ``retailsync.case.opened``; every other ticket event
becomes ``retailsync.case.updated`` carrying what changed. Events of other domains (users,
organizations) are authentic but not ours: they map to no event. Given a database engine,
the receiver records each ticket's case id in the cross-reference table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from retailsync.connectors.webhook_protocol import WebhookRejected, WebhookUnmappable
from retailsync.connectors.zendesk.binding import link_ticket
from retailsync.connectors.zendesk.config import ZendeskSettings
from retailsync.connectors.zendesk.errors import ZendeskPayloadInvalid
from retailsync.connectors.zendesk.mapping import parse_time, webhook_detail_to_case
from retailsync.connectors.zendesk.signing import (
    INVOCATION_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature_matches,
)
from retailsync.domain.catalogue import CaseOpened, CaseUpdated, EventPayload, build_event
from retailsync.domain.events import CloudEvent

EVENT_SOURCE = "retailsync/connectors/zendesk"
TICKET_EVENT_PREFIX = "zen:event-type:ticket."


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


class ZendeskWebhookReceiver:
    """The :class:`~retailsync.connectors.webhook_protocol.WebhookReceiver` for Zendesk."""

    name = "zendesk"

    def __init__(self, settings: ZendeskSettings, *, engine: Engine | None = None) -> None:
        self._settings = settings
        self._engine = engine

    def verify(self, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        signature = _header(headers, SIGNATURE_HEADER)
        timestamp = _header(headers, TIMESTAMP_HEADER)
        if not signature:
            raise WebhookRejected(
                "missing-signature", f"the {SIGNATURE_HEADER} header is missing", status=401
            )
        if not timestamp:
            raise WebhookRejected(
                "missing-timestamp", f"the {TIMESTAMP_HEADER} header is missing", status=400
            )
        signed_at = parse_time(timestamp)
        if signed_at is None:
            raise WebhookRejected(
                "bad-timestamp",
                f"{TIMESTAMP_HEADER} {timestamp[:40]!r} is not an ISO 8601 time with offset",
                status=400,
            )
        secret = self._settings.webhook_secret.get_secret_value()
        if not signature_matches(secret, timestamp, body, signature):
            raise WebhookRejected(
                "bad-signature",
                "the Zendesk webhook signature does not match the body and timestamp: check "
                "the signing secret configured as zendesk.webhook_secret",
                status=401,
            )
        skew = abs((now - signed_at).total_seconds())
        if skew > self._settings.webhook_tolerance_seconds:
            raise WebhookRejected(
                "stale-timestamp",
                f"the webhook was signed {skew:.0f}s away from now, more than the "
                f"{self._settings.webhook_tolerance_seconds}s tolerance",
                status=400,
            )

    def delivery_id(self, headers: Mapping[str, str], body: bytes) -> str:
        """Zendesk's event id (body ``id``), else the invocation id header."""
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if isinstance(payload, dict) and payload.get("id"):
            return f"zendesk:{payload['id']}"
        invocation = _header(headers, INVOCATION_ID_HEADER)
        if invocation:
            return f"zendesk:invocation:{invocation}"
        raise WebhookUnmappable("Zendesk webhook without an event id or invocation id header")

    def to_events(self, headers: Mapping[str, str], body: bytes) -> list[CloudEvent]:
        payload = _load(body)
        event_type = payload.get("type")
        if not isinstance(event_type, str):
            raise WebhookUnmappable("Zendesk webhook body has no 'type'")
        if not event_type.startswith(TICKET_EVENT_PREFIX):
            return []
        detail = payload.get("detail")
        if not isinstance(detail, dict):
            raise WebhookUnmappable(f"Zendesk {event_type} webhook has no 'detail' object")
        raw_change = payload.get("event")
        change: dict[str, Any] = raw_change if isinstance(raw_change, dict) else {}
        custom_fields: list[dict[str, Any]] = []
        custom_field = change.get("custom_field")
        if isinstance(custom_field, dict):
            custom_fields.append({"id": custom_field.get("id"), "value": change.get("current")})
        try:
            case = webhook_detail_to_case(detail, self._settings, custom_fields)
        except ZendeskPayloadInvalid as exc:
            raise WebhookUnmappable(str(exc)) from exc
        vendor_id = payload.get("id") or _header(headers, INVOCATION_ID_HEADER)
        if not vendor_id:
            raise WebhookUnmappable("Zendesk webhook without an event id or invocation id")
        if self._engine is not None:
            link_ticket(self._engine, detail["id"])
        kind = event_type.removeprefix(TICKET_EVENT_PREFIX)
        event_payload: EventPayload
        if kind == "created":
            event_payload = CaseOpened(case=case)
        else:
            event_payload = CaseUpdated(
                case_id=case.id,
                version=case.version,
                status=case.status,
                priority=case.priority,
                assignee=case.assignee,
                note=_describe(kind, change),
                updated_at=case.updated_at or case.opened_at,
            )
        return [
            build_event(
                event_payload,
                source=EVENT_SOURCE,
                id=f"zendesk:{vendor_id}",
                time=parse_time(payload.get("time")) or case.updated_at or case.opened_at,
            )
        ]


def _describe(kind: str, change: Mapping[str, Any]) -> str:
    """A short human note of what changed, e.g. ``status_changed: NEW -> OPEN``."""
    if "current" in change or "previous" in change:
        return f"{kind}: {change.get('previous')} -> {change.get('current')}"[:4000]
    return kind[:4000]


def _load(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise WebhookUnmappable(f"Zendesk webhook body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise WebhookUnmappable("Zendesk webhook body is not a JSON object")
    return payload
