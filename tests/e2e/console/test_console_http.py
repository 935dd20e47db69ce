"""The console over HTTP without a browser: sign-in, sessions, CSRF, scopes, audited actions,
and pages that read without JavaScript."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from console_hub import ORDER, ConsoleHub, build_console_hub, order_event
from fastapi.testclient import TestClient

from retailsync.api.clients import revoke_api_client
from retailsync.bus import tables as bus_tables
from retailsync.console.session import SESSION_COOKIE


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[ConsoleHub]:
    console_hub = build_console_hub(tmp_path, with_workflows=False)
    yield console_hub
    console_hub.hub.close()


@pytest.fixture
def http(hub: ConsoleHub) -> Iterator[TestClient]:
    with TestClient(hub.app, base_url="http://hub") as client:
        yield client


def sign_in(client: TestClient, key: str, next_path: str = "/console/") -> str:
    """Sign in; returns the session's CSRF token (read from a rendered form)."""
    form = client.get("/console/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token, form.text
    reply = client.post(
        "/console/login",
        data={"api_key": key, "login_token": token.group(1), "next": next_path},
        follow_redirects=False,
    )
    assert reply.status_code == 303, reply.text
    page = client.get(reply.headers["location"])
    csrf = re.search(r'data-csrf="([^"]+)"', page.text)
    assert csrf, page.text
    return csrf.group(1)


def failed_exception(hub: ConsoleHub) -> int:
    hub.erp_sync.unknown_customers.add("cus_unknown")
    hub.run(hub.bus.publish([order_event(ORDER, customer="cus_unknown")]))
    table = bus_tables.exceptions
    for _ in range(200):
        with hub.hub.engine.connect() as connection:
            found = connection.execute(sa.select(table.c.id)).scalar()
        if found:
            return int(found)
        time.sleep(0.05)
    raise AssertionError("no exception entry appeared")


def status_of(hub: ConsoleHub, entry_id: int) -> str:
    table = bus_tables.exceptions
    with hub.hub.engine.connect() as connection:
        return str(
            connection.execute(sa.select(table.c.status).where(table.c.id == entry_id)).scalar()
        )


def test_pages_need_a_session_and_send_the_person_to_sign_in(http: TestClient) -> None:
    reply = http.get("/console/exceptions?status=all", follow_redirects=False)
    assert reply.status_code == 303
    assert reply.headers["location"] == "/console/login?next=%2Fconsole%2Fexceptions%3Fstatus%3Dall"
    form = http.get(reply.headers["location"])
    assert '<label for="api_key">API key</label>' in form.text
    assert 'value="/console/exceptions?status=all"' in form.text


def test_a_wrong_key_or_a_forged_form_does_not_sign_in(hub: ConsoleHub, http: TestClient) -> None:
    key = hub.issue_key("ops", ["admin"])
    token = re.search(r'name="login_token" value="([^"]+)"', http.get("/console/login").text)
    assert token
    wrong = http.post(
        "/console/login",
        data={"api_key": key[:-3] + "xyz", "login_token": token.group(1)},
        follow_redirects=False,
    )
    assert wrong.status_code == 401
    assert "Sign-in failed" in wrong.text
    assert SESSION_COOKIE not in wrong.cookies
    forged = TestClient(hub.app, base_url="http://hub").post(
        "/console/login", data={"api_key": key, "login_token": "made-up"}, follow_redirects=False
    )
    assert forged.status_code == 401
    assert "security token" in forged.text


def test_the_session_cookie_is_http_only_scoped_and_never_holds_the_key(
    hub: ConsoleHub, http: TestClient
) -> None:
    key = hub.issue_key("ops", ["admin"])
    token = re.search(r'name="login_token" value="([^"]+)"', http.get("/console/login").text)
    assert token
    reply = http.post(
        "/console/login",
        data={"api_key": key, "login_token": token.group(1), "next": "https://evil.example/"},
        follow_redirects=False,
    )
    assert reply.headers["location"] == "/console/"  # never off-site
    cookie = next(
        v for k, v in reply.headers.multi_items() if k == "set-cookie" and SESSION_COOKIE in v
    )
    assert "HttpOnly" in cookie and "Path=/console" in cookie and "SameSite=lax" in cookie
    secret = key.split("_", 2)[2]
    assert secret not in cookie


def test_a_tampered_cookie_or_a_revoked_client_ends_the_session(
    hub: ConsoleHub, http: TestClient
) -> None:
    key = hub.issue_key("ops", ["admin"])
    sign_in(http, key)
    assert http.get("/console/exceptions", follow_redirects=False).status_code == 200
    good = http.cookies.get(SESSION_COOKIE)
    assert good
    body, _, mac = good.partition(".")
    for forged in (good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"), body):
        other = TestClient(hub.app, base_url="http://hub", cookies={SESSION_COOKIE: forged})
        assert other.get("/console/exceptions", follow_redirects=False).status_code == 303
    assert mac
    client_id = key.split("_")[1]
    with hub.hub.engine.begin() as connection:
        revoke_api_client(connection, client_id, actor="test", correlation_id=None)
    assert http.get("/console/exceptions", follow_redirects=False).status_code == 303


def test_forms_without_the_sessions_csrf_token_change_nothing(
    hub: ConsoleHub, http: TestClient
) -> None:
    entry_id = failed_exception(hub)
    sign_in(http, hub.issue_key("ops", ["admin"]))
    for data in ({}, {"csrf_token": "guess"}):
        reply = http.post(
            f"/console/exceptions/{entry_id}/discard",
            data={"reason": "spam", **data},
            follow_redirects=False,
        )
        assert reply.status_code == 403
        assert "security token" in reply.text
    assert status_of(hub, entry_id) == "open"


def test_resolve_needs_a_note_and_every_action_is_audited(
    hub: ConsoleHub, http: TestClient
) -> None:
    entry_id = failed_exception(hub)
    key = hub.issue_key("ops", ["admin"])
    csrf = sign_in(http, key)
    empty = http.post(
        f"/console/exceptions/{entry_id}/resolve", data={"csrf_token": csrf, "note": "  "}
    )
    assert "resolve needs a note" in empty.text
    assert status_of(hub, entry_id) == "open"
    done = http.post(
        f"/console/exceptions/{entry_id}/resolve",
        data={"csrf_token": csrf, "note": "order re-keyed by hand in the ERP"},
    )
    assert f"Resolved #{entry_id}." in done.text
    assert status_of(hub, entry_id) == "resolved"
    actions = bus_tables.exception_actions
    with hub.hub.engine.connect() as connection:
        row = connection.execute(sa.select(actions).where(actions.c.entry_id == entry_id)).one()
    assert row.action == "resolve"
    assert row.actor == f"console:{key.split('_')[1]}"
    assert row.reason == "order re-keyed by hand in the ERP"
    again = http.post(
        f"/console/exceptions/{entry_id}/discard", data={"csrf_token": csrf, "reason": "x"}
    )
    assert "skipped: already resolved" in again.text


def test_the_queue_filters_by_role_and_age_and_reads_without_javascript(
    hub: ConsoleHub, http: TestClient
) -> None:
    entry_id = failed_exception(hub)
    sign_in(http, hub.issue_key("ops", ["admin"]))
    finance = http.get("/console/exceptions?role=finance")
    assert f'href="/console/exceptions/{entry_id}"' in finance.text  # business error at the ERP
    integration = http.get("/console/exceptions?role=integration")
    assert "Nothing matches these filters." in integration.text
    old = http.get("/console/exceptions?age=1h")
    assert "Nothing matches these filters." in old.text
    detail = http.get(f"/console/exceptions/{entry_id}")
    assert "the ERP has no customer cus_unknown" in detail.text
    assert "&#34;customer_id&#34;: &#34;cus_unknown&#34;" in detail.text  # server-rendered
    assert "<script" not in detail.text.split("</head>")[1]  # no inline script in the body


def test_security_headers_and_the_embeddable_agent_panel(hub: ConsoleHub, http: TestClient) -> None:
    hub.run(hub.bus.publish([order_event(ORDER, customer="cus_ok")]))
    sign_in(http, hub.issue_key("agent", ["experience:read"]))
    lookup = http.get("/console/agent")
    assert "frame-ancestors 'none'" in lookup.headers["content-security-policy"]
    assert lookup.headers["cache-control"] == "no-store"
    panel = http.get(f"/console/agent/orders/{ORDER}?embed=1")
    assert panel.status_code == 200
    assert (
        "frame-ancestors 'self' https://*.zendesk.com" in panel.headers["content-security-policy"]
    )
    assert 'aria-label="Console pages"' not in panel.text
    assert "Status per system" in panel.text and "shopify" in panel.text
    assert "Your access is read-only" in panel.text
    missing = http.get("/console/agent/orders/ord_nothing_here")
    assert missing.status_code == 404
    assert "has nothing stored about order ord_nothing_here" in missing.text


def test_the_agent_panel_flags_stale_data_when_the_erp_connector_is_open(
    hub: ConsoleHub, http: TestClient
) -> None:
    hub.run(hub.bus.publish([order_event(ORDER, customer="cus_ok")]))
    sign_in(http, hub.issue_key("agent", ["experience:read"]))
    assert 'id="stale-flag"' not in http.get(f"/console/agent/orders/{ORDER}").text
    breaker = hub.hub.downstreams["erp"].breaker
    breaker.force_open("ERP maintenance window")
    page = http.get(f"/console/agent/orders/{ORDER}").text
    assert 'id="stale-flag"' in page
    assert "the ERP connector is open" in page
    assert "Status per system" in page  # still answers from what the hub stored


def test_sign_out_needs_the_token_and_ends_the_session(hub: ConsoleHub, http: TestClient) -> None:
    csrf = sign_in(http, hub.issue_key("ops", ["admin"]))
    assert http.post("/console/logout", data={}, follow_redirects=False).status_code == 403
    out = http.post("/console/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert out.status_code == 303
    assert http.get("/console/", follow_redirects=False).status_code == 303
