"""The Zendesk client and service desk against the Zendesk sandbox, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from pydantic import SecretStr

from retailsync.connectors.webhook_protocol import WebhookRejected
from retailsync.connectors.zendesk.client import ZendeskClient
from retailsync.connectors.zendesk.config import ZendeskSettings
from retailsync.connectors.zendesk.errors import ZendeskApiError, ZendeskTicketNotFound
from retailsync.connectors.zendesk.inbound import ZendeskWebhookReceiver
from retailsync.connectors.zendesk.mapping import case_id_for_ticket
from retailsync.connectors.zendesk.outbound import ZendeskServiceDesk
from retailsync.domain.cases import CaseStatus
from retailsync.domain.events import CloudEvent
from retailsync.domain.identifiers import EntityKind, derive_id
from retailsync.sandbox.server import SandboxServer
from retailsync.sandbox.zendesk import ZendeskSandbox

SECRET = "sandbox-webhook-secret"
ORDER_FIELD = 360_001


@pytest.fixture
def sandbox() -> Iterator[tuple[ZendeskSandbox, str]]:
    zendesk = ZendeskSandbox(email="agent@example.com", api_token="sandbox-token")
    with SandboxServer(zendesk.app) as server:
        yield zendesk, server.base_url


def settings_for(base_url: str, **overrides: object) -> ZendeskSettings:
    values: dict[str, object] = {
        "base_url": base_url,
        "email": "agent@example.com",
        "api_token": SecretStr("sandbox-token"),
        "webhook_secret": SecretStr(SECRET),
        "order_field_id": ORDER_FIELD,
        "order_reference_system": "erp",
        "backoff_seconds": 0.01,
    }
    values.update(overrides)
    return ZendeskSettings.model_validate(values)


async def test_show_and_update_ticket(sandbox: tuple[ZendeskSandbox, str]) -> None:
    """Zendesk Tickets API, "Show Ticket" / "Update Ticket": GET and PUT
    /api/v2/tickets/{ticket_id}.json wrap the ticket in ``{"ticket": {...}}``; 404 answers
    ``{"error": "RecordNotFound"}``; 422 ``RecordInvalid`` with ``details``."""
    zendesk, url = sandbox
    ticket = zendesk.seed_ticket({"subject": "Where is my parcel?", "tags": ["order_1001"]})
    settings = settings_for(url)
    async with ZendeskClient(settings) as client:
        desk = ZendeskServiceDesk(client, settings)
        details = await desk.fetch_case_details(str(ticket["id"]))
        assert details["case"].id == case_id_for_ticket(ticket["id"])
        assert details["requester"]["email"] == "sam@example.com"
        assert details["order_reference"] == "1001"
        await desk.set_case_status(str(ticket["id"]), CaseStatus.PENDING)
        assert (await desk.fetch_case(str(ticket["id"]))).status is CaseStatus.PENDING
        await desk.set_case_fields(str(ticket["id"]), add_tags=["vip"], remove_tags=["order_1001"])
        await desk.link_order(str(ticket["id"]), "SO-778")
        stored = zendesk.tickets[ticket["id"]]
        assert stored["tags"] == ["vip", "order_so-778"]
        assert {"id": ORDER_FIELD, "value": "SO-778"} in stored["custom_fields"]
        assert client.rate_limit.limit == 700
        with pytest.raises(ZendeskTicketNotFound):
            await desk.fetch_case("999999")
        with pytest.raises(ZendeskApiError) as invalid:
            await client.update_ticket(ticket["id"], {"status": "limbo"})
        assert invalid.value.status == 422 and "RecordInvalid" in invalid.value.body


async def test_wrong_token_is_a_401(sandbox: tuple[ZendeskSandbox, str]) -> None:
    """Zendesk API basics, "Security and authentication": ``{email}/token:{api_token}`` basic
    auth; a wrong token answers 401 ``{"error": "Couldn't authenticate you"}``."""
    zendesk, url = sandbox
    zendesk.seed_ticket({})
    async with ZendeskClient(settings_for(url, api_token=SecretStr("wrong"))) as client:
        with pytest.raises(ZendeskApiError) as caught:
            await client.get_ticket(1001)
    assert caught.value.status == 401


async def test_cursor_pagination_walks_every_page(sandbox: tuple[ZendeskSandbox, str]) -> None:
    """Zendesk "Pagination" / "Using cursor pagination": ``page[size]``, then follow
    ``links.next`` while ``meta.has_more`` is true."""
    zendesk, url = sandbox
    seeded = [zendesk.seed_ticket({"subject": f"case {n}"})["id"] for n in range(7)]
    settings = settings_for(url, page_size=3)
    async with ZendeskClient(settings) as client:
        cases = [case async for case in ZendeskServiceDesk(client, settings).iter_cases()]
    assert [c.id for c in cases] == [case_id_for_ticket(t) for t in seeded]
    listing = [r for r in zendesk.requests if r[1] == "/api/v2/tickets.json"]
    assert len(listing) == 3


async def test_429_waits_retry_after_then_succeeds(sandbox: tuple[ZendeskSandbox, str]) -> None:
    """Zendesk "Rate limits": over the limit the API answers 429 Too Many Requests with a
    ``Retry-After`` header (seconds to wait); clients must wait that long before retrying."""
    zendesk, url = sandbox
    ticket = zendesk.seed_ticket({})
    zendesk.rate_limit.burst = 2
    zendesk.rate_limit.window_seconds = 1.0
    zendesk.rate_limit.retry_after_seconds = 1
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)
        import asyncio

        await asyncio.sleep(seconds)

    async with ZendeskClient(settings_for(url), sleep=record) as client:
        started = datetime.now(UTC)
        for _ in range(3):
            await client.get_ticket(ticket["id"])
        elapsed = (datetime.now(UTC) - started).total_seconds()
    statuses = [status for _, _, status in zendesk.requests]
    assert statuses == [200, 200, 429, 200]
    assert waits == [1.0]
    assert elapsed >= 1.0


async def test_5xx_is_retried_with_backoff(sandbox: tuple[ZendeskSandbox, str]) -> None:
    """A transient 500 is retried; the call succeeds once Zendesk recovers."""
    zendesk, url = sandbox
    ticket = zendesk.seed_ticket({})
    zendesk.faults.fail_next = 2
    async with ZendeskClient(settings_for(url)) as client:
        fetched = await client.get_ticket(ticket["id"])
    assert fetched["id"] == ticket["id"]
    assert [status for _, _, status in zendesk.requests] == [500, 500, 200]


async def test_internal_note_is_added_once(sandbox: tuple[ZendeskSandbox, str]) -> None:
    """Zendesk "Ticket Comments": a comment with ``"public": false`` is an internal note."""
    zendesk, url = sandbox
    ticket = zendesk.seed_ticket({})
    settings = settings_for(url)
    async with ZendeskClient(settings) as client:
        desk = ZendeskServiceDesk(client, settings)
        assert await desk.add_internal_note(
            str(ticket["id"]), "Refund issued", idempotency_key="wf-1:note"
        )
        zendesk.faults.fail_next = 1  # the next attempt's first call fails: still only one note
        assert not await desk.add_internal_note(
            str(ticket["id"]), "Refund issued", idempotency_key="wf-1:note"
        )
    notes = [c for c in zendesk.comments[ticket["id"]] if not c["public"]]
    assert len(notes) == 1 and notes[0]["body"].startswith("Refund issued")


class HubStub:
    """A stand-in for the hub's ingress: verify, map, keep the events."""

    def __init__(self, receiver: ZendeskWebhookReceiver) -> None:
        self.events: list[CloudEvent] = []
        self.rejected: list[str] = []
        self.app = FastAPI()

        @self.app.post("/v1/webhooks/zendesk")
        async def ingest(request: Request) -> Response:
            body = await request.body()
            try:
                receiver.verify(request.headers, body, datetime.now(UTC))
            except WebhookRejected as exc:
                self.rejected.append(exc.reason)
                return Response(status_code=exc.status)
            self.events.extend(receiver.to_events(request.headers, body))
            return Response(status_code=202)


async def test_signed_webhooks_reach_the_receiver(sandbox: tuple[ZendeskSandbox, str]) -> None:
    """Zendesk "Verifying webhook authenticity" and "Webhook event types" (ticket events):
    the sandbox signs ``zen:event-type:ticket.*`` payloads; our receiver verifies and maps."""
    zendesk, url = sandbox
    hub = HubStub(ZendeskWebhookReceiver(settings_for(url)))
    with SandboxServer(hub.app) as hub_server:
        async with httpx.AsyncClient(base_url=url) as control:
            await control.post(
                "/_sandbox/webhook",
                json={"url": f"{hub_server.base_url}/v1/webhooks/zendesk", "secret": SECRET},
            )
            created = await control.post("/_sandbox/tickets", json={"tags": ["order_77"]})
            ticket_id = created.json()["ticket"]["id"]
            await control.post(
                f"/_sandbox/tickets/{ticket_id}/agent-update", json={"status": "open"}
            )
            await control.post(
                "/_sandbox/webhook",
                json={"url": f"{hub_server.base_url}/v1/webhooks/zendesk", "secret": "wrong"},
            )
            await control.post(
                f"/_sandbox/tickets/{ticket_id}/agent-update", json={"status": "solved"}
            )
    assert [e.type for e in hub.events] == ["retailsync.case.opened", "retailsync.case.updated"]
    assert hub.events[0].data["case"]["order_id"] == derive_id(EntityKind.ORDER, "erp", "77")
    assert hub.events[1].data["status"] == "open"
    assert hub.events[0].subject == case_id_for_ticket(ticket_id)
    assert hub.rejected == ["bad-signature"]
    assert [d.status for d in zendesk.deliveries] == [202, 202, 401]


async def test_case_id_resolves_through_the_cross_reference(
    sandbox: tuple[ZendeskSandbox, str], sqlite_url: str
) -> None:
    """A case id (``case_…``) is resolved to its ticket through the ``xref`` table, which the
    service desk fills when it fetches the ticket."""
    from retailsync.connectors.zendesk.errors import ZendeskTicketNotLinked
    from retailsync.db import create_engine_for, upgrade_database

    zendesk, url = sandbox
    ticket = zendesk.seed_ticket({})
    upgrade_database(sqlite_url)
    engine = create_engine_for(sqlite_url)
    settings = settings_for(url)
    case_id = case_id_for_ticket(ticket["id"])
    async with ZendeskClient(settings) as client:
        desk = ZendeskServiceDesk(client, settings, engine=engine)
        with pytest.raises(ZendeskTicketNotLinked):
            await desk.set_case_status(case_id, CaseStatus.OPEN)
        await desk.fetch_case(str(ticket["id"]))
        await desk.set_case_status(case_id, CaseStatus.SOLVED)
    engine.dispose()
    assert zendesk.tickets[ticket["id"]]["status"] == "solved"
