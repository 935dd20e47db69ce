"""The FastAPI application: every router under ``/v1``, guarded, errors as problem+json.

Routers declare their scope (``dependencies=[require_scope("system:read")]``); only
``/v1/health``, ``/v1/ready``, the OpenAPI document, the docs page and the webhook ingress
(vendor signatures) are open without credentials.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from retailsync import __version__
from retailsync.api import admin, health
from retailsync.api.auth import require_scope
from retailsync.api.governance import Governance
from retailsync.api.idempotency import IdempotencyMiddleware, IdempotentReplay, replay_response
from retailsync.api.middleware import BodySizeLimitMiddleware, TraceContextMiddleware
from retailsync.api.openapi import install_governed_openapi
from retailsync.api.problems import PROBLEM_RESPONSE_DOC, install_problem_handlers
from retailsync.api.scopes import Scope
from retailsync.api.settings import governance_settings
from retailsync.api.versioning import API_PREFIX, ResponseHeadersMiddleware
from retailsync.bootstrap import Hub
from retailsync.resilience.api import router as connectors_router

__all__ = ["API_PREFIX", "create_app"]


def create_app(hub: Hub, *, governance: Governance | None = None) -> FastAPI:
    """The HTTP API for ``hub``; ``governance`` defaults to one built from its settings."""
    app = FastAPI(
        title="Retail Sync Hub",
        version=__version__,
        summary="Governed APIs over the retailer's ERP, events and retail workflows.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.hub = hub
    app.state.downstreams = hub.downstreams
    governance = governance or Governance.build(
        governance_settings(hub.settings), hub.engine, hub.settings.secret_key
    )
    app.state.governance = governance
    install_problem_handlers(app)
    app.add_exception_handler(IdempotentReplay, replay_response)
    v1 = APIRouter(prefix=API_PREFIX, responses=PROBLEM_RESPONSE_DOC)
    v1.include_router(health.router)
    v1.include_router(admin.router)
    app.include_router(v1)
    app.include_router(
        connectors_router,
        dependencies=[require_scope(Scope.ADMIN)],
        responses=PROBLEM_RESPONSE_DOC,
    )
    install_governed_openapi(app)
    # Innermost first: the idempotency recorder must see the response before the headers
    # that belong to this one delivery (deprecation, trace) are added.
    app.add_middleware(IdempotencyMiddleware, store=governance.idempotency)
    app.add_middleware(ResponseHeadersMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=hub.settings.api.max_body_bytes)
    app.add_middleware(TraceContextMiddleware)
    return app
