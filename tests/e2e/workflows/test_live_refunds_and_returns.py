"""Service refund and return-to-refund against the live ERP and the SaaS sandboxes.

Each test places and ships a real order in Tryton, seeds the payment in the Stripe sandbox and
the case in the Zendesk sandbox, runs the workflow through the process service, and then looks
at every system: the credit note in the ERP (and the stock for a return), the refund at the
payment service, the notes and status of the case, the expectation at the warehouse.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from erp_e2e_support import ADA, make_order

from retailsync.connectors.erp.adapter import TrytonErpAdapter
from retailsync.domain.finance import PostingStatus
from retailsync.domain.orders import Order
from retailsync.workflows import steps
from retailsync.workflows.returns import deliver_warehouse_receipt
from retailsync.workflows.runtime import WorkflowRuntime
from retailsync.workflows.service import process_result, process_status, start_process

pytestmark = [pytest.mark.erp, pytest.mark.slow]


async def shipped_order(erp: TrytonErpAdapter, *items: tuple[str, int]) -> Order:
    order = make_order(*items)
    await erp.submit_order(order, ADA)
    await erp.record_dispatch(order.id)
    await erp.post_invoices(order.id)
    return order


def comments(sandboxes: Any, ticket_id: int) -> list[dict[str, Any]]:
    return [c for c in sandboxes.zendesk.comments[ticket_id] if not c["public"]]


def refunds_of(sandboxes: Any, intent_id: str) -> list[dict[str, Any]]:
    return [r for r in sandboxes.stripe.refunds.values() if r.get("payment_intent") == intent_id]


async def test_service_refund_posts_the_credit_note_refunds_and_solves_the_case(
    live: tuple[WorkflowRuntime, Any], erp_adapter: TrytonErpAdapter
) -> None:
    _runtime, sandboxes = live
    order = await shipped_order(erp_adapter, ("RS-CAP", 2))
    intent = sandboxes.stripe.seed_payment_intent(amount=3000, currency="eur")
    ticket = sandboxes.zendesk.seed_ticket({"subject": "Cap arrived torn"})
    workflow_id = f"refund-e2e-{order.id}"

    await start_process(
        "refunds",
        workflow_id,
        {
            "order_id": order.id,
            "payment_ref": intent["id"],
            "amount": {"amount": "15.00", "currency": "EUR"},
            "lines": [{"sku": "RS-CAP", "quantity": 1}],
            "reason": "damaged",
            "case_ref": str(ticket["id"]),
            "requested_by": "agent-bob",
            "requested_at": dt.datetime.now(dt.UTC).isoformat(),
        },
    )
    result = await asyncio.wait_for(process_result(workflow_id), timeout=120)
    assert result["state"] == "completed", result["details"]

    # ERP: one posted credit note of 15.00 for the derived RMA.
    erp_return = await erp_adapter.get_return(steps.derived_return_id(workflow_id))
    assert erp_return.order_id == order.id
    assert [(n.status, n.amount.amount) for n in erp_return.credit_notes] == [
        (PostingStatus.POSTED, 15)
    ]
    # Payment service: one refund of 15.00 on the payment, carrying the workflow's key.
    (refund,) = refunds_of(sandboxes, intent["id"])
    assert (refund["amount"], refund["status"]) == (1500, "succeeded")
    assert refund["id"] == result["details"]["refund_ref"]
    # Case: an agent-only note about the refund, and the case solved.
    assert any("Refund of 15.00 EUR issued" in c["body"] for c in comments(sandboxes, ticket["id"]))
    assert sandboxes.zendesk.tickets[ticket["id"]]["status"] == "solved"


async def test_return_to_refund_with_per_line_inspection_against_every_system(
    live: tuple[WorkflowRuntime, Any], erp_adapter: TrytonErpAdapter
) -> None:
    _runtime, sandboxes = live
    order = await shipped_order(erp_adapter, ("RS-HOODIE-M", 2), ("RS-CAP", 1))
    hoodies_before = (await erp_adapter.get_stock("RS-HOODIE-M", "STO")).on_hand
    caps_before = (await erp_adapter.get_stock("RS-CAP", "STO")).on_hand
    intent = sandboxes.stripe.seed_payment_intent(amount=11300, currency="eur")
    ticket = sandboxes.zendesk.seed_ticket({"subject": "I want to send things back"})
    workflow_id = f"return-e2e-{order.id}"
    rma_id = steps.derived_return_id(workflow_id)

    await start_process(
        "returns",
        workflow_id,
        {
            "order_id": order.id,
            "payment_ref": intent["id"],
            "lines": [
                {"sku": "RS-HOODIE-M", "quantity": 2, "reason": "changed_mind"},
                {"sku": "RS-CAP", "quantity": 1, "reason": "damaged"},
            ],
            "case_ref": str(ticket["id"]),
            "customer_id": ADA.id,
            "requested_by": "agent-bob",
            "requested_at": dt.datetime.now(dt.UTC).isoformat(),
        },
    )
    for _ in range(400):
        status = await process_status(workflow_id, with_steps=False)
        if status["state"] == "awaiting_receipt":
            break
        assert status["status"] in {"PENDING", "ENQUEUED"}, status
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the return never waited for the warehouse")

    # Warehouse: it expects exactly these units for this RMA; the case says the return is on.
    (expectation,) = [e for e in sandboxes.wms.expectations.values() if e["rma_ref"] == rma_id]
    assert sorted((x["sku"], x["quantity"]) for x in expectation["lines"]) == [
        ("RS-CAP", 1),
        ("RS-HOODIE-M", 2),
    ]
    assert any(
        f"Return {rma_id} authorized" in c["body"] for c in comments(sandboxes, ticket["id"])
    )

    now = dt.datetime.now(dt.UTC).isoformat()
    assert await deliver_warehouse_receipt(
        rma_id,
        {
            "type": "retailsync.return.received",
            "data": {
                "order_id": order.id,
                "version": 1,
                "location": "WH1",
                "lines": [{"sku": "RS-HOODIE-M", "quantity": 2}, {"sku": "RS-CAP", "quantity": 1}],
                "received_at": now,
            },
        },
    )
    assert await deliver_warehouse_receipt(
        rma_id,
        {
            "type": "retailsync.return.inspected",
            "data": {
                "version": 2,
                "lines": [
                    {
                        "sku": "RS-HOODIE-M",
                        "result": {
                            "outcome": "restock",
                            "accepted_quantity": 2,
                            "inspected_at": now,
                        },
                    },
                    {
                        "sku": "RS-CAP",
                        "result": {"outcome": "scrap", "accepted_quantity": 0, "inspected_at": now},
                    },
                ],
                "inspected_at": now,
            },
        },
    )
    result = await asyncio.wait_for(process_result(workflow_id), timeout=180)
    assert result["state"] == "completed", result["details"]

    # ERP: goods received, the hoodies back in stock, the scrapped cap written off again,
    # one posted credit note of 2 x 49.00 + 15.00.
    erp_return = await erp_adapter.get_return(rma_id)
    assert erp_return.received
    assert [(n.status, n.amount.amount) for n in erp_return.credit_notes] == [
        (PostingStatus.POSTED, 113)
    ]
    assert (await erp_adapter.get_stock("RS-HOODIE-M", "STO")).on_hand == hoodies_before + 2
    assert (await erp_adapter.get_stock("RS-CAP", "STO")).on_hand == caps_before
    # Payment service: the credited total went back, once.
    (refund,) = refunds_of(sandboxes, intent["id"])
    assert (refund["amount"], refund["status"]) == (11300, "succeeded")
    # Case: the inspection per line and the refund in a note; the case solved.
    notes = "\n".join(c["body"] for c in comments(sandboxes, ticket["id"]))
    assert "RS-CAP: scrap, 1 written off, 1 of 1 credited" in notes
    assert "Refund of 113.00 EUR issued" in notes
    assert sandboxes.zendesk.tickets[ticket["id"]]["status"] == "solved"
