"""One order from Shopify's webhook to Stripe's refund, across a crash of the hub: one trace.

The hub runs as two processes on one SQLite database (``hub_journey.py``): the first takes
the signed webhook and dies while delivering the refund request, the second delivers it
again. The Shopify and Stripe sandboxes run here and record the ``traceparent`` of every API
request they get.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from retailsync.db import create_engine_for
from retailsync.domain.identifiers import EntityKind, new_id
from retailsync.observability.traces import load_trace
from retailsync.sandbox import shopify as shopify_sandbox
from retailsync.sandbox import stripe as stripe_sandbox
from retailsync.sandbox.server import SandboxServer

JOURNEY = Path(__file__).with_name("hub_journey.py")
PAYMENTS_DIED = 3


@dataclass
class Vendors:
    shopify: shopify_sandbox.ShopifySandbox
    shopify_url: str
    stripe: stripe_sandbox.StripeSandbox
    stripe_url: str
    calls: list[tuple[str, str, str | None]] = field(default_factory=list)


def _recording(app: Any, vendor: str, calls: list[tuple[str, str, str | None]]) -> Any:
    """``app`` that notes the vendor, path and ``traceparent`` of each API request."""

    async def recorded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/_sandbox"):
            headers = dict(scope["headers"])
            traceparent = headers.get(b"traceparent")
            calls.append((vendor, scope["path"], traceparent.decode() if traceparent else None))
        await app(scope, receive, send)

    return recorded


@pytest.fixture
def vendors() -> Iterator[Vendors]:
    calls: list[tuple[str, str, str | None]] = []
    shop = shopify_sandbox.ShopifySandbox()
    payments = stripe_sandbox.StripeSandbox()
    shop_app = _recording(shopify_sandbox.create_shopify_sandbox(shop), "shopify", calls)
    pay_app = _recording(stripe_sandbox.create_stripe_sandbox(payments), "stripe", calls)
    with SandboxServer(shop_app) as shop_server, SandboxServer(pay_app) as pay_server:
        yield Vendors(shop, shop_server.base_url, payments, pay_server.base_url, calls)


def _run_hub(phase: str, database_url: str, state: dict[str, Any], expect: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(JOURNEY), phase, database_url, json.dumps(state)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == expect, done.stderr[-4000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, done.stdout[-2000:] + done.stderr[-2000:]
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def test_an_order_trace_follows_the_real_hub_across_a_crash(
    sqlite_url: str, vendors: Vendors
) -> None:
    order = vendors.shopify.create_order(lines=[{"sku": "SKU-1", "price": "48.00"}])
    delivery = vendors.shopify.new_delivery("orders/create", order)
    intent = vendors.stripe.seed_payment_intent(amount=4800, currency="eur")
    state = {
        "shop_domain": vendors.shopify.shop_domain,
        "shopify_token": vendors.shopify.access_token,
        "shopify_secret": vendors.shopify.webhook_secret,
        "shopify_url": vendors.shopify_url,
        "shopify_order_id": str(order["id"]),
        "webhook_body": delivery.body.decode(),
        "webhook_headers": vendors.shopify.headers_for(delivery),
        "stripe_key": stripe_sandbox.SANDBOX_API_KEY,
        "stripe_secret": stripe_sandbox.SANDBOX_WEBHOOK_SECRET,
        "stripe_url": vendors.stripe_url,
        "payment_intent": intent["id"],
        "refund_id": new_id(EntityKind.REFUND),
    }

    received = _run_hub("receive", sqlite_url, state, expect=PAYMENTS_DIED)
    correlation = received["correlation_id"]
    assert (
        'retailsync_events_ingested_total{type="retailsync.order.created"} 1.0'
        in (received["metrics"])
    )
    resumed = _run_hub("resume", sqlite_url, state, expect=0)  # a new process, same database
    assert any(
        line.startswith('retailsync_outbound_call_duration_seconds_count{system="payments"}')
        for line in resumed["metrics"]
    ), resumed["metrics"]

    engine = create_engine_for(sqlite_url)
    try:
        created = load_trace(engine, correlation_id=correlation)
        order_id = next(e.order_id for e in created.entries if e.kind.value == "inbound")
        assert order_id is not None and order_id.startswith("ord_")
        trace = load_trace(engine, order_id=order_id)
    finally:
        engine.dispose()

    hops = [(e.kind.value, e.system, e.operation, e.status) for e in trace.entries]
    shop = "retailsync/connectors/shopify"
    hub = "/retailsync/workflows"
    assert hops == [
        ("inbound", "shopify", "orders/create", "accepted"),
        ("event", shop, "retailsync.order.created", "stored"),
        ("outbound_call", "commerce", "read order", "ok"),
        ("event", hub, "retailsync.refund.requested", "stored"),
        # --- the first hub process died here, delivering the refund request ---
        ("workflow_step", "payments", "refund.issue_refund", "ok"),
        ("outbound_call", "payments", "create refund", "ok"),
        ("event", hub, "retailsync.refund.completed", "stored"),
    ]
    assert {e.correlation_id for e in trace.entries} == {correlation}
    assert trace.correlation_ids == (correlation,)
    calls = {(e.kind.value, e.system): e for e in trace.entries}
    assert calls[("outbound_call", "payments")].order_id == order_id  # from the step
    assert calls[("outbound_call", "payments")].attempt == 1

    # Causation: each event the hub emitted names the event whose handling caused it.
    events = {e.operation: e for e in trace.entries if e.kind.value == "event"}
    assert (
        events["retailsync.refund.requested"].causation_id
        == events["retailsync.order.created"].event_id
    )
    assert (
        events["retailsync.refund.completed"].causation_id
        == events["retailsync.refund.requested"].event_id
    )

    # Every API request the vendors got carried a traceparent of the order's trace.
    assert [(vendor, path.rsplit("/", 2)[-2:]) for vendor, path, _ in vendors.calls] == [
        ("shopify", ["orders", f"{order['id']}.json"]),
        ("stripe", ["v1", "refunds"]),
    ]
    assert all(header for _, _, header in vendors.calls)
    assert {header.split("-")[1] for _, _, header in vendors.calls if header} == {correlation}
