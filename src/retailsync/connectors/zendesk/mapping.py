"""Zendesk ticket <-> canonical service case, as pure functions over vendor JSON.

Two vendor shapes come in: the REST ticket (``GET /api/v2/tickets/{id}.json``: numeric ids,
lower-case status, ``custom_fields``) and the ``detail`` object of an event-subscription
webhook (string ids, upper-case status, no custom fields). Both become the same
:class:`~retailsync.domain.cases.ServiceCase`. The case id is derived from the ticket id, so
every connector instance maps the same ticket to the same case without a lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from retailsync.connectors.zendesk.config import ZendeskSettings
from retailsync.connectors.zendesk.errors import ZendeskPayloadInvalid
from retailsync.domain.cases import CasePriority, CaseStatus, ServiceCase
from retailsync.domain.identifiers import EntityKind, derive_id

SYSTEM = "zendesk"

#: REST ticket field -> ServiceCase field, with the converter applied to the value.
TICKET_FIELDS: tuple[tuple[str, str, Callable[[Any], Any]], ...] = (
    ("subject", "subject", lambda value: (value or "(no subject)")[:200]),
    ("description", "description", lambda value: value or None),
    ("tags", "tags", lambda value: [str(tag)[:200] for tag in (value or [])][:50]),
    ("created_at", "opened_at", lambda value: value),
    ("updated_at", "updated_at", lambda value: value),
    ("assignee_id", "assignee", lambda value: None if value in (None, "") else str(value)),
    ("via", "channel", lambda value: (value or {}).get("channel")),
)


def case_id_for_ticket(ticket_id: int | str) -> str:
    """The canonical case id of a Zendesk ticket (``case_…``), the same every time."""
    return derive_id(EntityKind.CASE, SYSTEM, str(ticket_id))


def case_status(zendesk_status: str | None, settings: ZendeskSettings) -> CaseStatus:
    """The canonical status for a Zendesk status (any case), per ``status_map``."""
    key = (zendesk_status or "").lower()
    if key not in settings.status_map:
        raise ZendeskPayloadInvalid(
            f"Zendesk status {zendesk_status!r} has no case status: add it to "
            f"zendesk.status_map (known: {', '.join(sorted(settings.status_map))})"
        )
    return settings.status_map[key]


def case_priority(zendesk_priority: str | None, settings: ZendeskSettings) -> CasePriority:
    """The canonical priority; a ticket without priority is ``normal``."""
    if not zendesk_priority:
        return CasePriority.NORMAL
    key = zendesk_priority.lower()
    if key not in settings.priority_map:
        raise ZendeskPayloadInvalid(
            f"Zendesk priority {zendesk_priority!r} has no case priority: add it to "
            f"zendesk.priority_map (known: {', '.join(sorted(settings.priority_map))})"
        )
    return settings.priority_map[key]


def order_reference(
    tags: Iterable[str],
    custom_fields: Iterable[Mapping[str, Any]],
    settings: ZendeskSettings,
) -> str | None:
    """The order the ticket is about: the configured custom field first, else an order tag.

    A tag ``order_1001`` (prefix configurable) gives ``1001``. The value is the reference the
    customer quoted, not yet a canonical order id.
    """
    if settings.order_field_id is not None:
        for item in custom_fields:
            if str(item.get("id")) == str(settings.order_field_id):
                value = item.get("value")
                if value not in (None, ""):
                    return str(value).strip()
    prefix = settings.order_tag_prefix
    for tag in tags:
        if tag.startswith(prefix) and len(tag) > len(prefix):
            return tag[len(prefix) :]
    return None


def ticket_to_case(ticket: Mapping[str, Any], settings: ZendeskSettings) -> ServiceCase:
    """A REST ticket as a canonical case; :class:`ZendeskPayloadInvalid` if it cannot be."""
    if "id" not in ticket:
        raise ZendeskPayloadInvalid("Zendesk ticket without 'id' cannot be mapped to a case")
    fields: dict[str, Any] = {"id": case_id_for_ticket(ticket["id"])}
    for source, target, convert in TICKET_FIELDS:
        fields[target] = convert(ticket.get(source))
    fields["status"] = case_status(ticket.get("status"), settings)
    fields["priority"] = case_priority(ticket.get("priority"), settings)
    fields["version"] = case_version(ticket.get("updated_at"))
    order_ref = order_reference(fields["tags"], ticket.get("custom_fields") or [], settings)
    fields["order_id"] = order_id_for(order_ref, settings)
    return _build_case(fields, ticket["id"])


def case_version(updated_at: Any) -> int:
    """The case version: Zendesk's ``updated_at`` in epoch seconds, so later is higher.

    Zendesk has no ticket version number; every change moves ``updated_at``, which makes it a
    monotonic version that lets consumers ignore an older state delivered late.
    """
    moment = parse_time(updated_at)
    return max(1, int(moment.timestamp())) if moment is not None else 1


def order_id_for(order_ref: str | None, settings: ZendeskSettings) -> str | None:
    """The canonical order id for a quoted order reference, when its system is configured."""
    if order_ref is None or settings.order_reference_system is None:
        return None
    return derive_id(EntityKind.ORDER, settings.order_reference_system, order_ref)


def webhook_detail_to_case(
    detail: Mapping[str, Any],
    settings: ZendeskSettings,
    custom_fields: Iterable[Mapping[str, Any]] = (),
) -> ServiceCase:
    """The ``detail`` of a ``zen:event-type:ticket.*`` webhook as a canonical case.

    Webhook details carry no custom fields; a ``custom_field_changed`` event passes the one
    that changed as ``custom_fields``.
    """
    if not detail.get("id"):
        raise ZendeskPayloadInvalid("Zendesk ticket event without detail.id cannot be mapped")
    ticket = dict(detail)
    # Webhook details carry ids as strings ("0" for none) and statuses in upper case.
    if ticket.get("assignee_id") in ("0", 0):
        ticket["assignee_id"] = None
    ticket["custom_fields"] = list(custom_fields)
    return ticket_to_case(ticket, settings)


def _build_case(fields: dict[str, Any], ticket_id: Any) -> ServiceCase:
    try:
        return ServiceCase.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise ZendeskPayloadInvalid(
            f"Zendesk ticket {ticket_id} cannot be mapped to a case: {problems}"
        ) from None


def requester_of(
    ticket: Mapping[str, Any], users: Iterable[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """The requester as the events carry it: Zendesk user id, and name/email when sideloaded."""
    requester_id = ticket.get("requester_id")
    requester: dict[str, Any] = {
        "system": SYSTEM,
        "external_id": None if requester_id in (None, "") else str(requester_id),
    }
    for user in users:
        if str(user.get("id")) == requester["external_id"]:
            requester["name"] = user.get("name")
            requester["email"] = user.get("email")
    return requester


def parse_time(value: Any) -> datetime | None:
    """An aware datetime from Zendesk's ISO 8601 strings, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
