"""The :class:`~retailsync.ports.service_desk.ServiceDeskPort` implemented on Zendesk.

Notes are internal comments (``public: false``). Adding a comment is the one write that is not
naturally idempotent, so every note carries a reference line with its idempotency key and is
only added when no comment on the ticket has that line yet; a 5xx on that call is followed by
a fresh check instead of a blind resend.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Engine

from retailsync.connectors.zendesk.binding import link_ticket, ticket_id_for
from retailsync.connectors.zendesk.client import ZendeskClient
from retailsync.connectors.zendesk.config import ZendeskSettings
from retailsync.connectors.zendesk.errors import ZendeskServerError
from retailsync.connectors.zendesk.mapping import order_reference, requester_of, ticket_to_case
from retailsync.domain.cases import CaseStatus, ServiceCase

NOTE_MARKER = "retailsync-ref:"
_TAG_UNSAFE = re.compile(r"[^a-z0-9_\-/.]+")


def note_marker(idempotency_key: str) -> str:
    """The reference line that identifies a note added by the hub."""
    return f"[{NOTE_MARKER} {idempotency_key}]"


def order_tag(settings: ZendeskSettings, order_ref: str) -> str:
    """The tag that links a ticket to an order, e.g. ``order_1001`` (Zendesk tag rules)."""
    return settings.order_tag_prefix + _TAG_UNSAFE.sub("_", order_ref.strip().lower())


class ZendeskServiceDesk:
    """Service-desk operations on one Zendesk account."""

    def __init__(
        self, client: ZendeskClient, settings: ZendeskSettings, *, engine: Engine | None = None
    ) -> None:
        self._client = client
        self._settings = settings
        self._engine = engine

    def _ticket_id(self, case_ref: str) -> int:
        return ticket_id_for(self._engine, case_ref)

    async def fetch_case(self, case_ref: str) -> ServiceCase:
        ticket = await self._client.get_ticket(self._ticket_id(case_ref))
        self._link(ticket)
        return ticket_to_case(ticket, self._settings)

    async def fetch_case_details(self, case_ref: str) -> dict[str, Any]:
        """The case plus what the canonical model keeps elsewhere: requester and order ref."""
        ticket, users = await self._client.get_ticket_and_users(self._ticket_id(case_ref))
        return {
            "case": ticket_to_case(ticket, self._settings),
            "requester": requester_of(ticket, users),
            "order_reference": order_reference(
                ticket.get("tags") or [], ticket.get("custom_fields") or [], self._settings
            ),
        }

    async def iter_cases(self) -> AsyncIterator[ServiceCase]:
        async for ticket in self._client.iter_tickets():
            self._link(ticket)
            yield ticket_to_case(ticket, self._settings)

    def _link(self, ticket: dict[str, Any]) -> None:
        if self._engine is not None and "id" in ticket:
            link_ticket(self._engine, ticket["id"])

    async def add_internal_note(self, case_ref: str, body: str, *, idempotency_key: str) -> bool:
        ticket_id = self._ticket_id(case_ref)
        marker = note_marker(idempotency_key)
        comment = {"body": f"{body}\n\n{marker}", "public": False}
        attempts = self._settings.max_attempts
        for attempt in range(1, attempts + 1):
            if await self._has_comment_with(ticket_id, marker):
                return False
            try:
                await self._client.update_ticket(ticket_id, {"comment": comment}, repeatable=False)
                return True
            except ZendeskServerError:
                if attempt == attempts:
                    raise
                await asyncio.sleep(self._settings.backoff_seconds * attempt)
        return False  # pragma: no cover - the loop returns or raises

    async def set_case_status(self, case_ref: str, status: CaseStatus) -> None:
        zendesk_status = self._settings.zendesk_status_for(status)
        await self._client.update_ticket(self._ticket_id(case_ref), {"status": zendesk_status})

    async def set_case_fields(
        self,
        case_ref: str,
        *,
        fields: Mapping[int | str, str | None] | None = None,
        add_tags: Sequence[str] = (),
        remove_tags: Sequence[str] = (),
    ) -> None:
        changes: dict[str, Any] = {}
        if fields:
            changes["custom_fields"] = [
                {"id": int(field_id), "value": value} for field_id, value in fields.items()
            ]
        if add_tags:
            changes["additional_tags"] = list(add_tags)
        if remove_tags:
            changes["remove_tags"] = list(remove_tags)
        if changes:
            await self._client.update_ticket(self._ticket_id(case_ref), changes)

    async def link_order(self, case_ref: str, order_reference: str) -> None:
        fields: dict[int | str, str | None] | None = None
        if self._settings.order_field_id is not None:
            fields = {self._settings.order_field_id: order_reference}
        await self.set_case_fields(
            case_ref, fields=fields, add_tags=[order_tag(self._settings, order_reference)]
        )

    async def _has_comment_with(self, ticket_id: int, marker: str) -> bool:
        async for comment in self._client.iter_comments(ticket_id):
            if marker in (comment.get("body") or ""):
                return True
        return False
