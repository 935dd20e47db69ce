"""Everything the route guards need, built once per application from the hub's settings."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from retailsync.api.clients import ApiClient, api_key_pepper, verify_api_key
from retailsync.api.idempotency import IdempotencyStore
from retailsync.api.ratelimit import ClientRateLimiter
from retailsync.api.settings import GovernanceSettings
from retailsync.api.tokens import BearerTokenVerifier


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
        )

    def verify_api_key(self, key: str) -> ApiClient:
        with self.engine.connect() as connection:
            return verify_api_key(connection, key, self.pepper)
