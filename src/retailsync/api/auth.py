"""Who may call which route: API keys and client-credentials JWTs, scopes, route guards.

A router declares the one scope its routes need, and nothing else::

    router = APIRouter(prefix="/v1/process", dependencies=[require_scope("process:write")])

The guard then, in this order: authenticates the caller (401 problem+json with
``WWW-Authenticate``), checks the scope (403 naming it), applies the client's rate limit for
the scope's route class (429 with ``Retry-After``), and on POST/PUT/PATCH/DELETE claims the
``Idempotency-Key`` (see :mod:`retailsync.api.idempotency`). A route reads the caller with
``principal: Annotated[Principal, Depends(current_principal)]``.

Credentials: ``X-API-Key: rsk_<id>_<secret>``, or ``Authorization: Bearer <credential>``
where the credential is an API key or a JWT from the configured issuer.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from retailsync.api.clients import looks_like_api_key
from retailsync.api.errors import InvalidCredentials, TokenKeysUnavailable
from retailsync.api.governance import Governance
from retailsync.api.idempotency import Idempotency, claim_idempotency_key
from retailsync.api.problems import ProblemError
from retailsync.api.scopes import (
    ROUTE_CLASS_OF,
    Principal,
    RouteClass,
    Scope,
)
from retailsync.db import run_read

API_KEY_HEADER = "X-API-Key"
REALM = "retailsync"

api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER,
    scheme_name="apiKey",
    description="An API key issued with `retailsync clients create` (rsk_<id>_<secret>).",
    auto_error=False,
)
bearer_scheme = HTTPBearer(
    scheme_name="bearerAuth",
    bearerFormat="JWT",
    description="An OAuth2 client-credentials access token from the configured issuer "
    "(scopes in the `scope` or `scp` claim), or an API key.",
    auto_error=False,
)

_PRINCIPAL_STATE = "principal"
_GOVERNED_STATE = "governed"


def _unauthenticated(detail: str, *, error: str | None = None) -> ProblemError:
    challenge = f'Bearer realm="{REALM}"'
    if error:
        challenge += f', error="{error}"'
    return ProblemError(
        401,
        "unauthenticated",
        detail,
        title="Authentication required",
        headers={"WWW-Authenticate": challenge},
    )


def _governance(request: Request) -> Governance:
    governance = getattr(request.app.state, "governance", None)
    if not isinstance(governance, Governance):
        raise RuntimeError(
            "this route is guarded but the application has no governance: build the app "
            "with retailsync.api.app.create_app"
        )
    return governance


async def authenticated_principal(
    request: Request,
    api_key: Annotated[str | None, Security(api_key_scheme)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> Principal:
    """The caller, from ``X-API-Key`` or ``Authorization: Bearer``; 401 when neither holds."""
    cached = getattr(request.state, _PRINCIPAL_STATE, None)
    if isinstance(cached, Principal):
        return cached
    if api_key is not None and bearer is not None:
        raise _unauthenticated(
            f"Send one credential, not two: either {API_KEY_HEADER} or Authorization.",
            error="invalid_request",
        )
    credential = api_key or (bearer.credentials if bearer else None)
    if not credential:
        raise _unauthenticated(
            f"This route needs credentials: an API key in {API_KEY_HEADER} or an OAuth2 "
            "bearer token in Authorization."
        )
    governance = _governance(request)
    try:
        if api_key is not None or looks_like_api_key(credential):
            client = await run_read(governance.engine, governance.verify_api_key, credential)
            principal = Principal(
                client_id=client.id,
                name=client.name,
                scopes=frozenset(client.scopes),
                auth_method="api_key",
            )
        else:
            principal = await governance.tokens.verify(credential)
    except InvalidCredentials as exc:
        raise _unauthenticated(str(exc), error="invalid_token") from None
    except TokenKeysUnavailable as exc:
        raise ProblemError(
            503,
            "token-keys-unavailable",
            f"Bearer tokens cannot be checked right now: {exc}",
            headers={"Retry-After": "30"},
        ) from None
    setattr(request.state, _PRINCIPAL_STATE, principal)
    return principal


def current_principal(request: Request) -> Principal:
    """The caller a route guard has let through (use on guarded routes only)."""
    principal = getattr(request.state, _PRINCIPAL_STATE, None)
    if not isinstance(principal, Principal):
        raise RuntimeError(
            "current_principal used on a route without require_scope(...): guard the router"
        )
    return principal


@dataclass(frozen=True)
class ScopeGuard:
    """The dependency :func:`require_scope` returns; its fields document the route."""

    scope: Scope
    route_class: RouteClass
    idempotency: Idempotency

    async def __call__(
        self,
        request: Request,
        principal: Annotated[Principal, Depends(authenticated_principal)],
    ) -> Principal:
        if self.scope not in principal.scopes:
            raise ProblemError(
                403,
                "insufficient-scope",
                f"This route requires the scope {self.scope.value!r}, which client "
                f"{principal.client_id} does not hold.",
                title="Insufficient scope",
                headers={
                    "WWW-Authenticate": f'Bearer realm="{REALM}", error="insufficient_scope", '
                    f'scope="{self.scope.value}"'
                },
                required_scope=self.scope.value,
            )
        if getattr(request.state, _GOVERNED_STATE, False):
            return principal  # a second guard on the same route: limit and claim once
        setattr(request.state, _GOVERNED_STATE, True)
        governance = _governance(request)
        governance.rate_limiter.admit(principal, self.route_class)
        await claim_idempotency_key(
            request, governance.idempotency, principal.actor, self.idempotency
        )
        return principal


@cache
def _guard(scope: Scope, route_class: RouteClass, idempotency: Idempotency) -> ScopeGuard:
    # One instance per configuration, so FastAPI runs a guard once per request.
    return ScopeGuard(scope=scope, route_class=route_class, idempotency=idempotency)


def require_scope(
    scope: str | Scope,
    *,
    route_class: RouteClass | None = None,
    idempotency: Idempotency = Idempotency.REQUIRED,
) -> Any:
    """The dependency guarding a route (or router) with ``scope``; it returns the caller.

    ``route_class`` (rate limits) defaults from the scope (``system:read`` -> read, ...).
    ``idempotency`` says whether POST/PUT/PATCH/DELETE routes refuse a request without
    ``Idempotency-Key`` (required unless a route has its own duplicate detection, such as
    event ingestion keyed by the CloudEvent id: then ``Idempotency.OPTIONAL``).
    """
    parsed = scope if isinstance(scope, Scope) else Scope.parse(scope)
    guard = _guard(parsed, route_class or ROUTE_CLASS_OF[parsed], idempotency)
    return Security(guard, scopes=[parsed.value])
