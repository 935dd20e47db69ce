"""Legacy CSV rows -> canonical events, as pure functions (one row in, one event or a reason).

Two file kinds, told apart by their header line:

* inventory snapshot ``sku,location,on_hand,as_of`` -> ``inventory.position_reported``
* order status ``order_ref,status,changed_at`` -> ``order.status_changed``

Times are ISO 8601; a time without an offset is taken as UTC. Event ids are derived from the
row's content, so the same row delivered again -- in the same file or a later one -- is the
same event and the bus stores it once. Versions are the row's time in epoch seconds, so a
consumer can ignore an older snapshot that arrives after a newer one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import ValidationError

from retailsync.connectors.batch.config import BatchSettings
from retailsync.connectors.batch.errors import RowRejected
from retailsync.domain.catalogue import (
    InventoryPositionReported,
    OrderStatusChanged,
    build_event,
)
from retailsync.domain.events import CloudEvent
from retailsync.domain.identifiers import EntityKind, derive_id
from retailsync.domain.inventory import InventoryPosition

EVENT_SOURCE = "retailsync/connectors/batch"


class FileKind(StrEnum):
    """What a drop-folder file holds, recognised from its header."""

    INVENTORY_SNAPSHOT = "inventory_snapshot"
    ORDER_STATUS = "order_status"


HEADERS: dict[FileKind, tuple[str, ...]] = {
    FileKind.INVENTORY_SNAPSHOT: ("sku", "location", "on_hand", "as_of"),
    FileKind.ORDER_STATUS: ("order_ref", "status", "changed_at"),
}


def kind_of_header(header: list[str]) -> FileKind:
    """The file kind for a header line; :class:`RowRejected` if it is neither."""
    normalised = tuple(column.strip().lower() for column in header)
    for kind, columns in HEADERS.items():
        if normalised == columns:
            return kind
    expected = " or ".join(",".join(columns) for columns in HEADERS.values())
    raise RowRejected(f"unknown header {','.join(normalised)!r}: expected {expected}")


def parse_time(value: str, column: str) -> datetime:
    """An aware datetime from ISO 8601 (no offset means UTC)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise RowRejected(
            f"{column} {value!r} is not an ISO 8601 time such as 2025-03-01T12:00:00Z"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _required(row: Mapping[str, str], column: str) -> str:
    value = (row.get(column) or "").strip()
    if not value:
        raise RowRejected(f"{column} is empty")
    return value


def _event_id(kind: FileKind, row: Mapping[str, str]) -> str:
    canonical = "\x1f".join((kind.value, *(row[c].strip() for c in HEADERS[kind])))
    return f"batch:{hashlib.sha256(canonical.encode()).hexdigest()[:32]}"


def _version(moment: datetime) -> int:
    return max(1, int(moment.timestamp()))


def inventory_row_to_event(row: Mapping[str, str], settings: BatchSettings) -> CloudEvent:
    """``sku,location,on_hand,as_of`` -> ``inventory.position_reported``."""
    sku = _required(row, "sku")
    location = _required(row, "location")
    raw_on_hand = _required(row, "on_hand")
    try:
        on_hand = int(raw_on_hand)
    except ValueError:
        raise RowRejected(f"on_hand {raw_on_hand!r} is not a whole number") from None
    as_of = parse_time(_required(row, "as_of"), "as_of")
    try:
        # A snapshot reports on-hand only; reservations and allocations come from their owners.
        position = InventoryPosition(
            sku=sku,
            location=location,
            on_hand=on_hand,
            reserved=0,
            allocated=0,
            in_transit=0,
            as_of=as_of,
            version=_version(as_of),
        )
    except ValidationError as exc:
        raise RowRejected(_first_problem(exc)) from None
    payload = InventoryPositionReported(position=position, reported_by=settings.reported_by)
    return build_event(
        payload,
        source=EVENT_SOURCE,
        id=_event_id(FileKind.INVENTORY_SNAPSHOT, row),
        time=as_of,
    )


def order_status_row_to_event(row: Mapping[str, str], settings: BatchSettings) -> CloudEvent:
    """``order_ref,status,changed_at`` -> ``order.status_changed``.

    The file carries only the new status, so ``from_status`` is left unknown (None); the
    version (the change time) orders it against other reports.
    """
    order_ref = _required(row, "order_ref")
    raw_status = _required(row, "status")
    status = settings.order_status_map.get(raw_status.lower())
    if status is None:
        known = ", ".join(sorted(settings.order_status_map))
        raise RowRejected(f"status {raw_status!r} is not a known order status ({known})")
    changed_at = parse_time(_required(row, "changed_at"), "changed_at")
    try:
        payload = OrderStatusChanged(
            order_id=derive_id(EntityKind.ORDER, settings.order_reference_system, order_ref),
            version=_version(changed_at),
            from_status=None,
            to_status=status,
            changed_at=changed_at,
            reason=f"reported by legacy batch file for order {order_ref}"[:200],
        )
    except ValidationError as exc:
        raise RowRejected(_first_problem(exc)) from None
    return build_event(
        payload, source=EVENT_SOURCE, id=_event_id(FileKind.ORDER_STATUS, row), time=changed_at
    )


def row_to_event(kind: FileKind, row: Mapping[str, str], settings: BatchSettings) -> CloudEvent:
    """The event for one row of a file of ``kind``; :class:`RowRejected` with the reason."""
    if kind is FileKind.INVENTORY_SNAPSHOT:
        return inventory_row_to_event(row, settings)
    return order_status_row_to_event(row, settings)


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}"
