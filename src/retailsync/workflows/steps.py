"""Every outside effect of a workflow, one named durable step each.

A step calls one port with an idempotency key the workflow derives from its id and the step
name (``f"{workflow_id}:{step_name}"``): the key goes to the payment service, the warehouse and
the service desk as is, and the ERP gets canonical ids derived from it (the ERP port is
idempotent on those), so a step that is re-run after a crash never doubles money or stock.

Steps take and return plain JSON (DBOS stores them with its portable JSON serializer, readable
by an operator). A step never raises for a failure of the outside system: transient failures
are retried here on the runtime's schedule, and what is left (a refusal, or retries exhausted)
comes back as ``{"ok": false, "failure": {...}}`` so the workflow can compensate or raise a
classified exception, the same way when it runs first and when it is replayed.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import httpx
from dbos import DBOS
from sqlalchemy.engine import Engine

from retailsync.domain.cases import CaseStatus
from retailsync.domain.catalogue import EventPayload, build_event
from retailsync.domain.identifiers import EntityKind, derive_id
from retailsync.domain.inventory import AdjustmentReason, InventoryAdjustment
from retailsync.domain.money import Money
from retailsync.domain.returns import ReturnAuthorization
from retailsync.ports.commerce import CommercePort
from retailsync.ports.erp import ErpOrderState, ErpPort, ErpReturnState
from retailsync.ports.payments import PaymentsPort, PaymentStatus
from retailsync.ports.publisher import EventPublisher
from retailsync.ports.service_desk import ServiceDeskPort
from retailsync.ports.warehouse import ExpectedReturnLine, WarehousePort
from retailsync.resilience.errors import BusinessError, TransientError
from retailsync.workflows.errors import PortsNotConfigured, WorkflowError
from retailsync.workflows.runtime import current_runtime

T = TypeVar("T")
Json = dict[str, Any]

CRASH_AFTER_STEPS_ENV = "RETAILSYNC_WORKFLOW_CRASH_AFTER_STEPS"
"""Fault testing only: kill this process with SIGKILL once this many steps have been
checkpointed in it (at the next step boundary)."""


@dataclass
class WorkflowPorts:
    """The adapters the steps talk to; ``bootstrap`` picks them, tests hand in sandboxes."""

    erp: ErpPort | None = None
    payments: PaymentsPort | None = None
    service_desk: ServiceDeskPort | None = None
    warehouse: WarehousePort | None = None
    commerce: CommercePort | None = None
    publisher: EventPublisher | None = None
    audit_engine: Engine | None = None


def _ports() -> WorkflowPorts:
    return current_runtime().ports


def _erp() -> ErpPort:
    erp = _ports().erp
    if erp is None:
        raise PortsNotConfigured("erp")
    return erp


def _payments() -> PaymentsPort:
    payments = _ports().payments
    if payments is None:
        raise PortsNotConfigured("payments")
    return payments


def _service_desk() -> ServiceDeskPort:
    desk = _ports().service_desk
    if desk is None:
        raise PortsNotConfigured("service_desk")
    return desk


def _warehouse() -> WarehousePort:
    warehouse = _ports().warehouse
    if warehouse is None:
        raise PortsNotConfigured("warehouse")
    return warehouse


# --- keys, outcomes, classification ---------------------------------------------------------


def step_key(step_name: str) -> str:
    """The idempotency key of ``step_name`` in the running workflow."""
    workflow_id = DBOS.workflow_id
    if workflow_id is None:
        raise WorkflowError(f"step_key({step_name!r}) called outside a workflow")
    return f"{workflow_id}:{step_name}"


def money_json(money: Money) -> Json:
    return {"amount": format(money.amount, "f"), "currency": money.currency}


def money_of(data: Mapping[str, Any]) -> Money:
    return Money.of(Decimal(str(data["amount"])), str(data["currency"]))


def is_transient(exc: BaseException) -> bool:
    """A failure that waiting may get past: timeouts, lost connections, 5xx, 429, open circuits."""
    if isinstance(exc, (TransientError, httpx.TransportError, TimeoutError, ConnectionError)):
        return True
    # Connector-specific transient errors (e.g. the ERP's) say so in their class name.
    return any(cls.__name__.endswith("TransientError") for cls in type(exc).__mro__)


def failure_of(exc: BaseException, step: str, attempts: int) -> Json:
    kind = "transient" if is_transient(exc) else "business"
    code = getattr(exc, "code", None) if isinstance(exc, BusinessError) else None
    return {
        "step": step,
        "kind": kind,
        "error": type(exc).__name__,
        "code": code if isinstance(code, str) else None,
        "message": str(exc) or type(exc).__name__,
        "attempts": attempts,
        "at": datetime.now(UTC).isoformat(),
    }


def conflict_found(step: str, error: str, message: str) -> Json:
    """A business failure the workflow itself finds in what ``step`` answered (nothing was
    raised, nothing to retry), shaped like :func:`failure_of`'s."""
    return {
        "step": step,
        "kind": "business",
        "error": error,
        "code": "conflict",
        "attempts": 1,
        "message": message,
    }


def ok(value: Any = None) -> Json:
    return {"ok": True, "value": value}


_executed_steps = 0


def step_boundary() -> None:
    """Called at every step boundary; the fault-test hook lives here and nowhere else."""
    global _executed_steps
    limit = os.environ.get(CRASH_AFTER_STEPS_ENV)
    if limit is not None and _executed_steps >= int(limit):
        os.kill(os.getpid(), signal.SIGKILL)
    _executed_steps += 1


async def attempt(step: str, call: Callable[[], Awaitable[T]]) -> Json:
    """Run ``call`` with retries for transient failures; the outcome as JSON, never raising
    for the outside system (configuration errors of the hub itself are raised)."""
    step_boundary()
    schedule = current_runtime().options.retry
    tries = 0
    while True:
        tries += 1
        try:
            return ok(await call())
        except WorkflowError:
            raise
        except Exception as exc:
            if is_transient(exc) and tries < schedule.attempts:
                retry_after = getattr(exc, "retry_after", None)
                delay = schedule.delay(tries)
                if isinstance(retry_after, (int, float)):
                    delay = max(delay, min(float(retry_after), schedule.max_delay_seconds))
                DBOS.logger.warning(f"{step}: transient failure ({exc}); retry {tries} in {delay}s")
                await asyncio.sleep(delay)
                continue
            return {"ok": False, "failure": failure_of(exc, step, tries)}


# --- ERP ---------------------------------------------------------------------------------------


def order_json(state: ErpOrderState) -> Json:
    invoiced = [p.created_at for p in state.postings if p.kind.value == "invoice"]
    return {
        "order_id": state.order_id,
        "erp_id": state.erp_id,
        "status": state.status.value,
        "erp_state": state.erp_state,
        "total": money_json(state.total),
        "cancellable": state.cancellable,
        "shipped": any(s.status.value not in {"pending", "cancelled"} for s in state.shipments)
        if state.shipments
        else False,
        "invoiced_at": min(invoiced).isoformat() if invoiced else None,
        "shipped_quantities": shipped_quantities(state),
    }


def shipped_quantities(state: ErpOrderState) -> dict[str, int]:
    """Units per SKU that left the warehouse (what a customer can send back)."""
    units: dict[str, int] = {}
    for shipment in state.shipments:
        if shipment.status.value in {"pending", "cancelled"}:
            continue
        for line in shipment.lines:
            units[line.sku] = units.get(line.sku, 0) + line.quantity
    return units


def return_json(state: ErpReturnState) -> Json:
    posted = [n for n in state.credit_notes if n.status.value in {"posted", "settled"}]
    currency = state.credit_notes[0].amount.currency if state.credit_notes else None
    total = (
        money_json(Money.total([n.amount for n in posted], currency))
        if currency is not None
        else None
    )
    return {
        "rma_id": state.rma_id,
        "order_id": state.order_id,
        "erp_id": state.erp_id,
        "received": state.received,
        "credited": state.credited,
        "credit_notes": [
            {
                "id": n.id,
                "document": n.document_number,
                "status": n.status.value,
                "amount": money_json(n.amount),
            }
            for n in state.credit_notes
        ],
        "credited_total": total,
    }


@DBOS.step(name="find_order_case")
async def find_order_case(order_id: str) -> Json:
    """The service case the hub's order 360 links to ``order_id`` (the most recent), if any."""

    async def call() -> Json:
        from retailsync.views.errors import OrderNotInReadModel
        from retailsync.views.read import order_360

        engine = _ports().audit_engine
        if engine is None:
            return {"case_ref": None}
        try:
            view = await asyncio.to_thread(order_360, engine, order_id)
        except OrderNotInReadModel:
            return {"case_ref": None}
        cases = sorted(
            view.cases, key=lambda case: case.opened_at or datetime.min.replace(tzinfo=UTC)
        )
        return {"case_ref": cases[-1].id if cases else None}

    return await attempt("find_order_case", call)


@DBOS.step(name="read_erp_order")
async def read_erp_order(order_id: str) -> Json:
    """The order as the ERP holds it (status, total, whether it can still be cancelled)."""

    async def call() -> Json:
        return order_json(await _erp().get_order(order_id))

    return await attempt("read_erp_order", call)


@DBOS.step(name="authorize_return_in_erp")
async def authorize_return_in_erp(key: str, rma: Json) -> Json:
    """Record the return (and its draft credit note) in the ERP; idempotent on the RMA id."""

    async def call() -> Json:
        return return_json(await _erp().create_return(ReturnAuthorization.model_validate(rma)))

    return await attempt("authorize_return_in_erp", call)


@DBOS.step(name="post_credit_note")
async def post_credit_note(key: str, rma_id: str) -> Json:
    """Post the return's credit note in the ERP's books (posting twice finds it posted)."""

    async def call() -> Json:
        return return_json(await _erp().post_credit_note(rma_id))

    return await attempt("post_credit_note", call)


@DBOS.step(name="receive_return_in_erp")
async def receive_return_in_erp(key: str, rma_id: str) -> Json:
    """Book the returned goods into the ERP (the return shipment is done)."""

    async def call() -> Json:
        return return_json(await _erp().receive_return(rma_id))

    return await attempt("receive_return_in_erp", call)


@DBOS.step(name="settle_return_in_erp")
async def settle_return_in_erp(key: str, rma_id: str, credited: dict[str, int]) -> Json:
    """Reduce the return's draft credit note to the units inspection accepted."""

    async def call() -> Json:
        return return_json(await _erp().settle_return(rma_id, credited))

    return await attempt("settle_return_in_erp", call)


@DBOS.step(name="adjust_stock_in_erp")
async def adjust_stock_in_erp(key: str, adjustment: Json) -> Json:
    """Apply one stock change (restock, write-off, reservation) once; id derived from the key."""

    async def call() -> Json:
        position = await _erp().adjust_inventory(InventoryAdjustment.model_validate(adjustment))
        return {"sku": position.sku, "location": position.location, "on_hand": position.on_hand}

    return await attempt("adjust_stock_in_erp", call)


@DBOS.step(name="read_erp_stock")
async def read_erp_stock(sku: str, location: str) -> Json:
    """Units of ``sku`` at ``location`` the ERP can still promise."""

    async def call() -> Json:
        position = await _erp().get_stock(sku, location)
        return {
            "sku": sku,
            "location": location,
            "on_hand": position.on_hand,
            "available": position.on_hand - position.reserved,
        }

    return await attempt("read_erp_stock", call)


@DBOS.step(name="cancel_erp_order")
async def cancel_erp_order(key: str, order_id: str) -> Json:
    """Cancel an unshipped order in the ERP (a business failure once anything shipped)."""

    async def call() -> Json:
        return order_json(await _erp().cancel_order(order_id))

    return await attempt("cancel_erp_order", call)


@DBOS.step(name="submit_erp_order")
async def submit_erp_order(key: str, order: Json, customer: Json | None = None) -> Json:
    """Create and confirm the sales order in the ERP; idempotent on the canonical order id.

    ``customer`` (canonical JSON) lets the ERP find or create the buyer's account.
    """
    from retailsync.domain.customers import Customer
    from retailsync.domain.orders import Order

    async def call() -> Json:
        buyer = Customer.model_validate(customer) if customer is not None else None
        return order_json(await _erp().submit_order(Order.model_validate(order), buyer))

    return await attempt("submit_erp_order", call)


@DBOS.step(name="record_dispatch_in_erp")
async def record_dispatch_in_erp(key: str, order_id: str) -> Json:
    """Mark the order's shipments as handed to the carrier."""

    async def call() -> Json:
        return order_json(await _erp().record_dispatch(order_id))

    return await attempt("record_dispatch_in_erp", call)


# --- payments --------------------------------------------------------------------------------


SETTLED = {PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED}


@DBOS.step(name="read_payment")
async def read_payment(payment_ref: str) -> Json:
    """Whether the payment is settled and how much of it can still be refunded."""

    async def call() -> Json:
        state = await _payments().payment_state(payment_ref)
        return {
            "payment_ref": state.payment_ref,
            "status": state.status.value,
            "settled": state.status in SETTLED,
            "voidable": state.status is PaymentStatus.AUTHORIZED,
            "refundable": money_json(state.refundable),
        }

    return await attempt("read_payment", call)


@DBOS.step(name="issue_refund")
async def issue_refund(
    key: str, payment_ref: str, amount: Json, refund_id: str, order_ref: str | None, reason: str
) -> Json:
    """Pay the money back at the payment service; the key makes a retry find the first refund."""

    async def call() -> Json:
        record = await _payments().issue_refund(
            payment_ref=payment_ref,
            idempotency_key=key,
            amount=money_of(amount),
            reason=reason,
            order_ref=order_ref,
            refund_id=refund_id,
            metadata={"workflow": key.rsplit(":", 1)[0]},
        )
        if record.status.value in {"failed", "canceled"}:
            raise BusinessError(
                f"the payment service {record.status.value} refund {record.refund_ref}: "
                f"{record.failure_reason or 'no reason given'}",
                downstream="payments",
                operation="issue_refund",
            )
        return {
            "refund_ref": record.refund_ref,
            "status": record.status.value,
            "amount": money_json(record.amount),
        }

    return await attempt("issue_refund", call)


@DBOS.step(name="void_payment")
async def void_payment(key: str, payment_ref: str) -> Json:
    """Release an uncaptured authorization at the payment service (once per key)."""

    async def call() -> Json:
        await _payments().void_payment(payment_ref, idempotency_key=key)
        return {"payment_ref": payment_ref, "voided": True}

    return await attempt("void_payment", call)


# --- commerce --------------------------------------------------------------------------------


@DBOS.step(name="update_storefront_status")
async def update_storefront_status(
    key: str, order_ref: str, status: str, tracking_number: str | None, note: str | None
) -> Json:
    """Show the order's new status in the storefront (recorded as not updated when the hub
    runs without a commerce connector)."""

    async def call() -> Json:
        commerce = _ports().commerce
        if commerce is None:
            return {"order_ref": order_ref, "status": status, "updated": False}
        await commerce.update_order_status(
            order_ref, status, idempotency_key=key, tracking_number=tracking_number, note=note
        )
        return {"order_ref": order_ref, "status": status, "updated": True}

    return await attempt("update_storefront_status", call)


@DBOS.step(name="read_storefront_order")
async def read_storefront_order(order_ref: str) -> Json:
    """The storefront's order: customer, lines and prices as the shopper saw them."""

    async def call() -> Json:
        commerce = _ports().commerce
        if commerce is None:
            raise PortsNotConfigured("commerce")
        order = await commerce.get_order(order_ref)
        return {
            "order_ref": order.order_ref,
            "name": order.name,
            "status": order.status,
            "financial_status": order.financial_status,
            "total": money_json(order.total),
            "customer_ref": order.customer_ref,
            "customer_email": order.customer_email,
            "created_at": order.created_at.isoformat(),
            "lines": [
                {
                    "line_ref": line.line_ref,
                    "sku": line.sku,
                    "title": line.title,
                    "quantity": line.quantity,
                    "unit_price": money_json(line.unit_price),
                }
                for line in order.lines
            ],
        }

    return await attempt("read_storefront_order", call)


# --- warehouse -------------------------------------------------------------------------------


@DBOS.step(name="expect_return_at_warehouse")
async def expect_return_at_warehouse(
    key: str, rma_id: str, order_id: str, location: str, lines: list[Json]
) -> Json:
    """Tell the warehouse which units to expect back for this RMA."""

    async def call() -> Json:
        expectation = await _warehouse().expect_return(
            rma_reference=rma_id,
            order_reference=order_id,
            location=location,
            lines=[ExpectedReturnLine(sku=x["sku"], quantity=int(x["quantity"])) for x in lines],
            idempotency_key=key,
        )
        return {"expectation_id": expectation}

    return await attempt("expect_return_at_warehouse", call)


@DBOS.step(name="cancel_warehouse_pick")
async def cancel_warehouse_pick(key: str, task_id: str, reason: str) -> Json:
    """Stop the warehouse picking an order that is being cancelled."""

    async def call() -> Json:
        await _warehouse().cancel_pick_task(task_id, reason=reason, idempotency_key=key)
        return {"task_id": task_id, "cancelled": True}

    return await attempt("cancel_warehouse_pick", call)


# --- service desk ----------------------------------------------------------------------------


@DBOS.step(name="note_case")
async def note_case(key: str, case_ref: str, body: str, status: str | None = None) -> Json:
    """Add an agent-only note to the case (once per key) and move its status when given."""

    async def call() -> Json:
        desk = _service_desk()
        added = await desk.add_internal_note(case_ref, body, idempotency_key=key)
        if status is not None:
            await desk.set_case_status(case_ref, CaseStatus(status))
        return {"case_ref": case_ref, "added": added, "status": status}

    return await attempt("note_case", call)


# --- events and audit ------------------------------------------------------------------------


@DBOS.step(name="publish_events")
async def publish_events(key: str, events: list[Json], correlation_id: str) -> Json:
    """Hand canonical events to the bus; ids derive from the key so a re-run is a duplicate."""
    from retailsync.domain.catalogue import EVENT_CATALOGUE

    async def call() -> Json:
        publisher = _ports().publisher
        if publisher is None:
            return {"published": 0, "skipped": "no event publisher configured"}
        built = []
        for index, item in enumerate(events):
            spec = EVENT_CATALOGUE[item["type"]]
            payload: EventPayload = spec.payload.model_validate(item["data"])
            built.append(
                build_event(
                    payload,
                    source=current_runtime().options.source,
                    correlationid=correlation_id,
                    id=f"{key}:{index}",
                )
            )
        await publisher.publish(built)
        return {"published": len(built), "types": [e.type for e in built]}

    return await attempt("publish_events", call)


@DBOS.step(name="record_audit")
async def record_audit_step(
    key: str,
    action: str,
    entity_kind: str,
    entity_id: str,
    after: Json | None,
    correlation_id: str,
    reason: str | None = None,
) -> Json:
    """One audit entry per action on money or stock, recorded once per key."""
    from retailsync.audit import record_audit

    async def call() -> Json:
        engine = _ports().audit_engine
        if engine is None:
            return {"recorded": False, "skipped": "no audit database configured"}
        with engine.begin() as connection:
            entry = record_audit(
                connection,
                actor=f"workflow:{key.rsplit(':', 1)[0]}",
                action=action,
                entity_kind=entity_kind,
                entity_id=entity_id,
                before=None,
                after={**(after or {}), "idempotency_key": key},
                correlation_id=correlation_id,
                reason=reason,
            )
        return {"recorded": True, "entry": entry.id}

    return await attempt("record_audit", call)


# --- derived ids -------------------------------------------------------------------------------


def derived_return_id(workflow_id: str) -> str:
    return derive_id(EntityKind.RETURN, workflow_id, "rma")


def derived_refund_id(workflow_id: str) -> str:
    return derive_id(EntityKind.REFUND, workflow_id, "refund")


def derived_adjustment_id(workflow_id: str, step: str, sku: str) -> str:
    return derive_id(EntityKind.INVENTORY_ADJUSTMENT, workflow_id, step, sku)


def adjustment_json(
    *,
    adjustment_id: str,
    sku: str,
    location: str,
    delta: int,
    reason: AdjustmentReason,
    reference: str,
    occurred_at: str,
) -> Json:
    return {
        "id": adjustment_id,
        "sku": sku,
        "location": location,
        "delta": delta,
        "reason": reason.value,
        "reference": reference,
        "occurred_at": occurred_at,
    }


# --- the ERP lane ----------------------------------------------------------------------------

ERP_STEPS: dict[str, Callable[..., Awaitable[Json]]] = {
    "read_erp_order": read_erp_order,
    "authorize_return_in_erp": authorize_return_in_erp,
    "post_credit_note": post_credit_note,
    "receive_return_in_erp": receive_return_in_erp,
    "adjust_stock_in_erp": adjust_stock_in_erp,
    "settle_return_in_erp": settle_return_in_erp,
    "read_erp_stock": read_erp_stock,
    "cancel_erp_order": cancel_erp_order,
    "submit_erp_order": submit_erp_order,
    "record_dispatch_in_erp": record_dispatch_in_erp,
}
"""ERP-bound steps: in scale-out mode each runs as a child workflow on the ERP queue, whose
rate limit holds across every worker process."""


STEP_SYSTEMS: dict[str, str] = {
    **{fn.__name__: "erp" for fn in ERP_STEPS.values()},
    "read_payment": "payments",
    "issue_refund": "payments",
    "void_payment": "payments",
    "update_storefront_status": "commerce",
    "read_storefront_order": "commerce",
    "expect_return_at_warehouse": "warehouse",
    "cancel_warehouse_pick": "warehouse",
    "note_case": "service_desk",
}
"""The outside system each step talks to (events and audit stay in the hub)."""


def system_of(step: Callable[..., Any]) -> str:
    """The system ``step`` calls, for traces and metrics (``hub`` for the hub's own)."""
    return STEP_SYSTEMS.get(getattr(step, "__name__", ""), "hub")


@DBOS.workflow(name="erp_call")
async def erp_call(step_name: str, args: list[Any]) -> Json:
    """One ERP-bound step, run from the rate-limited ERP queue on behalf of a parent."""
    return await ERP_STEPS[step_name](*args)


async def run_step(name: str, step: Callable[..., Awaitable[Json]], *args: Any) -> Json:
    """Run ``step``; an ERP-bound step goes through the ERP queue when the runtime has one."""
    queue = current_runtime().erp_queue
    erp_name = next((n for n, fn in ERP_STEPS.items() if fn is step), None)
    if queue is None or erp_name is None:
        return await step(*args)
    handle = await queue.enqueue_async(erp_call, erp_name, list(args))
    return await handle.get_result()
