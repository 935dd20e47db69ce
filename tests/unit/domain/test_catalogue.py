"""The event catalogue: every type registered, events built and parsed back exactly."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retailsync.domain import (
    EVENT_CATALOGUE,
    EVENT_TYPE_PREFIX,
    CloudEvent,
    EntityKind,
    EventKind,
    EventPayloadInvalid,
    EventTypeMismatch,
    Money,
    UnknownEventType,
    build_event,
    event_spec,
    new_id,
    parse_event,
    parse_payload,
)
from retailsync.domain.catalogue import (
    EventPayload,
    InventoryAdjusted,
    OrderCancelled,
    RefundApproved,
    dataschema_uri,
)
from retailsync.domain.inventory import AdjustmentReason, InventoryAdjustment
from retailsync.schemas.strategies import cloud_events, strategy_for

REQUIRED_TYPES = [
    "order.created",
    "order.status_changed",
    "order.cancelled",
    "shipment.dispatched",
    "shipment.delivered",
    "shipment.exception",
    "return.requested",
    "return.authorized",
    "return.received",
    "return.inspected",
    "refund.requested",
    "refund.approved",
    "refund.rejected",
    "refund.completed",
    "refund.failed",
    "inventory.adjusted",
    "inventory.position_reported",
    "case.opened",
    "case.updated",
    "customer.updated",
    "customer.consent_changed",
    "invoice.posted",
    "credit_note.posted",
    "loyalty.adjusted",
]

SPECS = list(EVENT_CATALOGUE.values())
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
PROPERTY = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_catalogue_holds_every_required_type() -> None:
    assert {f"{EVENT_TYPE_PREFIX}{name}" for name in REQUIRED_TYPES} <= set(EVENT_CATALOGUE)
    for event_type, spec in EVENT_CATALOGUE.items():
        assert spec.event_type == event_type
        assert spec.dataschema == f"urn:retailsync:schema:{event_type}:{spec.version}"
        assert spec.description, f"{spec.payload.__name__} needs a docstring"


@pytest.mark.parametrize("spec", SPECS, ids=[s.event_type for s in SPECS])
@PROPERTY
@given(data=st.data())
def test_every_event_type_builds_and_parses_back(spec: Any, data: st.DataObject) -> None:
    payload: EventPayload = data.draw(strategy_for(spec.payload))
    event = build_event(payload, source="urn:retailsync:test", correlationid="corr-1")
    assert event.type == spec.event_type
    assert event.dataschema == spec.dataschema
    assert event.partitionkey == payload.entity_id() == event.subject
    assert event.correlationid == "corr-1"
    if spec.kind is EventKind.STATE:
        assert event.entityversion is not None and event.entityversion >= 1
    else:
        assert event.entityversion is None
        assert payload.adjustment.id  # type: ignore[attr-defined]
    assert parse_event(event) == payload
    assert parse_payload(event, spec.payload) == payload
    wire = CloudEvent.model_validate_json(event.model_dump_json())
    assert wire == event
    assert parse_event(wire) == payload


@pytest.mark.parametrize("spec", SPECS, ids=[s.event_type for s in SPECS])
@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_cloud_event_strategy_covers_every_type(spec: Any, data: st.DataObject) -> None:
    event = data.draw(cloud_events(spec.payload))
    assert event_spec(event.type) is spec


def an_adjustment_event() -> CloudEvent:
    adjustment = InventoryAdjustment(
        id=new_id(EntityKind.INVENTORY_ADJUSTMENT),
        sku="TSHIRT-M",
        location="BER-1",
        delta=-2,
        reason=AdjustmentReason.SOLD,
        occurred_at=NOW,
    )
    return build_event(InventoryAdjusted(adjustment=adjustment), source="urn:wms")


def test_delta_events_partition_by_position_and_carry_the_adjustment_id() -> None:
    event = an_adjustment_event()
    assert event.partitionkey == "TSHIRT-M@BER-1"
    assert event.entityversion is None
    assert event.data["adjustment"]["id"].startswith("adj_")


def test_state_events_carry_the_entity_version() -> None:
    payload = OrderCancelled(
        order_id=new_id(EntityKind.ORDER), version=4, reason="customer asked", cancelled_at=NOW
    )
    event = build_event(payload, source="urn:shop", id="evt-1", time=NOW)
    assert (event.entityversion, event.id, event.time) == (4, "evt-1", NOW)
    assert event.to_json_dict()["data"]["version"] == 4


def test_invalid_data_names_the_type_and_the_field() -> None:
    event = an_adjustment_event()
    broken = event.model_copy(
        update={"data": {"adjustment": {**event.data["adjustment"], "delta": 0}}}
    )
    with pytest.raises(EventPayloadInvalid) as caught:
        parse_event(broken)
    assert "retailsync.inventory.adjusted" in str(caught.value)
    assert "adjustment.delta" in str(caught.value)
    assert caught.value.fields == ["adjustment.delta"]

    missing = event.model_copy(update={"data": {}})
    with pytest.raises(EventPayloadInvalid, match="field 'adjustment'"):
        parse_event(missing)


def test_money_in_event_data_must_not_be_a_float() -> None:
    payload = RefundApproved(
        refund_id=new_id(EntityKind.REFUND),
        version=2,
        amount=Money.of("10.00", "EUR"),
        approved_by="policy",
        approved_at=NOW,
    )
    event = build_event(payload, source="urn:hub")
    data = {**event.data, "amount": {"amount": 10.5, "currency": "EUR"}}
    with pytest.raises(EventPayloadInvalid, match=r"field 'amount.amount'.*float"):
        parse_event(event.model_copy(update={"data": data}))


def test_unknown_types_and_mismatches_are_refused() -> None:
    event = an_adjustment_event()
    with pytest.raises(UnknownEventType, match=r"retailsync\.order\.teleported"):
        parse_event(event.model_copy(update={"type": "retailsync.order.teleported"}))
    with pytest.raises(EventTypeMismatch, match=r"not a retailsync\.order\.cancelled"):
        parse_payload(event, OrderCancelled)
    wrong_version = event.model_copy(update={"dataschema": dataschema_uri(event.type, 99)})
    with pytest.raises(EventPayloadInvalid, match="dataschema"):
        parse_event(wrong_version)
