"""Legacy CSV rows mapped to canonical events, one row at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from retailsync.connectors.batch.config import BatchSettings, load_batch_settings
from retailsync.connectors.batch.errors import BatchConfigError, RowRejected
from retailsync.connectors.batch.mapping import (
    FileKind,
    inventory_row_to_event,
    kind_of_header,
    order_status_row_to_event,
)
from retailsync.domain.catalogue import InventoryPositionReported, OrderStatusChanged, parse_event
from retailsync.domain.identifiers import EntityKind, derive_id
from retailsync.domain.orders import OrderStatus

SETTINGS = BatchSettings(
    drop_folder=Path("/tmp/unused"),
    order_status_map={"SHIPPED": OrderStatus.SHIPPED, "despatched": OrderStatus.SHIPPED},
)


def test_header_decides_the_kind() -> None:
    assert kind_of_header(["sku", "location", "on_hand", "as_of"]) is FileKind.INVENTORY_SNAPSHOT
    assert kind_of_header([" Order_Ref", "status", "changed_at "]) is FileKind.ORDER_STATUS
    with pytest.raises(RowRejected, match="unknown header"):
        kind_of_header(["sku", "qty"])


def test_inventory_row() -> None:
    event = inventory_row_to_event(
        {"sku": "SKU-1", "location": "WH1", "on_hand": "12", "as_of": "2025-03-01T08:00:00"},
        SETTINGS,
    )
    payload = parse_event(event)
    assert isinstance(payload, InventoryPositionReported)
    assert (payload.position.sku, payload.position.on_hand) == ("SKU-1", 12)
    assert payload.position.as_of.tzinfo is not None
    assert event.partitionkey == "SKU-1@WH1"


def test_order_status_row_uses_the_status_map() -> None:
    event = order_status_row_to_event(
        {"order_ref": "SO-1", "status": "Despatched", "changed_at": "2025-03-01T08:00:00Z"},
        SETTINGS,
    )
    payload = parse_event(event)
    assert isinstance(payload, OrderStatusChanged)
    assert payload.to_status is OrderStatus.SHIPPED
    assert payload.order_id == derive_id(EntityKind.ORDER, "legacy", "SO-1")


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (
            {"sku": "SKU-1", "location": "WH1", "on_hand": "twelve", "as_of": "2025-03-01"},
            "on_hand",
        ),
        ({"sku": "", "location": "WH1", "on_hand": "1", "as_of": "2025-03-01"}, "sku is empty"),
        ({"sku": "SKU 1", "location": "WH1", "on_hand": "1", "as_of": "2025-03-01"}, "sku"),
        ({"sku": "SKU-1", "location": "WH1", "on_hand": "1", "as_of": "yesterday"}, "as_of"),
    ],
)
def test_bad_inventory_rows_say_why(row: dict[str, str], reason: str) -> None:
    with pytest.raises(RowRejected, match=reason):
        inventory_row_to_event(row, SETTINGS)


def test_unknown_status_lists_the_known_ones() -> None:
    with pytest.raises(RowRejected, match="not a known order status"):
        order_status_row_to_event(
            {"order_ref": "SO-1", "status": "lost", "changed_at": "2025-03-01T08:00:00Z"}, SETTINGS
        )


def test_config_error_names_the_key() -> None:
    with pytest.raises(BatchConfigError, match=r"batch\.poll_interval_seconds"):
        load_batch_settings({"drop_folder": "/tmp/x", "poll_interval_seconds": 0})
    with pytest.raises(BatchConfigError, match=r"batch\.order_status_map\.done"):
        load_batch_settings({"drop_folder": "/tmp/x", "order_status_map": {"done": "finished"}})
    with pytest.raises(BatchConfigError, match=r"batch\.drop_folder"):
        load_batch_settings({})
