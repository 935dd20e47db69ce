"""OAuth2 client-credentials bearer tokens (JWT): signature, issuer, audience, expiry, scopes.

Keys come from ``auth.jwt_public_keys`` (PEM) and/or the JWKS at ``auth.jwks_url``, fetched
with httpx and cached for ``jwks_cache_seconds``; a token signed with a key id the cache does
not know triggers one refetch (key rotation), at most every ``jwks_min_refresh_seconds``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from retailsync.api.errors import InvalidCredentials, TokenKeysUnavailable
from retailsync.api.scopes import Principal, Scope
from retailsync.api.settings import AuthSettings
from retailsync.observability.logging import get_logger

_log = get_logger("retailsync.api.tokens")


class JwksCache:
    """The signing keys published at a JWKS URL, refetched when stale or on an unknown kid."""

    def __init__(
        self,
        settings: AuthSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not settings.jwks_url:
            raise ValueError("JwksCache needs auth.jwks_url")
        self.url = settings.jwks_url
        self.settings = settings
        self._transport = transport
        self._clock = clock
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def key_for(self, kid: str | None) -> jwt.PyJWK:
        """The key that verifies a token whose header names ``kid``."""
        if self._fetched_at is None or self._age() >= self.settings.jwks_cache_seconds:
            await self._refresh(required=self._fetched_at is None)
        key = self._lookup(kid)
        if key is None and self._age() >= self.settings.jwks_min_refresh_seconds:
            await self._refresh(required=False)
            key = self._lookup(kid)
        if key is None:
            raise InvalidCredentials(
                f"the bearer token is signed with key id {kid!r}, which the issuer's JWKS "
                "does not publish"
            )
        return key

    def _age(self) -> float:
        return float("inf") if self._fetched_at is None else self._clock() - self._fetched_at

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    async def _refresh(self, *, required: bool) -> None:
        async with self._lock:
            started = self._clock()
            try:
                async with httpx.AsyncClient(
                    transport=self._transport, timeout=self.settings.jwks_timeout_seconds
                ) as http:
                    response = await http.get(self.url, headers={"accept": "application/json"})
                    response.raise_for_status()
                keys = jwt.PyJWKSet.from_dict(response.json()).keys
            except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
                # Keep serving from the keys we have; without any, tokens cannot be checked.
                self._fetched_at = started if self._keys else None
                _log.warning("jwks fetch failed", url=self.url, error=str(exc))
                if required or not self._keys:
                    raise TokenKeysUnavailable(
                        f"could not fetch the token signing keys from {self.url}: {exc}"
                    ) from exc
                return
            self._keys = {key.key_id: key for key in keys}
            self._fetched_at = started


class BearerTokenVerifier:
    """Turns a valid client-credentials JWT into a :class:`Principal`."""

    def __init__(
        self,
        settings: AuthSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._static_keys = [_load_pem(pem) for pem in settings.jwt_public_keys]
        self._jwks = (
            JwksCache(settings, transport=transport, clock=clock) if settings.jwks_url else None
        )

    @property
    def enabled(self) -> bool:
        return self.settings.accepts_jwt

    async def verify(self, token: str) -> Principal:
        if not self.enabled:
            raise InvalidCredentials(
                "bearer tokens are not accepted by this hub (no issuer keys are configured): "
                "send an API key instead"
            )
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidCredentials(f"the bearer token is not a JWT: {exc}") from None
        claims = await self._decode(token, header.get("kid"))
        return self._principal(claims)

    async def _decode(self, token: str, kid: str | None) -> dict[str, Any]:
        keys: list[Any] = list(self._static_keys)
        if self._jwks is not None and (kid is not None or not keys):
            keys = [await self._jwks.key_for(kid)]
        last_error: jwt.PyJWTError | None = None
        for key in keys:
            try:
                return jwt.decode(
                    token,
                    key,
                    algorithms=list(self.settings.jwt_algorithms),
                    audience=self.settings.jwt_audience,
                    issuer=self.settings.jwt_issuer,
                    leeway=self.settings.jwt_leeway_seconds,
                    options={"require": ["exp", "iss", "aud"]},
                )
            except jwt.InvalidSignatureError as exc:
                last_error = exc  # another configured key may have signed it
            except jwt.PyJWTError as exc:
                raise InvalidCredentials(f"the bearer token is not valid: {exc}") from None
        raise InvalidCredentials(f"the bearer token is not valid: {last_error}")

    def _principal(self, claims: dict[str, Any]) -> Principal:
        claim = self.settings.jwt_client_id_claim
        client_id = claims.get(claim)
        if not isinstance(client_id, str) or not client_id:
            raise InvalidCredentials(f"the bearer token has no {claim!r} claim naming the client")
        return Principal(
            client_id=client_id,
            name=str(claims.get("client_name") or client_id),
            scopes=token_scopes(claims),
            auth_method="jwt",
        )


def token_scopes(claims: dict[str, Any]) -> frozenset[Scope]:
    """The hub's scopes among the token's ``scope`` (space-separated) or ``scp`` claims.

    Scopes the hub does not define (``openid``, another API's) are ignored.
    """
    raw = claims.get("scope", claims.get("scp", ""))
    names = raw.split() if isinstance(raw, str) else [str(item) for item in raw or ()]
    known = {scope.value for scope in Scope}
    return frozenset(Scope(name) for name in names if name in known)


def _load_pem(pem: str) -> Any:
    try:
        return load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise ValueError(
            f"auth.jwt_public_keys holds a value that is not a PEM public key: {exc}"
        ) from None
