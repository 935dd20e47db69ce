"""The trace store on SQLite and PostgreSQL: hops, bus events and exceptions in one timeline."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from retailsync.bus.backend import (
    BackendConfig,
    BusOptions,
    EventBusBackend,
    EventFilter,
    RetryPolicy,
    Subscription,
)
from retailsync.bus.backends.sql import create_backend
from retailsync.db import create_engine_for, upgrade_database
from retailsync.domain.events import CloudEvent
from retailsync.observability.cli import app as observability_cli
from retailsync.observability.errors import TraceQueryInvalid
from retailsync.observability.tables import trace_records
from retailsync.observability.testkit import RetailJourney
from retailsync.observability.traces import HopKind, load_trace, record_hop
from retailsync.resilience.errors import ValidationRejected

TRACE = secrets.token_hex(16)
"""This run's own trace id: the PostgreSQL database is shared with other test runs."""
OPTIONS = BusOptions(poll_interval=0.01, lease_ttl=2.0, shards=4, auto_retry_interval=0.05)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    url = str(
        request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    )
    upgrade_database(url)
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine_for(database_url)
    yield engine
    engine.dispose()


async def _refuse_returns(event: CloudEvent, ctx: object) -> None:
    if event.type == "retailsync.return.requested":
        raise ValidationRejected("the ERP refused the return: line 1 is not returnable")


@pytest.fixture
async def bus(database_url: str) -> AsyncIterator[EventBusBackend]:
    backend = create_backend(
        BackendConfig(database_url=database_url, options=OPTIONS, extra={"delete_on_close": True})
    )
    backend.subscribe(
        Subscription(
            name="erp-returns",
            handler=_refuse_returns,
            filter=EventFilter(types=("retailsync.return.*",)),
            retry=RetryPolicy(business_max_attempts=1, initial_backoff=0.01),
            downstream="erp",
        )
    )
    await backend.start()
    yield backend
    await backend.close()


def test_recording_is_idempotent_on_the_hop_key(engine: sa.Engine) -> None:
    header = f"00-{TRACE}-00f067aa0ba902b7-01"
    first = record_hop(
        engine,
        kind=HopKind.WORKFLOW_STEP,
        system="erp",
        operation="service_refund.post_credit_note",
        status="ok",
        correlation_id=header,
        hop_key="refund-1:post_credit_note",
    )
    again = record_hop(
        engine,
        kind=HopKind.WORKFLOW_STEP,
        system="erp",
        operation="service_refund.post_credit_note",
        status="ok",
        correlation_id=header,
        hop_key="refund-1:post_credit_note",
    )
    assert first is not None and again is None
    with engine.connect() as connection:
        rows = connection.execute(sa.select(trace_records)).mappings().all()
    assert len(rows) == 1
    assert rows[0]["correlation_id"] == TRACE


async def test_order_timeline_merges_records_events_and_exceptions(
    engine: sa.Engine, bus: EventBusBackend
) -> None:
    journey = RetailJourney(correlation_id=TRACE)
    t0 = datetime.now(UTC) - timedelta(hours=1)
    record_hop(
        engine,
        kind=HopKind.INBOUND,
        system="shopify",
        operation="orders/create",
        status="accepted",
        correlation_id=TRACE,
        order_id=journey.order_id,
        detail={"email": "jane@shop.example"},
    )
    created = journey.order_created(t0)
    await bus.publish([created])
    record_hop(
        engine,
        kind=HopKind.OUTBOUND_CALL,
        system="erp",
        operation="submit_order",
        status="ok",
        latency_ms=12.5,
        attempt=1,
        correlation_id=TRACE,
        order_id=journey.order_id,
    )
    # An event on a backend without an event store is recorded as a hop; the same event
    # found in bus_events is shown once.
    record_hop(
        engine,
        kind=HopKind.EVENT,
        system=created.source,
        operation=created.type,
        status="stored",
        correlation_id=TRACE,
        detail={"source": created.source, "event_id": created.id},
    )
    requested = journey.return_requested(t0 + timedelta(minutes=5))
    await bus.publish([requested])
    await bus.deliver_until_idle(timeout=20)
    # Another order in another trace stays out.
    other = RetailJourney(correlation_id="1" * 32)
    await bus.publish([other.order_created(t0)])

    trace = load_trace(engine, order_id=journey.order_id)

    kinds = [(e.kind.value, e.operation) for e in trace.entries]
    assert kinds == [
        ("inbound", "orders/create"),
        ("event", "retailsync.order.created"),
        ("outbound_call", "submit_order"),
        ("event", "retailsync.return.requested"),
        ("exception", "erp-returns: retailsync.return.requested"),
    ]
    assert trace.correlation_ids == (TRACE,)
    assert {e.correlation_id for e in trace.entries} == {TRACE}
    exception = trace.entries[-1]
    assert exception.status == "open"
    assert exception.detail["classification"] == "business"
    assert "not returnable" in exception.detail["error"]
    assert trace.entries[0].detail == {"email": "[MASKED]"}
    assert trace.entries[2].latency_ms == 12.5

    # Resolving the exception adds the operator's action to the timeline.
    entry_id = int(exception.detail["exception_id"])
    await bus.exceptions.resolve(entry_id, actor="ops:jane", note="return line corrected")
    again = load_trace(engine, correlation_id=f"00-{TRACE}-00f067aa0ba902b7-01")
    assert [e.operation for e in again.entries][-1] == "exception resolve"
    assert again.to_json()["counts"] == {
        "inbound": 1,
        "event": 2,
        "outbound_call": 1,
        "exception": 2,
    }


def test_a_query_names_exactly_one_thing(engine: sa.Engine) -> None:
    with pytest.raises(TraceQueryInvalid, match="exactly one"):
        load_trace(engine)
    with pytest.raises(TraceQueryInvalid, match="exactly one"):
        load_trace(engine, order_id="ord_1", case_id="case_1")


def test_cli_prints_the_timeline(
    engine: sa.Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    journey = RetailJourney(correlation_id=TRACE)
    for operation, status in (("submit_order", "transient"), ("submit_order", "ok")):
        record_hop(
            engine,
            kind=HopKind.OUTBOUND_CALL,
            system="erp",
            operation=operation,
            status=status,
            latency_ms=40.0,
            correlation_id=TRACE,
            order_id=journey.order_id,
        )
    monkeypatch.setenv("RETAILSYNC_DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "160")
    runner = CliRunner()
    shown = runner.invoke(observability_cli, ["trace", journey.order_id])
    assert shown.exit_code == 0, shown.output
    assert "submit_order" in shown.output and "transient" in shown.output
    assert TRACE in shown.output
    as_json = runner.invoke(observability_cli, ["trace", journey.order_id, "--json"])
    assert as_json.exit_code == 0
    assert '"outbound_call": 2' in as_json.output
    missing = runner.invoke(observability_cli, ["trace", "ord_01J00000000000000000000000"])
    assert missing.exit_code == 1
