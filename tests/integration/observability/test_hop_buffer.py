"""Outbound-call hops are written many to a transaction, on SQLite and PostgreSQL.

Outside a bus delivery each call used to cost a commit of its own; now calls are held and
written together: with the hop of the workflow step that made them, when enough are waiting,
a moment after the first, before this process reads a trace, and when the store is switched
off (shutdown).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from retailsync.db import create_engine_for, upgrade_database
from retailsync.observability.instrument import (
    flush_trace_store,
    observe_workflow_step,
    set_trace_store,
)
from retailsync.observability.tables import trace_records
from retailsync.observability.tracecontext import continue_trace
from retailsync.observability.traces import HopBuffer, HopKind, hop_row, load_trace
from retailsync.resilience import Downstreams, RateLimitPolicy, ResiliencePolicy, ResilienceSettings

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    url = str(
        request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    )
    upgrade_database(url)
    engine = create_engine_for(url)
    with engine.begin() as connection:
        connection.execute(trace_records.delete())
    yield engine
    set_trace_store(None)
    engine.dispose()


@pytest.fixture
async def downstreams() -> AsyncIterator[Downstreams]:
    # Limits far above what the tests reach: the calls are not throttled.
    policy = ResiliencePolicy(rate_limit=RateLimitPolicy(limit=100_000, burst=10_000))
    downstreams = Downstreams(
        ResilienceSettings(downstreams=dict.fromkeys(("erp", "wms", "payments"), policy)),
        engine=None,
    )
    yield downstreams
    await downstreams.close()


class Commits:
    """Counts the transactions committed on an engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.count = 0
        sa.event.listen(engine, "commit", self._committed)

    def _committed(self, connection: Any) -> None:
        self.count += 1


def stored(engine: sa.Engine) -> list[tuple[str, str, int | None]]:
    """What the table holds now (read directly: no flush of this process's buffer)."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(trace_records.c.kind, trace_records.c.operation, trace_records.c.attempt)
            .where(trace_records.c.correlation_id == TRACE)
            .order_by(trace_records.c.seq)
        )
        return [(kind, operation, attempt) for kind, operation, attempt in rows]


async def _answer() -> str:
    return "ok"


async def test_a_step_commits_once_with_the_calls_it_made(
    engine: sa.Engine, downstreams: Downstreams
) -> None:
    set_trace_store(engine)
    commits = Commits(engine)
    async with observe_workflow_step(
        "returns", "authorize_return_in_erp", workflow_id="wf-1", correlation_id=TRACE
    ) as step:
        for _ in range(10):
            await downstreams.erp.call("model.sale.sale.read", _answer)
        assert stored(engine) == []  # held while the step runs
        step.outcome({"ok": True})
    assert commits.count == 1
    assert stored(engine) == [
        *[("outbound_call", "model.sale.sale.read", 1)] * 10,
        ("workflow_step", "returns.authorize_return_in_erp", 1),
    ]
    ordered = [e.kind for e in load_trace(engine, correlation_id=TRACE).entries]
    assert ordered == [HopKind.WORKFLOW_STEP, *[HopKind.OUTBOUND_CALL] * 10]


async def test_calls_outside_a_step_are_written_together_a_moment_later(
    engine: sa.Engine, downstreams: Downstreams
) -> None:
    set_trace_store(engine)
    commits = Commits(engine)
    with continue_trace(TRACE):
        for _ in range(40):
            await downstreams.wms.call("list inventory", _answer)
    assert stored(engine) == []
    await asyncio.sleep(0.8)  # the buffer's delay is half a second
    assert stored(engine) == [("outbound_call", "list inventory", 1)] * 40
    assert commits.count == 1


async def test_a_trace_read_and_switching_the_store_off_write_what_is_held(
    engine: sa.Engine, downstreams: Downstreams
) -> None:
    set_trace_store(engine)
    with continue_trace(TRACE):
        await downstreams.payments.call("create refund", _answer)
    assert [e.operation for e in load_trace(engine, correlation_id=TRACE).entries] == [
        "create refund"
    ]
    with continue_trace(TRACE):
        await downstreams.payments.call("retrieve refund", _answer)
    await flush_trace_store()
    with continue_trace(TRACE):
        await downstreams.payments.call("list refunds", _answer)
    set_trace_store(None)  # shutdown
    assert [operation for _, operation, _ in stored(engine)] == [
        "create refund",
        "retrieve refund",
        "list refunds",
    ]


async def test_a_full_buffer_is_written_at_once(engine: sa.Engine) -> None:
    buffer = HopBuffer(engine, max_rows=3, max_delay=60)
    with continue_trace(TRACE):
        rows = [
            hop_row(kind=HopKind.OUTBOUND_CALL, system="erp", operation=f"call {n}", status="ok")
            for n in range(4)
        ]
    for row in rows[:3]:
        buffer.add(row)
    await asyncio.sleep(0.2)
    assert [operation for _, operation, _ in stored(engine)] == ["call 0", "call 1", "call 2"]
    buffer.add(rows[3])
    await asyncio.sleep(0.2)
    assert len(buffer) == 1 and len(stored(engine)) == 3  # held: one row, a minute to wait
    buffer.flush_now()
    assert len(buffer) == 0 and len(stored(engine)) == 4


def test_without_an_event_loop_a_hop_is_written_at_once(engine: sa.Engine) -> None:
    buffer = HopBuffer(engine)
    with continue_trace(TRACE):
        buffer.add(hop_row(kind=HopKind.OUTBOUND_CALL, system="erp", operation="read", status="ok"))
    assert stored(engine) == [("outbound_call", "read", None)]
