"""Case id <-> Zendesk ticket id, kept in the shared cross-reference table."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from retailsync import xref
from retailsync.connectors.zendesk.errors import ZendeskTicketNotLinked
from retailsync.connectors.zendesk.mapping import SYSTEM, case_id_for_ticket
from retailsync.domain.identifiers import EntityKind

ENTITY_KIND = EntityKind.CASE.value


def link_ticket(engine: Engine, ticket_id: int | str) -> str:
    """Record that the ticket is its derived case id; repeating it is a no-op."""
    case_id = case_id_for_ticket(ticket_id)
    with engine.begin() as connection:
        xref.link(
            connection,
            entity_kind=ENTITY_KIND,
            canonical_id=case_id,
            system=SYSTEM,
            external_id=str(ticket_id),
        )
    return case_id


def ticket_id_for(engine: Engine | None, case_ref: str) -> int:
    """The Zendesk ticket id for a case reference: a ticket id as digits, or a ``case_…`` id."""
    if case_ref.isdigit():
        return int(case_ref)
    if engine is not None and case_ref.startswith("case_"):
        with engine.connect() as connection:
            external = xref.external_id_for(
                connection, entity_kind=ENTITY_KIND, canonical_id=case_ref, system=SYSTEM
            )
        if external is not None:
            return int(external)
    raise ZendeskTicketNotLinked(
        f"{case_ref!r} is neither a Zendesk ticket id nor a case linked to one: cases are "
        "linked when their first webhook arrives or when the ticket is fetched"
    )
