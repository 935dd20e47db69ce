"""Building blocks shared by every canonical model: base class and constrained field types."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from retailsync.domain.errors import CurrencyMismatch
from retailsync.domain.money import Money

__all__ = [
    "CanonicalModel",
    "CountryCode",
    "HttpUrl",
    "LocationCode",
    "LongText",
    "NonZero",
    "NonZeroInt",
    "Quantity",
    "ShortText",
    "Sku",
    "Timestamp",
    "Version",
    "require_currency",
]


class CanonicalModel(BaseModel):
    """Base of every canonical model: immutable, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


Sku = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")]
"""A stock keeping unit: letters, digits and ``. _ / -``, at most 64 characters."""

LocationCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")]
"""A stock location (warehouse, store, bin) code, same shape as a SKU."""

CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
"""ISO 3166-1 alpha-2 country code, e.g. ``DE``."""

HttpUrl = Annotated[
    str,
    StringConstraints(pattern=r"^https?://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?(/[^\s]{0,1000})?$"),
]
"""An http(s) URL such as a carrier tracking page."""

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(min_length=1, max_length=4000)]

Quantity = Annotated[int, Field(ge=1, le=1_000_000)]
"""A positive number of units."""

Version = Annotated[int, Field(ge=1)]
"""An entity version: 1 when created, bumped by every change; orders out-of-order events."""

Timestamp = AwareDatetime
"""A timezone-aware instant (RFC 3339 in JSON)."""


@dataclass(frozen=True)
class NonZero:
    """Pydantic annotation: the integer must not be zero (a delta that changes nothing)."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(_not_zero, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["not"] = {"const": 0}
        return json_schema


def _not_zero(value: int) -> int:
    if value == 0:
        raise ValueError("must not be zero: a delta of 0 changes nothing; leave it out instead")
    return value


NonZeroInt = Annotated[int, Field(ge=-1_000_000_000, le=1_000_000_000), NonZero()]
"""A signed change such as an inventory delta or loyalty points; never zero."""


def require_currency(owner: str, currency: str, amounts: Iterable[Money | None]) -> None:
    """Raise :class:`CurrencyMismatch` unless every given amount is in ``currency``."""
    for amount in amounts:
        if amount is not None and amount.currency != currency:
            raise CurrencyMismatch(currency, amount.currency, f"amounts of {owner}")
