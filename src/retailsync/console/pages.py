"""The console's pages and the one scope each needs: the navigation shows only what the signed-in
client's scopes allow, and every route checks the same table."""

from __future__ import annotations

from dataclasses import dataclass

from retailsync.api.scopes import Scope

PREFIX = "/console"


@dataclass(frozen=True)
class Page:
    key: str
    path: str
    label: str
    scope: Scope
    description: str


PAGES: tuple[Page, ...] = (
    Page(
        "overview",
        f"{PREFIX}/",
        "Overview",
        Scope.ADMIN,
        "Workflow health, KPIs against their SLAs and connector health.",
    ),
    Page(
        "exceptions",
        f"{PREFIX}/exceptions",
        "Exceptions",
        Scope.ADMIN,
        "Events a subscriber could not handle: retry, resolve or discard them.",
    ),
    Page(
        "traces",
        f"{PREFIX}/traces",
        "Trace explorer",
        Scope.ADMIN,
        "The timeline of an order, a case or a correlation id across systems.",
    ),
    Page(
        "approvals",
        f"{PREFIX}/approvals",
        "Approvals",
        Scope.PROCESS_APPROVE,
        "Refunds waiting for a person to approve or reject them.",
    ),
    Page(
        "reconciliation",
        f"{PREFIX}/reconciliation",
        "Reconciliation",
        Scope.ADMIN,
        "Reconciliation runs and their drift reports.",
    ),
    Page(
        "replay",
        f"{PREFIX}/replay",
        "Replay",
        Scope.ADMIN,
        "Re-deliver stored events to one subscriber.",
    ),
    Page(
        "orders",
        f"{PREFIX}/agent",
        "Order lookup",
        Scope.EXPERIENCE_READ,
        "One order across every system, with the actions your scope allows.",
    ),
)

PAGE_BY_KEY = {page.key: page for page in PAGES}


def visible_pages(scopes: frozenset[Scope]) -> list[Page]:
    """The pages a client holding ``scopes`` may open, in navigation order."""
    return [page for page in PAGES if page.scope in scopes]
