"""The console in a real browser (headless Debian Chromium): what operators and agents do."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from browser_support import sign_in, unlabelled_controls
from console_hub import ORDER, ConsoleHub, order_event

from retailsync.bus import tables as bus_tables
from retailsync.console.agent import processes_for
from retailsync.domain.identifiers import EntityKind, derive_id

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


def wait_for(
    condition: Callable[[], Any],
    what: str,
    timeout: float = 20.0,
    show: Callable[[], Any] | None = None,
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            seen = f"; last seen: {show()}" if show is not None else ""
            raise AssertionError(f"timed out waiting for {what}{seen}")
        time.sleep(0.1)


def exception_statuses(hub: ConsoleHub) -> dict[int, str]:
    table = bus_tables.exceptions
    with hub.hub.engine.connect() as connection:
        rows = connection.execute(sa.select(table.c.id, table.c.status)).all()
    return {int(row.id): str(row.status) for row in rows}


def fail_an_order(hub: ConsoleHub, order_id: str, customer: str, correlation: str | None = None):
    hub.erp_sync.unknown_customers.add(customer)
    event = order_event(order_id, customer=customer, correlation_id=correlation)
    before = len(exception_statuses(hub))
    outcome = hub.run(hub.bus.publish([event]))
    assert outcome[0].ok, outcome
    wait_for(lambda: len(exception_statuses(hub)) > before, "the exception entry")
    return event


def notice(page: Any) -> str:
    text: str = page.locator("#notice").inner_text()
    return text


def workflows_of(hub: ConsoleHub, order_id: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = hub.run(processes_for(order_id))
    return result


def test_sign_in_find_a_failed_event_retry_it_and_see_it_succeed(
    console_hub: ConsoleHub, served: str, new_page: Callable[[], Any], shot: Any
) -> None:
    event = fail_an_order(console_hub, ORDER, "cus_unknown_1")
    key = console_hub.issue_key("integration team", ["admin"])
    page = new_page()
    sign_in(page, served, key)
    assert page.get_by_role("heading", level=1).inner_text() == "Overview"
    shot(page, "overview")

    page.get_by_role("navigation", name="Console pages").get_by_role(
        "link", name="Exceptions"
    ).click()
    page.get_by_label("Classification").select_option("business")
    page.get_by_label("System").select_option("erp")
    page.get_by_role("button", name="Filter").click()
    assert "classification=business" in page.url
    shot(page, "exceptions")
    links = page.get_by_test_id("exception-link")
    assert links.count() == 1
    links.first.click()

    assert page.get_by_role("heading", level=1).inner_text().startswith("Exception #")
    assert page.locator("#exception-status").get_attribute("data-status") == "open"
    assert "the ERP has no customer cus_unknown_1" in page.content()
    assert event.id in page.get_by_label("Event payload (JSON)").inner_text()
    shot(page, "exception-detail")

    console_hub.erp_sync.unknown_customers.clear()  # someone created the customer in the ERP
    page.get_by_role("button", name="Retry now").click()
    assert "Retry queued for #" in notice(page)

    def resolved() -> bool:
        page.reload()
        return page.locator("#exception-status").get_attribute("data-status") == "resolved"

    wait_for(resolved, "the retried event to be handled")
    assert console_hub.erp_sync.applied == [event.id]
    assert "redelivery succeeded" in page.content()
    shot(page, "exception-resolved")
    assert page.js_errors == []


def test_bulk_retry_of_a_selection_and_discard_with_a_reason(
    console_hub: ConsoleHub, served: str, new_page: Callable[[], Any], shot: Any
) -> None:
    orders = [derive_id(EntityKind.ORDER, "console", f"bulk-{n}") for n in range(3)]
    for order_id in orders:
        fail_an_order(console_hub, order_id, "cus_bulk")
    key = console_hub.issue_key("integration team", ["admin"])
    page = new_page()
    sign_in(page, served, key, "/console/exceptions")
    console_hub.erp_sync.unknown_customers.clear()
    ids = sorted(exception_statuses(console_hub))
    page.get_by_label(f"Select exception {ids[0]}").check()
    page.get_by_label(f"Select exception {ids[1]}").check()
    shot(page, "selection")
    page.get_by_role("button", name="Retry selected").click()
    assert f"#{ids[0]}, #{ids[1]}" in notice(page)
    wait_for(
        lambda: [exception_statuses(console_hub)[i] for i in ids[:2]] == ["resolved"] * 2,
        "both selected entries to be handled",
    )
    assert exception_statuses(console_hub)[ids[2]] == "open"

    page.goto(f"{served}/console/exceptions/{ids[2]}")
    page.get_by_label("Reason for discarding").fill("duplicate test order, cancelled at the till")
    page.get_by_role("button", name="Discard").click()
    assert f"Discarded #{ids[2]}" in notice(page)
    assert exception_statuses(console_hub)[ids[2]] == "discarded"
    assert "duplicate test order, cancelled at the till" in page.content()
    shot(page, "discarded")


def test_approve_a_refund_and_see_the_workflow_continue(
    console_hub: ConsoleHub, served: str, new_page: Callable[[], Any], shot: Any
) -> None:
    console_hub.run(console_hub.bus.publish([order_event(ORDER, customer="cus_1")]))
    agent_key = console_hub.issue_key("agent", ["experience:read", "process:write"])
    approver_key = console_hub.issue_key("team lead", ["process:approve"])

    agent = new_page()
    sign_in(agent, served, agent_key, f"/console/agent/orders/{ORDER}")
    refund = agent.locator("form[action$='/refunds']")
    refund.get_by_label("Amount").fill("150.00")
    refund.get_by_label("Lines (SKU:quantity, comma separated)").fill("MUG-1:4, TEE-2:1")
    agent.get_by_role("button", name="Start refund").click()
    assert "Refund started as workflow" in notice(agent)
    wait_for(
        lambda: [w["state"] for w in workflows_of(console_hub, ORDER)] == ["awaiting_approval"],
        "the refund to wait for approval",
        show=lambda: workflows_of(console_hub, ORDER),
    )

    lead = new_page()
    sign_in(lead, served, approver_key)
    assert lead.url.endswith("/console/approvals")  # the one page this scope opens
    assert lead.get_by_role("heading", level=2).first.inner_text().startswith("Refund of 150.00")
    shot(lead, "approvals")
    lead.get_by_role("button", name="Approve").click()
    assert "Approved refund" in notice(lead)
    wait_for(
        lambda: lead.reload() or "No refund is waiting for approval." in lead.content(),
        "the decided refund to leave the approvals list",
    )

    wait_for(
        lambda: [w["state"] for w in workflows_of(console_hub, ORDER)] == ["completed"],
        "the approved refund to complete",
        timeout=30,
    )
    agent.reload()
    assert "completed" in agent.locator("#processes").inner_text()
    shot(agent, "agent-panel-after-approval")
    assert len(console_hub.ledger.refunds()) == 1


def test_follow_an_orders_trace_across_systems(
    console_hub: ConsoleHub, served: str, new_page: Callable[[], Any], shot: Any
) -> None:
    correlation = "4bf92f3577b34da6a3ce929d0e0e4736"
    fail_an_order(console_hub, ORDER, "cus_trace", correlation=correlation)
    key = console_hub.issue_key("integration team", ["admin"])
    page = new_page()
    sign_in(page, served, key, "/console/traces")
    page.get_by_label("Search by").select_option("order")
    page.get_by_label("Id").fill(ORDER)
    with page.expect_navigation():
        page.keyboard.press("Enter")  # the keyboard submits the search
    timeline = page.locator("table.timeline")
    assert timeline.count() == 1, page.content()
    text = timeline.inner_text()
    assert "order.created" in text
    assert "exception" in text  # the failed ERP delivery is a hop of the same journey
    shot(page, "trace-by-order")
    page.locator("table.timeline a").first.click()
    assert "kind=correlation" in page.url
    assert "order.created" in page.locator("table.timeline").inner_text()
    shot(page, "trace-by-correlation")


def test_double_click_on_refund_in_the_agent_panel_starts_one_workflow(
    console_hub: ConsoleHub, served: str, new_page: Callable[[], Any], shot: Any
) -> None:
    console_hub.run(console_hub.bus.publish([order_event(ORDER, customer="cus_1")]))
    key = console_hub.issue_key("agent", ["experience:read", "process:write"])
    page = new_page()
    sign_in(page, served, key, f"/console/agent/orders/{ORDER}?embed=1")
    assert page.get_by_role("navigation", name="Console pages").count() == 0  # embeddable
    shot(page, "agent-panel")
    form = page.locator("form[action$='/refunds']")
    form.get_by_label("Amount").fill("50.00")
    form.get_by_label("Lines (SKU:quantity, comma separated)").fill("TEE-2:1")
    fields = {
        name: form.locator(f"[name={name}]").input_value()
        for name in (
            "csrf_token",
            "idempotency_key",
            "amount",
            "currency",
            "payment_ref",
            "ordered_at",
        )
    }
    fields |= {"lines": "TEE-2:1", "reason": "damaged", "embed": "1"}
    page.get_by_role("button", name="Start refund").dblclick()
    page.wait_for_load_state()
    assert "Refund" in notice(page)

    # The same form submitted again (a retry after a timeout, a second tab): same key.
    again = page.request.post(
        f"{served}/console/agent/orders/{ORDER}/refunds", form=fields, max_redirects=0
    )
    assert again.status == 303
    page.goto(f"{served}/console/agent/orders/{ORDER}?embed=1")
    assert "nothing was started twice" in notice(page)

    workflows = wait_for(
        lambda: [w for w in workflows_of(console_hub, ORDER) if w["state"] == "completed"],
        "the refund to complete",
        timeout=30,
        show=lambda: workflows_of(console_hub, ORDER),
    )
    assert len(workflows) == 1
    assert len(workflows_of(console_hub, ORDER)) == 1
    assert len(console_hub.ledger.refunds()) == 1
    page.reload()
    assert page.locator("#processes tbody tr").count() == 1
    shot(page, "agent-panel-one-workflow")


def test_a_client_sees_and_does_only_what_its_scope_allows(
    console_hub: ConsoleHub, served: str, new_page: Callable[[], Any], shot: Any
) -> None:
    fail_an_order(console_hub, ORDER, "cus_scope")
    entry_id = next(iter(exception_statuses(console_hub)))
    key = console_hub.issue_key("read-only agent", ["experience:read"])
    page = new_page()
    sign_in(page, served, key)
    nav = page.get_by_role("navigation", name="Console pages").get_by_role("link")
    assert nav.all_inner_texts() == ["Order lookup"]
    assert page.url.endswith("/console/agent")

    for path in (
        "/console/",
        "/console/exceptions",
        f"/console/exceptions/{entry_id}",
        "/console/traces",
        "/console/approvals",
        "/console/reconciliation",
        "/console/replay",
    ):
        response = page.goto(f"{served}{path}")
        assert response.status == 403, path
        assert page.get_by_role("heading", level=1).inner_text() == "Not allowed"
        assert "cus_scope" not in page.content()
    shot(page, "forbidden")

    page.goto(f"{served}/console/agent/orders/{ORDER}")
    assert "Your access is read-only" in page.content()
    assert page.get_by_role("button", name="Start refund").count() == 0
    csrf = page.locator("body").get_attribute("data-csrf")
    for url, form in (
        (f"/console/exceptions/{entry_id}/retry", {}),
        (f"/console/exceptions/{entry_id}/discard", {"reason": "not mine to discard"}),
        ("/console/exceptions-bulk/retry", {"ids": str(entry_id)}),
        (f"/console/agent/orders/{ORDER}/refunds", {"idempotency_key": "k1"}),
        ("/console/replay", {"subscriber": "erp-order-sync"}),
    ):
        refused = page.request.post(f"{served}{url}", form={"csrf_token": csrf, **form})
        assert refused.status == 403, url
    assert exception_statuses(console_hub)[entry_id] == "open"
    assert workflows_of(console_hub, ORDER) == []


def test_every_page_renders_is_labelled_and_keyboard_reachable(
    console_hub: ConsoleHub, served: str, new_page: Callable[[], Any], shot: Any
) -> None:
    fail_an_order(console_hub, ORDER, "cus_pages")
    entry_id = next(iter(exception_statuses(console_hub)))
    key = console_hub.issue_key(
        "operations", ["admin", "experience:read", "process:write", "process:approve"]
    )
    page = new_page()
    sign_in(page, served, key)
    pages = {
        "overview": "/console/",
        "exceptions": "/console/exceptions",
        "exception": f"/console/exceptions/{entry_id}",
        "traces": f"/console/traces?kind=order&q={ORDER}",
        "approvals": "/console/approvals",
        "reconciliation": "/console/reconciliation",
        "replay": "/console/replay",
        "order-lookup": "/console/agent",
        "agent-panel": f"/console/agent/orders/{ORDER}",
    }
    for name, path in pages.items():
        response = page.goto(f"{served}{path}")
        assert response.status == 200, (path, response.status)
        assert page.get_by_role("heading", level=1).count() == 1, path
        assert unlabelled_controls(page) == [], path
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip", path
        shot(page, name)
    assert page.js_errors == []


def test_replay_counts_confirms_and_shows_progress(
    console_hub: ConsoleHub, served: str, new_page: Callable[[], Any], shot: Any
) -> None:
    events = [
        order_event(derive_id(EntityKind.ORDER, "console", f"replay-{n}"), customer="cus_ok")
        for n in range(5)
    ]
    console_hub.run(console_hub.bus.publish(events))
    wait_for(lambda: len(console_hub.erp_sync.applied) == 5, "the live deliveries")
    key = console_hub.issue_key("integration team", ["admin"])
    page = new_page()
    sign_in(page, served, key, "/console/replay")
    page.get_by_label("Subscriber").select_option("erp-order-sync")
    page.get_by_label("Force: run the handler again for events it already handled").check()
    page.get_by_role("button", name="Count the events").click()
    assert "selects 5 stored events" in page.locator("#replay-count").inner_text()
    shot(page, "replay-confirm")
    page.get_by_role("button", name="Replay 5 events").click()
    wait_for(
        lambda: "Finished" in page.locator("#replay-status").inner_text(),
        "the replay to finish (htmx refreshes the progress)",
    )
    assert "5 delivered" in page.locator("#replay-status").inner_text()
    assert len(console_hub.erp_sync.applied) == 10
    shot(page, "replay-finished")
