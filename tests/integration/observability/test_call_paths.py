"""The hub's own call paths record their hops and metrics: the resilience guard's attempts,
the webhook ingress, ``POST /v1/events``, and the ``traceparent`` every connector sends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from retailsync.api.middleware import TraceContextMiddleware
from retailsync.bus.api import router as events_router
from retailsync.bus.backend import BackendConfig, EventBusBackend
from retailsync.bus.backends.sql import create_backend
from retailsync.connectors.ingress import build_webhook_router
from retailsync.db import create_engine_for, upgrade_database
from retailsync.domain.events import CloudEvent
from retailsync.domain.identifiers import EntityKind, new_id
from retailsync.observability import metrics as hub_metrics
from retailsync.observability.instrument import observe_workflow_step, set_trace_store
from retailsync.observability.otel import traceparent_hooks
from retailsync.observability.testkit import RetailJourney
from retailsync.observability.tracecontext import continue_trace
from retailsync.observability.traces import load_trace
from retailsync.resilience import Downstreams, ResiliencePolicy, ResilienceSettings
from retailsync.resilience.config import RetryPolicy
from retailsync.resilience.errors import CircuitOpen, DownstreamUnavailable

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
STEP_ORDER, WEBHOOK_ORDER, POSTED_ORDER = (new_id(EntityKind.ORDER) for _ in range(3))
STEP_CASE = new_id(EntityKind.CASE)


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    upgrade_database(sqlite_url)
    engine = create_engine_for(sqlite_url)
    metrics = hub_metrics.install_metrics(engine)
    set_trace_store(engine)
    yield engine
    assert hub_metrics.installed_metrics() is metrics
    hub_metrics.uninstall_metrics()
    set_trace_store(None)
    engine.dispose()


def _sample(name: str, labels: Mapping[str, str]) -> float:
    metrics = hub_metrics.installed_metrics()
    assert metrics is not None
    value = metrics.registry.get_sample_value(name, dict(labels))
    return value or 0.0


# --------------------------------------------------------------------------------------------
# The resilience guard
# --------------------------------------------------------------------------------------------


async def test_every_attempt_through_the_guard_is_a_hop_with_metrics(engine: Engine) -> None:
    policy = ResiliencePolicy(
        retry=RetryPolicy(max_attempts=3, initial_backoff_seconds=0.001, max_backoff_seconds=0.01)
    )
    downstreams = Downstreams(ResilienceSettings(downstreams={"erp": policy}), engine=None)
    failures = [DownstreamUnavailable("ERP restarting", downstream="erp")]

    async def create_return() -> str:
        if failures:
            raise failures.pop()
        return "RMA-1"

    try:
        with continue_trace(TRACE):
            async with observe_workflow_step(
                "return_to_refund",
                "authorize_return_in_erp",
                workflow_id="wf-1",
                correlation_id=TRACE,
                order_id=STEP_ORDER,
                case_id=STEP_CASE,
                system="erp",
            ) as step:
                assert await downstreams.erp.call("create_return", create_return) == "RMA-1"
                step.outcome({"ok": True})
    finally:
        await downstreams.close()

    trace = load_trace(engine, correlation_id=TRACE)
    calls = [e for e in trace.entries if e.kind.value == "outbound_call"]
    assert [(e.system, e.operation, e.status, e.attempt) for e in calls] == [
        ("erp", "create_return", "transient", 1),
        ("erp", "create_return", "ok", 2),
    ]
    assert {e.order_id for e in calls} == {STEP_ORDER}
    assert {e.case_id for e in calls} == {STEP_CASE}
    assert "ERP restarting" in calls[0].detail["error"]
    assert _sample("retailsync_outbound_call_duration_seconds_count", {"system": "erp"}) == 2
    assert (
        _sample("retailsync_outbound_call_errors_total", {"system": "erp", "outcome": "transient"})
        == 1
    )


async def test_a_call_the_breaker_refuses_is_not_an_outbound_hop(engine: Engine) -> None:
    downstreams = Downstreams(engine=None)
    downstreams.erp.breaker.force_open("maintenance window")
    try:
        with continue_trace(TRACE), pytest.raises(CircuitOpen):
            await downstreams.erp.call("get_order", _answer)
        downstreams.erp.breaker.reset()
        with continue_trace(TRACE):
            assert await downstreams.erp.call("get_order", _answer) == "ok"
    finally:
        await downstreams.close()
    hops = [(e.operation, e.status) for e in load_trace(engine, correlation_id=TRACE).entries]
    assert hops == [("get_order", "ok")]


async def _answer() -> str:
    return "ok"


# --------------------------------------------------------------------------------------------
# traceparent on outbound requests
# --------------------------------------------------------------------------------------------


async def test_connector_clients_send_the_current_traceparent() -> None:
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("traceparent"))
        return httpx.Response(200, json={})

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(answer),
        base_url="http://vendor",
        event_hooks=traceparent_hooks(),
    ) as client:
        await client.get("/outside-any-trace")
        with continue_trace(TRACE):
            await client.get("/in-the-trace")
            await client.get("/kept", headers={"traceparent": TRACEPARENT})
    assert seen[0] is None
    assert seen[1] is not None and seen[1].split("-")[1] == TRACE
    assert seen[1] != TRACEPARENT  # a new span id for the hop
    assert seen[2] == TRACEPARENT


# --------------------------------------------------------------------------------------------
# Inbound: the webhook ingress and POST /v1/events
# --------------------------------------------------------------------------------------------


class OrderWebhooks:
    """A minimal vendor: unsigned, one ``order.created`` per delivery (id from the body)."""

    name = "storefront"

    def __init__(self) -> None:
        self.journey = RetailJourney(order_id=WEBHOOK_ORDER)

    def verify(self, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        return None

    def delivery_id(self, headers: Mapping[str, str], body: bytes) -> str:
        return str(json.loads(body)["delivery"])

    def to_events(self, headers: Mapping[str, str], body: bytes) -> list[CloudEvent]:
        event = self.journey.order_created(datetime.now(UTC))
        return [event.model_copy(update={"id": f"storefront:{json.loads(body)['delivery']}"})]


@pytest.fixture
async def bus(engine: Engine, sqlite_url: str) -> AsyncIterator[EventBusBackend]:
    backend = create_backend(BackendConfig(database_url=sqlite_url, worker_id="obs-test"))
    await backend.start()
    yield backend
    await backend.close()


@pytest.fixture
async def client(engine: Engine, bus: EventBusBackend) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.state.bus = bus
    app.include_router(build_webhook_router([OrderWebhooks()], bus, engine))
    app.include_router(events_router)
    app.add_middleware(TraceContextMiddleware)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
        yield http


async def test_a_webhook_is_an_inbound_hop_and_its_events_join_the_request_trace(
    engine: Engine, client: httpx.AsyncClient
) -> None:
    body = json.dumps({"delivery": "d-1", "type": "order.placed"})
    headers = {"traceparent": TRACEPARENT, "content-type": "application/json"}
    first = await client.post("/v1/webhooks/storefront", content=body, headers=headers)
    again = await client.post("/v1/webhooks/storefront", content=body, headers=headers)
    assert first.status_code == 200, first.text
    assert again.json()["duplicate"] is True

    trace = load_trace(engine, order_id=WEBHOOK_ORDER)
    hops = [(e.kind.value, e.system, e.operation, e.status) for e in trace.entries]
    assert hops == [
        ("inbound", "storefront", "order.placed", "accepted"),
        ("event", "retailsync/connectors/shopify", "retailsync.order.created", "stored"),
        ("inbound", "storefront", "order.placed", "duplicate"),
    ]
    assert {e.correlation_id for e in trace.entries} == {TRACE}  # stamped on the event
    assert trace.entries[0].order_id == WEBHOOK_ORDER
    assert trace.entries[0].detail["delivery_id"] == "d-1"
    ingested = {"type": "retailsync.order.created"}
    assert _sample("retailsync_events_ingested_total", ingested) == 1


async def test_posted_events_are_stamped_counted_once_and_recorded(
    engine: Engine, client: httpx.AsyncClient
) -> None:
    event = RetailJourney(order_id=POSTED_ORDER).order_created(datetime.now(UTC))
    body = [event.model_dump(mode="json", exclude_none=True)]
    assert "correlationid" not in body[0]
    headers = {"traceparent": TRACEPARENT}
    first = await client.post("/v1/events", json=body, headers=headers)
    again = await client.post("/v1/events", json=body, headers=headers)
    assert first.status_code == 202 and again.status_code == 202, again.text
    assert [r["status"] for r in again.json()["results"]] == ["duplicate"]

    trace = load_trace(engine, order_id=POSTED_ORDER)
    hops = [(e.kind.value, e.system, e.operation, e.status) for e in trace.entries]
    assert hops == [
        ("inbound", "events-api", "retailsync.order.created", "accepted"),
        ("event", event.source, "retailsync.order.created", "stored"),
        ("inbound", "events-api", "retailsync.order.created", "duplicate"),
    ]
    assert {e.correlation_id for e in trace.entries} == {TRACE}
    ingested = {"type": "retailsync.order.created"}
    assert _sample("retailsync_events_ingested_total", ingested) == 1
