"""One order from the storefront to its refund, across a crash of the hub: one trace.

Everything is real except the SaaS vendors, which are their sandboxes: a Shopify order
arrives as a signed ``orders/create`` webhook, order-to-fulfilment books it in the live
Tryton ERP and waits for the shipment; the hub is killed (SIGKILL); the warehouse ships the
order in the ERP while the hub is down; the restarted hub's change capture sees the dispatch
and the recovered workflow tells the shop and the case. The customer asks Zendesk for a
return, an agent starts the return-to-refund through the process API, the WMS's signed
receipt webhook reports the inspection, and the workflow credits the ERP and refunds through
Stripe. Then ``GET /v1/admin/traces?order=…`` must list every hop of that journey, in order,
under one correlation id, and every API request the vendors got must carry it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from journey_support import (
    WMS_KEY,
    WMS_SECRET,
    ZENDESK_EMAIL,
    ZENDESK_SECRET,
    ZENDESK_TOKEN,
    HubProcess,
    Vendors,
)

from retailsync.api.clients import api_key_pepper, create_api_client
from retailsync.api.scopes import Scope
from retailsync.connectors.shopify.mapping import canonical_order_id
from retailsync.db import create_engine_for
from retailsync.demo.verify import SALE, ErpProbe
from retailsync.observability.traces import load_trace
from retailsync.sandbox.erp import ErpSandbox
from retailsync.sandbox.erp.seed import product_by_sku
from retailsync.sandbox.shopify import (
    SANDBOX_ACCESS_TOKEN,
    SANDBOX_SHOP_DOMAIN,
)
from retailsync.sandbox.shopify import SANDBOX_WEBHOOK_SECRET as SHOPIFY_SECRET
from retailsync.sandbox.stripe import SANDBOX_API_KEY
from retailsync.sandbox.stripe import SANDBOX_WEBHOOK_SECRET as STRIPE_SECRET
from retailsync.workflows.fulfillment import fulfillment_workflow_id
from retailsync.workflows.steps import derived_return_id

pytestmark = [pytest.mark.erp, pytest.mark.slow, pytest.mark.timeout(600)]

SECRET_KEY = "trace-journey-secret-key"
SKU = "RS-CAP"
WAIT_SECONDS = 120.0


def hub_config(erp: ErpSandbox, vendors: Vendors) -> str:
    urls = vendors.urls
    return f"""
secret_key = "{SECRET_KEY}"
worker_id = "trace-hub"

[log]
level = "WARNING"

[connectors.erp]
base_url = "{erp.base_url}"
database = "{erp.database}"
login = "{erp.login}"
password = "{erp.password}"
timeout_seconds = 20
poll_interval_seconds = 1

[connectors.shopify]
shop_domain = "{SANDBOX_SHOP_DOMAIN}"
access_token = "{SANDBOX_ACCESS_TOKEN}"
webhook_secret = "{SHOPIFY_SECRET}"
base_url = "{urls["shopify"]}"
backoff_seconds = 0.05

[connectors.stripe]
api_key = "{SANDBOX_API_KEY}"
webhook_secret = "{STRIPE_SECRET}"
base_url = "{urls["stripe"]}"
backoff_seconds = 0.05
timeout_seconds = 10

[connectors.zendesk]
base_url = "{urls["zendesk"]}"
email = "{ZENDESK_EMAIL}"
api_token = "{ZENDESK_TOKEN}"
webhook_secret = "{ZENDESK_SECRET}"
order_reference_system = "shopify"
backoff_seconds = 0.05

[connectors.wms]
base_url = "{urls["wms"]}"
api_key = "{WMS_KEY}"
webhook_secret = "{WMS_SECRET}"
backoff_seconds = 0.05
"""


def issue_api_key(hub: HubProcess) -> str:
    engine = create_engine_for(f"sqlite:///{hub.workdir / 'var' / 'retailsync.sqlite'}")
    try:
        with engine.begin() as connection:
            issued = create_api_client(
                connection,
                name="trace journey agent",
                scopes=[Scope.PROCESS_WRITE, Scope.ADMIN],
                pepper=api_key_pepper(SECRET_KEY),
                actor="test",
                correlation_id=None,
            )
    finally:
        engine.dispose()
    return issued.key


async def eventually(
    probe: Callable[[], Awaitable[Any]], what: str, within: float = WAIT_SECONDS
) -> Any:
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await probe()
        except httpx.TransportError as exc:
            last = exc
        else:
            if last:
                return last
        await asyncio.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {within:.0f} s; last: {last!r}")


async def ship_in_erp(erp: ErpProbe, order_id: str) -> None:
    """What warehouse staff do in Tryton: assign, pick, pack and send the sale's shipment."""
    (sale,) = await erp.sales(order_id)
    (record,) = await erp.call(SALE, "read", [sale["id"]], ["shipments"])
    shipments = list(record["shipments"])
    assert shipments, "the ERP planned no shipment for the order"
    for button in ("assign_try", "pick", "pack", "do"):
        await erp.call("stock.shipment.out", button, shipments)


SHOPIFY = "retailsync/connectors/shopify"
ZENDESK = "retailsync/connectors/zendesk"
WMS = "retailsync/connectors/wms"
ERP = "urn:retailsync:erp:tryton"
WORKFLOWS = "/retailsync/workflows"

JOURNEY = (
    # the storefront order arrives and is booked in the ERP
    ("inbound", "shopify", "orders/create", "accepted"),
    ("event", SHOPIFY, "retailsync.order.created", "stored"),
    ("workflow_step", "commerce", "fulfillments.read_storefront_order", "ok"),
    ("outbound_call", "commerce", "read order", "ok"),
    ("workflow_step", "erp", "fulfillments.read_erp_stock:RS-CAP", "ok"),
    ("workflow_step", "erp", "fulfillments.submit_erp_order", "ok"),
    ("outbound_call", "erp", "model.sale.sale.create", "ok"),
    ("outbound_call", "erp", "model.sale.sale.confirm", "ok"),
    ("workflow_step", "erp", "fulfillments.read_erp_order", "ok"),
    ("workflow_step", "commerce", "fulfillments.update_storefront_status:confirmed", "ok"),
    ("outbound_call", "commerce", "update order", "ok"),
    # --- the hub is killed here; the warehouse ships in the ERP; the hub starts again ---
    ("event", ERP, "retailsync.shipment.dispatched", "stored"),
    ("workflow_step", "commerce", "fulfillments.update_storefront_status:shipped", "ok"),
    ("outbound_call", "commerce", "create fulfillment", "ok"),
    ("inbound", "shopify", "orders/updated", "accepted"),
    ("workflow_step", "hub", "fulfillments.emit_order_shipped", "ok"),
    ("event", WORKFLOWS, "retailsync.order.status_changed", "stored"),
    # the customer asks for a return; an agent starts it
    ("inbound", "zendesk", "zen:event-type:ticket.created", "accepted"),
    ("event", ZENDESK, "retailsync.case.opened", "stored"),
    ("inbound", "process-api", "start returns", "accepted"),
    ("workflow_step", "erp", "returns.read_erp_order", "ok"),
    ("workflow_step", "payments", "returns.read_payment", "ok"),
    ("outbound_call", "payments", "retrieve payment intent", "ok"),
    ("workflow_step", "erp", "returns.authorize_return_in_erp", "ok"),
    ("outbound_call", "erp", "model.sale.sale.create", "ok"),
    ("workflow_step", "warehouse", "returns.expect_return_at_warehouse", "ok"),
    ("outbound_call", "wms", "expect return", "ok"),
    ("event", WORKFLOWS, "retailsync.return.authorized", "stored"),
    ("workflow_step", "service_desk", "returns.note_case_return_authorized", "ok"),
    ("outbound_call", "service_desk", "update ticket", "ok"),
    # the warehouse receives and inspects the parcel; the money goes back
    ("inbound", "wms", "return_receipt.received", "accepted"),
    ("event", WMS, "retailsync.return.received", "stored"),
    ("event", WMS, "retailsync.return.inspected", "stored"),
    ("workflow_step", "erp", "returns.receive_return_in_erp", "ok"),
    ("workflow_step", "erp", "returns.post_credit_note", "ok"),
    ("outbound_call", "erp", "model.account.invoice.post", "ok"),
    ("event", WORKFLOWS, "retailsync.credit_note.posted", "stored"),
    ("workflow_step", "payments", "returns.issue_refund", "ok"),
    ("outbound_call", "payments", "create refund", "ok"),
    ("workflow_step", "service_desk", "returns.note_case_refunded", "ok"),
    ("outbound_call", "service_desk", "update ticket", "ok"),
    ("event", WORKFLOWS, "retailsync.refund.completed", "stored"),
)
"""The hops that must appear, in this order (others, e.g. every ERP call and the case's
webhooks, come in between)."""
DOWNSTREAM_OF_STEP = {
    "erp": "erp",
    "commerce": "commerce",
    "payments": "payments",
    "warehouse": "wms",
    "service_desk": "service_desk",
}
DOWNSTREAM_OF_VENDOR = {
    "shopify": "commerce",
    "stripe": "payments",
    "zendesk": "service_desk",
    "wms": "wms",
}


def in_order(expected: Sequence[tuple[str, str, str, str]], hops: Sequence[tuple[Any, ...]]) -> int:
    """How many of ``expected`` appear in ``hops`` in that order (all of them: a match)."""
    found = 0
    for hop in hops:
        if found < len(expected) and hop == expected[found]:
            found += 1
    return found


async def test_one_order_one_trace_from_the_storefront_to_the_refund_across_a_crash(
    tmp_path: Path, erp_sandbox: ErpSandbox, vendors: Vendors
) -> None:
    hub = HubProcess(tmp_path, hub_config(erp_sandbox, vendors))
    vendors.aim_webhooks_at(hub.url)
    erp = ErpProbe(
        erp_sandbox.base_url, erp_sandbox.database, erp_sandbox.login, erp_sandbox.password
    )
    try:
        hub.start()
        key = issue_api_key(hub)
        async with httpx.AsyncClient(
            base_url=hub.url, headers={"X-API-Key": key}, timeout=30
        ) as api:
            order_id = await play_the_journey(hub, api, erp, vendors)
            answer = await api.get("/v1/admin/traces", params={"order": order_id})
            metrics = (await api.get("/metrics")).text
        assert hub.starts == 2
        assert len(await erp.sales(order_id)) == 1  # booked once, across the crash
    except BaseException:
        print(hub.log_tail())
        raise
    finally:
        hub.stop()
        await erp.aclose()

    assert answer.status_code == 200, answer.text
    trace = answer.json()
    entries = trace["entries"]
    hops = [(e["kind"], e["system"], e["operation"], e["status"]) for e in entries]
    timeline = "\n".join(
        f"{e['at'][11:23]} {e['kind']:13} {e['system']:30} {e['operation']} {e['status']} "
        f"{e['correlation_id']}"
        for e in entries
    )

    # One correlation id, the one the storefront's webhook started, on every hop.
    (correlation,) = {e["correlation_id"] for e in entries if e["operation"] == "orders/create"}
    assert trace["correlation_ids"] == [correlation], timeline
    assert {e["correlation_id"] for e in entries} == {correlation}, timeline
    # Every hop of the journey, in order.
    matched = in_order(JOURNEY, hops)
    assert matched == len(JOURNEY), f"missing from here on: {JOURNEY[matched]}\n{timeline}"

    # Each outbound call sits under the workflow step that made it (and nothing else calls
    # out in this journey); each step that talks to a system made at least one call.
    step: dict[str, Any] | None = None
    calls_of_step: dict[int, list[str]] = {}
    for index, entry in enumerate(entries):
        if entry["kind"] == "workflow_step":
            step = entry
            calls_of_step[index] = []
        elif entry["kind"] == "outbound_call":
            assert step is not None, timeline
            assert entry["system"] == DOWNSTREAM_OF_STEP[step["system"]], (entry, step)
            assert entry["latency_ms"] is not None and entry["attempt"] >= 1, entry
            calls_of_step[entries.index(step)].append(entry["operation"])
    for index, calls in calls_of_step.items():
        if entries[index]["system"] in DOWNSTREAM_OF_STEP:
            assert calls, f"{entries[index]['operation']} made no recorded call\n{timeline}"
    # Steps the first process finished are recorded once, not again by the recovery.
    assert hops.count(("workflow_step", "erp", "fulfillments.submit_erp_order", "ok")) == 1

    # Every API request the vendors got carried the order's trace, and is one hop.
    assert vendors.calls, "the vendors got no API request"
    assert {call.trace_id for call in vendors.calls} == {correlation}, vendors.calls
    for vendor, system in DOWNSTREAM_OF_VENDOR.items():
        got = sum(1 for call in vendors.calls if call.vendor == vendor)
        recorded_calls = sum(
            1 for e in entries if e["kind"] == "outbound_call" and e["system"] == system
        )
        assert got == recorded_calls >= 1, (vendor, got, recorded_calls)
    # The Zendesk and WMS calls went through their resilience guards (metrics of this run).
    for system in ("service_desk", "wms", "payments", "commerce", "erp"):
        assert f'retailsync_outbound_call_duration_seconds_count{{system="{system}"}}' in metrics

    # The same timeline from the database, read by another process than the one that wrote
    # most of it.
    engine = create_engine_for(f"sqlite:///{hub.workdir / 'var' / 'retailsync.sqlite'}")
    try:
        stored = load_trace(engine, order_id=order_id)
    finally:
        engine.dispose()
    # The hub keeps running: the ERP's change capture may have reported one more change of the
    # order (its credit note, say) since the API answered. Every hop the API listed is there,
    # in the same order; what came since can only be such events.
    stored_hops = [(e.kind.value, e.system, e.operation, e.status) for e in stored.entries]
    remaining = iter(stored_hops)
    assert all(hop in remaining for hop in hops), stored_hops  # an ordered subsequence
    extra = list(stored_hops)
    for hop in hops:
        extra.remove(hop)
    assert all(kind == "event" for kind, *_ in extra), extra
    assert stored.correlation_ids == (correlation,)


async def process(api: httpx.AsyncClient, kind: str, workflow_id: str) -> dict[str, Any]:
    answer = await api.get(f"/v1/process/{kind}/{workflow_id}")
    if answer.status_code == 404:
        return {}
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    return body


async def play_the_journey(
    hub: HubProcess, api: httpx.AsyncClient, erp: ErpProbe, vendors: Vendors
) -> str:
    """Drive the order through every system; its canonical id."""
    price = product_by_sku(SKU).list_price
    # 1. A customer orders in the shop; Shopify's signed webhook reaches the hub.
    order = vendors.shopify.create_order(
        lines=[{"sku": SKU, "quantity": 1, "price": str(price)}], email="ada@example.com"
    )
    delivered = await vendors.shopify.emit("orders/create", order)
    assert delivered["status"] == 200, delivered
    order_id = canonical_order_id(order["id"])
    fulfillment = fulfillment_workflow_id(order_id)

    async def awaiting_shipment() -> bool:
        state = await process(api, "fulfillments", fulfillment)
        assert state.get("status") not in {"SUCCESS", "ERROR"}, state
        return state.get("state") == "awaiting_shipment"

    await eventually(awaiting_shipment, "the order booked in the ERP, waiting for shipment")

    # 2. The hub dies; meanwhile the warehouse ships the order in the ERP.
    hub.kill()
    await ship_in_erp(erp, order_id)

    # 3. The hub comes back: change capture sees the dispatch, the recovered fulfilment ends.
    hub.start()

    async def shipped() -> dict[str, Any]:
        state = await process(api, "fulfillments", fulfillment)
        return state if state.get("status") == "SUCCESS" else {}

    done = await eventually(shipped, "the fulfilment finishing after the restart")
    assert done["state"] == "shipped", done

    # 4. The customer asks Zendesk for a return; an agent starts it for the case.
    ticket = vendors.zendesk.seed_ticket(
        {"subject": "I want to send my cap back", "tags": [f"order_{order['id']}"]}
    )
    (opened,) = await vendors.zendesk.emit(ticket["id"], ["ticket_created"], None)
    assert opened.status == 200, opened
    intent = vendors.stripe.seed_payment_intent(amount=int(price * 100), currency="eur")
    started = await api.post(
        "/v1/process/returns",
        json={
            "order_id": order_id,
            "payment_ref": intent["id"],
            "lines": [{"sku": SKU, "quantity": 1, "reason": "changed_mind"}],
            "case_ref": str(ticket["id"]),
        },
        headers={"Idempotency-Key": f"return-{order['id']}"},
    )
    assert started.status_code == 202, started.text
    return_id = started.json()["workflow_id"]
    rma_id = derived_return_id(return_id)

    async def awaiting_receipt() -> bool:
        state = await process(api, "returns", return_id)
        assert state.get("status") not in {"SUCCESS", "ERROR"}, state
        return state.get("state") == "awaiting_receipt"

    await eventually(awaiting_receipt, "the return authorized, waiting for the warehouse")

    # 5. The parcel arrives; the WMS's signed receipt (with inspection) reaches the hub.
    receipt = await vendors.wms.emit(
        "return_receipt.received",
        {
            "receipt_id": f"rcpt-{order['id']}",
            "rma_ref": rma_id,
            "order_ref": order_id,
            "location": "WH1",
            "received_at": datetime.now(UTC).isoformat(),
            "lines": [{"sku": SKU, "quantity": 1, "inspection": "resaleable"}],
        },
    )
    assert receipt["status"] == 200, receipt

    async def refunded() -> dict[str, Any]:
        state = await process(api, "returns", return_id)
        return state if state.get("status") == "SUCCESS" else {}

    finished = await eventually(refunded, "the return refunded")
    assert finished["state"] == "completed", finished
    refunds = [r for r in vendors.stripe.refunds.values() if r["payment_intent"] == intent["id"]]
    assert [(r["amount"], r["status"]) for r in refunds] == [(int(price * 100), "succeeded")]
    return order_id
