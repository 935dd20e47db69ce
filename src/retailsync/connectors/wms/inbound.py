"""WMS webhooks in: verify ``X-WMS-Signature`` over ``timestamp.body``, then map to events."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from retailsync.connectors.webhook_protocol import WebhookRejected, WebhookUnmappable
from retailsync.connectors.wms.config import WmsSettings
from retailsync.connectors.wms.mapping import to_payloads
from retailsync.connectors.wms.signing import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature_matches,
)
from retailsync.domain.catalogue import build_event
from retailsync.domain.events import CloudEvent

EVENT_SOURCE = "retailsync/connectors/wms"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


class WmsWebhookReceiver:
    """The :class:`~retailsync.connectors.webhook_protocol.WebhookReceiver` for the WMS."""

    name = "wms"

    def __init__(self, settings: WmsSettings) -> None:
        self._settings = settings

    def verify(self, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        signature = _header(headers, SIGNATURE_HEADER)
        timestamp = _header(headers, TIMESTAMP_HEADER)
        if not signature:
            raise WebhookRejected("missing-signature", f"{SIGNATURE_HEADER} is missing", 401)
        if not timestamp or not timestamp.strip().isdigit():
            raise WebhookRejected(
                "bad-timestamp", f"{TIMESTAMP_HEADER} must be Unix seconds", status=400
            )
        secret = self._settings.webhook_secret.get_secret_value()
        if not signature_matches(secret, timestamp.strip(), body, signature):
            raise WebhookRejected(
                "bad-signature",
                "the WMS signature does not match timestamp.body: check wms.webhook_secret",
                status=401,
            )
        signed_at = datetime.fromtimestamp(int(timestamp), tz=UTC)
        skew = abs((now - signed_at).total_seconds())
        if skew > self._settings.webhook_tolerance_seconds:
            raise WebhookRejected(
                "stale-timestamp",
                f"signed {skew:.0f}s away from now; tolerance is "
                f"{self._settings.webhook_tolerance_seconds}s",
                status=400,
            )

    def delivery_id(self, headers: Mapping[str, str], body: bytes) -> str:
        delivery = _header(headers, DELIVERY_HEADER)
        if delivery:
            return f"wms:{delivery}"
        return f"wms:{_load(body)['id']}"

    def to_events(self, headers: Mapping[str, str], body: bytes) -> list[CloudEvent]:
        payload = _load(body)
        data = payload.get("data")
        if not isinstance(data, dict):
            raise WebhookUnmappable("WMS webhook has no 'data' object")
        payloads = to_payloads(str(payload.get("type")), data, self._settings)
        return [
            build_event(item, source=EVENT_SOURCE, id=f"wms:{payload['id']}:{index}")
            for index, item in enumerate(payloads)
        ]


def _load(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise WebhookUnmappable(f"WMS webhook body is not JSON: {exc}") from exc
    if not isinstance(payload, dict) or not payload.get("id"):
        raise WebhookUnmappable("WMS webhook body must be an object with an 'id'")
    return payload
