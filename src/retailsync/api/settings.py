"""Settings of the API's governance: who may call (auth), how often (rate limits), and how
long an ``Idempotency-Key`` is remembered.

They hang under the hub's settings as ``auth``, ``rate_limits`` and ``idempotency``
(``RETAILSYNC_AUTH__JWT_ISSUER=...``, ``RETAILSYNC_RATE_LIMITS__WRITE__LIMIT=120``).
:func:`governance_settings` reads them from a hub, falling back to the defaults here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Signature algorithms a bearer token may use. ``none`` and the HMAC family are never
#: accepted: a shared secret would let anyone holding it mint tokens for every client.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class AuthSettings(BaseModel):
    """OAuth2 client-credentials bearer tokens (JWT) accepted next to the hub's API keys.

    Tokens are checked against ``jwt_public_keys`` (PEM) and/or the keys published at
    ``jwks_url``; with neither set, only API keys are accepted.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_algorithms: tuple[str, ...] = ("RS256", "ES256")
    jwt_public_keys: tuple[str, ...] = ()
    jwks_url: str | None = None
    jwks_cache_seconds: float = Field(default=300.0, gt=0)
    #: An unknown ``kid`` refetches the JWKS at most this often (key rotation, not abuse).
    jwks_min_refresh_seconds: float = Field(default=30.0, ge=0)
    jwks_timeout_seconds: float = Field(default=5.0, gt=0)
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    #: The claim naming the calling client (``sub`` for most providers; ``azp``, ``cid``...).
    jwt_client_id_claim: str = "sub"
    #: A verified API key is trusted this long without asking the database again. Revoking
    #: through this process's API takes effect at once; a revocation made elsewhere (the CLI,
    #: another process) within this many seconds. 0 checks every request against the database.
    api_key_cache_seconds: float = Field(default=2.0, ge=0, le=60)

    @property
    def accepts_jwt(self) -> bool:
        return bool(self.jwt_public_keys or self.jwks_url)

    @model_validator(mode="after")
    def _safe_token_settings(self) -> Self:
        unsafe = sorted(set(self.jwt_algorithms) - ASYMMETRIC_ALGORITHMS)
        if unsafe:
            raise ValueError(
                f"auth.jwt_algorithms {unsafe} are not accepted: use asymmetric algorithms "
                f"only, from {sorted(ASYMMETRIC_ALGORITHMS)}"
            )
        if self.accepts_jwt and not (self.jwt_issuer and self.jwt_audience):
            raise ValueError(
                "auth.jwt_issuer and auth.jwt_audience must both be set when bearer tokens are "
                "accepted (auth.jwt_public_keys or auth.jwks_url): a token minted for another "
                "service must not open this one"
            )
        return self


class RouteClassLimit(BaseModel):
    """At most ``limit`` requests in any ``period_seconds``, of which ``burst`` at once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int = Field(ge=2)
    period_seconds: float = Field(default=60.0, gt=0)
    burst: int = Field(ge=1)

    @model_validator(mode="after")
    def _burst_within_limit(self) -> Self:
        if self.burst >= self.limit:
            raise ValueError(
                f"burst ({self.burst}) must be smaller than limit ({self.limit}): the burst is "
                "part of the limit, the rest refills over the period"
            )
        return self


class RateLimitSettings(BaseModel):
    """Limits per client and route class; kept in this process's memory (see ADR 0005)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    read: RouteClassLimit = RouteClassLimit(limit=1200, burst=120)
    write: RouteClassLimit = RouteClassLimit(limit=300, burst=30)
    process: RouteClassLimit = RouteClassLimit(limit=120, burst=20)
    admin: RouteClassLimit = RouteClassLimit(limit=60, burst=10)


class IdempotencySettings(BaseModel):
    """How long a stored response answers a repeated ``Idempotency-Key``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retention_hours: float = Field(default=24.0, gt=0)
    #: A request still "in progress" after this long is presumed dead (its process crashed);
    #: the key may then be used again.
    in_progress_timeout_seconds: float = Field(default=300.0, gt=0)


@dataclass(frozen=True)
class GovernanceSettings:
    auth: AuthSettings
    rate_limits: RateLimitSettings
    idempotency: IdempotencySettings


def governance_settings(settings: Any) -> GovernanceSettings:
    """The governance settings found on the hub's ``settings``, defaults for those missing."""

    def pick(name: str, kind: type[BaseModel]) -> Any:
        value = getattr(settings, name, None)
        return value if isinstance(value, kind) else kind()

    return GovernanceSettings(
        auth=pick("auth", AuthSettings),
        rate_limits=pick("rate_limits", RateLimitSettings),
        idempotency=pick("idempotency", IdempotencySettings),
    )
