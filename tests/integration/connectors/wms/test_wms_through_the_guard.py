"""The WMS client under the hub's ``wms`` downstream, against the sandbox.

Wired by ``bootstrap``, every request goes through the resilience guard: the shared policy
retries it (a write because it carries an ``Idempotency-Key``), each attempt is an
``outbound_call`` hop of the current trace with latency and outcome metrics, and each request
carries the trace's ``traceparent``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from retailsync.connectors.wms.client import WmsClient
from retailsync.connectors.wms.config import WmsSettings
from retailsync.connectors.wms.errors import WmsApiError, WmsUnavailable
from retailsync.connectors.wms.outbound import WmsWarehouse
from retailsync.db import create_engine_for, upgrade_database
from retailsync.observability import metrics as hub_metrics
from retailsync.observability.instrument import set_trace_store
from retailsync.observability.tracecontext import continue_trace
from retailsync.observability.traces import TraceEntry, load_trace
from retailsync.ports.warehouse import ExpectedReturnLine
from retailsync.resilience import Downstreams, ResiliencePolicy, ResilienceSettings
from retailsync.resilience.config import RetryPolicy
from retailsync.resilience.errors import BusinessError, TransientError
from retailsync.sandbox.server import SandboxServer
from retailsync.sandbox.wms import WmsSandbox

TRACE = "5b8aa5a2d2c872e8321cf37308d69df2"


class Recorded:
    """The WMS sandbox's app, noting each API request's path, key and ``traceparent``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls: list[tuple[str, str | None, str | None]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            headers = dict(scope["headers"])
            header = headers.get(b"traceparent")
            key = headers.get(b"idempotency-key")
            self.calls.append(
                (
                    scope["path"],
                    key.decode() if key else None,
                    header.decode().split("-")[1] if header else None,
                )
            )
        await self.app(scope, receive, send)


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    upgrade_database(sqlite_url)
    engine = create_engine_for(sqlite_url)
    hub_metrics.install_metrics(engine)
    set_trace_store(engine)
    yield engine
    set_trace_store(None)
    hub_metrics.uninstall_metrics()
    engine.dispose()


@pytest.fixture
def wms() -> Iterator[tuple[WmsSandbox, Recorded, str]]:
    sandbox = WmsSandbox(api_key="key-1", webhook_secret="secret")
    recorded = Recorded(sandbox.app)
    with SandboxServer(recorded) as server:
        yield sandbox, recorded, server.base_url


@pytest.fixture
async def downstreams() -> AsyncIterator[Downstreams]:
    policy = ResiliencePolicy(
        retry=RetryPolicy(max_attempts=3, initial_backoff_seconds=0.001, max_backoff_seconds=0.01)
    )
    downstreams = Downstreams(ResilienceSettings(downstreams={"wms": policy}), engine=None)
    yield downstreams
    await downstreams.close()


def settings_for(url: str) -> WmsSettings:
    return WmsSettings.model_validate(
        {
            "base_url": url,
            "api_key": SecretStr("key-1"),
            "webhook_secret": SecretStr("secret"),
            "max_attempts": 5,  # the built-in loop's; the guard's policy (3) must win
            "backoff_seconds": 5.0,
            "page_size": 2,
        }
    )


def calls(engine: Engine) -> list[TraceEntry]:
    trace = load_trace(engine, correlation_id=TRACE)
    return [e for e in trace.entries if e.kind.value == "outbound_call"]


def sample(name: str, **labels: str) -> float:
    metrics = hub_metrics.installed_metrics()
    assert metrics is not None
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_a_write_is_retried_with_its_key_and_every_attempt_is_a_hop(
    engine: Engine, wms: tuple[WmsSandbox, Recorded, str], downstreams: Downstreams
) -> None:
    sandbox, recorded, url = wms
    for n in range(3):
        sandbox.seed_inventory(f"SKU-{n}", "WH1", on_hand=5)
    settings = settings_for(url)
    async with WmsClient(settings, downstream=downstreams["wms"]) as client:
        warehouse = WmsWarehouse(client, settings)
        with continue_trace(TRACE):
            sandbox.faults.fail_next = 2
            expectation = await warehouse.expect_return(
                rma_reference="RMA-1",
                order_reference="SO-1",
                location="WH1",
                lines=[ExpectedReturnLine(sku="SKU-1", quantity=1)],
                idempotency_key="wf-1:expect_return_at_warehouse",
            )
            positions = [p.sku async for p in warehouse.iter_positions(location="WH1")]
    assert expectation and len(sandbox.expectations) == 1
    assert positions == ["SKU-0", "SKU-1", "SKU-2"]
    assert [(e.system, e.operation, e.status, e.attempt) for e in calls(engine)] == [
        ("wms", "expect return", "transient", 1),
        ("wms", "expect return", "transient", 2),
        ("wms", "expect return", "ok", 3),
        ("wms", "list inventory", "ok", 1),
        ("wms", "list inventory", "ok", 1),
    ]
    # The same key on every attempt of the write; the trace on every request.
    assert (
        recorded.calls[:3]
        == [("/v1/return-expectations", "wf-1:expect_return_at_warehouse", TRACE)] * 3
    )
    assert {trace for _, _, trace in recorded.calls} == {TRACE}
    assert sample("retailsync_outbound_call_duration_seconds_count", system="wms") == 5
    assert sample("retailsync_outbound_call_errors_total", system="wms", outcome="transient") == 2


async def test_refusals_and_exhausted_retries_keep_the_connector_errors(
    engine: Engine, wms: tuple[WmsSandbox, Recorded, str], downstreams: Downstreams
) -> None:
    sandbox, _recorded, url = wms
    sandbox.pick_tasks["PT-2"] = {"task_id": "PT-2", "status": "picked"}
    settings = settings_for(url)
    async with WmsClient(settings, downstream=downstreams["wms"]) as client:
        warehouse = WmsWarehouse(client, settings)
        with continue_trace(TRACE):
            with pytest.raises(WmsApiError) as picked:
                await warehouse.cancel_pick_task("PT-2", reason="x", idempotency_key="c-1")
            sandbox.faults.fail_next = 3
            with pytest.raises(WmsUnavailable) as down:
                await client.request("GET", "/v1/inventory")
    assert isinstance(picked.value, BusinessError)
    assert (picked.value.status, picked.value.code) == (409, "already_picked")
    assert isinstance(down.value, TransientError) and down.value.attempts == 3
    assert [(e.operation, e.status, e.attempt) for e in calls(engine)] == [
        ("cancel pick task", "business", 1),
        ("GET /v1/inventory", "transient", 1),
        ("GET /v1/inventory", "transient", 2),
        ("GET /v1/inventory", "transient", 3),
    ]
