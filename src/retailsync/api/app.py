"""The FastAPI application: every router under ``/v1``, errors as problem+json."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from retailsync import __version__
from retailsync.api import health
from retailsync.api.middleware import BodySizeLimitMiddleware, TraceContextMiddleware
from retailsync.api.problems import PROBLEM_RESPONSE_DOC, install_problem_handlers
from retailsync.bootstrap import Hub

API_PREFIX = "/v1"


def create_app(hub: Hub) -> FastAPI:
    """The HTTP API for ``hub``."""
    app = FastAPI(
        title="Retail Sync Hub",
        version=__version__,
        summary="Governed APIs over the retailer's ERP, events and retail workflows.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.hub = hub
    install_problem_handlers(app)
    v1 = APIRouter(prefix=API_PREFIX, responses=PROBLEM_RESPONSE_DOC)
    v1.include_router(health.router)
    app.include_router(v1)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=hub.settings.api.max_body_bytes)
    app.add_middleware(TraceContextMiddleware)
    return app
