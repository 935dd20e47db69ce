"""The list of canonical models that get a published JSON Schema of their own."""

from __future__ import annotations

from pydantic import BaseModel

from retailsync.domain.cases import ServiceCase
from retailsync.domain.customers import Address, ContactPreferences, Customer
from retailsync.domain.finance import FinancialPosting
from retailsync.domain.inventory import InventoryAdjustment, InventoryPosition
from retailsync.domain.loyalty import LoyaltyAdjustment
from retailsync.domain.money import Money
from retailsync.domain.orders import Order, OrderLine
from retailsync.domain.refunds import Refund
from retailsync.domain.returns import InspectionResult, ReturnAuthorization, ReturnLine
from retailsync.domain.shipments import Shipment, ShipmentLine

__all__ = ["CANONICAL_MODELS"]

CANONICAL_MODELS: tuple[type[BaseModel], ...] = (
    Money,
    Address,
    ContactPreferences,
    Customer,
    OrderLine,
    Order,
    ShipmentLine,
    Shipment,
    ReturnLine,
    InspectionResult,
    ReturnAuthorization,
    Refund,
    InventoryPosition,
    InventoryAdjustment,
    ServiceCase,
    FinancialPosting,
    LoyaltyAdjustment,
)
"""Every canonical model, top-level entities and the value objects other systems map to."""
