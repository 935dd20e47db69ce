"""Everything the route guards need, built once per application from the hub's settings."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from retailsync.api.clients import ApiClient, api_key_pepper, verify_api_key
from retailsync.api.idempotency import IdempotencyStore
from retailsync.api.ratelimit import ClientRateLimiter
from retailsync.api.settings import GovernanceSettings
from retailsync.api.tokens import BearerTokenVerifier

_MAX_REMEMBERED_KEYS = 10_000


@dataclass
class Governance:
    """Credentials, token keys, rate limits and idempotency keys of one application."""

    settings: GovernanceSettings
    engine: Engine
    pepper: bytes
    tokens: BearerTokenVerifier
    rate_limiter: ClientRateLimiter
    idempotency: IdempotencyStore

    @classmethod
    def build(
        cls,
        settings: GovernanceSettings,
        engine: Engine,
        secret_key: SecretStr | str,
        *,
        jwks_transport: httpx.AsyncBaseTransport | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> Governance:
        return cls(
            settings=settings,
            engine=engine,
            pepper=api_key_pepper(secret_key),
            tokens=BearerTokenVerifier(settings.auth, transport=jwks_transport, clock=monotonic),
            rate_limiter=ClientRateLimiter(settings.rate_limits, clock=monotonic),
            idempotency=IdempotencyStore(engine, settings.idempotency, clock=now),
            monotonic=monotonic,
        )

    monotonic: Callable[[], float] = time.monotonic
    _verified_keys: dict[bytes, tuple[ApiClient, float]] = field(default_factory=dict)

    def verify_api_key(self, key: str) -> ApiClient:
        """The active client of ``key``; remembered for ``auth.api_key_cache_seconds``."""
        ttl = self.settings.auth.api_key_cache_seconds
        digest = hashlib.sha256(key.encode()).digest()
        if ttl > 0:
            remembered = self._verified_keys.get(digest)
            if remembered is not None and self.monotonic() < remembered[1]:
                return remembered[0]
        with self.engine.connect() as connection:
            client = verify_api_key(connection, key, self.pepper)
        if ttl > 0:
            if len(self._verified_keys) >= _MAX_REMEMBERED_KEYS:
                self._verified_keys.clear()
            self._verified_keys[digest] = (client, self.monotonic() + ttl)
        return client

    def forget_client(self, client_id: str) -> None:
        """Stop trusting remembered keys of ``client_id`` (it was revoked or changed)."""
        for digest, (client, _until) in list(self._verified_keys.items()):
            if client.id == client_id:
                self._verified_keys.pop(digest, None)
