"""The process API over a real hub (SQLite, migrations, governance) and the durable runtime."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from workflow_fakes import Ledger, fake_ports

from retailsync.api.app import create_app
from retailsync.api.clients import create_api_client
from retailsync.api.scopes import Scope
from retailsync.api.versioning import API_PREFIX
from retailsync.bootstrap import bootstrap
from retailsync.config import Settings
from retailsync.domain.identifiers import EntityKind, derive_id
from retailsync.domain.policies import RefundPolicy
from retailsync.workflows.api import router
from retailsync.workflows.runtime import (
    RetrySchedule,
    WorkflowOptions,
    launch_workflows,
    shutdown_workflows,
)

ORDER = derive_id(EntityKind.ORDER, "api", "1")


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str], Ledger]]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'hub.sqlite'}", worker_id="api")
    hub = bootstrap(settings, configure_logs=False)
    app = create_app(hub)
    app.include_router(router, prefix=API_PREFIX)
    pepper = app.state.governance.pepper
    keys = {}
    with hub.engine.begin() as connection:
        for name, scopes in {
            "agent": [Scope.PROCESS_WRITE],
            "lead": [Scope.PROCESS_WRITE, Scope.PROCESS_APPROVE],
        }.items():
            issued = create_api_client(
                connection,
                name=name,
                scopes=scopes,
                pepper=pepper,
                actor="test",
                correlation_id=None,
            )
            keys[name] = issued.key
    ledger = Ledger(tmp_path / "world.sqlite")
    ledger.add_order(ORDER, "200.00", lines={"MUG-1": (4, "25.00"), "TEE-2": (2, "50.00")})
    ledger.add_payment("pi_1", "200.00")
    policy = RefundPolicy.from_mapping({"approval_threshold": {"EUR": "100"}})
    await launch_workflows(
        settings,
        fake_ports(ledger),
        WorkflowOptions(
            retry=RetrySchedule(attempts=2, first_delay_seconds=0.01), refund_policy=policy
        ),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        yield client, keys, ledger
    shutdown_workflows()
    hub.close()


def body(amount: str, sku: str, quantity: int) -> dict:
    return {
        "order_id": ORDER,
        "payment_ref": "pi_1",
        "case_ref": "ZD-9",
        "amount": {"amount": amount, "currency": "EUR"},
        "lines": [{"sku": sku, "quantity": quantity}],
        "ordered_at": (datetime.now(UTC) - timedelta(days=2)).isoformat(),
    }


async def until(client: httpx.AsyncClient, url: str, key: str, *states: str) -> dict:
    last = None
    for _ in range(40):
        reply = await client.get(url, headers={"X-API-Key": key})
        assert reply.status_code == 200, (last or {}).get("output")
        last = reply.json()
        if reply.json()["state"] in states:
            return reply.json()  # type: ignore[no-any-return]
        await asyncio.sleep(0.3)
    raise AssertionError(f"{url} never reached {states}: {reply.json()}")


async def test_same_idempotency_key_same_workflow_and_approval_by_scope(api) -> None:
    client, keys, ledger = api
    agent = {"X-API-Key": keys["agent"], "Idempotency-Key": "case-9-refund"}
    payload = body("100.00", "TEE-2", 2) | {"fraud_flag": True}
    first = await client.post("/v1/process/refunds", json=payload, headers=agent)
    assert first.status_code == 202, first.text
    again = await client.post("/v1/process/refunds", json=payload, headers=agent)
    assert again.json()["workflow_id"] == first.json()["workflow_id"]
    url = first.json()["status_url"]
    status = await until(client, url, keys["agent"], "awaiting_approval")
    steps = [s["name"] for s in status["steps"] if not s["name"].startswith("DBOS.")]
    assert steps[:2] == ["read_erp_order", "read_payment"]

    refused = await client.post(
        f"{url}/approve", headers={"X-API-Key": keys["agent"], "Idempotency-Key": "a1"}
    )
    assert refused.status_code == 403
    approved = await client.post(
        f"{url}/approve",
        json={"reason": "photos ok"},
        headers={"X-API-Key": keys["lead"], "Idempotency-Key": "a2"},
    )
    assert approved.status_code == 202, approved.text
    done = await until(client, url, keys["agent"], "completed", "failed", "finance_exception")
    assert done["state"] == "completed", done
    assert [r["amount"] for r in ledger.refunds()] == ["100.00"]

    late = await client.post(
        f"{url}/reject", headers={"X-API-Key": keys["lead"], "Idempotency-Key": "a3"}
    )
    assert late.status_code == 409
    assert late.headers["content-type"].startswith("application/problem+json")


async def test_reject_through_the_api_moves_no_money(api) -> None:
    client, keys, ledger = api
    started = await client.post(
        "/v1/process/refunds",
        json=body("150.00", "MUG-1", 4),
        headers={"X-API-Key": keys["agent"], "Idempotency-Key": "r-1"},
    )
    url = started.json()["status_url"]
    await until(client, url, keys["agent"], "awaiting_approval")
    rejected = await client.post(
        f"{url}/reject",
        json={"reason": "not damaged"},
        headers={"X-API-Key": keys["lead"], "Idempotency-Key": "r-2"},
    )
    assert rejected.status_code == 202
    done = await until(client, url, keys["agent"], "rejected")
    assert done["details"]["reason"] == "not damaged"
    assert ledger.refunds() == [] and ledger.credit_notes() == 0


async def test_bad_requests_are_problems(api) -> None:
    client, keys, _ledger = api
    no_key = await client.post(
        "/v1/process/refunds", json=body("5.00", "MUG-1", 1), headers={"X-API-Key": keys["agent"]}
    )
    assert no_key.status_code in {400, 428}
    invalid = await client.post(
        "/v1/process/refunds",
        json={"order_id": ORDER},
        headers={"X-API-Key": keys["agent"], "Idempotency-Key": "x"},
    )
    assert invalid.status_code == 422
    assert "payment_ref" in invalid.json()["detail"]
    missing = await client.get(
        "/v1/process/refunds/refund-nope", headers={"X-API-Key": keys["agent"]}
    )
    assert missing.status_code == 404


async def test_returns_cancellations_and_replacements_start_with_idempotency_keys(api) -> None:
    client, keys, ledger = api
    headers = {"X-API-Key": keys["agent"]}
    now = datetime.now(UTC).isoformat()
    ret = {
        "order_id": ORDER,
        "payment_ref": "pi_1",
        "case_ref": "ZD-9",
        "lines": [{"sku": "MUG-1", "quantity": 1, "reason": "damaged"}],
        "ordered_at": now,
    }
    first = await client.post(
        "/v1/process/returns", json=ret, headers=headers | {"Idempotency-Key": "ret-1"}
    )
    assert first.status_code == 202, first.text
    again = await client.post(
        "/v1/process/returns", json=ret, headers=headers | {"Idempotency-Key": "ret-1"}
    )
    assert again.json()["workflow_id"] == first.json()["workflow_id"]
    assert again.json() == first.json()  # the replayed answer of the first request
    waiting = await until(client, first.json()["status_url"], keys["agent"], "awaiting_receipt")
    assert waiting["workflow"] == "return_to_refund"
    assert ledger.count("expectations") == 1

    ledger.add_stock("TEE-2", "STO", 0)
    replacement = await client.post(
        "/v1/process/replacements",
        json={"order_id": ORDER, "payment_ref": "pi_1", "lines": [{"sku": "TEE-2", "quantity": 1}]},
        headers=headers | {"Idempotency-Key": "rep-1"},
    )
    assert replacement.status_code == 202, replacement.text
    done = await until(
        client, replacement.json()["status_url"], keys["agent"], "refunded_instead", "failed"
    )
    assert done["state"] == "refunded_instead", done["details"]

    cancel = await client.post(
        "/v1/process/cancellations",
        json={"order_id": ORDER, "payment_ref": "pi_1"},
        headers=headers | {"Idempotency-Key": "can-1"},
    )
    assert cancel.status_code == 202, cancel.text
    done = await until(client, cancel.json()["status_url"], keys["agent"], "converted_to_return")
    assert done["details"]["return_workflow_id"].endswith("-return")

    invalid = await client.post(
        "/v1/process/cancellations", json={}, headers=headers | {"Idempotency-Key": "can-2"}
    )
    assert invalid.status_code == 422
    assert "order_id" in invalid.json()["detail"]


async def test_fulfilment_starts_through_the_api_with_the_callers_trace_id(api) -> None:
    client, keys, ledger = api
    ledger.add_storefront_order("8001", {"MUG-1": (1, "12.50")})
    ledger.add_stock("MUG-1", "STO", 5)
    trace = "0af7651916cd43dd8448eb211c80319c"
    headers = {
        "X-API-Key": keys["agent"],
        "Idempotency-Key": "order-8001",
        "traceparent": f"00-{trace}-b7ad6b7169203331-01",
    }
    started = await client.post(
        "/v1/process/fulfillments",
        json={"storefront_order_ref": "8001", "shipment_timeout_seconds": 60},
        headers=headers,
    )
    assert started.status_code == 202, started.text
    url = started.json()["status_url"]
    status = await until(client, url, keys["agent"], "awaiting_shipment")
    assert status["details"]["erp_status"] == "confirmed"
    assert ledger.storefront("8001")["status"] == "confirmed"
    invalid = await client.post(
        "/v1/process/fulfillments",
        json={"case_ref": "ZD-1"},
        headers={**headers, "Idempotency-Key": "order-none"},
    )
    assert invalid.status_code == 422
    from dbos import DBOS

    from retailsync.workflows.process import STATE_EVENT

    state = await DBOS.get_event_async(started.json()["workflow_id"], STATE_EVENT, 0)
    assert state["correlation_id"] == trace


async def test_a_process_runs_in_its_orders_trace_else_in_its_requests(api) -> None:
    """Without a ``traceparent`` a process joins the trace its order already has; the first
    one about an order runs in its own request's trace. Each start is an inbound hop."""
    from dbos import DBOS

    from retailsync.observability.instrument import trace_store
    from retailsync.observability.traces import load_trace
    from retailsync.workflows.process import STATE_EVENT

    client, keys, _ledger = api
    correlations = []
    for key in ("first-refund", "second-refund"):
        started = await client.post(
            "/v1/process/refunds",
            json=body("20.00", "MUG-1", 1),
            headers={"X-API-Key": keys["agent"], "Idempotency-Key": key},
        )
        assert started.status_code == 202, started.text
        state = await DBOS.get_event_async(started.json()["workflow_id"], STATE_EVENT, 5)
        correlations.append((started.headers["x-correlation-id"], state["correlation_id"]))
    (first_request, first_run), (second_request, second_run) = correlations
    assert first_run == first_request  # nothing known yet: the request's own trace
    assert second_run == first_run != second_request  # the order's trace
    engine = trace_store()
    assert engine is not None
    inbound = [
        (e.system, e.operation, e.status, e.correlation_id)
        for e in load_trace(engine, order_id=ORDER).entries
        if e.kind.value == "inbound"
    ]
    assert inbound == [("process-api", "start refunds", "accepted", first_run)] * 2
