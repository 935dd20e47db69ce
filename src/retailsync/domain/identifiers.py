"""Canonical ids: ``<prefix>_<ULID>``, one prefix per entity kind (``ord_01J…``, ``cus_01J…``).

A ULID is 26 Crockford base-32 characters: 48 bits of milliseconds then 80 random bits, so ids
sort by creation time. :func:`derive_id` makes the same id from the same external key every
time, for mappings that must be idempotent without a lookup. Each system's own id for an entity
is kept in the cross-reference table, never in the canonical id.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from retailsync.domain.errors import InvalidIdentifier

__all__ = [
    "ID_PATTERNS",
    "AdjustmentId",
    "CaseId",
    "CustomerId",
    "EntityKind",
    "IdOf",
    "LoyaltyAdjustmentId",
    "OrderId",
    "PostingId",
    "RefundId",
    "ReturnId",
    "ShipmentId",
    "derive_id",
    "is_valid_id",
    "kind_of",
    "new_id",
    "validate_id",
]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ULID_BODY = "[0-9A-HJKMNP-TV-Z]{26}"


class EntityKind(StrEnum):
    """Entity kinds with a canonical id; the value is the kind's name in cross-references."""

    CUSTOMER = "customer"
    ORDER = "order"
    SHIPMENT = "shipment"
    RETURN = "return"
    REFUND = "refund"
    CASE = "case"
    POSTING = "posting"
    INVENTORY_ADJUSTMENT = "inventory_adjustment"
    LOYALTY_ADJUSTMENT = "loyalty_adjustment"

    @property
    def prefix(self) -> str:
        """The id prefix of this kind, e.g. ``ord``."""
        return _PREFIXES[self]


_PREFIXES: dict[EntityKind, str] = {
    EntityKind.CUSTOMER: "cus",
    EntityKind.ORDER: "ord",
    EntityKind.SHIPMENT: "shp",
    EntityKind.RETURN: "rma",
    EntityKind.REFUND: "ref",
    EntityKind.CASE: "case",
    EntityKind.POSTING: "pst",
    EntityKind.INVENTORY_ADJUSTMENT: "adj",
    EntityKind.LOYALTY_ADJUSTMENT: "loy",
}
_KIND_BY_PREFIX = {prefix: kind for kind, prefix in _PREFIXES.items()}

ID_PATTERNS: dict[EntityKind, str] = {
    kind: f"^{prefix}_{_ULID_BODY}$" for kind, prefix in _PREFIXES.items()
}
"""Regular expression (JSON Schema ``pattern``) of each kind's ids."""
_ID_RES = {kind: re.compile(pattern) for kind, pattern in ID_PATTERNS.items()}
_ANY_ID = re.compile(f"^([a-z]+)_{_ULID_BODY}$")


def _encode(value: int) -> str:
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(
    kind: EntityKind, *, milliseconds: int | None = None, entropy: bytes | None = None
) -> str:
    """A fresh id such as ``ord_01J9Z3K6Q8M4W2X7A5B0C1D2E3``; time and entropy can be pinned."""
    millis = int(time.time() * 1000) if milliseconds is None else milliseconds
    if not 0 <= millis < 2**48:
        raise ValueError(f"milliseconds must fit in 48 bits, got {millis}")
    random_bits = os.urandom(10) if entropy is None else entropy
    if len(random_bits) != 10:
        raise ValueError(f"entropy must be exactly 10 bytes, got {len(random_bits)}")
    return f"{kind.prefix}_{_encode((millis << 80) | int.from_bytes(random_bits, 'big'))}"


def derive_id(kind: EntityKind, *key: str) -> str:
    """The same id for the same key, e.g. ``derive_id(EntityKind.ORDER, "shopify", "4501")``."""
    if not key:
        raise ValueError("derive_id needs at least one key part")
    digest = hashlib.sha256("\x1f".join((kind.value, *key)).encode()).digest()
    return f"{kind.prefix}_{_encode(int.from_bytes(digest[:16], 'big'))}"


def is_valid_id(value: str, kind: EntityKind) -> bool:
    """True when ``value`` is a well-formed id of ``kind``."""
    return bool(_ID_RES[kind].match(value))


def validate_id(value: str, kind: EntityKind) -> str:
    """Return ``value`` when it is a well-formed id of ``kind``, else raise InvalidIdentifier."""
    if not isinstance(value, str) or not _ID_RES[kind].match(value):
        raise InvalidIdentifier(
            f"{value!r} is not a valid {kind.value} id: expected '{kind.prefix}_' followed by a "
            f"26-character ULID, e.g. {new_id(kind, milliseconds=0, entropy=bytes(10))!r}"
        )
    return value


def kind_of(value: str) -> EntityKind:
    """The entity kind an id belongs to, from its prefix."""
    match = _ANY_ID.match(value)
    if not match or match.group(1) not in _KIND_BY_PREFIX:
        raise InvalidIdentifier(
            f"{value!r} is not a canonical id; known prefixes are "
            f"{', '.join(sorted(_KIND_BY_PREFIX))}"
        )
    return _KIND_BY_PREFIX[match.group(1)]


@dataclass(frozen=True)
class IdOf:
    """Pydantic annotation: ``Annotated[str, IdOf(EntityKind.ORDER)]`` accepts order ids only."""

    kind: EntityKind

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(
            lambda value: validate_id(value, self.kind), handler(source)
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = ID_PATTERNS[self.kind]
        json_schema["description"] = f"canonical {self.kind.value} id ({self.kind.prefix}_<ULID>)"
        return json_schema


CustomerId = Annotated[str, IdOf(EntityKind.CUSTOMER)]
OrderId = Annotated[str, IdOf(EntityKind.ORDER)]
ShipmentId = Annotated[str, IdOf(EntityKind.SHIPMENT)]
ReturnId = Annotated[str, IdOf(EntityKind.RETURN)]
RefundId = Annotated[str, IdOf(EntityKind.REFUND)]
CaseId = Annotated[str, IdOf(EntityKind.CASE)]
PostingId = Annotated[str, IdOf(EntityKind.POSTING)]
AdjustmentId = Annotated[str, IdOf(EntityKind.INVENTORY_ADJUSTMENT)]
LoyaltyAdjustmentId = Annotated[str, IdOf(EntityKind.LOYALTY_ADJUSTMENT)]
