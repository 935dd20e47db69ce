"""Event bus throughput: ingest -> durable -> delivered -> handled, against the raw ceiling.

For each backend, in the same run:

- *raw ceiling*: plain batched inserts of the same events (each serialized to its JSON
  envelope, then one INSERT and commit per batch into a table with the event store's columns
  and nothing but a primary key: no dedup, no other index, no delivery). Two ways, best of
  three each:
  - *SQLAlchemy*: ``conn.execute(table.insert(), rows)`` (the definition used since the
    first measurement);
  - *driver*: the same rows through the database driver the way the bus itself now writes
    its batches (``retailsync.bus.driver.insert_rows``: SQLite multi-row ``VALUES``,
    PostgreSQL ``unnest`` of binary arrays) — the stricter ceiling, about twice as high.
  NATS: plain JetStream publish (awaiting every PubAck) while one pull consumer fetches and acks
  (``retailsync.bus.backends.nats_bench``).
- *pipeline*: ``bus.publish`` in batches while ``run_delivery`` hands every event to a handler,
  from the first publish until the last event was handled; best of three like the ceilings,
  each try in a fresh database as each ceiling try writes a fresh table (the machine is
  shared: single runs move by +-50 %). Two handlers: ``count`` (touches
  nothing) and ``write-row`` (inserts one row through ``ctx.connection``, i.e. in the delivery
  transaction, like a projection).

The ratio pipeline / ceiling is the number to watch (goal >= 0.5); both ratios are printed.

    python bench/bus.py [--events 10000] [--batch 500] [--postgres URL] [--nats URL]

PostgreSQL defaults to RETAILSYNC_TEST_POSTGRES_URL or 127.0.0.1:5432 (a scratch database is
created and dropped); NATS to RETAILSYNC_TEST_NATS_URL or 127.0.0.1:4222.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from retailsync.bus import driver
from retailsync.bus.backend import (
    BackendConfig,
    BusOptions,
    DeliveryContext,
    EventBusBackend,
    Handler,
    Subscription,
)
from retailsync.bus.testkit import keyed_event
from retailsync.bus.validation import partition_key_of
from retailsync.db import create_engine_for, upgrade_database
from retailsync.domain.events import CloudEvent
from retailsync.runtime import settle_heap

KEYS = 200
WHEN = sa.DateTime(timezone=True)


def make_events(count: int, run: str) -> list[CloudEvent]:
    return [keyed_event(f"{run}-k{n % KEYS}", n) for n in range(count)]


RAW_COLUMNS: driver.Columns = (
    ("source", "varchar"),
    ("event_id", "varchar"),
    ("type", "varchar"),
    ("subject", "varchar"),
    ("partition_key", "varchar"),
    ("correlation_id", "varchar"),
    ("time", "timestamptz"),
    ("stored_at", "timestamptz"),
    ("envelope", "text"),
)


def raw_table() -> sa.Table:
    return sa.Table(
        f"bench_raw_{uuid.uuid4().hex[:8]}",
        sa.MetaData(),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(500)),
        sa.Column("event_id", sa.String(200)),
        sa.Column("type", sa.String(200)),
        sa.Column("subject", sa.String(500)),
        sa.Column("partition_key", sa.String(500)),
        sa.Column("correlation_id", sa.String(200)),
        sa.Column("time", WHEN),
        sa.Column("stored_at", WHEN),
        sa.Column("envelope", sa.Text),
    )


def insert_with_sqlalchemy(conn: sa.Connection, table: sa.Table, events: list[CloudEvent]) -> None:
    now = datetime.now(UTC)
    rows = [
        {
            "source": e.source,
            "event_id": e.id,
            "type": e.type,
            "subject": e.subject,
            "partition_key": partition_key_of(e),
            "correlation_id": e.correlationid,
            "time": e.time,
            "stored_at": now,
            "envelope": e.model_dump_json(exclude_none=True),
        }
        for e in events
    ]
    conn.execute(table.insert(), rows)


def insert_with_driver(conn: sa.Connection, table: sa.Table, events: list[CloudEvent]) -> None:
    now = driver.db_datetime(conn, datetime.now(UTC))
    rows = [
        (
            e.source,
            e.id,
            e.type,
            e.subject,
            partition_key_of(e),
            e.correlationid,
            driver.db_datetime(conn, e.time),
            now,
            e.model_dump_json(exclude_none=True),
        )
        for e in events
    ]
    driver.insert_rows(conn, table.name, RAW_COLUMNS, rows)


Inserter = Callable[[sa.Connection, sa.Table, list[CloudEvent]], None]


def raw_ceiling(
    url: str, events: list[CloudEvent], batch: int, tries: int = 3, insert: Inserter | None = None
) -> float:
    """Events/s for plain batched inserts of the same events (best of ``tries``), through
    SQLAlchemy Core (default) or ``insert``."""
    insert = insert or insert_with_sqlalchemy
    engine = create_engine_for(url)
    best = 0.0
    for _ in range(tries):
        table = raw_table()
        table.create(engine)
        started = time.perf_counter()
        for start in range(0, len(events), batch):
            with engine.begin() as conn:
                insert(conn, table, events[start : start + batch])
        best = max(best, len(events) / (time.perf_counter() - started))
        table.drop(engine)
    engine.dispose()
    return best


EFFECTS_DDL = (
    "CREATE TABLE IF NOT EXISTS bench_effects "
    "(event_id VARCHAR(200) NOT NULL, position INTEGER NOT NULL)"
)


async def write_row(event: CloudEvent, ctx: DeliveryContext) -> None:
    """A trivial projection: one row per event, in the delivery transaction."""
    ctx.connection.execute(
        sa.text("INSERT INTO bench_effects (event_id, position) VALUES (:i, :p)"),
        {"i": event.id, "p": event.data["position"]},
    )


async def count_only(event: CloudEvent, ctx: DeliveryContext) -> None:
    return None


HANDLERS: dict[str, Handler] = {"count": count_only, "write-row": write_row}


async def pipeline(
    make_bus: Callable[[], EventBusBackend], events: list[CloudEvent], batch: int, handler: Handler
) -> float:
    """Events/s from the first publish until the last event was handled."""
    handled = 0
    done = asyncio.Event()

    async def handle(event: CloudEvent, ctx: DeliveryContext) -> None:
        nonlocal handled
        await handler(event, ctx)
        handled += 1
        if handled >= len(events):
            done.set()

    bus = make_bus()
    bus.subscribe(Subscription("bench", handle, start_from="latest"))
    await bus.start()
    stop = asyncio.Event()
    started = time.perf_counter()
    runner = asyncio.create_task(bus.run_delivery(stop))
    for start in range(0, len(events), batch):
        outcomes = await bus.publish(events[start : start + batch])
        assert all(o.ok for o in outcomes)
    await asyncio.wait_for(done.wait(), 600)
    elapsed = time.perf_counter() - started
    stop.set()
    await runner
    await bus.close()
    return len(events) / elapsed


def sql_bus(url: str) -> Callable[[], EventBusBackend]:
    from retailsync.bus.backends.sql import create_backend

    options = BusOptions(delivery_batch_size=500, max_batch_size=1000, poll_interval=0.005)
    return lambda: create_backend(
        BackendConfig(database_url=url, options=options, worker_id="bench")
    )


@contextlib.contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.sqlite'}"
        upgrade_database(url)
        yield url


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    name = f"bench_bus_{uuid.uuid4().hex[:8]}"
    admin = create_engine_for(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade_database(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def verdict(ratio: float) -> str:
    return "meets 0.5" if ratio >= 0.5 else "below 0.5"


def report(name: str, measured: float, ceilings: dict[str, float]) -> None:
    parts = [
        f"{label} {ceiling:>9,.0f} ev/s: {measured / ceiling:.2f} ({verdict(measured / ceiling)})"
        for label, ceiling in ceilings.items()
    ]
    print(f"{name:<26} pipeline {measured:>7,.0f} ev/s | " + " | ".join(parts), flush=True)


def best_pipeline(
    database: Callable[[], contextlib.AbstractContextManager[str]],
    args: argparse.Namespace,
    handler: Handler,
) -> float:
    """Best of ``args.tries`` pipeline runs, each with its own events in a fresh database (as
    each ceiling try writes a fresh table: on the same file SQLite's throughput falls run after
    run while its random-key indexes grow)."""
    best = 0.0
    for _ in range(args.tries):
        with database() as url:
            engine = create_engine_for(url)
            with engine.begin() as conn:
                conn.exec_driver_sql(EFFECTS_DDL)
            engine.dispose()
            events = make_events(args.events, uuid.uuid4().hex[:6])
            best = max(best, asyncio.run(pipeline(sql_bus(url), events, args.batch, handler)))
    return best


def sql_rows(
    name: str,
    database: Callable[[], contextlib.AbstractContextManager[str]],
    args: argparse.Namespace,
) -> None:
    events = make_events(args.events, "raw")
    with database() as url:
        ceilings = {
            "ceiling SQLAlchemy": raw_ceiling(url, events, args.batch, args.tries),
            "ceiling driver": raw_ceiling(url, events, args.batch, args.tries, insert_with_driver),
        }
    for label, handler in HANDLERS.items():
        report(f"{name} ({label})", best_pipeline(database, args, handler), ceilings)


def nats_rows(args: argparse.Namespace) -> None:
    """Plain JetStream ceiling and the NATS backend's pipeline (SQL inbox on PostgreSQL)."""
    try:
        from retailsync.bus.backends.nats_bench import measure
    except ImportError as exc:
        print(f"{'nats':<30} not measured: {exc}")
        return
    with postgres_database(args.postgres) as url:
        results = [
            asyncio.run(measure(args.nats, url, events=args.events, batch=args.batch))
            for _ in range(args.tries)
        ]
    report(
        "nats (count, +pg inbox)",
        max(r.pipeline for r in results),
        {"ceiling JetStream": max(r.raw for r in results)},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "RETAILSYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument(
        "--nats", default=os.environ.get("RETAILSYNC_TEST_NATS_URL", "nats://127.0.0.1:4222")
    )
    parser.add_argument(
        "--skip", action="append", default=[], choices=["sqlite", "postgres", "nats"]
    )
    parser.add_argument("--tries", type=int, default=3, help="runs per number; best is shown")
    args = parser.parse_args()
    # The collector as the hub's own processes run it (`retailsync serve` / `worker`), for the
    # ceilings and the pipelines alike.
    settle_heap()
    print(
        f"{args.events} events, {KEYS} partition keys, batches of {args.batch}, 1 process, "
        f"best of {args.tries}"
    )
    if "sqlite" not in args.skip:
        sql_rows("sqlite", sqlite_database, args)
    if "postgres" not in args.skip:
        sql_rows("postgresql", functools.partial(postgres_database, args.postgres), args)
    if "nats" not in args.skip:
        nats_rows(args)


if __name__ == "__main__":
    main()
