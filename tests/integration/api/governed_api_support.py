"""Helpers for the governed API tests: a manual clock and a local OAuth2 token issuer."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from retailsync.api.governance import Governance
from retailsync.api.scopes import Scope

ISSUER = "https://idp.retailer.test/"
AUDIENCE = "retailsync-api"
ALL_SCOPES = tuple(scope.value for scope in Scope)


class ManualClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class TokenIssuer:
    """A local OAuth2 issuer: an RSA key pair that signs client-credentials tokens."""

    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    private_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    @property
    def public_pem(self) -> str:
        return (
            self.private_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(
            self.private_key.public_key(), as_dict=True
        )
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def token(self, scope: str = "", *, subject: str = "erp-sync", **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": subject,
            "iat": now,
            "exp": now + 300,
            "scope": scope,
        }
        claims.update(overrides)
        claims = {name: value for name, value in claims.items() if value is not None}
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": self.kid})


GovernanceFactory = Callable[..., Governance]
IssueKey = Callable[..., str]


def new_idempotency_key() -> str:
    return uuid.uuid4().hex
