"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from retailsync import __version__
from retailsync.db import database_is_reachable

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    version: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


@router.get("/health", response_model=Health, summary="The process is up")
async def health() -> Health:
    return Health(status="ok", version=__version__)


@router.get(
    "/ready",
    response_model=Readiness,
    summary="The hub can serve: its database answers",
    responses={503: {"model": Readiness, "description": "A dependency is not reachable"}},
)
async def ready(request: Request) -> JSONResponse:
    engine = request.app.state.hub.engine
    database_ok = database_is_reachable(engine)
    body = Readiness(
        status="ok" if database_ok else "unavailable",
        checks={"database": "ok" if database_ok else "unreachable"},
    )
    return JSONResponse(body.model_dump(), status_code=200 if database_ok else 503)
