"""The FastAPI application: every router under ``/v1``, guarded, errors as problem+json.

Routers declare their scope (``dependencies=[require_scope("system:read")]``); only
``/v1/health``, ``/v1/ready``, the OpenAPI document, the docs page and the webhook ingress
(vendor signatures) are open without credentials.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from retailsync import __version__
from retailsync.api import admin, health
from retailsync.api.auth import require_scope
from retailsync.api.experience import router as experience_router
from retailsync.api.governance import Governance
from retailsync.api.idempotency import (
    Idempotency,
    IdempotencyMiddleware,
    IdempotentReplay,
    replay_response,
)
from retailsync.api.middleware import BodySizeLimitMiddleware, TraceContextMiddleware
from retailsync.api.openapi import install_governed_openapi
from retailsync.api.problems import PROBLEM_RESPONSE_DOC, install_problem_handlers
from retailsync.api.scopes import Scope
from retailsync.api.settings import governance_settings
from retailsync.api.system import router as system_router
from retailsync.api.versioning import API_PREFIX, ResponseHeadersMiddleware
from retailsync.bootstrap import Hub, run_hub
from retailsync.bus.api import router as events_router
from retailsync.bus.intake import record_intake_failure
from retailsync.config import DeploymentMode
from retailsync.connectors.ingress import build_webhook_router
from retailsync.console.routes import router as console_router
from retailsync.observability.api import metrics_router
from retailsync.observability.api import router as observability_router
from retailsync.observability.metrics import MetricsMiddleware
from retailsync.reconcile.api import router as reconcile_router
from retailsync.resilience.api import router as connectors_router
from retailsync.runtime import settle_heap
from retailsync.workflows.api import router as process_router

__all__ = ["API_PREFIX", "create_app"]


def _record_unmappable(hub: Hub) -> Callable[[str, str, bytes, Exception], None]:
    def record(connector: str, delivery_id: str, raw_body: bytes, error: Exception) -> None:
        record_intake_failure(
            hub.engine, connector, reference=delivery_id, reason=str(error), raw=raw_body
        )

    return record


def create_app(
    hub: Hub, *, governance: Governance | None = None, run_background: bool = False
) -> FastAPI:
    """The HTTP API for ``hub``; ``governance`` defaults to one built from its settings.

    The lifespan starts the event bus; with ``run_background`` (``retailsync serve``) it also
    runs the hub's background work in this process (event delivery, change capture, drainers).
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if run_background:
            async with run_hub(hub, deliver_events=hub.settings.mode is DeploymentMode.EMBEDDED):
                settle_heap()
                yield
            return
        await hub.bus.start()
        try:
            yield
        finally:
            await hub.bus.close()

    app = FastAPI(
        lifespan=lifespan,
        title="Retail Sync Hub",
        version=__version__,
        summary="Governed APIs over the retailer's ERP, events and retail workflows.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.hub = hub
    app.state.downstreams = hub.downstreams
    app.state.bus = hub.bus
    governance = governance or Governance.build(
        governance_settings(hub.settings), hub.engine, hub.settings.secret_key
    )
    app.state.governance = governance
    install_problem_handlers(app)
    app.add_exception_handler(IdempotentReplay, replay_response)
    v1 = APIRouter(prefix=API_PREFIX, responses=PROBLEM_RESPONSE_DOC)
    # Routes are matched in order: the agents' hot path first.
    v1.include_router(health.router)
    v1.include_router(experience_router)
    v1.include_router(system_router)
    v1.include_router(admin.router)
    v1.include_router(reconcile_router)
    v1.include_router(process_router)
    v1.include_router(observability_router)
    v1.include_router(
        build_webhook_router(
            hub.webhook_receivers,
            hub.bus,
            hub.engine,
            on_unmappable=_record_unmappable(hub),
            max_body_bytes=hub.settings.api.max_body_bytes,
            prefix="/webhooks",
        )
    )
    app.include_router(v1)
    app.include_router(
        connectors_router,
        dependencies=[require_scope(Scope.ADMIN)],
        responses=PROBLEM_RESPONSE_DOC,
    )
    app.include_router(
        events_router,
        dependencies=[require_scope(Scope.SYSTEM_WRITE, idempotency=Idempotency.OPTIONAL)],
        responses=PROBLEM_RESPONSE_DOC,
    )
    app.include_router(metrics_router)
    app.include_router(console_router)
    install_governed_openapi(app)
    # Innermost first: the idempotency recorder must see the response before the headers
    # that belong to this one delivery (deprecation, trace) are added.
    app.add_middleware(IdempotencyMiddleware, store=governance.idempotency)
    app.add_middleware(ResponseHeadersMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=hub.settings.api.max_body_bytes)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(TraceContextMiddleware)
    return app
