"""Overhead of tracing and metrics on the event path, measured against itself.

Publishes batches of canonical events to the SQL bus (SQLite) and delivers them to one
subscriber whose handler does nothing: the worst case, all the time measured is the bus's
and the observation's (a real handler calls a vendor and takes milliseconds).

Configurations:

- ``off``: no metrics, no spans, no trace store, the handler as is.
- ``off again``: the baseline measured as if it were a configuration; its ratio (ideally
  1.000) shows how far the other ratios of the same run can be trusted.
- ``on, default settings``: what the hub runs with when nothing is configured
  (``install_observability`` with the default settings): the handler wrapped by
  ``traced_handler`` (the event's trace context, delivery metrics), ingest counters, the trace
  store set; the span exporter is ``none``, so no spans are built. This is the acceptance
  line (goal: ratio >= 0.9).
- ``on, spans exported, all traces sampled``: the same plus a consumer span per event,
  exported through a batch processor (as OTLP is) to an exporter that only counts (so the
  cost of encoding and sending spans, which depends on the exporter, is not in it);
  ``sample_ratio`` 1.0 is the default once an exporter is configured.
- ``on, spans exported, 10% of traces sampled``: ``sample_ratio = 0.1``.

How: the machine this runs on is shared, and a single round's rate moves by +-30 % with the
load around it. So every round measures each "on" configuration right next to a round of
``off`` (in alternating order), and the ratio reported is the **median of these paired
ratios** over many short rounds (with the quartiles): a burst of load then spoils a pair or
two instead of a whole configuration. Rates are events per second of wall time and of this
process's CPU time (every thread: span export counts); the spans of a round are flushed
inside it.

Then the outbound path: calls through the resilience guard to a downstream that answers in
about a millisecond (an HTTP call on a LAN), observability off, then on (latency metrics
and an ``outbound_call`` hop written to the trace store per attempt), paired the same way.

    .venv/bin/python bench/observability.py [--events 1000] [--rounds 30] [--calls 500]
        [--outbound-rounds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from sqlalchemy.engine import Engine

from retailsync.bus.backend import BackendConfig, BusOptions, Subscription
from retailsync.bus.backends.sql import create_backend
from retailsync.db import create_engine_for, upgrade_database
from retailsync.domain.events import CloudEvent
from retailsync.observability import metrics as hub_metrics
from retailsync.observability.instrument import (
    install_observability,
    set_trace_store,
    traced_handler,
)
from retailsync.observability.otel import force_flush_tracing, setup_tracing, shutdown_tracing
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
            # The bus counts what it stored (``events_ingested_total``) when metrics are on.
            await bus.publish(events[index : index + 250])
        await bus.deliver_until_idle(timeout=600)
        if observed:
            force_flush_tracing()  # the spans of this round are exported inside it
        elapsed, cpu_used = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await bus.close()
    assert handled == len(events), (handled, len(events))
    return len(events) / elapsed, len(events) / cpu_used


@dataclass(frozen=True)
class Configuration:
    label: str
    short: str
    observed: bool
    sample_ratio: float | None = None
    """None: the default settings (span exporter ``none``); else spans exported, this ratio."""


CONFIGURATIONS: tuple[Configuration, ...] = (
    Configuration("off", "off", observed=False),
    Configuration("off again (the noise of this run)", "off-again", observed=False),
    Configuration("on, default settings", "default", observed=True),
    Configuration(
        "on, spans exported, all traces sampled", "spans-100%", observed=True, sample_ratio=1.0
    ),
    Configuration(
        "on, spans exported, 10% of traces sampled", "spans-10%", observed=True, sample_ratio=0.1
    ),
)


def _switch(configuration: Configuration, engine: Engine, exporter: SpanExporter) -> None:
    """Observability as ``configuration`` says, the way the hub switches it on."""
    if not configuration.observed:
        shutdown_tracing()
        hub_metrics.uninstall_metrics()
        set_trace_store(None)
        return
    install_observability(engine, None)  # the defaults: metrics on, spans off
    if configuration.sample_ratio is not None:
        setup_tracing(
            TracingSettings(sample_ratio=configuration.sample_ratio), exporter=exporter, batch=True
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


def _observe_outbound(engine: Engine | None) -> None:
    if engine is None:
        hub_metrics.uninstall_metrics()
    else:
        hub_metrics.install_metrics()
    set_trace_store(engine)


async def outbound(url: str, calls: int, rounds: int) -> None:
    engine = create_engine_for(url)
    # Limits far above what the benchmark reaches: we measure observation, not throttling.
    policy = ResiliencePolicy(
        bulkhead=BulkheadPolicy(max_concurrent=64),
        rate_limit=RateLimitPolicy(limit=1_000_000, burst=100_000),
    )
    downstreams = Downstreams(ResilienceSettings(downstreams={"erp": policy}), engine=None)
    ratios: list[float] = []
    try:
        for number in range(rounds):
            rates: dict[bool, float] = {}
            for observed in (False, True) if number % 2 == 0 else (True, False):
                _observe_outbound(engine if observed else None)
                rates[observed] = await _outbound_round(downstreams, calls)
            ratios.append(rates[True] / rates[False])
    finally:
        _observe_outbound(None)
        await downstreams.close()
        engine.dispose()
    low, median, high = _quartiles(ratios)
    print(
        f"outbound through the guard (1 ms downstream), {rounds} pairs of {calls} calls: "
        f"ratio on/off {median:.3f} [{low:.3f}-{high:.3f}]"
    )


def _quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """First quartile, median, third quartile."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    low, median, high = statistics.quantiles(values, n=4)
    return low, median, high


@dataclass
class Pairs:
    """One configuration's paired rounds: (wall, CPU) rates of it and of its ``off``."""

    on: list[tuple[float, float]]
    off: list[tuple[float, float]]

    def ratios(self, position: int) -> list[float]:
        return [on[position] / off[position] for on, off in zip(self.on, self.off, strict=True)]


async def main(count: int, rounds: int) -> None:
    baseline, compared = CONFIGURATIONS[0], CONFIGURATIONS[1:]
    pairs = {configuration.label: Pairs([], []) for configuration in compared}
    exporter = CountingExporter()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.sqlite'}"
        upgrade_database(url)
        engine = create_engine_for(url)
        offset = 0

        async def measure(configuration: Configuration) -> tuple[float, float]:
            nonlocal offset
            _switch(configuration, engine, exporter)
            events = _events(count, offset)
            offset += count
            return await _round(url, events, configuration.observed, f"b{offset}")

        try:
            for configuration in CONFIGURATIONS:  # unmeasured: imports, caches, first labels
                await measure(configuration)
            exported_before = exporter.exported
            for number in range(rounds):
                start = number % len(compared)  # no configuration always comes first
                line = []
                for index, configuration in enumerate(compared[start:] + compared[:start]):
                    if (number + index) % 2 == 0:
                        off = await measure(baseline)
                        on = await measure(configuration)
                    else:
                        on = await measure(configuration)
                        off = await measure(baseline)
                    pairs[configuration.label].on.append(on)
                    pairs[configuration.label].off.append(off)
                    line.append(f"{configuration.short} {on[1] / off[1]:.2f}")
                print(f"round {number + 1:>2}, CPU ratios: " + ", ".join(sorted(line)))
        finally:
            _switch(baseline, engine, exporter)
            engine.dispose()
    print(
        f"\n{rounds} rounds, each configuration paired with an 'off' round of {count} events; "
        f"spans exported: {exporter.exported - exported_before}"
    )
    print("ratio on/off: median of the paired ratios [quartiles]; rates: medians, events/s")
    width = max(len(c.label) for c in compared)
    for configuration in compared:
        measured = pairs[configuration.label]
        cells = []
        for clock, position in (("wall", 0), ("CPU", 1)):
            low, median, high = _quartiles(measured.ratios(position))
            rate = statistics.median(rate[position] for rate in measured.on)
            cells.append(f"{clock} {median:.3f} [{low:.3f}-{high:.3f}] {rate:6.0f}/s")
        print(f"{configuration.label:<{width}}  " + "  ".join(cells))
    off_rates = [rate for label in pairs for rate in pairs[label].off]
    print(
        f"{'off':<{width}}  wall {statistics.median(r[0] for r in off_rates):6.0f}/s  "
        f"CPU {statistics.median(r[1] for r in off_rates):6.0f}/s   (goal: default >= 0.9)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000, help="events per round")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=500, help="outbound calls per round")
    parser.add_argument("--outbound-rounds", type=int, default=8)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.events, arguments.rounds))
    with tempfile.TemporaryDirectory() as folder:
        database = f"sqlite:///{Path(folder) / 'outbound.sqlite'}"
        upgrade_database(database)
        asyncio.run(outbound(database, arguments.calls, arguments.outbound_rounds))
