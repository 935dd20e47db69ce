"""The WMS webhook signature: ``sha256=`` + hex HMAC-SHA256(secret, ``<timestamp>.<body>``).

``X-WMS-Timestamp`` carries Unix seconds; ``X-WMS-Signature`` the signature. Signing the
timestamp with the body lets the receiver refuse old deliveries (replays) by their age.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-WMS-Signature"
TIMESTAMP_HEADER = "X-WMS-Timestamp"
DELIVERY_HEADER = "X-WMS-Delivery"
SCHEME = "sha256="


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-WMS-Signature`` value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return SCHEME + mac.hexdigest()


def signature_matches(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """Constant-time comparison with the expected signature."""
    expected = webhook_signature(secret, timestamp, body)
    return hmac.compare_digest(expected.encode(), signature.strip().encode("ascii", "replace"))
