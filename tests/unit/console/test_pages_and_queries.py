"""Which pages a scope opens, and how the exception list reads its filters."""

from __future__ import annotations

from datetime import UTC, datetime

from retailsync.api.scopes import Scope
from retailsync.console.pages import PAGES, visible_pages
from retailsync.console.queries import ExceptionQuery, human_age, role_of
from retailsync.observability.settings import Role


def test_navigation_shows_only_the_pages_a_clients_scopes_open() -> None:
    assert [p.key for p in visible_pages(frozenset({Scope.EXPERIENCE_READ}))] == ["orders"]
    assert [p.key for p in visible_pages(frozenset({Scope.PROCESS_APPROVE}))] == ["approvals"]
    assert visible_pages(frozenset({Scope.SYSTEM_READ})) == []
    everything = frozenset(Scope)
    assert [p.key for p in visible_pages(everything)] == [p.key for p in PAGES]
    admin_only = {p.key for p in visible_pages(frozenset({Scope.ADMIN}))}
    assert "approvals" not in admin_only and "orders" not in admin_only


def test_exception_roles_follow_classification_system_and_event_type() -> None:
    assert role_of("transient", "erp", "retailsync.refund.requested") is Role.INTEGRATION
    assert role_of("unknown", None, "retailsync.order.created") is Role.INTEGRATION
    assert role_of("business", "erp", "retailsync.order.created") is Role.FINANCE
    assert role_of("business", "zendesk", "retailsync.refund.requested") is Role.FINANCE
    assert role_of("business", "zendesk", "retailsync.case.updated") is Role.SERVICE_OPERATIONS


def test_exception_filters_ignore_values_they_do_not_know() -> None:
    query = ExceptionQuery.parse(
        {
            "status": "deleted",
            "classification": "fatal",
            "age": "1y",
            "role": "ceo",
            "page": "-3",
            "system": "erp",
        }
    )
    assert query == ExceptionQuery(status="open", system="erp", page=1)
    assert ExceptionQuery.parse({"page": "x"}).page == 1


def test_query_string_keeps_filters_and_changes_the_page() -> None:
    query = ExceptionQuery.parse({"classification": "business", "age": "24h", "page": "2"})
    assert query.query_string() == "status=open&classification=business&age=24h&page=2"
    assert query.query_string(page=1) == "status=open&classification=business&age=24h"


def test_the_where_clause_applies_age_against_now() -> None:
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    clauses = ExceptionQuery.parse({"age": "1h", "role": "finance"}).where(now)
    text = " ".join(str(c.compile(compile_kwargs={"literal_binds": True})) for c in clauses)
    assert "2026-11-22 11:00:00" in text
    assert "classification = 'business'" in text


def test_human_age_reads_like_a_person_would_say_it() -> None:
    from datetime import timedelta

    assert human_age(timedelta(seconds=42)) == "42 s"
    assert human_age(timedelta(minutes=5)) == "5 min"
    assert human_age(timedelta(hours=3, minutes=7)) == "3 h 7 min"
    assert human_age(timedelta(days=2, hours=1)) == "2 d 1 h"
