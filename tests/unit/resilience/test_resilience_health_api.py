"""GET /v1/admin/connectors and the Prometheus metrics show the same per-downstream state."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, generate_latest

from retailsync.db import create_engine_for, upgrade_database
from retailsync.resilience import BreakerPolicy, Downstreams, ResiliencePolicy, ResilienceSettings
from retailsync.resilience.api import router
from retailsync.resilience.errors import DownstreamUnavailable
from retailsync.resilience.metrics import register_metrics


async def test_connector_health_endpoint_and_metrics(sqlite_url: str) -> None:
    upgrade_database(sqlite_url)
    engine = create_engine_for(sqlite_url)
    policy = ResiliencePolicy(breaker=BreakerPolicy(consecutive_failures=2))
    downstreams = Downstreams(ResilienceSettings(downstreams={"erp": policy}), engine=engine)

    async def ok() -> str:
        return "ok"

    async def down() -> str:
        raise DownstreamUnavailable("erp failed get_order (HTTP 503)")

    async def refund(payload: dict[str, object], key: str) -> None:
        raise DownstreamUnavailable("erp failed issue_refund (HTTP 503)")

    erp = downstreams.erp
    await erp.call("get_order", ok)
    erp.register_write("issue_refund", refund)
    outcome = await erp.write("issue_refund", {"amount": "5.00"}, idempotency_key="k1")
    assert outcome.deferred
    assert erp.breaker.state.value == "open"
    with pytest.raises(DownstreamUnavailable):
        await downstreams.wms.call("get_stock", down)  # one failure, still closed

    app = FastAPI()
    app.include_router(router)
    app.state.downstreams = downstreams
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        response = await client.get("/v1/admin/connectors")
        one = await client.get("/v1/admin/connectors/erp")
        missing = await client.get("/v1/admin/connectors/mainframe")
    assert response.status_code == 200
    body = response.json()
    by_name = {c["name"]: c for c in body["connectors"]}
    assert set(by_name) == {"erp", "service_desk", "payments", "commerce", "wms"}
    erp_view = by_name["erp"]
    assert erp_view["breaker_state"] == "open"
    assert "2 consecutive transient failures" in erp_view["breaker_reason"]
    assert erp_view["deferred_writes"]["pending"] == 1
    assert erp_view["calls_in_window"] == 3
    assert erp_view["error_rate"] == pytest.approx(2 / 3, abs=0.001)
    assert erp_view["latency"]["p50_ms"] is not None
    assert erp_view["half_open_at"] is not None
    assert by_name["wms"]["breaker_state"] == "closed"
    assert one.json()["name"] == "erp"
    assert missing.status_code == 404 and "mainframe" in missing.json()["detail"]

    registry = CollectorRegistry()
    register_metrics(downstreams, registry)
    text = generate_latest(registry).decode()
    assert 'retailsync_downstream_breaker_state{downstream="erp"} 2.0' in text
    assert 'retailsync_downstream_breaker_state{downstream="wms"} 0.0' in text
    assert 'retailsync_downstream_deferred_writes{downstream="erp",status="pending"} 1.0' in text
    assert 'retailsync_downstream_calls_total{downstream="erp",outcome="transient"} 2.0' in text
    assert 'retailsync_downstream_latency_seconds{downstream="erp",quantile="0.99"}' in text
    await downstreams.close()
    engine.dispose()


async def test_endpoint_without_configured_downstreams_says_so() -> None:
    app = FastAPI()
    app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        response = await client.get("/v1/admin/connectors")
    assert response.status_code == 503
    assert "app.state.downstreams" in response.json()["detail"]
