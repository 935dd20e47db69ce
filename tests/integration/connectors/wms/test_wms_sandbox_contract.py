"""The WMS client and receiver against the WMS sandbox, over real HTTP.

The vendor documentation for this generic connector is our own contract,
docs/connectors/wms.md; each test names the section it checks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from pydantic import SecretStr

from retailsync.connectors.webhook_protocol import WebhookRejected
from retailsync.connectors.wms.client import WmsClient
from retailsync.connectors.wms.config import WmsSettings
from retailsync.connectors.wms.errors import WmsApiError, WmsNotFound, WmsUnavailable
from retailsync.connectors.wms.inbound import WmsWebhookReceiver
from retailsync.connectors.wms.outbound import WmsWarehouse
from retailsync.domain.events import CloudEvent
from retailsync.ports.warehouse import ExpectedReturnLine
from retailsync.sandbox.server import SandboxServer
from retailsync.sandbox.wms import WmsSandbox

SECRET = "wms-webhook-secret"


@pytest.fixture
def wms() -> Iterator[tuple[WmsSandbox, str]]:
    sandbox = WmsSandbox(api_key="key-1", webhook_secret=SECRET)
    with SandboxServer(sandbox.app) as server:
        yield sandbox, server.base_url


def settings_for(url: str, **overrides: object) -> WmsSettings:
    values: dict[str, object] = {
        "base_url": url,
        "api_key": SecretStr("key-1"),
        "webhook_secret": SecretStr(SECRET),
        "backoff_seconds": 0.01,
        "page_size": 2,
    }
    values.update(overrides)
    return WmsSettings.model_validate(values)


async def test_positions_are_paged(wms: tuple[WmsSandbox, str]) -> None:
    """wms.md "Paging": ``page_size`` + ``cursor``; ``next_cursor`` is null on the last page."""
    sandbox, url = wms
    for n in range(5):
        sandbox.seed_inventory(f"SKU-{n}", "WH1", on_hand=10 + n, allocated=n)
    sandbox.seed_inventory("SKU-0", "WH2", on_hand=1)
    async with WmsClient(settings_for(url)) as client:
        warehouse = WmsWarehouse(client, settings_for(url))
        positions = [p async for p in warehouse.iter_positions(location="WH1")]
        only = [p async for p in warehouse.iter_positions(sku="SKU-0")]
    assert [(p.sku, p.on_hand, p.allocated) for p in positions] == [
        (f"SKU-{n}", 10 + n, n) for n in range(5)
    ]
    assert [p.location for p in only] == ["WH1", "WH2"]
    assert len([r for r in sandbox.requests if r[1] == "/v1/inventory"]) == 3 + 1


async def test_429_is_waited_out_per_retry_after(wms: tuple[WmsSandbox, str]) -> None:
    """wms.md "Rate limits": 429 with ``Retry-After`` seconds; the client waits, then retries."""
    sandbox, url = wms
    sandbox.seed_inventory("SKU-1", "WH1", on_hand=1)
    sandbox.faults.burst, sandbox.faults.window_seconds = 1, 1.0
    async with WmsClient(settings_for(url), sleep=asyncio.sleep) as client:
        started = asyncio.get_running_loop().time()
        for _ in range(2):
            await client.request("GET", "/v1/inventory")
        elapsed = asyncio.get_running_loop().time() - started
    assert [s for _, _, s in sandbox.requests] == [200, 429, 200]
    assert client.waits == [1.0] and elapsed >= 1.0


async def test_5xx_retried_then_gives_up(wms: tuple[WmsSandbox, str]) -> None:
    """wms.md "Errors": 5xx is transient and retried; the write is safe to repeat because of
    its ``Idempotency-Key`` (same key, same answer, one expectation)."""
    sandbox, url = wms
    settings = settings_for(url, max_attempts=3)
    async with WmsClient(settings) as client:
        warehouse = WmsWarehouse(client, settings)
        sandbox.faults.fail_next = 2
        line = ExpectedReturnLine(sku="SKU-1", quantity=1)
        first = await warehouse.expect_return(
            rma_reference="RMA-1",
            order_reference="SO-1",
            location="WH1",
            lines=[line],
            idempotency_key="wf-1:expect",
        )
        again = await warehouse.expect_return(
            rma_reference="RMA-1",
            order_reference="SO-1",
            location="WH1",
            lines=[line],
            idempotency_key="wf-1:expect",
        )
        assert first == again and len(sandbox.expectations) == 1
        sandbox.faults.fail_next = 3
        with pytest.raises(WmsUnavailable):
            await client.request("GET", "/v1/inventory")
    assert [s for _, _, s in sandbox.requests][:3] == [500, 500, 201]


async def test_cancel_pick_task_and_refusals(wms: tuple[WmsSandbox, str]) -> None:
    """wms.md "Cancel a pick task": 200 when cancelled, 404 unknown, 409 already picked."""
    sandbox, url = wms
    sandbox.pick_tasks["PT-1"] = {"task_id": "PT-1", "status": "open"}
    sandbox.pick_tasks["PT-2"] = {"task_id": "PT-2", "status": "picked"}
    async with WmsClient(settings_for(url)) as client:
        warehouse = WmsWarehouse(client, settings_for(url))
        await warehouse.cancel_pick_task("PT-1", reason="order cancelled", idempotency_key="c-1")
        with pytest.raises(WmsNotFound):
            await warehouse.cancel_pick_task("PT-9", reason="x", idempotency_key="c-2")
        with pytest.raises(WmsApiError) as picked:
            await warehouse.cancel_pick_task("PT-2", reason="x", idempotency_key="c-3")
    assert sandbox.pick_tasks["PT-1"]["status"] == "cancelled"
    assert (picked.value.status, picked.value.code) == (409, "already_picked")
    async with WmsClient(settings_for(url, api_key=SecretStr("wrong"))) as client:
        with pytest.raises(WmsApiError) as denied:
            await client.request("GET", "/v1/inventory")
    assert denied.value.status == 401


async def test_signed_receipt_webhook_reaches_the_receiver(wms: tuple[WmsSandbox, str]) -> None:
    """wms.md "Webhooks" and "Webhook signature": the sandbox signs ``timestamp.body``; the
    receiver accepts it and maps the receipt to return.received + return.inspected."""
    _, url = wms
    receiver = WmsWebhookReceiver(settings_for(url))
    events: list[CloudEvent] = []
    rejected: list[str] = []
    hub = FastAPI()

    @hub.post("/v1/webhooks/wms")
    async def ingest(request: Request) -> Response:
        body = await request.body()
        try:
            receiver.verify(request.headers, body, datetime.now(UTC))
        except WebhookRejected as exc:
            rejected.append(exc.reason)
            return Response(status_code=exc.status)
        events.extend(receiver.to_events(request.headers, body))
        return Response(status_code=202)

    receipt = {
        "rma_ref": "RMA-1",
        "order_ref": "SO-1",
        "location": "WH1",
        "lines": [{"sku": "SKU-1", "quantity": 1, "inspection": "resaleable"}],
    }
    with SandboxServer(hub) as hub_server:
        async with httpx.AsyncClient(base_url=url) as control:
            target = f"{hub_server.base_url}/v1/webhooks/wms"
            await control.post("/_sandbox/webhook", json={"url": target, "secret": SECRET})
            ok = await control.post("/_sandbox/emit/return_receipt.received", json=receipt)
            await control.post("/_sandbox/webhook", json={"url": target, "secret": "forged"})
            forged = await control.post("/_sandbox/emit/return_receipt.received", json=receipt)
    assert ok.json()["status"] == 202 and forged.json()["status"] == 401
    assert [e.type for e in events] == ["retailsync.return.received", "retailsync.return.inspected"]
    assert rejected == ["bad-signature"]
