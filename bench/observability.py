"""Overhead of tracing and metrics on the event path, measured against itself.

Publishes batches of canonical events to the SQL bus (SQLite) and delivers them to one
subscriber, first with observability off (no spans, no metrics), then on (a consumer span per
event exported through a batch processor, delivery counters and histograms, ingest counters),
alternating rounds so both see the same machine state. Prints events/second for each and the
ratio on/off (goal: >= 0.9).

Then the outbound path: calls through the resilience guard to a downstream that answers in
about a millisecond (an HTTP call on a LAN), observability off, then on (latency metrics
and an ``outbound_call`` hop written to the trace store per attempt).

    .venv/bin/python bench/observability.py [--events 2000] [--rounds 5] [--calls 500]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from retailsync.bus.backend import BackendConfig, BusOptions, Subscription
from retailsync.bus.backends.sql import create_backend
from retailsync.db import create_engine_for, upgrade_database
from retailsync.domain.events import CloudEvent
from retailsync.observability import metrics as hub_metrics
from retailsync.observability.instrument import set_trace_store, traced_handler
from retailsync.observability.otel import setup_tracing, shutdown_tracing
from retailsync.observability.settings import TracingSettings
from retailsync.observability.testkit import RetailJourney
from retailsync.observability.tracecontext import continue_trace
from retailsync.resilience import (
    BulkheadPolicy,
    Downstreams,
    RateLimitPolicy,
    ResiliencePolicy,
    ResilienceSettings,
)


class CountingExporter(SpanExporter):
    """Stands in for an OTLP exporter without the network: counts what it is handed."""

    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def _events(count: int, offset: int) -> list[CloudEvent]:
    """Stock changes, each in its own trace (as separate business flows are)."""
    base = RetailJourney().stock_adjusted(datetime.now(UTC))
    return [
        base.model_copy(
            update={
                "id": f"bench-{offset + n}",
                "partitionkey": f"SKU-{n % 64}@WH1",
                "correlationid": secrets.token_hex(16),
            }
        )
        for n in range(count)
    ]


async def _round(
    url: str, events: list[CloudEvent], observed: bool, name: str
) -> tuple[float, float]:
    """Events per second of wall time and per second of this process's CPU time."""
    handled = 0

    async def update_storefront_stock(event: CloudEvent, ctx: Any) -> None:
        nonlocal handled
        handled += 1

    handler = traced_handler(name, update_storefront_stock) if observed else update_storefront_stock
    bus = create_backend(
        BackendConfig(
            database_url=url,
            worker_id=name,
            options=BusOptions(poll_interval=0.001, delivery_batch_size=500, shards=8),
        )
    )
    bus.subscribe(Subscription(name=name, handler=handler, start_from="latest"))
    await bus.start()
    try:
        started, cpu = time.perf_counter(), time.process_time()
        for index in range(0, len(events), 250):
            batch = events[index : index + 250]
            outcomes = await bus.publish(batch)
            if observed:
                for outcome in outcomes:
                    hub_metrics.event_ingested(batch[outcome.index].type)
        await bus.deliver_until_idle(timeout=600)
        elapsed, cpu_used = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await bus.close()
    assert handled == len(events), (handled, len(events))
    return len(events) / elapsed, len(events) / cpu_used


CONFIGURATIONS: tuple[tuple[str, float | None], ...] = (
    ("off", None),
    ("on, all traces sampled", 1.0),
    ("on, 10% of traces sampled", 0.1),
)


async def _outbound_round(downstreams: Downstreams, calls: int) -> float:
    """Calls per second through the guard, each in its own trace."""

    async def read_order() -> None:
        await asyncio.sleep(0.001)

    started = time.perf_counter()
    for _ in range(calls):
        with continue_trace(secrets.token_hex(16)):
            await downstreams.erp.call("read order", read_order)
    return calls / (time.perf_counter() - started)


async def outbound(url: str, calls: int, rounds: int) -> None:
    engine = create_engine_for(url)
    # Limits far above what the benchmark reaches: we measure observation, not throttling.
    policy = ResiliencePolicy(
        bulkhead=BulkheadPolicy(max_concurrent=64),
        rate_limit=RateLimitPolicy(limit=1_000_000, burst=100_000),
    )
    downstreams = Downstreams(ResilienceSettings(downstreams={"erp": policy}), engine=None)
    off: list[float] = []
    on: list[float] = []
    try:
        for _ in range(rounds):
            hub_metrics.uninstall_metrics()
            set_trace_store(None)
            off.append(await _outbound_round(downstreams, calls))
            hub_metrics.install_metrics()
            set_trace_store(engine)
            on.append(await _outbound_round(downstreams, calls))
    finally:
        hub_metrics.uninstall_metrics()
        set_trace_store(None)
        await downstreams.close()
        engine.dispose()
    baseline, measured = statistics.median(off), statistics.median(on)
    print(
        f"outbound through the guard (1 ms downstream), medians of {rounds} rounds of {calls}: "
        f"off {baseline:6.0f} calls/s, on {measured:6.0f} calls/s, "
        f"ratio on/off {measured / baseline:.3f}"
    )


async def main(count: int, rounds: int) -> None:
    results: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in CONFIGURATIONS}
    exporter = CountingExporter()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.sqlite'}"
        upgrade_database(url)
        offset = 0
        for number in range(rounds):
            for index, (label, ratio) in enumerate(CONFIGURATIONS):
                if ratio is None:
                    hub_metrics.uninstall_metrics()
                    shutdown_tracing()
                else:
                    hub_metrics.install_metrics()
                    setup_tracing(
                        TracingSettings(sample_ratio=ratio), exporter=exporter, batch=True
                    )
                name = f"r{number}-c{index}"
                wall, cpu = await _round(url, _events(count, offset), ratio is not None, name)
                offset += count
                results[label].append((wall, cpu))
                print(
                    f"round {number + 1} {label:<27} {wall:7.0f} events/s wall, "
                    f"{cpu:7.0f} events/CPU-s"
                )
        shutdown_tracing()
        hub_metrics.uninstall_metrics()
    print(f"medians of {rounds} rounds of {count} events; spans exported: {exporter.exported}")
    for measure, position in (("wall", 0), ("CPU", 1)):
        baseline = statistics.median(rate[position] for rate in results["off"])
        print(f"{measure:>4} off: {baseline:7.0f} events/s")
        for label, ratio in CONFIGURATIONS:
            if ratio is None:
                continue
            measured = statistics.median(rate[position] for rate in results[label])
            print(
                f"{measure:>4} {label}: {measured:7.0f} events/s, "
                f"ratio on/off {measured / baseline:.3f} (goal >= 0.9)"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=500)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.events, arguments.rounds))
    with tempfile.TemporaryDirectory() as folder:
        database = f"sqlite:///{Path(folder) / 'outbound.sqlite'}"
        upgrade_database(database)
        asyncio.run(outbound(database, arguments.calls, arguments.rounds))
