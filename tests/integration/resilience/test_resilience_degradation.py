"""A downstream that fails, throttles, slows down and recovers, seen through the resilience
layer: retries only for transient errors, the breaker opening and half-opening, stale reads
meanwhile, and queued writes drained exactly once after recovery."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from resilience_erp_client import MiniErpClient

from conftest import DownstreamServer
from retailsync.db import create_engine_for, upgrade_database
from retailsync.resilience import (
    BreakerPolicy,
    BreakerState,
    CircuitOpen,
    Downstreams,
    DownstreamThrottled,
    DownstreamTimeout,
    DownstreamUnavailable,
    Lane,
    RateLimitPolicy,
    ResiliencePolicy,
    ResilienceSettings,
    RetryPolicy,
    StaleValue,
    UnknownReference,
    ValidationRejected,
)
from retailsync.resilience.config import DeferredWritePolicy
from retailsync.resilience.health import connector_health

FAST = ResiliencePolicy(
    timeout_seconds=0.3,
    retry=RetryPolicy(
        max_attempts=3,
        initial_backoff_seconds=0.01,
        max_backoff_seconds=0.05,
        max_retry_after_seconds=2,
    ),
    breaker=BreakerPolicy(consecutive_failures=3, open_seconds=0.6, minimum_calls=1000),
    rate_limit=RateLimitPolicy(limit=1000, burst=100),
    deferred_writes=DeferredWritePolicy(drain_batch_size=7, drain_concurrency=4),
)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    url = str(request.getfixturevalue(f"{request.param}_url"))
    upgrade_database(url)
    return url


@pytest.fixture
async def erp_setup(
    database_url: str, downstream: DownstreamServer
) -> AsyncIterator[tuple[Downstreams, MiniErpClient]]:
    engine = create_engine_for(database_url)
    downstreams = Downstreams(ResilienceSettings(downstreams={"erp": FAST}), engine=engine)
    client = MiniErpClient(downstream.url)
    downstreams.erp.register_write("issue_refund", client.issue_refund)
    yield downstreams, client
    await client.aclose()
    await downstreams.close()
    engine.dispose()


async def test_only_transient_errors_are_retried(
    erp_setup: tuple[Downstreams, MiniErpClient], downstream: DownstreamServer
) -> None:
    downstreams, client = erp_setup
    erp = downstreams.erp

    order = await erp.call("get_order", lambda: client.get_order("SO-1"), lane=Lane.AGENT)
    assert order["status"] == "shipped"

    # Two 503s, then success: the read is retried and succeeds on the third request.
    downstream.control(fail_next=2, status=503)
    order = await erp.call("get_order", lambda: client.get_order("SO-2"), lane=Lane.AGENT)
    assert order["id"] == "SO-2"
    assert downstream.stats()["paths"]["GET /orders/SO-2"] == 3

    # Business refusals are never retried.
    with pytest.raises(UnknownReference):
        await erp.call("get_order", lambda: client.get_order("missing-1"))
    with pytest.raises(ValidationRejected):
        await erp.call(
            "issue_refund",
            lambda: client.issue_refund({"amount": -5}, "k-negative"),
            idempotency_key="k-negative",
            mutating=True,
        )
    paths = downstream.stats()["paths"]
    assert paths["GET /orders/missing-1"] == 1
    assert paths["POST /refunds"] == 1

    # A mutating call without an idempotency key is sent once, never repeated.
    downstream.control(fail_next=1, status=503)
    with pytest.raises(DownstreamUnavailable):
        await erp.call(
            "issue_refund", lambda: client.issue_refund({"amount": 5}, ""), mutating=True
        )
    assert downstream.stats()["paths"]["POST /refunds"] == 2

    # With a key, the same failure is retried and the effect happens once.
    downstream.control(fail_next=1, status=502)
    result = await erp.call(
        "issue_refund",
        lambda: client.issue_refund({"amount": 5}, "k-1"),
        idempotency_key="k-1",
        mutating=True,
    )
    assert result["key"] == "k-1"
    stats = downstream.stats()
    assert stats["requests_by_key"]["k-1"] == 2
    assert stats["applied"]["k-1"] == 1
    assert erp.breaker.state is BreakerState.CLOSED
    assert erp.stats.retries == 3


async def test_retry_after_is_honoured_and_long_waits_give_up(
    erp_setup: tuple[Downstreams, MiniErpClient], downstream: DownstreamServer
) -> None:
    downstreams, client = erp_setup
    erp = downstreams.erp
    downstream.control(fail_next=1, status=429, retry_after="0.4")
    started = time.monotonic()
    await erp.call("get_order", lambda: client.get_order("SO-9"))
    assert time.monotonic() - started >= 0.4

    # Retry-After beyond what the policy waits for: one request, then the error.
    downstream.control(fail_next=1, status=429, retry_after="30")
    with pytest.raises(DownstreamThrottled) as raised:
        await erp.call("get_order", lambda: client.get_order("SO-10"))
    assert raised.value.retry_after == 30
    assert downstream.stats()["paths"]["GET /orders/SO-10"] == 1


async def test_slow_downstream_times_out_and_reads_fall_back_to_stale(
    erp_setup: tuple[Downstreams, MiniErpClient], downstream: DownstreamServer
) -> None:
    downstreams, client = erp_setup
    erp = downstreams.erp
    as_of = datetime.now(UTC) - timedelta(minutes=3)
    downstream.control(delay=1.0)

    with pytest.raises(DownstreamTimeout):
        await erp.call("get_order", lambda: client.get_order("SO-3"))
    assert downstream.stats()["paths"]["GET /orders/SO-3"] == 3  # first try + two retries
    # Three timeouts in a row opened the breaker; the read model answers, flagged stale.
    assert erp.breaker.state is BreakerState.OPEN
    result = await erp.read(
        "get_order",
        lambda: client.get_order("SO-3"),
        stale=lambda: StaleValue({"id": "SO-3", "status": "picked"}, as_of),
    )
    assert result.stale is True
    assert result.value["status"] == "picked"
    assert 170 <= result.age_seconds <= 200
    assert result.reason is not None and "open" in result.reason
    assert downstream.stats()["paths"]["GET /orders/SO-3"] == 3  # not attempted while open


async def test_outage_defers_writes_and_drains_them_exactly_once_after_recovery(
    erp_setup: tuple[Downstreams, MiniErpClient],
    downstream: DownstreamServer,
    database_url: str,
) -> None:
    downstreams, client = erp_setup
    erp = downstreams.erp

    fresh = await erp.read("get_order", lambda: client.get_order("SO-4"))
    assert fresh.stale is False and fresh.value["status"] == "shipped"

    # The ERP goes down: the breaker opens after three transient failures.
    downstream.control(mode="error", status=503)
    first = await erp.write("issue_refund", {"amount": 1}, idempotency_key="refund-0")
    assert first.deferred
    assert erp.breaker.state is BreakerState.OPEN
    health = await connector_health(erp)
    assert health.breaker_state == "open"
    assert "3 consecutive transient failures" in health.breaker_reason
    assert "HTTP 503" in health.breaker_reason
    assert health.half_open_at is not None

    with pytest.raises(CircuitOpen) as raised:
        await erp.call("get_order", lambda: client.get_order("SO-4"))
    assert raised.value.half_open_at > datetime.now(UTC)

    # Reads are served stale from the read model meanwhile.
    as_of = datetime.now(UTC) - timedelta(seconds=42)
    stale = await erp.read(
        "get_order",
        lambda: client.get_order("SO-4"),
        stale=lambda: StaleValue({"id": "SO-4", "status": "shipped"}, as_of),
    )
    assert stale.stale is True and 40 <= stale.age_seconds <= 60

    # Writes queue durably while the breaker is open: none reaches the downstream.
    requests_before = downstream.stats()["paths"]["POST /refunds"]
    outcomes = [
        await erp.write("issue_refund", {"amount": 10 + n}, idempotency_key=f"refund-{n}")
        for n in range(1, 21)
    ]
    assert all(outcome.deferred for outcome in outcomes)
    assert downstream.stats()["paths"]["POST /refunds"] == requests_before
    # The same write offered twice is stored once.
    await erp.write("issue_refund", {"amount": 11}, idempotency_key="refund-1")
    health = await connector_health(erp)
    assert health.deferred_writes is not None and health.deferred_writes.pending == 21

    # While open, draining does nothing.
    report = await erp.drain_deferred()
    assert report.claimed == 0 and report.stopped_reason is not None

    # The ERP recovers; after the open period the breaker half-opens and one trial call
    # decides. Two workers sharing the database drain at the same time.
    downstream.control(mode="ok")
    await asyncio.sleep(FAST.breaker.open_seconds + 0.05)
    assert erp.breaker.state is BreakerState.HALF_OPEN
    other_engine = create_engine_for(database_url)
    other = Downstreams(ResilienceSettings(downstreams={"erp": FAST}), engine=other_engine)
    other.erp.register_write("issue_refund", client.issue_refund)
    try:
        reports = await asyncio.gather(erp.drain_until_empty(), other.erp.drain_until_empty())
    finally:
        await other.close()
        other_engine.dispose()
    assert sum(r.sent for r in reports) == 21
    assert erp.breaker.state is BreakerState.CLOSED

    stats = downstream.stats()
    keys = [f"refund-{n}" for n in range(21)]
    assert all(stats["applied"][key] == 1 for key in keys), stats["applied"]
    assert all(stats["requests_by_key"][key] == 1 for key in keys[1:])
    health = await connector_health(erp)
    assert health.deferred_writes is not None
    assert health.deferred_writes.pending == 0 and health.deferred_writes.sent == 21
    assert health.breaker_state == "closed"

    # Nothing is sent twice: a second drain finds nothing, and new writes go straight out.
    assert (await erp.drain_until_empty()).claimed == 0
    outcome = await erp.write("issue_refund", {"amount": 3}, idempotency_key="refund-new")
    assert outcome.status == "sent"


async def test_failed_trial_call_reopens_the_breaker(
    erp_setup: tuple[Downstreams, MiniErpClient], downstream: DownstreamServer
) -> None:
    downstreams, client = erp_setup
    erp = downstreams.erp
    downstream.control(mode="error", status=500)
    with pytest.raises(DownstreamUnavailable):
        await erp.call("get_order", lambda: client.get_order("SO-5"))
    with pytest.raises(CircuitOpen):
        await erp.call("get_order", lambda: client.get_order("SO-5"))
    assert erp.breaker.state is BreakerState.OPEN
    await asyncio.sleep(FAST.breaker.open_seconds + 0.05)
    assert erp.breaker.state is BreakerState.HALF_OPEN
    # The trial fails, the breaker reopens, and the retry stops at the open circuit.
    with pytest.raises(CircuitOpen) as raised:
        await erp.call("get_order", lambda: client.get_order("SO-5"))
    assert "trial call failed" in raised.value.reason
    assert erp.breaker.state is BreakerState.OPEN
    assert "trial call failed" in erp.breaker.reason
    assert downstream.stats()["paths"]["GET /orders/SO-5"] == 4
    assert erp.breaker.opened_count == 2
