"""The canonical retail model: entities, value objects, lifecycles, events and policies.

Pure Python and Pydantic only: no I/O, no framework, no imports from any other
``retailsync`` package. Everything else in the hub imports from here, never the reverse.

Where things live: ``money`` and ``currencies`` (Money, ISO 4217 minor units),
``identifiers`` (canonical ids ``ord_<ULID>`` …), ``lifecycle`` (the generic transition
table), ``base`` (shared field types), one module per entity (``customers``, ``orders``,
``shipments``, ``returns``, ``refunds``, ``inventory``, ``cases``, ``finance``, ``loyalty``),
``models`` (the list of published models), ``events`` (the CloudEvents envelope),
``catalogue`` (event payloads and their registry) and ``errors``.
"""

from retailsync.domain.base import CanonicalModel
from retailsync.domain.cases import CASE_TRANSITIONS, CasePriority, CaseStatus, ServiceCase
from retailsync.domain.catalogue import (
    EVENT_CATALOGUE,
    EventKind,
    EventPayload,
    EventSpec,
    build_event,
    dataschema_uri,
    event_spec,
    event_type_of,
    parse_event,
    parse_payload,
)
from retailsync.domain.currencies import CURRENCY_MINOR_UNITS
from retailsync.domain.customers import (
    AccountStatus,
    Address,
    AddressRole,
    Consent,
    ContactChannel,
    ContactPreferences,
    Customer,
)
from retailsync.domain.errors import (
    CurrencyMismatch,
    DomainError,
    EventPayloadInvalid,
    EventTypeMismatch,
    FloatNotAllowed,
    IllegalCaseTransition,
    IllegalOrderTransition,
    IllegalPostingTransition,
    IllegalRefundTransition,
    IllegalReturnTransition,
    IllegalShipmentTransition,
    IllegalTransition,
    InvalidIdentifier,
    InvalidMoney,
    MoneyError,
    UnknownCurrency,
    UnknownEventType,
)
from retailsync.domain.events import EVENT_TYPE_PREFIX, CloudEvent
from retailsync.domain.finance import (
    POSTING_TRANSITIONS,
    FinancialPosting,
    PostingKind,
    PostingStatus,
)
from retailsync.domain.identifiers import EntityKind, derive_id, kind_of, new_id, validate_id
from retailsync.domain.inventory import AdjustmentReason, InventoryAdjustment, InventoryPosition
from retailsync.domain.lifecycle import Lifecycle
from retailsync.domain.loyalty import LoyaltyAdjustment, LoyaltyReason
from retailsync.domain.models import CANONICAL_MODELS
from retailsync.domain.money import Money
from retailsync.domain.orders import ORDER_TRANSITIONS, Order, OrderLine, OrderStatus
from retailsync.domain.refunds import REFUND_TRANSITIONS, Refund, RefundMethod, RefundStatus
from retailsync.domain.returns import (
    RETURN_TRANSITIONS,
    InspectionOutcome,
    InspectionResult,
    ReturnAuthorization,
    ReturnLine,
    ReturnReason,
    ReturnStatus,
)
from retailsync.domain.shipments import (
    SHIPMENT_TRANSITIONS,
    Shipment,
    ShipmentExceptionCode,
    ShipmentLine,
    ShipmentStatus,
)

__all__ = [
    "CANONICAL_MODELS",
    "CASE_TRANSITIONS",
    "CURRENCY_MINOR_UNITS",
    "EVENT_CATALOGUE",
    "EVENT_TYPE_PREFIX",
    "ORDER_TRANSITIONS",
    "POSTING_TRANSITIONS",
    "REFUND_TRANSITIONS",
    "RETURN_TRANSITIONS",
    "SHIPMENT_TRANSITIONS",
    "AccountStatus",
    "Address",
    "AddressRole",
    "AdjustmentReason",
    "CanonicalModel",
    "CasePriority",
    "CaseStatus",
    "CloudEvent",
    "Consent",
    "ContactChannel",
    "ContactPreferences",
    "CurrencyMismatch",
    "Customer",
    "DomainError",
    "EntityKind",
    "EventKind",
    "EventPayload",
    "EventPayloadInvalid",
    "EventSpec",
    "EventTypeMismatch",
    "FinancialPosting",
    "FloatNotAllowed",
    "IllegalCaseTransition",
    "IllegalOrderTransition",
    "IllegalPostingTransition",
    "IllegalRefundTransition",
    "IllegalReturnTransition",
    "IllegalShipmentTransition",
    "IllegalTransition",
    "InspectionOutcome",
    "InspectionResult",
    "InvalidIdentifier",
    "InvalidMoney",
    "InventoryAdjustment",
    "InventoryPosition",
    "Lifecycle",
    "LoyaltyAdjustment",
    "LoyaltyReason",
    "Money",
    "MoneyError",
    "Order",
    "OrderLine",
    "OrderStatus",
    "PostingKind",
    "PostingStatus",
    "Refund",
    "RefundMethod",
    "RefundStatus",
    "ReturnAuthorization",
    "ReturnLine",
    "ReturnReason",
    "ReturnStatus",
    "ServiceCase",
    "Shipment",
    "ShipmentExceptionCode",
    "ShipmentLine",
    "ShipmentStatus",
    "UnknownCurrency",
    "UnknownEventType",
    "build_event",
    "dataschema_uri",
    "derive_id",
    "event_spec",
    "event_type_of",
    "kind_of",
    "new_id",
    "parse_event",
    "parse_payload",
    "validate_id",
]
