"""Zendesk tickets and ticket webhooks mapped to canonical cases and events."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from retailsync.connectors.webhook_protocol import WebhookUnmappable
from retailsync.connectors.zendesk.config import ZendeskSettings, load_zendesk_settings
from retailsync.connectors.zendesk.errors import ZendeskConfigError, ZendeskPayloadInvalid
from retailsync.connectors.zendesk.inbound import ZendeskWebhookReceiver
from retailsync.connectors.zendesk.mapping import (
    case_id_for_ticket,
    order_reference,
    ticket_to_case,
    webhook_detail_to_case,
)
from retailsync.domain.cases import CasePriority, CaseStatus
from retailsync.domain.catalogue import CaseOpened, parse_event
from retailsync.domain.identifiers import EntityKind, derive_id

SETTINGS = ZendeskSettings(
    subdomain="acme",
    email="agent@example.com",
    api_token=SecretStr("t"),
    webhook_secret=SecretStr("s"),
    order_field_id=360001,
    order_reference_system="shopify",
)

TICKET = {
    "id": 35436,
    "subject": "Help, my printer is on fire!",
    "description": "The fire is very colorful.",
    "status": "open",
    "priority": "high",
    "requester_id": 20978392,
    "assignee_id": 235323,
    "tags": ["enterprise", "order_1001"],
    "custom_fields": [{"id": 360001, "value": "SO-778"}],
    "via": {"channel": "web"},
    "created_at": "2009-07-20T22:55:29Z",
    "updated_at": "2011-05-05T10:38:52Z",
}


@pytest.mark.parametrize(
    ("zendesk", "canonical"),
    [
        ("new", CaseStatus.NEW),
        ("open", CaseStatus.OPEN),
        ("pending", CaseStatus.PENDING),
        ("hold", CaseStatus.ON_HOLD),
        ("solved", CaseStatus.SOLVED),
        ("closed", CaseStatus.CLOSED),
        ("SOLVED", CaseStatus.SOLVED),
    ],
)
def test_status_table(zendesk: str, canonical: CaseStatus) -> None:
    assert ticket_to_case({**TICKET, "status": zendesk}, SETTINGS).status is canonical


def test_ticket_becomes_case() -> None:
    case = ticket_to_case(TICKET, SETTINGS)
    assert case.id == case_id_for_ticket(35436) == case_id_for_ticket("35436")
    assert case.priority is CasePriority.HIGH
    assert case.subject == "Help, my printer is on fire!"
    assert case.channel == "web"
    assert case.assignee == "235323"
    assert case.tags == ["enterprise", "order_1001"]


def test_unknown_status_names_the_setting() -> None:
    with pytest.raises(ZendeskPayloadInvalid, match=r"zendesk\.status_map"):
        ticket_to_case({**TICKET, "status": "archived"}, SETTINGS)


def test_order_reference_prefers_custom_field_then_tag() -> None:
    assert order_reference(TICKET["tags"], TICKET["custom_fields"], SETTINGS) == "SO-778"
    assert order_reference(TICKET["tags"], [{"id": 360001, "value": ""}], SETTINGS) == "1001"
    assert order_reference(["vip"], [], SETTINGS) is None


def test_config_error_names_the_bad_key_and_never_echoes_secrets() -> None:
    with pytest.raises(ZendeskConfigError) as caught:
        load_zendesk_settings(
            {
                "subdomain": "acme",
                "email": "a@b.c",
                "api_token": "very-secret-token",
                "webhook_secret": "s",
                "page_size": 500,
            }
        )
    assert "zendesk.page_size" in str(caught.value)
    assert "very-secret-token" not in str(caught.value)
    with pytest.raises(ZendeskConfigError, match=r"zendesk\.api_token"):
        load_zendesk_settings({"subdomain": "acme", "email": "a@b.c", "webhook_secret": "s"})
    with pytest.raises(ZendeskConfigError, match=r"zendesk\.status_map\.pending"):
        load_zendesk_settings(
            {
                "subdomain": "acme",
                "email": "a@b.c",
                "api_token": "t",
                "webhook_secret": "s",
                "status_map": {"pending": "waiting"},
            }
        )


def webhook(event_type: str, event: dict[str, object] | None = None) -> bytes:
    return json.dumps(
        {
            "account_id": 12514403,
            "detail": {
                "id": "5158",
                "status": "OPEN",
                "priority": "LOW",
                "subject": "Parcel damaged",
                "requester_id": "6596848315901",
                "assignee_id": "0",
                "tags": ["order_A-99"],
                "created_at": "2099-07-04T05:27:58Z",
                "updated_at": "2099-07-04T05:33:18Z",
                "via": {"channel": "web_form"},
            },
            "event": event or {},
            "id": "cbe4028c-7239-495d-b020-f22348516046",
            "subject": "zen:ticket:5158",
            "time": "2099-07-04T05:33:18Z",
            "type": event_type,
            "zendesk_event_version": "2022-11-06",
        }
    ).encode()


def test_ticket_created_webhook_opens_a_case() -> None:
    receiver = ZendeskWebhookReceiver(SETTINGS)
    body = webhook("zen:event-type:ticket.created")
    [event] = receiver.to_events({}, body)
    assert event.type == "retailsync.case.opened"
    assert event.subject == case_id_for_ticket(5158) == event.partitionkey
    payload = parse_event(event)
    assert isinstance(payload, CaseOpened)
    assert payload.case.status is CaseStatus.OPEN
    assert payload.case.assignee is None
    assert payload.case.order_id == derive_id(EntityKind.ORDER, "shopify", "A-99")
    assert event.entityversion == payload.case.version > 1
    # the same delivery twice is the same event (the bus stores it once)
    assert receiver.to_events({}, body)[0].id == event.id
    assert receiver.delivery_id({}, body) == "zendesk:cbe4028c-7239-495d-b020-f22348516046"


def test_status_and_custom_field_changes_update_the_case() -> None:
    receiver = ZendeskWebhookReceiver(SETTINGS)
    [status] = receiver.to_events(
        {}, webhook("zen:event-type:ticket.status_changed", {"current": "OPEN", "previous": "NEW"})
    )
    assert status.type == "retailsync.case.updated"
    assert status.data["note"] == "status_changed: NEW -> OPEN"
    assert status.data["status"] == "open"
    [field] = receiver.to_events(
        {},
        webhook(
            "zen:event-type:ticket.custom_field_changed",
            {"current": "SO-1", "previous": None, "custom_field": {"id": "360001"}},
        ),
    )
    assert field.type == "retailsync.case.updated"


def test_order_link_from_custom_field_event() -> None:
    detail = json.loads(webhook("zen:event-type:ticket.created"))["detail"]
    case = webhook_detail_to_case(detail, SETTINGS, [{"id": "360001", "value": "SO-1"}])
    assert case.order_id == derive_id(EntityKind.ORDER, "shopify", "SO-1")


def test_other_domains_map_to_nothing_and_garbage_is_unmappable() -> None:
    receiver = ZendeskWebhookReceiver(SETTINGS)
    assert receiver.to_events({}, webhook("zen:event-type:user.active_changed")) == []
    with pytest.raises(WebhookUnmappable):
        receiver.to_events({}, b"not json")
    with pytest.raises(WebhookUnmappable):
        receiver.to_events(
            {}, webhook("zen:event-type:ticket.created").replace(b'"OPEN"', b'"LIMBO"')
        )
