"""Small converters shared by the Tryton mappings (pure functions)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from retailsync.domain.identifiers import EntityKind, derive_id
from retailsync.domain.money import Money

SYSTEM = "tryton"
"""The system name of the ERP in the cross-reference table and in event sources."""


def aware(stamp: dt.datetime | None) -> dt.datetime | None:
    """Tryton keeps naive UTC datetimes; the canonical model wants them timezone-aware."""
    if stamp is None:
        return None
    return stamp.replace(tzinfo=dt.UTC) if stamp.tzinfo is None else stamp.astimezone(dt.UTC)


def last_change(record: Mapping[str, Any]) -> dt.datetime:
    """When a record last changed: ``write_date``, or ``create_date`` before its first write."""
    stamp = record.get("write_date") or record.get("create_date")
    if not isinstance(stamp, dt.datetime):
        raise ValueError(f"record {record.get('id')} has neither write_date nor create_date")
    return stamp


def money(amount: Decimal | int | None, currency: str) -> Money:
    """ERP amount (Decimal, possibly with more decimals than the currency) as Money."""
    value = Decimal(amount or 0)
    return Money.of(value.quantize(Decimal(1).scaleb(-Money.zero(currency).decimals)), currency)


def derived_id(kind: EntityKind, model: str, record_id: int) -> str:
    """The canonical id of an ERP record the hub did not create (stable for ever)."""
    return derive_id(kind, SYSTEM, model, str(record_id))


def reference_of(value: Any) -> tuple[str, int] | None:
    """``"sale.line,42"`` -> ``("sale.line", 42)``; anything else -> ``None``."""
    if not isinstance(value, str) or "," not in value:
        return None
    model, _, raw_id = value.partition(",")
    try:
        return model, int(raw_id)
    except ValueError:
        return None
