"""WMS payloads -> canonical events and models, as pure functions.

| WMS webhook ``type``          | canonical event(s)                                     |
|-------------------------------|--------------------------------------------------------|
| ``return_receipt.received``   | ``return.received`` (+ ``return.inspected`` when the   |
|                               | lines already carry an inspection result)              |
| ``return_receipt.inspected``  | ``return.inspected``                                   |
| ``allocation.changed``        | ``inventory.position_reported`` (on hand + allocated)  |
| ``shipment.confirmed``        | ``shipment.dispatched``                                |

Canonical ids are derived from the references the WMS carries (``derive_id``), so the same
reference always gives the same id; a reference that already is a canonical id of the right
kind (the hub told the warehouse its own RMA or order id) is kept as it is, so the event
names the same return or order the hub's workflows know. Versions are the WMS's event time
in epoch seconds, so a late, older state is recognisable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from retailsync.connectors.webhook_protocol import WebhookUnmappable
from retailsync.connectors.wms.config import WmsSettings
from retailsync.domain.catalogue import (
    EventPayload,
    InspectedLine,
    InventoryPositionReported,
    ReceivedLine,
    ReturnInspected,
    ReturnReceived,
    ShipmentDispatched,
)
from retailsync.domain.identifiers import EntityKind, derive_id, is_valid_id
from retailsync.domain.inventory import InventoryPosition
from retailsync.domain.returns import InspectionOutcome, InspectionResult
from retailsync.domain.shipments import Shipment, ShipmentLine, ShipmentStatus

ACCEPTED_OUTCOMES = frozenset({InspectionOutcome.RESTOCK, InspectionOutcome.REFURBISH})


def parse_time(value: Any, field: str) -> datetime:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment
    raise WebhookUnmappable(
        f"WMS field {field} must be an ISO 8601 time with offset, got {value!r}"
    )


def version_of(moment: datetime) -> int:
    return max(1, int(moment.timestamp()))


def canonical_ref(kind: EntityKind, system: str, reference: str) -> str:
    """``reference`` when it already is a canonical id of ``kind``, else the id derived from it."""
    if is_valid_id(reference, kind):
        return reference
    return derive_id(kind, system, reference)


def _need(data: Mapping[str, Any], key: str) -> Any:
    if data.get(key) in (None, ""):
        raise WebhookUnmappable(f"WMS payload lacks data.{key}")
    return data[key]


def inspection_of(
    line: Mapping[str, Any], inspected_at: datetime, settings: WmsSettings
) -> InspectionResult:
    raw = str(_need(line, "inspection")).lower()
    outcome = settings.inspection_map.get(raw)
    if outcome is None:
        known = ", ".join(sorted(settings.inspection_map))
        raise WebhookUnmappable(f"WMS inspection {raw!r} is not one of {known}")
    quantity = int(_need(line, "quantity"))
    return InspectionResult(
        outcome=outcome,
        accepted_quantity=quantity if outcome in ACCEPTED_OUTCOMES else 0,
        inspected_at=inspected_at,
        notes=line.get("note") or None,
    )


def return_received(data: Mapping[str, Any], settings: WmsSettings) -> list[EventPayload]:
    received_at = parse_time(data.get("received_at"), "data.received_at")
    rma_id = canonical_ref(
        EntityKind.RETURN, settings.rma_reference_system, str(_need(data, "rma_ref"))
    )
    lines = list(_need(data, "lines"))
    payloads: list[EventPayload] = [
        ReturnReceived(
            rma_id=rma_id,
            order_id=canonical_ref(
                EntityKind.ORDER, settings.order_reference_system, str(_need(data, "order_ref"))
            ),
            version=version_of(received_at),
            location=_need(data, "location"),
            lines=[
                ReceivedLine(sku=_need(line, "sku"), quantity=_need(line, "quantity"))
                for line in lines
            ],
            received_at=received_at,
        )
    ]
    inspected = [line for line in lines if line.get("inspection")]
    if inspected:
        payloads.append(_inspected(rma_id, inspected, received_at, settings))
    return payloads


def return_inspected(data: Mapping[str, Any], settings: WmsSettings) -> list[EventPayload]:
    inspected_at = parse_time(data.get("inspected_at"), "data.inspected_at")
    rma_id = canonical_ref(
        EntityKind.RETURN, settings.rma_reference_system, str(_need(data, "rma_ref"))
    )
    return [_inspected(rma_id, list(_need(data, "lines")), inspected_at, settings)]


def _inspected(
    rma_id: str, lines: list[Mapping[str, Any]], at: datetime, settings: WmsSettings
) -> ReturnInspected:
    return ReturnInspected(
        rma_id=rma_id,
        # one second after the receipt state, so "inspected" orders after "received"
        version=version_of(at) + 1,
        lines=[
            InspectedLine(sku=_need(line, "sku"), result=inspection_of(line, at, settings))
            for line in lines
        ],
        inspected_at=at,
    )


def allocation_changed(data: Mapping[str, Any], settings: WmsSettings) -> list[EventPayload]:
    as_of = parse_time(data.get("as_of"), "data.as_of")
    position = InventoryPosition(
        sku=_need(data, "sku"),
        location=_need(data, "location"),
        on_hand=int(_need(data, "on_hand")),
        allocated=int(data.get("allocated") or 0),
        reserved=0,
        in_transit=0,
        as_of=as_of,
        version=version_of(as_of),
    )
    return [InventoryPositionReported(position=position, reported_by=settings.system_name)]


def shipment_confirmed(data: Mapping[str, Any], settings: WmsSettings) -> list[EventPayload]:
    dispatched_at = parse_time(data.get("dispatched_at"), "data.dispatched_at")
    shipment = Shipment(
        id=derive_id(EntityKind.SHIPMENT, settings.system_name, str(_need(data, "shipment_ref"))),
        version=version_of(dispatched_at),
        order_id=canonical_ref(
            EntityKind.ORDER, settings.order_reference_system, str(_need(data, "order_ref"))
        ),
        status=ShipmentStatus.DISPATCHED,
        carrier=_need(data, "carrier"),
        tracking_number=data.get("tracking_number") or None,
        tracking_url=data.get("tracking_url") or None,
        ship_from=data.get("location") or None,
        lines=[
            ShipmentLine(sku=_need(line, "sku"), quantity=_need(line, "quantity"))
            for line in _need(data, "lines")
        ],
        dispatched_at=dispatched_at,
    )
    return [ShipmentDispatched(shipment=shipment)]


MAPPERS: dict[str, Callable[[Mapping[str, Any], WmsSettings], list[EventPayload]]] = {
    "return_receipt.received": return_received,
    "return_receipt.inspected": return_inspected,
    "allocation.changed": allocation_changed,
    "shipment.confirmed": shipment_confirmed,
}


def to_payloads(
    event_type: str, data: Mapping[str, Any], settings: WmsSettings
) -> list[EventPayload]:
    """Canonical payloads for one WMS webhook; :class:`WebhookUnmappable` if impossible."""
    mapper = MAPPERS.get(event_type)
    if mapper is None:
        raise WebhookUnmappable(
            f"WMS webhook type {event_type!r} is not one of {', '.join(sorted(MAPPERS))}"
        )
    try:
        return mapper(data, settings)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        raise WebhookUnmappable(f"WMS {event_type} cannot be mapped: {problems}") from None
    except (TypeError, ValueError) as exc:
        raise WebhookUnmappable(f"WMS {event_type} cannot be mapped: {exc}") from None
