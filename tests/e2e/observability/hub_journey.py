"""One phase of an order's journey through a real hub process, run as its own process.

``python hub_journey.py PHASE DATABASE_URL STATE_JSON``

The hub is built by ``bootstrap`` from settings that point its Shopify and Stripe connectors
at the sandboxes the test runs; requests go through the real application (``create_app``):
trace middleware, webhook ingress, event bus, subscriptions wrapped in ``traced_handler`` and
outbound calls through the resilience guard. Nothing here records a hop itself.

- ``receive``: Shopify's signed ``orders/create`` delivery arrives at
  ``POST /v1/webhooks/shopify``; the storefront subscriber reads the order back from Shopify
  and asks for a refund (``refund.requested``). The process dies (``os._exit``) as the
  payments subscriber starts on that request: nothing of it commits.
- ``resume``: a new process on the same database delivers the request again; the refund step
  (a scripted stand-in for the refund workflow's ``issue_refund``) pays it out through Stripe
  and announces ``refund.completed``.

Prints one JSON line: the correlation id the ingress answered with (``receive``) and the
metrics this process exposed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any

import httpx

from retailsync.api.app import create_app
from retailsync.bootstrap import bootstrap
from retailsync.bus.backend import EventFilter, Subscription
from retailsync.config import Settings
from retailsync.domain.events import CloudEvent
from retailsync.domain.money import Money
from retailsync.observability.instrument import observe_workflow_step, traced_handler
from retailsync.observability.metrics import installed_metrics
from retailsync.observability.testkit import RetailJourney
from retailsync.observability.tracecontext import lineage

PAYMENTS_DIED = 3


def _settings(database_url: str, state: dict[str, Any]) -> Settings:
    return Settings(
        database_url=database_url,
        connectors={
            "shopify": {
                "shop_domain": state["shop_domain"],
                "access_token": state["shopify_token"],
                "webhook_secret": state["shopify_secret"],
                "base_url": state["shopify_url"],
                "backoff_seconds": 0.01,
                "timeout_seconds": 5,
            },
            "stripe": {
                "api_key": state["stripe_key"],
                "webhook_secret": state["stripe_secret"],
                "base_url": state["stripe_url"],
                "backoff_seconds": 0.01,
                "timeout_seconds": 5,
            },
        },
    )


def _metric_lines(prefixes: tuple[str, ...]) -> list[str]:
    metrics = installed_metrics()
    if metrics is None:
        return []
    return [
        line
        for line in metrics.render().decode().splitlines()
        if line.startswith(prefixes) and not line.endswith(" 0.0")
    ]


async def run(phase: str, database_url: str, state: dict[str, Any]) -> dict[str, Any]:
    hub = bootstrap(_settings(database_url, state), configure_logs=False)
    commerce = hub.adapters["commerce"]
    payments = hub.adapters["payments"]

    async def confirm_order(event: CloudEvent, ctx: Any) -> None:
        """The storefront subscriber: check the order with Shopify, then request a refund."""
        await commerce.get_order(state["shopify_order_id"])
        journey = RetailJourney(order_id=event.data["order"]["id"], refund_id=state["refund_id"])
        requested = journey.refund_requested(datetime.now(UTC), for_return=False)
        await hub.bus.publish([requested.model_copy(update=lineage())])

    async def pay_refund(event: CloudEvent, ctx: Any) -> None:
        """The payments subscriber: the refund step, through the guard to Stripe."""
        if phase == "receive":
            sys.stdout.flush()
            os._exit(PAYMENTS_DIED)  # the hub dies mid-delivery: nothing of it commits
        refund = event.data["refund"]
        workflow_id = f"refund-{refund['id']}"
        async with observe_workflow_step(
            "refund",
            "issue_refund",
            workflow_id=workflow_id,
            correlation_id=event.correlationid,
            order_id=refund["order_id"],
            system="payments",
        ) as step:
            await payments.issue_refund(
                payment_ref=state["payment_intent"],
                idempotency_key=f"{workflow_id}:issue_refund",
                amount=Money.of(refund["amount"]["amount"], refund["amount"]["currency"]),
                order_ref=refund["order_id"],
                refund_id=refund["id"],
            )
            step.outcome({"ok": True, "value": None})
        journey = RetailJourney(order_id=refund["order_id"], refund_id=refund["id"])
        completed = journey.refund_completed(datetime.now(UTC))
        await hub.bus.publish([completed.model_copy(update=lineage())])

    for name, handler, event_type in (
        ("journey.storefront-orders", confirm_order, "retailsync.order.created"),
        ("journey.payments-refunds", pay_refund, "retailsync.refund.requested"),
    ):
        hub.bus.subscribe(
            Subscription(
                name=name,
                handler=traced_handler(name, handler),
                filter=EventFilter(types=(event_type,)),
            )
        )
    app = create_app(hub)
    await hub.bus.start()
    report: dict[str, Any] = {"phase": phase}
    try:
        if phase == "receive":
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
                answer = await client.post(
                    "/v1/webhooks/shopify",
                    content=state["webhook_body"].encode(),
                    headers=state["webhook_headers"],
                )
            assert answer.status_code == 200, answer.text
            report["correlation_id"] = answer.headers["x-correlation-id"]
            report["metrics"] = _metric_lines(("retailsync_events_ingested_total",))
            print(json.dumps(report), flush=True)
        await hub.bus.deliver_until_idle(timeout=60)
        report["metrics"] = _metric_lines(
            ("retailsync_events_delivered_total", "retailsync_outbound_call_duration_seconds_count")
        )
    finally:
        await hub.bus.close()
        await hub.aclose()
    return report


if __name__ == "__main__":
    result = asyncio.run(run(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))
    print(json.dumps(result), flush=True)
