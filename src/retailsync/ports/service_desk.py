"""What the hub needs from the customer-service platform (Zendesk or another service desk).

Cases are addressed by ``case_ref``: the canonical case id (``case_…``, resolved through the
cross-reference table) or the service desk's own id for the case (e.g. a Zendesk ticket id).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Protocol

from retailsync.domain.cases import CaseStatus, ServiceCase


class ServiceDeskPort(Protocol):
    """Read cases and write back to them: notes, status, fields and the order link."""

    async def fetch_case(self, case_ref: str) -> ServiceCase:
        """The case as the service desk has it now."""
        ...

    def iter_cases(self) -> AsyncIterator[ServiceCase]:
        """Every case, page by page (for backfills and reconciliation)."""
        ...

    async def add_internal_note(self, case_ref: str, body: str, *, idempotency_key: str) -> bool:
        """Add a note only agents see; False when the note with this key was already added."""
        ...

    async def set_case_status(self, case_ref: str, status: CaseStatus) -> None:
        """Move the case to ``status`` (mapped to the service desk's own statuses)."""
        ...

    async def set_case_fields(
        self,
        case_ref: str,
        *,
        fields: Mapping[int | str, str | None] | None = None,
        add_tags: Sequence[str] = (),
        remove_tags: Sequence[str] = (),
    ) -> None:
        """Set custom field values and add/remove tags in one update."""
        ...

    async def link_order(self, case_ref: str, order_reference: str) -> None:
        """Record on the case which order it is about (field and/or tag, per configuration)."""
        ...
