"""``GET /v1/admin/connectors``: breaker state, error rate, latency and queue depth per system.

The application puts its :class:`~retailsync.resilience.registry.Downstreams` on
``app.state.downstreams``; authentication is applied where the router is included.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from retailsync.resilience.errors import UnknownDownstream
from retailsync.resilience.health import ConnectorHealth, connector_health
from retailsync.resilience.registry import Downstreams

router = APIRouter(prefix="/v1/admin/connectors", tags=["admin"])


class ConnectorHealthList(BaseModel):
    generated_at: datetime
    connectors: list[ConnectorHealth]


def get_downstreams(request: Request) -> Downstreams:
    downstreams = getattr(request.app.state, "downstreams", None)
    if not isinstance(downstreams, Downstreams):
        raise HTTPException(
            status_code=503,
            detail="the resilience layer is not configured: set app.state.downstreams at startup",
        )
    return downstreams


@router.get("", response_model=ConnectorHealthList, summary="Health of every downstream system")
async def list_connectors(request: Request) -> ConnectorHealthList:
    downstreams = get_downstreams(request)
    return ConnectorHealthList(
        generated_at=datetime.now(UTC), connectors=await downstreams.health()
    )


@router.get("/{name}", response_model=ConnectorHealth, summary="Health of one downstream system")
async def get_connector(name: str, request: Request) -> ConnectorHealth:
    downstreams = get_downstreams(request)
    try:
        downstream = downstreams[name]
    except UnknownDownstream as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    return await connector_health(downstream)
