"""Service cases (tickets) that agents work, with the case lifecycle table."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from retailsync.domain.base import CanonicalModel, LongText, ShortText, Timestamp, Version
from retailsync.domain.errors import IllegalCaseTransition
from retailsync.domain.identifiers import CaseId, CustomerId, OrderId
from retailsync.domain.lifecycle import Lifecycle

__all__ = ["CASE_LIFECYCLE", "CASE_TRANSITIONS", "CasePriority", "CaseStatus", "ServiceCase"]


class CaseStatus(StrEnum):
    """Where a case is between opening and closing."""

    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    ON_HOLD = "on_hold"
    SOLVED = "solved"
    CLOSED = "closed"


_S = CaseStatus
CASE_TRANSITIONS: dict[CaseStatus, set[CaseStatus]] = {
    _S.NEW: {_S.OPEN, _S.PENDING, _S.SOLVED, _S.CLOSED},
    _S.OPEN: {_S.PENDING, _S.ON_HOLD, _S.SOLVED},
    _S.PENDING: {_S.OPEN, _S.ON_HOLD, _S.SOLVED},
    _S.ON_HOLD: {_S.OPEN, _S.PENDING, _S.SOLVED},
    _S.SOLVED: {_S.OPEN, _S.CLOSED},
    _S.CLOSED: set(),
}
"""Case status -> statuses it may move to next (a solved case may be reopened)."""

CASE_LIFECYCLE = Lifecycle(CaseStatus, CASE_TRANSITIONS, IllegalCaseTransition)


class CasePriority(StrEnum):
    """How urgent a case is."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class ServiceCase(CanonicalModel):
    """A customer-service case, linked to the customer and order it is about."""

    id: CaseId
    version: Version = 1
    status: CaseStatus = CaseStatus.NEW
    priority: CasePriority = CasePriority.NORMAL
    subject: ShortText
    description: LongText | None = None
    customer_id: CustomerId | None = None
    order_id: OrderId | None = None
    channel: ShortText | None = None
    assignee: ShortText | None = None
    tags: list[ShortText] = Field(default_factory=list, max_length=50)
    opened_at: Timestamp
    updated_at: Timestamp | None = None

    def transition_to(self, new_status: CaseStatus) -> ServiceCase:
        """A copy in ``new_status`` (version bumped); IllegalCaseTransition if not allowed."""
        return CASE_LIFECYCLE.advance(self, new_status)
