"""The event catalogue: one typed payload model per canonical event type, and the registry.

An event's ``data`` is the JSON form of its payload model. ``build_event(payload, source=...)``
wraps a payload in a :class:`~retailsync.domain.events.CloudEvent` (type, dataschema, partition
key and entity version filled in); ``parse_event(event)`` turns ``event.data`` back into the
typed payload and says which field is wrong when it does not fit.

Entity-state events (``order.created``, ``refund.approved`` …) carry the entity's version, so a
consumer can ignore an older state that arrives late. Delta events (``inventory.adjusted``,
``loyalty.adjusted``) carry a unique adjustment id instead, so a consumer can apply each once.

To add an event type: write its payload class here (``event_name``, ``entity_id()``, and
``entity_version()`` for entity-state events) and list it in :data:`_PAYLOADS`. Raising
``schema_version`` is only for a breaking change; additive optional fields keep the version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import ClassVar, TypeVar

from pydantic import Field, ValidationError, model_validator

from retailsync.domain.base import (
    CanonicalModel,
    LocationCode,
    LongText,
    Quantity,
    ShortText,
    Sku,
    Timestamp,
    Version,
    require_currency,
)
from retailsync.domain.cases import CasePriority, CaseStatus, ServiceCase
from retailsync.domain.customers import ContactChannel, Customer
from retailsync.domain.errors import EventPayloadInvalid, EventTypeMismatch, UnknownEventType
from retailsync.domain.events import EVENT_TYPE_PREFIX, CloudEvent
from retailsync.domain.identifiers import (
    CaseId,
    CustomerId,
    OrderId,
    PostingId,
    RefundId,
    ReturnId,
    ShipmentId,
)
from retailsync.domain.inventory import InventoryAdjustment, InventoryPosition
from retailsync.domain.loyalty import LoyaltyAdjustment
from retailsync.domain.money import Money
from retailsync.domain.orders import Order, OrderStatus
from retailsync.domain.refunds import Refund
from retailsync.domain.returns import InspectionResult, ReturnAuthorization
from retailsync.domain.shipments import Shipment, ShipmentExceptionCode

__all__ = [
    "EVENT_CATALOGUE",
    "CaseOpened",
    "CaseUpdated",
    "CreditNotePosted",
    "CustomerConsentChanged",
    "CustomerUpdated",
    "EventKind",
    "EventPayload",
    "EventSpec",
    "InspectedLine",
    "InventoryAdjusted",
    "InventoryPositionReported",
    "InvoicePosted",
    "LoyaltyAdjusted",
    "OrderCancelled",
    "OrderCreated",
    "OrderStatusChanged",
    "ReceivedLine",
    "RefundApproved",
    "RefundCompleted",
    "RefundFailed",
    "RefundRejected",
    "RefundRequested",
    "ReturnAuthorized",
    "ReturnInspected",
    "ReturnReceived",
    "ReturnRequested",
    "ShipmentDelivered",
    "ShipmentDispatched",
    "ShipmentExceptionRaised",
    "build_event",
    "dataschema_uri",
    "event_spec",
    "event_type_of",
    "parse_event",
    "parse_payload",
]

DATASCHEMA_PREFIX = "urn:retailsync:schema:"


class EventKind(StrEnum):
    """Whether an event carries an entity's new state (versioned) or a change to apply once."""

    STATE = "state"
    DELTA = "delta"


class EventPayload(CanonicalModel):
    """Base of every event payload: the ``data`` of one canonical event type."""

    event_name: ClassVar[str]
    """Type name without the ``retailsync.`` prefix, e.g. ``order.created``."""
    schema_version: ClassVar[int] = 1
    """Major version of the payload schema; raised only for a breaking change."""
    kind: ClassVar[EventKind] = EventKind.STATE

    def entity_id(self) -> str:
        """Id of the entity the event is about; events of one entity share a partition."""
        raise NotImplementedError

    def entity_version(self) -> int | None:
        """The entity's version after this event (entity-state events), else ``None``."""
        return None


# orders -------------------------------------------------------------------------------------


class OrderCreated(EventPayload):
    """A new order, in full."""

    event_name = "order.created"

    order: Order

    def entity_id(self) -> str:
        return self.order.id

    def entity_version(self) -> int | None:
        return self.order.version


class OrderStatusChanged(EventPayload):
    """An order moved to a new status (``from_status`` is None when the sender does not know it)."""

    event_name = "order.status_changed"

    order_id: OrderId
    version: Version
    from_status: OrderStatus | None = None
    to_status: OrderStatus
    changed_at: Timestamp
    reason: ShortText | None = None

    def entity_id(self) -> str:
        return self.order_id

    def entity_version(self) -> int | None:
        return self.version


class OrderCancelled(EventPayload):
    """An order was cancelled."""

    event_name = "order.cancelled"

    order_id: OrderId
    version: Version
    reason: ShortText
    cancelled_at: Timestamp
    cancelled_by: ShortText | None = None

    def entity_id(self) -> str:
        return self.order_id

    def entity_version(self) -> int | None:
        return self.version


# shipments ----------------------------------------------------------------------------------


class ShipmentDispatched(EventPayload):
    """A shipment left the warehouse, in full (carrier, tracking, lines)."""

    event_name = "shipment.dispatched"

    shipment: Shipment

    def entity_id(self) -> str:
        return self.shipment.id

    def entity_version(self) -> int | None:
        return self.shipment.version


class ShipmentDelivered(EventPayload):
    """The carrier delivered a shipment."""

    event_name = "shipment.delivered"

    shipment_id: ShipmentId
    order_id: OrderId
    version: Version
    delivered_at: Timestamp
    signed_by: ShortText | None = None

    def entity_id(self) -> str:
        return self.shipment_id

    def entity_version(self) -> int | None:
        return self.version


class ShipmentExceptionRaised(EventPayload):
    """The carrier reported a problem with a shipment (delay, damage, loss …)."""

    event_name = "shipment.exception"

    shipment_id: ShipmentId
    order_id: OrderId
    version: Version
    code: ShipmentExceptionCode
    description: LongText | None = None
    occurred_at: Timestamp

    def entity_id(self) -> str:
        return self.shipment_id

    def entity_version(self) -> int | None:
        return self.version


# returns ------------------------------------------------------------------------------------


class ReturnRequested(EventPayload):
    """A customer asked to return lines of an order, in full."""

    event_name = "return.requested"

    rma: ReturnAuthorization

    def entity_id(self) -> str:
        return self.rma.id

    def entity_version(self) -> int | None:
        return self.rma.version


class ReturnAuthorized(EventPayload):
    """A return was authorized; the customer may send the goods."""

    event_name = "return.authorized"

    rma_id: ReturnId
    order_id: OrderId
    version: Version
    authorized_at: Timestamp
    expires_at: Timestamp | None = None
    label_reference: ShortText | None = None

    def entity_id(self) -> str:
        return self.rma_id

    def entity_version(self) -> int | None:
        return self.version


class ReceivedLine(CanonicalModel):
    """Units of one SKU that arrived back."""

    sku: Sku
    quantity: Quantity


class ReturnReceived(EventPayload):
    """Returned goods arrived at a location."""

    event_name = "return.received"

    rma_id: ReturnId
    order_id: OrderId
    version: Version
    location: LocationCode
    lines: list[ReceivedLine] = Field(min_length=1, max_length=1000)
    received_at: Timestamp

    def entity_id(self) -> str:
        return self.rma_id

    def entity_version(self) -> int | None:
        return self.version


class InspectedLine(CanonicalModel):
    """The inspection result for one returned SKU."""

    sku: Sku
    result: InspectionResult


class ReturnInspected(EventPayload):
    """Returned goods were inspected; the result decides restock and refund."""

    event_name = "return.inspected"

    rma_id: ReturnId
    version: Version
    lines: list[InspectedLine] = Field(min_length=1, max_length=1000)
    inspected_at: Timestamp

    def entity_id(self) -> str:
        return self.rma_id

    def entity_version(self) -> int | None:
        return self.version


# refunds ------------------------------------------------------------------------------------


class RefundRequested(EventPayload):
    """A refund was requested, in full."""

    event_name = "refund.requested"

    refund: Refund

    def entity_id(self) -> str:
        return self.refund.id

    def entity_version(self) -> int | None:
        return self.refund.version


class RefundApproved(EventPayload):
    """A refund was approved (automatically by policy or by a person)."""

    event_name = "refund.approved"

    refund_id: RefundId
    version: Version
    amount: Money
    approved_by: ShortText
    approved_at: Timestamp

    def entity_id(self) -> str:
        return self.refund_id

    def entity_version(self) -> int | None:
        return self.version


class RefundRejected(EventPayload):
    """A refund was rejected."""

    event_name = "refund.rejected"

    refund_id: RefundId
    version: Version
    reason: ShortText
    rejected_by: ShortText | None = None
    rejected_at: Timestamp

    def entity_id(self) -> str:
        return self.refund_id

    def entity_version(self) -> int | None:
        return self.version


class RefundCompleted(EventPayload):
    """The payment service paid the refund out."""

    event_name = "refund.completed"

    refund_id: RefundId
    version: Version
    amount: Money
    payment_reference: ShortText
    completed_at: Timestamp

    def entity_id(self) -> str:
        return self.refund_id

    def entity_version(self) -> int | None:
        return self.version


class RefundFailed(EventPayload):
    """Paying the refund out failed; ``retryable`` says whether trying again may help."""

    event_name = "refund.failed"

    refund_id: RefundId
    version: Version
    reason: LongText
    retryable: bool
    failed_at: Timestamp

    def entity_id(self) -> str:
        return self.refund_id

    def entity_version(self) -> int | None:
        return self.version


# inventory ----------------------------------------------------------------------------------


class InventoryAdjusted(EventPayload):
    """Stock of a SKU at a location changed by a signed delta (apply once per adjustment id)."""

    event_name = "inventory.adjusted"
    kind = EventKind.DELTA

    adjustment: InventoryAdjustment

    def entity_id(self) -> str:
        return self.adjustment.key


class InventoryPositionReported(EventPayload):
    """A system reported the full stock position of a SKU at a location."""

    event_name = "inventory.position_reported"

    position: InventoryPosition
    reported_by: ShortText

    def entity_id(self) -> str:
        return self.position.key

    def entity_version(self) -> int | None:
        return self.position.version


# cases --------------------------------------------------------------------------------------


class CaseOpened(EventPayload):
    """A service case was opened, in full."""

    event_name = "case.opened"

    case: ServiceCase

    def entity_id(self) -> str:
        return self.case.id

    def entity_version(self) -> int | None:
        return self.case.version


class CaseUpdated(EventPayload):
    """A service case changed status, priority or assignee, or got a note."""

    event_name = "case.updated"

    case_id: CaseId
    version: Version
    status: CaseStatus
    priority: CasePriority | None = None
    assignee: ShortText | None = None
    note: LongText | None = None
    updated_at: Timestamp

    def entity_id(self) -> str:
        return self.case_id

    def entity_version(self) -> int | None:
        return self.version


# customers ----------------------------------------------------------------------------------


class CustomerUpdated(EventPayload):
    """A customer's master data changed; the full new state."""

    event_name = "customer.updated"

    customer: Customer

    def entity_id(self) -> str:
        return self.customer.id

    def entity_version(self) -> int | None:
        return self.customer.version


class CustomerConsentChanged(EventPayload):
    """A customer granted or withdrew consent for one contact channel."""

    event_name = "customer.consent_changed"

    customer_id: CustomerId
    version: Version
    channel: ContactChannel
    granted: bool
    changed_at: Timestamp
    source: ShortText

    def entity_id(self) -> str:
        return self.customer_id

    def entity_version(self) -> int | None:
        return self.version


# finance ------------------------------------------------------------------------------------


class _Posted(EventPayload):
    posting_id: PostingId
    version: Version
    document_number: ShortText
    customer_id: CustomerId | None = None
    order_id: OrderId | None = None
    amount: Money
    tax: Money | None = None
    posted_at: Timestamp

    @model_validator(mode="after")
    def _one_currency(self) -> _Posted:
        require_currency(self.event_name, self.amount.currency, (self.tax,))
        return self

    def entity_id(self) -> str:
        return self.posting_id

    def entity_version(self) -> int | None:
        return self.version


class InvoicePosted(_Posted):
    """The ERP posted an invoice."""

    event_name = "invoice.posted"


class CreditNotePosted(_Posted):
    """The ERP posted a credit note (money owed back to the customer)."""

    event_name = "credit_note.posted"

    refund_id: RefundId | None = None
    rma_id: ReturnId | None = None
    reason: ShortText | None = None


# loyalty ------------------------------------------------------------------------------------


class LoyaltyAdjusted(EventPayload):
    """A customer's loyalty points changed by a signed amount (apply once per adjustment id)."""

    event_name = "loyalty.adjusted"
    kind = EventKind.DELTA

    adjustment: LoyaltyAdjustment

    def entity_id(self) -> str:
        return self.adjustment.customer_id


# registry -----------------------------------------------------------------------------------

_PAYLOADS: tuple[type[EventPayload], ...] = (
    OrderCreated,
    OrderStatusChanged,
    OrderCancelled,
    ShipmentDispatched,
    ShipmentDelivered,
    ShipmentExceptionRaised,
    ReturnRequested,
    ReturnAuthorized,
    ReturnReceived,
    ReturnInspected,
    RefundRequested,
    RefundApproved,
    RefundRejected,
    RefundCompleted,
    RefundFailed,
    InventoryAdjusted,
    InventoryPositionReported,
    CaseOpened,
    CaseUpdated,
    CustomerUpdated,
    CustomerConsentChanged,
    InvoicePosted,
    CreditNotePosted,
    LoyaltyAdjusted,
)


def event_type_of(payload: type[EventPayload] | EventPayload) -> str:
    """Full event type name of a payload class or instance, e.g. ``retailsync.order.created``."""
    return f"{EVENT_TYPE_PREFIX}{payload.event_name}"


def dataschema_uri(event_type: str, version: int) -> str:
    """``urn:retailsync:schema:<type>:<version>``, the CloudEvents ``dataschema`` of a type."""
    return f"{DATASCHEMA_PREFIX}{event_type}:{version}"


@dataclass(frozen=True)
class EventSpec:
    """One catalogue entry: type name, payload model, schema version and kind."""

    event_type: str
    payload: type[EventPayload]
    version: int
    kind: EventKind

    @property
    def name(self) -> str:
        """The type name without the ``retailsync.`` prefix."""
        return self.event_type.removeprefix(EVENT_TYPE_PREFIX)

    @property
    def dataschema(self) -> str:
        """The ``dataschema`` URI events of this type carry."""
        return dataschema_uri(self.event_type, self.version)

    @property
    def description(self) -> str:
        """First line of the payload's docstring."""
        return (self.payload.__doc__ or "").strip().splitlines()[0]


def _build_catalogue() -> Mapping[str, EventSpec]:
    catalogue: dict[str, EventSpec] = {}
    for payload in _PAYLOADS:
        event_type = event_type_of(payload)
        if event_type in catalogue:
            raise RuntimeError(f"event type {event_type} is listed twice in the catalogue")
        catalogue[event_type] = EventSpec(
            event_type=event_type,
            payload=payload,
            version=payload.schema_version,
            kind=payload.kind,
        )
    return MappingProxyType(catalogue)


EVENT_CATALOGUE: Mapping[str, EventSpec] = _build_catalogue()
"""Full event type name -> :class:`EventSpec`, in catalogue order."""


def event_spec(event_type: str) -> EventSpec:
    """The catalogue entry of ``event_type``; :class:`UnknownEventType` when there is none."""
    try:
        return EVENT_CATALOGUE[event_type]
    except KeyError:
        raise UnknownEventType(event_type, list(EVENT_CATALOGUE)) from None


def build_event(
    payload: EventPayload,
    *,
    source: str,
    subject: str | None = None,
    correlationid: str | None = None,
    causationid: str | None = None,
    id: str | None = None,
    time: datetime | None = None,
) -> CloudEvent:
    """Wrap ``payload`` in a CloudEvent with type, dataschema, partition key and version set.

    ``subject`` and ``partitionkey`` default to the payload's entity id, so all events of one
    entity keep their order; ``entityversion`` is the entity's version for state events.
    """
    spec = event_spec(event_type_of(payload))
    if type(payload) is not spec.payload:
        raise EventTypeMismatch(
            f"{type(payload).__name__} is not the registered payload of {spec.event_type} "
            f"({spec.payload.__name__})"
        )
    entity_id = payload.entity_id()
    return CloudEvent.new(
        type=spec.event_type,
        source=source,
        subject=subject if subject is not None else entity_id,
        data=payload.model_dump(mode="json"),
        partitionkey=entity_id,
        correlationid=correlationid,
        causationid=causationid,
        entityversion=payload.entity_version(),
        dataschema=spec.dataschema,
        id=id,
        time=time,
    )


def _problems(error: ValidationError) -> list[tuple[str, str]]:
    return [
        (".".join(str(part) for part in item["loc"]) or "(data)", item["msg"])
        for item in error.errors(include_url=False)
    ]


def parse_event(event: CloudEvent) -> EventPayload:
    """The typed payload of ``event``; :class:`EventPayloadInvalid` names each wrong field."""
    spec = event_spec(event.type)
    if event.dataschema is not None and event.dataschema != spec.dataschema:
        raise EventPayloadInvalid(
            event.type,
            [("dataschema", f"{event.dataschema!r} is not the supported {spec.dataschema!r}")],
        )
    try:
        return spec.payload.model_validate(event.data)
    except ValidationError as exc:
        raise EventPayloadInvalid(event.type, _problems(exc)) from None


P = TypeVar("P", bound=EventPayload)


def parse_payload(event: CloudEvent, payload_type: type[P]) -> P:
    """Like :func:`parse_event`, but insists the event is of ``payload_type``'s event type."""
    expected = event_type_of(payload_type)
    if event.type != expected:
        raise EventTypeMismatch(
            f"event {event.id} is a {event.type}, not a {expected} ({payload_type.__name__})"
        )
    payload = parse_event(event)
    assert isinstance(payload, payload_type)
    return payload
