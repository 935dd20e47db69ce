"""/metrics parses as Prometheus text and carries every hub series; the admin routes answer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from retailsync.api.app import create_app
from retailsync.api.clients import api_key_pepper, create_api_client
from retailsync.api.scopes import Scope
from retailsync.bootstrap import Hub, bootstrap
from retailsync.bus.backend import BackendConfig, BusOptions, RetryPolicy, Subscription
from retailsync.bus.backends.sql import create_backend
from retailsync.config import Settings
from retailsync.domain.events import CloudEvent
from retailsync.observability import metrics as hub_metrics
from retailsync.observability.instrument import (
    observe_outbound,
    observe_workflow_step,
    set_trace_store,
    traced_handler,
)
from retailsync.observability.monitor import SlaMonitor
from retailsync.observability.settings import ObservabilitySettings
from retailsync.observability.testkit import RetailJourney
from retailsync.observability.tracecontext import causation_id, correlation_id
from retailsync.observability.traces import load_trace
from retailsync.resilience import Downstreams
from retailsync.resilience.errors import DownstreamUnavailable, ValidationRejected
from retailsync.resilience.metrics import register_metrics

TRACE = "5bf92f3577b34da6a3ce929d0e0e4737"


@pytest.fixture
def hub(sqlite_url: str) -> Iterator[Hub]:
    hub = bootstrap(Settings(database_url=sqlite_url), configure_logs=False)
    yield hub
    hub.close()


@pytest.fixture
def metrics(hub: Hub) -> Iterator[hub_metrics.HubMetrics]:
    installed = hub_metrics.install_metrics(hub.engine)
    set_trace_store(hub.engine)
    yield installed
    hub_metrics.uninstall_metrics()
    set_trace_store(None)


@pytest.fixture
def app(hub: Hub, metrics: hub_metrics.HubMetrics) -> FastAPI:
    app = create_app(hub)  # mounts /v1/admin/traces, /v1/admin/kpis, /metrics and the middleware
    return app


@pytest.fixture
def admin_key(hub: Hub) -> str:
    with hub.engine.begin() as connection:
        issued = create_api_client(
            connection,
            name="observability test",
            scopes=[Scope.ADMIN],
            pepper=api_key_pepper(hub.settings.secret_key),
            actor="test:setup",
            correlation_id=None,
        )
    return issued.key


async def test_metrics_exposition_has_every_series(
    hub: Hub, app: FastAPI, admin_key: str, metrics: hub_metrics.HubMetrics
) -> None:
    journey = RetailJourney(correlation_id=TRACE)
    seen: list[tuple[str | None, str | None]] = []

    async def update_storefront(event: CloudEvent, ctx: object) -> None:
        seen.append((correlation_id(), causation_id()))
        if event.type == "retailsync.refund.requested":
            raise ValidationRejected("refund amount exceeds what was paid")

    bus = create_backend(
        BackendConfig(
            database_url=hub.settings.resolved_database_url,
            options=BusOptions(poll_interval=0.01, shards=4),
        )
    )
    bus.subscribe(
        Subscription(
            name="storefront",
            handler=traced_handler("storefront", update_storefront),
            retry=RetryPolicy(business_max_attempts=1),
            downstream="commerce",
        )
    )
    await bus.start()
    try:
        now = datetime.now(UTC)
        events = [
            journey.order_created(now - timedelta(hours=60)),
            journey.refund_requested(now - timedelta(hours=50), for_return=False),
        ]
        await bus.publish(events)  # the backend counts what it ingests
        await bus.deliver_until_idle(timeout=20)  # and what it dead-letters
        # A second subscriber that has not started yet: it lags by every stored event.
        late = create_backend(
            BackendConfig(
                database_url=hub.settings.resolved_database_url,
                worker_id="w2",
                options=BusOptions(poll_interval=0.01, shards=4),
            )
        )
        late.subscribe(Subscription(name="warehouse", handler=update_storefront))
        await late.start()
        await late.close()
    finally:
        await bus.close()
    assert seen[0] == (TRACE, events[0].id)

    hub_metrics.workflow_started("service_refund")
    async with observe_workflow_step(
        "service_refund",
        "read_erp_order",
        workflow_id="refund-wf-1",
        correlation_id=TRACE,
        order_id=journey.order_id,
        system="erp",
    ) as step:
        async with observe_outbound("erp", "get_order", order_id=journey.order_id):
            pass
        step.outcome({"ok": True, "value": {}})
    with pytest.raises(DownstreamUnavailable):
        async with observe_outbound("payments", "refund", order_id=journey.order_id):
            raise DownstreamUnavailable("payments answered 503")
    hub_metrics.workflow_finished("service_refund", "failed")

    downstreams = Downstreams(engine=hub.engine)
    register_metrics(downstreams, metrics.registry)
    monitor = SlaMonitor(hub.engine, ObservabilitySettings(), clock=lambda: datetime.now(UTC))
    report = await monitor.run_once()
    assert report.raised == 1  # the refund requested 50 h ago and never paid out

    transport = httpx.ASGITransport(app=app)
    headers = {"X-API-Key": admin_key}
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        trace = await client.get(
            "/v1/admin/traces", params={"order": journey.order_id}, headers=headers
        )
        missing = await client.get(
            "/v1/admin/traces", params={"order": "ord_01J00000000000000000000000"}, headers=headers
        )
        narrowed_to_nothing = await client.get(
            "/v1/admin/traces",
            params={"correlation_id": TRACE, "case": "case_nobody"},
            headers=headers,
        )
        recent = await client.get("/v1/admin/traces", headers=headers)
        unauthenticated = await client.get("/v1/admin/traces", params={"order": "x"})
        kpis = await client.get("/v1/admin/kpis", params={"group_by": "channel"}, headers=headers)
        alerts = await client.get("/v1/admin/alerts", headers=headers)
        exposition = await client.get("/metrics")

    assert trace.status_code == 200, trace.text
    body = trace.json()
    assert [e["kind"] for e in body["entries"]] == [
        "event",
        "event",
        "exception",
        "workflow_step",
        "outbound_call",
        "outbound_call",
    ]
    assert body["correlation_ids"] == [TRACE]
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert narrowed_to_nothing.status_code == 404
    assert recent.status_code == 200
    assert TRACE in [r["correlation_id"] for r in recent.json()["recent"]]
    assert unauthenticated.status_code == 401
    assert kpis.status_code == 200
    assert kpis.json()["overall"]["refund_cycle"]["open"] == 1
    assert alerts.json()["alerts"][0]["sla"] == "refund_completed"

    assert exposition.status_code == 200
    families = {family.name: family for family in text_string_to_metric_families(exposition.text)}
    expected = {
        "retailsync_api_request_duration_seconds",
        "retailsync_api_requests",
        "retailsync_api_request_errors",
        "retailsync_events_ingested",
        "retailsync_events_delivered",
        "retailsync_events_dead_lettered",
        "retailsync_event_handling_duration_seconds",
        "retailsync_consumer_lag_events",
        "retailsync_workflows_started",
        "retailsync_workflows_completed",
        "retailsync_workflows_failed",
        "retailsync_workflow_step_duration_seconds",
        "retailsync_outbound_call_duration_seconds",
        "retailsync_outbound_call_errors",
        "retailsync_downstream_breaker_state",
        "retailsync_exception_queue_depth",
        "retailsync_sla_breaches",
        "retailsync_sla_at_risk",
        "retailsync_alerts_raised",
        "retailsync_kpi_open_items",
        "retailsync_kpi_exceptions",
    }
    assert expected <= set(families), sorted(expected - set(families))

    def samples(name: str) -> dict[tuple[tuple[str, str], ...], float]:
        return {
            tuple(sorted(sample.labels.items())): sample.value
            for sample in families[name].samples
            if not sample.name.endswith(("_created", "_bucket"))
        }

    routes = {dict(labels).get("route") for labels in samples("retailsync_api_requests")}
    assert "/v1/admin/traces" in routes and "/v1/admin/kpis" in routes
    errors = samples("retailsync_api_request_errors")
    assert errors[(("method", "GET"), ("route", "/v1/admin/traces"), ("status", "404"))] == 2
    assert samples("retailsync_events_ingested")[(("type", "retailsync.order.created"),)] == 1
    delivered = samples("retailsync_events_delivered")
    assert delivered[(("subscriber", "storefront"), ("type", "retailsync.order.created"))] == 1
    dead = samples("retailsync_events_dead_lettered")
    assert dead[(("subscriber", "storefront"), ("type", "retailsync.refund.requested"))] == 1
    lag = samples("retailsync_consumer_lag_events")
    assert lag[(("subscriber", "warehouse"),)] == 2
    assert lag[(("subscriber", "storefront"),)] == 0
    depth = samples("retailsync_exception_queue_depth")
    assert depth[(("status", "open"), ("system", "commerce"))] == 1
    assert (
        samples("retailsync_outbound_call_errors")[
            (("outcome", "transient"), ("system", "payments"))
        ]
        == 1
    )
    assert samples("retailsync_workflows_failed")[(("workflow", "service_refund"),)] == 1
    assert samples("retailsync_sla_breaches")[(("sla", "refund_completed"),)] == 1
    breaker = samples("retailsync_downstream_breaker_state")
    assert breaker[(("downstream", "erp"),)] == 0

    stored = load_trace(hub.engine, order_id=journey.order_id)
    first_step = next(e for e in stored.entries if e.kind.value == "workflow_step")
    assert (first_step.operation, first_step.status, first_step.correlation_id) == (
        "service_refund.read_erp_order",
        "ok",
        TRACE,
    )
