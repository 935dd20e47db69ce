"""The Zendesk client under the hub's ``service_desk`` downstream, against the sandbox.

Wired by ``bootstrap``, every request goes through the resilience guard: the shared policy
retries it, each attempt is an ``outbound_call`` hop of the current trace with latency and
outcome metrics, and each request carries the trace's ``traceparent``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from retailsync.connectors.zendesk.client import ZendeskClient
from retailsync.connectors.zendesk.config import ZendeskSettings
from retailsync.connectors.zendesk.errors import (
    ZendeskServerError,
    ZendeskTicketNotFound,
    ZendeskUnavailable,
)
from retailsync.connectors.zendesk.outbound import ZendeskServiceDesk
from retailsync.db import create_engine_for, upgrade_database
from retailsync.domain.cases import CaseStatus
from retailsync.observability import metrics as hub_metrics
from retailsync.observability.instrument import set_trace_store
from retailsync.observability.tracecontext import continue_trace
from retailsync.observability.traces import TraceEntry, load_trace
from retailsync.resilience import Downstreams, ResiliencePolicy, ResilienceSettings
from retailsync.resilience.config import RetryPolicy
from retailsync.resilience.errors import BusinessError, TransientError
from retailsync.sandbox.server import SandboxServer
from retailsync.sandbox.zendesk import ZendeskSandbox

TRACE = "0af7651916cd43dd8448eb211c80319c"


class Recorded:
    """The Zendesk sandbox's app, noting each API request's path and ``traceparent``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls: list[tuple[str, str | None]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            header = dict(scope["headers"]).get(b"traceparent")
            self.calls.append((scope["path"], header.decode() if header else None))
        await self.app(scope, receive, send)


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    upgrade_database(sqlite_url)
    engine = create_engine_for(sqlite_url)
    hub_metrics.install_metrics(engine)
    set_trace_store(engine)
    yield engine
    set_trace_store(None)
    hub_metrics.uninstall_metrics()
    engine.dispose()


@pytest.fixture
def sandbox() -> Iterator[tuple[ZendeskSandbox, Recorded, str]]:
    zendesk = ZendeskSandbox(email="agent@example.com", api_token="sandbox-token")
    recorded = Recorded(zendesk.app)
    with SandboxServer(recorded) as server:
        yield zendesk, recorded, server.base_url


@pytest.fixture
async def downstreams() -> AsyncIterator[Downstreams]:
    policy = ResiliencePolicy(
        retry=RetryPolicy(max_attempts=3, initial_backoff_seconds=0.001, max_backoff_seconds=0.01)
    )
    downstreams = Downstreams(ResilienceSettings(downstreams={"service_desk": policy}), engine=None)
    yield downstreams
    await downstreams.close()


def settings_for(base_url: str) -> ZendeskSettings:
    return ZendeskSettings.model_validate(
        {
            "base_url": base_url,
            "email": "agent@example.com",
            "api_token": SecretStr("sandbox-token"),
            "webhook_secret": SecretStr("secret"),
            "max_attempts": 5,  # the built-in loop's; the guard's policy (3) must win
            "backoff_seconds": 5.0,
        }
    )


def calls(engine: Engine) -> list[TraceEntry]:
    trace = load_trace(engine, correlation_id=TRACE)
    return [e for e in trace.entries if e.kind.value == "outbound_call"]


def sample(name: str, **labels: str) -> float:
    metrics = hub_metrics.installed_metrics()
    assert metrics is not None
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_each_attempt_is_retried_by_the_policy_and_recorded_as_a_hop(
    engine: Engine,
    sandbox: tuple[ZendeskSandbox, Recorded, str],
    downstreams: Downstreams,
) -> None:
    zendesk, recorded, url = sandbox
    ticket = zendesk.seed_ticket({"subject": "Parcel lost"})
    zendesk.faults.fail_next = 1
    settings = settings_for(url)
    async with ZendeskClient(settings, downstream=downstreams["service_desk"]) as client:
        with continue_trace(TRACE):
            fetched = await client.get_ticket(ticket["id"])
            await ZendeskServiceDesk(client, settings).set_case_status(
                str(ticket["id"]), CaseStatus.SOLVED
            )
    assert fetched["id"] == ticket["id"]
    assert zendesk.tickets[ticket["id"]]["status"] == "solved"
    hops = calls(engine)
    assert [(e.system, e.operation, e.status, e.attempt) for e in hops] == [
        ("service_desk", "show ticket", "transient", 1),
        ("service_desk", "show ticket", "ok", 2),
        ("service_desk", "update ticket", "ok", 1),
    ]
    assert all(e.latency_ms is not None and e.latency_ms >= 0 for e in hops)
    assert "HTTP 500" in hops[0].detail["error"]
    assert [status for _, _, status in zendesk.requests] == [500, 200, 200]
    # Every request, the failed attempt included, carried a traceparent of the trace.
    assert [header.split("-")[1] if header else None for _, header in recorded.calls] == [TRACE] * 3
    assert sample("retailsync_outbound_call_duration_seconds_count", system="service_desk") == 3
    assert (
        sample("retailsync_outbound_call_errors_total", system="service_desk", outcome="transient")
        == 1
    )
    assert downstreams["service_desk"].stats.retries == 1


async def test_refusals_and_exhausted_retries_keep_the_connector_errors(
    engine: Engine,
    sandbox: tuple[ZendeskSandbox, Recorded, str],
    downstreams: Downstreams,
) -> None:
    zendesk, _recorded, url = sandbox
    ticket = zendesk.seed_ticket({})
    async with ZendeskClient(settings_for(url), downstream=downstreams["service_desk"]) as client:
        with continue_trace(TRACE):
            with pytest.raises(ZendeskTicketNotFound) as missing:
                await client.get_ticket(999_999)
            zendesk.faults.fail_next = 3
            with pytest.raises(ZendeskUnavailable) as down:
                await client.get_ticket(ticket["id"])
            zendesk.faults.fail_next = 1
            with pytest.raises(ZendeskServerError) as not_repeated:
                await client.update_ticket(
                    ticket["id"], {"comment": {"body": "x", "public": False}}, repeatable=False
                )
    assert isinstance(missing.value, BusinessError) and missing.value.status == 404
    assert isinstance(down.value, TransientError) and down.value.attempts == 3
    assert not_repeated.value.attempts == 1  # a comment is never sent twice blindly
    assert [(e.operation, e.status, e.attempt) for e in calls(engine)] == [
        ("show ticket", "business", 1),
        ("show ticket", "transient", 1),
        ("show ticket", "transient", 2),
        ("show ticket", "transient", 3),
        ("update ticket", "transient", 1),
    ]
    assert [c for c in zendesk.comments.get(ticket["id"], []) if c["body"] == "x"] == []
