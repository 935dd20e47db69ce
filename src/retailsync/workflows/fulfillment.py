"""Order-to-fulfilment: a storefront order becomes an ERP sales order that ships.

take the order (from the ``order.created`` event, or read it from the storefront) -> validate
customer, prices and stock -> create and confirm the sales order in the ERP (confirming plans
the shipment, which reserves the units: the ERP's forecast stock drops) -> check the ERP holds
it -> wait durably for the shipment's dispatch (``shipment.dispatched`` from the ERP's change
capture) -> show "shipped" with the tracking number in the storefront -> tell the case ->
emit ``order.status_changed``.

Out of stock puts the order on hold (storefront and case are told; a person decides); a
customer or price problem rejects it before the ERP sees it. The dispatch arrives through
:func:`deliver_shipment_confirmation`, which sends it to the order's shipment mailbox, a
child workflow whose id derives from the canonical order id (the ERP knows the order, not
the workflow).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from dbos import DBOS, SetWorkflowID
from pydantic import BaseModel, Field, ValidationError, model_validator

from retailsync.domain.catalogue import OrderStatusChanged, ShipmentDispatched
from retailsync.domain.customers import Customer
from retailsync.domain.identifiers import EntityKind, derive_id, is_valid_id
from retailsync.domain.money import Money
from retailsync.domain.orders import Order, OrderLine, OrderStatus
from retailsync.workflows import steps
from retailsync.workflows.errors import (
    InvalidOrderEvent,
    InvalidShipmentConfirmation,
    NoOrderAwaitingShipment,
)
from retailsync.workflows.process import ProcessKind, ProcessRun, now_iso

Json = dict[str, Any]
SHIPMENT_TOPIC = "shipment_dispatched"
MAX_SHIPMENT_MESSAGES = 50
DEFAULT_SHIPMENT_TIMEOUT_SECONDS = 7 * 86_400.0
SHIPPED_STATES = {"shipped", "partially_shipped"}


class FulfillmentRequest(BaseModel):
    """Fulfil this storefront order: given in full (``order``, canonical JSON from the
    ``order.created`` event) and/or by its storefront id (read from the storefront)."""

    order: dict[str, Any] | None = None
    storefront_order_ref: str | None = Field(default=None, min_length=1, max_length=100)
    storefront_system: str = Field(default="shopify", min_length=1, max_length=40)
    """The system whose ids the storefront reference is in (canonical ids derive from it)."""
    case_ref: str | None = None
    stock_location: str = Field(default="STO", min_length=1, max_length=40)
    shipment_timeout_seconds: float = Field(
        default=DEFAULT_SHIPMENT_TIMEOUT_SECONDS, gt=0, le=90 * 86_400
    )
    requested_by: str | None = None
    requested_at: datetime
    correlation_id: str | None = None

    @model_validator(mode="after")
    def _order_named(self) -> FulfillmentRequest:
        if self.order is None and self.storefront_order_ref is None:
            raise ValueError("give the order (canonical JSON) or its storefront_order_ref")
        if self.order is not None:
            Order.model_validate(self.order)
        return self


def fulfillment_workflow_id(order_id: str) -> str:
    """The workflow id of the fulfilment started from ``order_id``'s ``order.created`` event
    (one workflow per order, however often the event is delivered)."""
    return f"fulfillment-{order_id}"


def shipment_mailbox_id(order_id: str) -> str:
    """The id of the child workflow that collects the dispatches of ``order_id``."""
    return f"order-shipment-{order_id}"


def _ev(payload: Any) -> tuple[str, Json]:
    return f"retailsync.{payload.event_name}", payload.model_dump(mode="json")


# --- the shipment mailbox ----------------------------------------------------------------


def shipment_message(order_id: str, payload: Mapping[str, Any]) -> Json:
    """The ``shipment.dispatched`` event (CloudEvent JSON or its ``data``) of ``order_id``,
    validated against the event catalogue."""
    data = payload.get("data") if isinstance(payload.get("data"), Mapping) else payload
    assert isinstance(data, Mapping)
    try:
        parsed = ShipmentDispatched.model_validate(data)
    except ValidationError as exc:
        raise InvalidShipmentConfirmation(
            f"the shipment confirmation for {order_id} is not a valid shipment.dispatched "
            "event: "
            + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        ) from None
    if parsed.shipment.order_id != order_id:
        raise InvalidShipmentConfirmation(
            f"shipment {parsed.shipment.id} belongs to order {parsed.shipment.order_id}, "
            f"not {order_id}"
        )
    return parsed.model_dump(mode="json")


async def deliver_shipment_confirmation(order_id: str, payload: Mapping[str, Any]) -> bool:
    """Hand a ``shipment.dispatched`` event to the fulfilment of ``order_id``.

    True when delivered; False when that fulfilment already has all its shipments (a
    redelivery, absorbed). Raises :class:`NoOrderAwaitingShipment` when no fulfilment waits
    for this order (an order not placed through the hub) and
    :class:`InvalidShipmentConfirmation` for a payload that is not such an event.
    """
    message = shipment_message(order_id, payload)
    mailbox = shipment_mailbox_id(order_id)
    status = await DBOS.get_workflow_status_async(mailbox)
    if status is None:
        raise NoOrderAwaitingShipment(order_id)
    if status.status not in {"PENDING", "ENQUEUED"}:
        return False
    shipment = message["shipment"]
    await DBOS.send_async(
        mailbox,
        message,
        topic=SHIPMENT_TOPIC,
        idempotency_key=f"{order_id}:{shipment['id']}:{shipment.get('version', 1)}",
    )
    return True


@DBOS.workflow(name="await_shipment_dispatch")
async def await_shipment_dispatch(ordered: dict[str, int], timeout_seconds: float) -> Json:
    """Collect dispatches until every ordered unit shipped, or nothing more comes in time."""
    shipped: dict[str, int] = {}
    shipments: list[Json] = []
    seen: set[str] = set()
    for _ in range(MAX_SHIPMENT_MESSAGES):
        message: Json | None = await DBOS.recv_async(SHIPMENT_TOPIC, timeout_seconds)
        if message is None:
            break
        shipment = message["shipment"]
        if shipment["id"] in seen:
            continue
        seen.add(shipment["id"])
        shipments.append(shipment)
        for line in shipment["lines"]:
            shipped[line["sku"]] = shipped.get(line["sku"], 0) + int(line["quantity"])
        if all(shipped.get(sku, 0) >= units for sku, units in ordered.items()):
            break
    return {"shipments": shipments, "shipped": shipped}


# --- the workflow --------------------------------------------------------------------------


@DBOS.workflow(name="order_to_fulfillment")
async def order_to_fulfillment(request: Json) -> Json:
    """Take a storefront order through the ERP to the carrier, and say so everywhere."""
    req = FulfillmentRequest.model_validate(request)
    workflow_id = DBOS.workflow_id or ""
    run = ProcessRun(
        kind=ProcessKind.FULFILLMENT,
        correlation_id=req.correlation_id or workflow_id,
        subject={"storefront_order_ref": req.storefront_order_ref, "case_ref": req.case_ref},
    )
    await run.state("validating")

    buyer: Json | None = None
    if req.order is not None:
        order = Order.model_validate(req.order)
        customer_known = order.customer_id is not None
        contact: Json = {"customer_email": None}
        if customer_known and req.storefront_order_ref:
            read = await run.run(
                "read_storefront_order", steps.read_storefront_order, req.storefront_order_ref
            )
            if read["ok"]:
                contact = read["value"]
        buyer = _storefront_customer(contact, order)
    else:
        assert req.storefront_order_ref is not None
        read = await run.run(
            "read_storefront_order", steps.read_storefront_order, req.storefront_order_ref
        )
        if not read["ok"]:
            return await _rejected(run, req, None, f"storefront: {read['failure']['message']}")
        problems = _storefront_problems(read["value"])
        if problems:
            return await _rejected(run, req, None, "; ".join(problems))
        order = _canonical_order(read["value"], req)
        customer_known = bool(read["value"]["customer_ref"] or read["value"]["customer_email"])
        buyer = _storefront_customer(read["value"], order)
    run.subject["order_id"] = order.id

    problems = _order_problems(order, customer_known=customer_known)
    if problems:
        return await _rejected(run, req, order, "; ".join(problems))
    ordered = _units(order)
    short: list[str] = []
    for sku, units in sorted(ordered.items()):
        stock = await run.run(
            f"read_erp_stock:{sku}", steps.read_erp_stock, sku, req.stock_location
        )
        if not stock["ok"]:
            if stock["failure"]["kind"] == "transient":
                return await _failed(run, req, order, stock["failure"])
            short.append(f"{sku}: {stock['failure']['message']}")
        elif stock["value"]["available"] < units:
            short.append(f"{sku} ({stock['value']['available']} of {units} available)")
    if short:
        return await _on_hold(run, req, order, short)
    await run.state("validated", lines=[{"sku": s, "quantity": q} for s, q in ordered.items()])

    # The mailbox exists before the ERP can plan (and the warehouse dispatch) the shipment.
    with SetWorkflowID(shipment_mailbox_id(order.id)):
        mailbox = await DBOS.start_workflow_async(
            await_shipment_dispatch, ordered, req.shipment_timeout_seconds
        )
    placed = await run.run(
        "submit_erp_order",
        steps.submit_erp_order,
        run.key("submit_erp_order"),
        order.model_dump(mode="json"),
        buyer,
    )
    if not placed["ok"]:
        if placed["failure"]["kind"] == "business":
            return await _rejected(run, req, order, f"ERP: {placed['failure']['message']}")
        return await _failed(run, req, order, placed["failure"])
    reserved = await run.run("read_erp_order", steps.read_erp_order, order.id)
    if not reserved["ok"] or reserved["value"]["status"] in {"cancelled", "pending", "on_hold"}:
        failure = reserved.get("failure") or _failure(
            "read_erp_order",
            f"the ERP holds order {order.id} as {reserved['value']['status']}, not confirmed",
        )
        return await _failed(run, req, order, failure)
    await run.state(
        "reserved",
        erp_id=reserved["value"]["erp_id"],
        erp_status=reserved["value"]["status"],
        erp_state=reserved["value"]["erp_state"],
    )
    await _tell(
        run,
        req,
        order,
        "confirmed",
        "note_case_confirmed",
        f"Order {order.id} confirmed in the ERP ({reserved['value']['erp_state']}); the units "
        "are reserved for the shipment.",
    )

    await run.state("awaiting_shipment", shipment_timeout_seconds=req.shipment_timeout_seconds)
    dispatched: Json = await mailbox.get_result()
    if not dispatched["shipments"]:
        return await _shipment_overdue(run, req, order)
    complete = all(dispatched["shipped"].get(s, 0) >= q for s, q in ordered.items())
    status = OrderStatus.SHIPPED if complete else OrderStatus.PARTIALLY_SHIPPED
    tracking = [s["tracking_number"] for s in dispatched["shipments"] if s.get("tracking_number")]
    carriers = sorted({s["carrier"] for s in dispatched["shipments"]})
    await run.state(status.value, shipments=[s["id"] for s in dispatched["shipments"]])
    summary = (
        f"Order {order.id} {'shipped' if complete else 'partly shipped'} with "
        f"{', '.join(carriers)}" + (f" (tracking {', '.join(tracking)})" if tracking else "") + "."
    )
    storefront = await _tell(
        run,
        req,
        order,
        status.value,
        "note_case_shipped",
        summary,
        tracking_number=tracking[0] if tracking else None,
        case_status="solved" if complete else "pending",
    )
    await run.emit(
        "emit_order_shipped",
        _ev(
            OrderStatusChanged(
                order_id=order.id,
                version=max(2, int(datetime.now(UTC).timestamp())),
                from_status=OrderStatus.CONFIRMED,
                to_status=status,
                changed_at=datetime.fromisoformat(now_iso()),
                reason=summary[:200],
            )
        ),
    )
    return await run.finish(
        status.value,
        order_id=order.id,
        shipped=dispatched["shipped"],
        tracking_numbers=tracking,
        storefront_updated=storefront,
    )


# --- pieces of the process -----------------------------------------------------------------


def _units(order: Order) -> dict[str, int]:
    units: dict[str, int] = {}
    for line in order.lines:
        units[line.sku] = units.get(line.sku, 0) + line.quantity
    return units


def _storefront_problems(storefront: Json) -> list[str]:
    """What makes a storefront order impossible to fulfil as it stands."""
    problems = []
    if storefront["status"] == "cancelled":
        problems.append("order: the storefront order is cancelled")
    if not storefront["lines"]:
        problems.append("lines: the order has no lines")
    for line in storefront["lines"]:
        if not line["sku"]:
            problems.append(f"lines: {line['title'] or line['line_ref']!r} has no SKU")
    return problems


def _canonical_order(storefront: Json, req: FulfillmentRequest) -> Order:
    """The storefront's order as the canonical order (ids derived from the storefront's)."""
    currency = storefront["total"]["currency"]
    zero = Money.zero(currency)
    lines = [
        OrderLine.priced(
            line_no=number,
            sku=line["sku"],
            quantity=int(line["quantity"]),
            unit_price=steps.money_of(line["unit_price"]),
            tax=zero,
            description=str(line["title"])[:200] if line["title"] else None,
        )
        for number, line in enumerate(storefront["lines"], start=1)
    ]
    customer_id = (
        derive_id(EntityKind.CUSTOMER, req.storefront_system, storefront["customer_ref"])
        if storefront["customer_ref"]
        else None
    )
    return Order.place(
        id=derive_id(EntityKind.ORDER, req.storefront_system, storefront["order_ref"]),
        channel=req.storefront_system,
        currency=currency,
        lines=lines,
        placed_at=datetime.fromisoformat(storefront["created_at"]),
        customer_id=customer_id,
    )


def _storefront_customer(storefront: Json, order: Order) -> Json | None:
    """The buyer as the storefront knows them, for the ERP to find or create the account."""
    if order.customer_id is None:
        return None
    return Customer(
        id=order.customer_id,
        email=storefront["customer_email"] or None,
        created_at=order.placed_at,
    ).model_dump(mode="json")


def _order_problems(order: Order, *, customer_known: bool) -> list[str]:
    """Customer and price checks (pure): what a person must fix before the ERP sees it."""
    problems = []
    if not customer_known:
        problems.append("customer: the order names no customer (no id, no email)")
    for line in order.lines:
        if line.unit_price.amount <= Decimal(0):
            problems.append(f"price: {line.sku} has unit price {line.unit_price}")
        if line.line_total.is_negative():
            problems.append(f"price: {line.sku} has a negative line total {line.line_total}")
    if not order.grand_total.amount > 0:
        problems.append(f"price: the order total is {order.grand_total}")
    return problems


def _failure(step: str, message: str, kind: str = "business") -> Json:
    return {
        "step": step,
        "kind": kind,
        "error": "OrderNotFulfilled",
        "code": "conflict",
        "attempts": 1,
        "message": message,
    }


async def _tell(
    run: ProcessRun,
    req: FulfillmentRequest,
    order: Order | None,
    status: str,
    note_step: str,
    text: str,
    *,
    tracking_number: str | None = None,
    case_status: str | None = None,
) -> bool:
    """Show ``status`` in the storefront (when the order came from one) and note the case."""
    updated = False
    if req.storefront_order_ref:
        step = f"update_storefront_status:{status}"
        shown = await run.run(
            step,
            steps.update_storefront_status,
            run.key(step),
            req.storefront_order_ref,
            status,
            tracking_number,
            text,
        )
        updated = bool(shown["ok"] and shown["value"]["updated"])
    case_ref = req.case_ref
    if case_ref is None and order is not None:
        found = await run.run("find_order_case", steps.find_order_case, order.id)
        case_ref = found["value"]["case_ref"] if found["ok"] else None
    await run.note(note_step, case_ref, text, status=case_status)
    return updated


async def _rejected(
    run: ProcessRun, req: FulfillmentRequest, order: Order | None, reason: str
) -> Json:
    """Not fulfillable as it stands: nothing reached the ERP; the case and storefront say why."""
    await _tell(run, req, order, "on_hold", "note_case_rejected", f"Order not fulfilled: {reason}")
    return await run.finish("rejected", reason=reason)


async def _on_hold(
    run: ProcessRun, req: FulfillmentRequest, order: Order, short: list[str]
) -> Json:
    """Not enough stock to promise: hold the order for a person (no ERP order yet)."""
    text = "Order on hold, not enough stock: " + "; ".join(short)
    await _tell(run, req, order, "on_hold", "note_case_on_hold", text, case_status="on_hold")
    return await run.finish("on_hold", order_id=order.id, short=short)


async def _shipment_overdue(run: ProcessRun, req: FulfillmentRequest, order: Order) -> Json:
    text = (
        f"Order {order.id} is confirmed in the ERP but no shipment was dispatched within "
        f"{req.shipment_timeout_seconds:g} s; the warehouse team follows up."
    )
    await run.note("note_case_shipment_overdue", req.case_ref, text, status="open")
    return await run.finish("shipment_overdue", order_id=order.id)


async def _failed(
    run: ProcessRun, req: FulfillmentRequest, order: Order | None, failure: Json
) -> Json:
    await run.note(
        "note_case_failed",
        req.case_ref,
        f"Order could not be fulfilled ({failure['step']}: {failure['message']}).",
        status="on_hold",
    )
    return await run.finish(
        "failed", failure=failure, order_id=order.id if order is not None else None
    )


def order_created_request(event_data: Mapping[str, Any], **extra: Any) -> Json:
    """The fulfilment request for an ``order.created`` event's data (canonical order)."""
    order = event_data.get("order")
    if not isinstance(order, Mapping) or not is_valid_id(str(order.get("id")), EntityKind.ORDER):
        raise InvalidOrderEvent("the order.created event carries no canonical order (data.order)")
    return {"order": dict(order), "requested_at": now_iso(), **extra}
