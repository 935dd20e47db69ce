"""Canonical ids: one prefix per entity kind, ULID body, validated wherever they are used."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from retailsync.domain import EntityKind, InvalidIdentifier, derive_id, kind_of, new_id, validate_id
from retailsync.domain.identifiers import ID_PATTERNS, OrderId, is_valid_id

EXPECTED_PREFIXES = {
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


@pytest.mark.parametrize("kind", list(EntityKind))
def test_new_ids_carry_the_kind_prefix_and_validate(kind: EntityKind) -> None:
    value = new_id(kind)
    assert value.startswith(f"{EXPECTED_PREFIXES[kind]}_")
    assert len(value) == len(kind.prefix) + 1 + 26
    assert validate_id(value, kind) == value
    assert kind_of(value) is kind
    assert set(ID_PATTERNS) == set(EntityKind)


@given(st.lists(st.integers(min_value=0, max_value=2**48 - 1), min_size=2, max_size=20))
def test_ids_sort_by_creation_time(moments: list[int]) -> None:
    values = [new_id(EntityKind.ORDER, milliseconds=ms) for ms in sorted(set(moments))]
    assert values == sorted(values)


def test_derived_ids_are_stable_and_distinct() -> None:
    first = derive_id(EntityKind.ORDER, "shopify", "4501")
    assert first == derive_id(EntityKind.ORDER, "shopify", "4501")
    assert first != derive_id(EntityKind.ORDER, "shopify", "4502")
    assert first.removeprefix("ord_") != derive_id(EntityKind.REFUND, "shopify", "4501")[4:]
    assert is_valid_id(first, EntityKind.ORDER)


@pytest.mark.parametrize(
    "value",
    [
        "cus_01J9Z3K6Q8M4W2X7A5B0C1D2E3",  # wrong kind
        "ord_01J9Z3K6Q8M4W2X7A5B0C1D2E",  # too short
        "ord_01J9Z3K6Q8M4W2X7A5B0C1D2EU",  # U is not Crockford base 32
        "ord-01J9Z3K6Q8M4W2X7A5B0C1D2E3",
        "ORD_01J9Z3K6Q8M4W2X7A5B0C1D2E3",
        "",
    ],
)
def test_malformed_order_ids_are_refused(value: str) -> None:
    with pytest.raises(InvalidIdentifier, match="is not a valid order id"):
        validate_id(value, EntityKind.ORDER)

    class Holder(BaseModel):
        order_id: OrderId

    with pytest.raises(ValidationError, match="ord_"):
        Holder(order_id=value)


def test_unknown_prefix_has_no_kind() -> None:
    with pytest.raises(InvalidIdentifier, match="known prefixes"):
        kind_of("xyz_01J9Z3K6Q8M4W2X7A5B0C1D2E3")
