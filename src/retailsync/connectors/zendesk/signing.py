"""Zendesk's webhook signature: ``base64(HMAC-SHA256(secret, timestamp + body))``.

Documented in Zendesk's "Verifying webhook authenticity" guide: the signature arrives in
``X-Zendesk-Webhook-Signature``, the signed timestamp (ISO 8601, e.g. ``2021-07-25T10:00:00Z``)
in ``X-Zendesk-Webhook-Signature-Timestamp``; the secret is used as the raw key bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

SIGNATURE_HEADER = "X-Zendesk-Webhook-Signature"
TIMESTAMP_HEADER = "X-Zendesk-Webhook-Signature-Timestamp"
WEBHOOK_ID_HEADER = "X-Zendesk-Webhook-Id"
INVOCATION_ID_HEADER = "X-Zendesk-Webhook-Invocation-Id"


def hmac_base64(secret: str, message: bytes) -> str:
    """Base64 of the HMAC-SHA256 of ``message`` keyed with the UTF-8 bytes of ``secret``."""
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The value Zendesk puts in ``X-Zendesk-Webhook-Signature`` for this delivery."""
    return hmac_base64(secret, timestamp.encode("utf-8") + body)


def signature_matches(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """Constant-time comparison of ``signature`` with the expected one."""
    expected = webhook_signature(secret, timestamp, body)
    return hmac.compare_digest(
        expected.encode("ascii"), signature.strip().encode("ascii", "replace")
    )


def format_timestamp(moment: datetime) -> str:
    """A signature timestamp in Zendesk's format (UTC, seconds, ``Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
